"""End to end: a real Django app (runserver, DEBUG=True) whose classic views
are protected by twilioguard.django, a real twilioguard server, and requests
signed by twilio-python's RequestValidator."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable
from typing import Any

import pytest
from _e2e import Account, DjangoApp, TLSTerminatingProxy, TwilioguardServer, send
from _need import need_module

PUBLIC_HOST = "hooks.example.com"
PROXY_PEER = "127.0.0.2"  # the trusted proxy's address; tests send from 127.0.0.1
CALLER = "+15551234567"


class MultiDict:
    """A Werkzeug-style multi-value mapping, as RequestValidator accepts."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self.pairs = list(pairs)

    def __iter__(self) -> Any:
        return iter(dict.fromkeys(k for k, _ in self.pairs))

    def getall(self, key: str) -> list[str]:
        return [v for k, v in self.pairs if k == key]


def twilio_sign(token: str, url: str, pairs: list[tuple[str, str]]) -> str:
    need_module("twilio")
    from twilio.request_validator import RequestValidator

    return RequestValidator(token).compute_signature(url, MultiDict(pairs))


def call_params(account: Account) -> list[tuple[str, str]]:
    return [
        ("AccountSid", account.sid),
        ("CallSid", "CA" + "0" * 32),
        ("CallStatus", "ringing"),
        ("Direction", "inbound"),
        ("From", CALLER),
        ("To", "+15557654321"),
    ]


def message_params(account: Account, body: str = "Hello there") -> list[tuple[str, str]]:
    return [
        ("AccountSid", account.sid),
        ("MessageSid", "SM" + "1" * 32),
        ("Body", body),
        ("From", CALLER),
        ("To", "+15557654321"),
        ("NumMedia", "0"),
    ]


def form(pairs: list[tuple[str, str]]) -> bytes:
    return urllib.parse.urlencode(pairs).encode()


@pytest.fixture(scope="session")
def plain_app(django_app_factory: Any, twilioguard_server: TwilioguardServer) -> DjangoApp:
    """An app configured with nothing but TWILIOGUARD_URL."""
    return django_app_factory(TWILIOGUARD_URL=twilioguard_server.url)


@pytest.fixture(scope="session")
def public_base_app(django_app_factory: Any, twilioguard_server: TwilioguardServer) -> DjangoApp:
    """An app that knows its public base URL."""
    return django_app_factory(
        TWILIOGUARD_URL=twilioguard_server.url, TWILIOGUARD_PUBLIC_BASE_URL=f"https://{PUBLIC_HOST}"
    )


@pytest.fixture(scope="session")
def trusting_app(django_app_factory: Any, twilioguard_server: TwilioguardServer) -> DjangoApp:
    """An app that trusts forwarding headers from the proxy at 127.0.0.2 only."""
    return django_app_factory(
        TWILIOGUARD_URL=twilioguard_server.url, TWILIOGUARD_TRUSTED_PROXIES=f"{PROXY_PEER}/32"
    )


def test_incoming_call_signed_passes(plain_app: DjangoApp, account: Account) -> None:
    params = call_params(account)
    url = plain_app.url + "/incoming-call/"
    sig = twilio_sign(account.token, url, params)
    resp = send(plain_app.url, "/incoming-call/", body=form(params), headers={"X-Twilio-Signature": sig})
    if resp.status != 200:
        pytest.fail(f"status {resp.status}, want 200: {resp.body[:500]}")
    if "<Say>" not in resp.body or " ".join(CALLER) not in resp.body:
        pytest.fail(f"TwiML lacks <Say> with the caller's number: {resp.body}")


def test_incoming_message_signed_passes(plain_app: DjangoApp, account: Account) -> None:
    params = message_params(account, "Hi, twilioguard é ✓")
    url = plain_app.url + "/incoming-message/"
    sig = twilio_sign(account.token, url, params)
    resp = send(plain_app.url, "/incoming-message/", body=form(params), headers={"X-Twilio-Signature": sig})
    if resp.status != 200:
        pytest.fail(f"status {resp.status}, want 200: {resp.body[:500]}")
    want = "Your text to me was 19 characters long."
    if want not in resp.body:
        pytest.fail(f"reply lacks {want!r}: {resp.body}")


def test_raw_query_and_repeated_keys_pass(plain_app: DjangoApp, account: Account) -> None:
    path = "/incoming-message/?src=twilio&note=it%27s+a%20test&empty="
    params = message_params(account) + [("MediaUrl", "https://b.example/2"), ("MediaUrl", "https://a.example/1")]
    sig = twilio_sign(account.token, plain_app.url + path, params)
    resp = send(plain_app.url, path, body=form(params), headers={"X-Twilio-Signature": sig})
    if resp.status != 200:
        pytest.fail(f"status {resp.status}, want 200: {resp.body[:500]}")


@pytest.mark.parametrize(
    "case",
    ["unsigned", "empty signature", "tampered body", "tampered path", "wrong token", "other account's token", "garbage"],
)
@pytest.mark.parametrize("view", ["incoming-call", "incoming-message"])
def test_forged_requests_are_forbidden_even_with_debug(
    plain_app: DjangoApp, account: Account, other_account: Account, view: str, case: str
) -> None:
    path = f"/{view}/"
    params = call_params(account) if view == "incoming-call" else message_params(account)
    url = plain_app.url + path
    headers = {"X-Twilio-Signature": twilio_sign(account.token, url, params)}
    body = form(params)
    if case == "unsigned":
        headers = {}
    elif case == "empty signature":
        headers = {"X-Twilio-Signature": ""}
    elif case == "tampered body":
        body = form([(k, "+15550000000" if k == "From" else v) for k, v in params])
    elif case == "tampered path":
        path = f"/{view}/?extra=1"
    elif case == "wrong token":
        headers = {"X-Twilio-Signature": twilio_sign("not-the-token", url, params)}
    elif case == "other account's token":
        headers = {"X-Twilio-Signature": twilio_sign(other_account.token, url, params)}
    elif case == "garbage":
        headers = {"X-Twilio-Signature": "not base64 at all!"}
    resp = send(plain_app.url, path, body=body, headers=headers)
    if resp.status != 403:
        pytest.fail(f"{case}: status {resp.status}, want 403 (DEBUG=True must not skip validation)")


def https_signed(account: Account, path: str = "/incoming-message/") -> tuple[bytes, dict[str, str]]:
    """A message webhook as Twilio sends it to https://hooks.example.com."""
    params = message_params(account)
    sig = twilio_sign(account.token, f"https://{PUBLIC_HOST}{path}", params)
    return form(params), {"X-Twilio-Signature": sig}


def test_behind_proxy_fails_without_configuration(plain_app: DjangoApp, account: Account) -> None:
    body, headers = https_signed(account)
    proxy = TLSTerminatingProxy(plain_app.url, public_host=PUBLIC_HOST, source=PROXY_PEER)
    try:
        resp = send(proxy.url, "/incoming-message/", body=body, headers=headers)
    finally:
        proxy.close()
    if proxy.forwarded != 1:
        pytest.fail(f"proxy forwarded {proxy.forwarded} requests, want 1")
    if resp.status != 403:
        pytest.fail(f"status {resp.status}, want 403: forwarding headers from an untrusted peer must be ignored")


def test_behind_proxy_passes_with_public_base_url(public_base_app: DjangoApp, account: Account) -> None:
    body, headers = https_signed(account)
    proxy = TLSTerminatingProxy(public_base_app.url, public_host=PUBLIC_HOST, source=PROXY_PEER)
    try:
        resp = send(proxy.url, "/incoming-message/", body=body, headers=headers)
    finally:
        proxy.close()
    if resp.status != 200:
        pytest.fail(f"status {resp.status}, want 200: {resp.body[:300]}")


def test_public_base_url_pins_scheme_and_host(public_base_app: DjangoApp, account: Account) -> None:
    # Signed for http://127.0.0.1:port as received: not the public URL.
    params = message_params(account)
    sig = twilio_sign(account.token, public_base_app.url + "/incoming-message/", params)
    resp = send(public_base_app.url, "/incoming-message/", body=form(params), headers={"X-Twilio-Signature": sig})
    if resp.status != 403:
        pytest.fail(f"status {resp.status}, want 403: only the public URL may match")


@pytest.mark.parametrize("style", ["x-forwarded", "forwarded"])
def test_behind_trusted_proxy_passes(trusting_app: DjangoApp, account: Account, style: str) -> None:
    body, headers = https_signed(account)
    proxy = TLSTerminatingProxy(trusting_app.url, public_host=PUBLIC_HOST, source=PROXY_PEER, style=style)
    try:
        resp = send(proxy.url, "/incoming-message/", body=body, headers=headers)
    finally:
        proxy.close()
    if resp.status != 200:
        pytest.fail(f"status {resp.status}, want 200: {resp.body[:300]}")


@pytest.mark.parametrize(
    "forwarding",
    [
        {"X-Forwarded-Proto": "https", "X-Forwarded-Host": PUBLIC_HOST},
        {"Forwarded": f"proto=https;host={PUBLIC_HOST}"},
        {"X-Forwarded-Proto": "https", "X-Original-Host": PUBLIC_HOST},
    ],
    ids=["x-forwarded", "forwarded", "x-original-host"],
)
def test_forwarding_headers_from_untrusted_peer_are_ignored(
    trusting_app: DjangoApp, account: Account, forwarding: dict[str, str]
) -> None:
    body, headers = https_signed(account)
    resp = send(trusting_app.url, "/incoming-message/", body=body, headers={**headers, **forwarding})
    if resp.status != 403:
        pytest.fail(f"status {resp.status}, want 403: 127.0.0.1 is not a trusted proxy")
    # The same headers from the trusted peer are believed.
    resp = send(trusting_app.url, "/incoming-message/", body=body, headers={**headers, **forwarding}, source=PROXY_PEER)
    if resp.status != 200:
        pytest.fail(f"status {resp.status} from the trusted peer, want 200: {resp.body[:300]}")


def test_service_unreachable_is_503(
    django_app_factory: Any, stoppable_server: TwilioguardServer, account: Account
) -> None:
    stoppable_server.put_account(account)
    app = django_app_factory(TWILIOGUARD_URL=stoppable_server.url)
    params = message_params(account)
    sig = twilio_sign(account.token, app.url + "/incoming-message/", params)
    headers = {"X-Twilio-Signature": sig}

    resp = send(app.url, "/incoming-message/", body=form(params), headers=headers)
    if resp.status != 200:
        pytest.fail(f"before stopping the service: status {resp.status}, want 200: {resp.body[:300]}")

    stoppable_server.stop()
    resp = send(app.url, "/incoming-message/", body=form(params), headers=headers)
    if resp.status != 503:
        pytest.fail(f"service stopped: status {resp.status}, want 503 (fail closed)")
    resp = send(app.url, "/incoming-message/", body=form(params))
    if resp.status != 503:
        pytest.fail(f"service stopped, unsigned: status {resp.status}, want 503")
