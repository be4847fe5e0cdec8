"""End to end: the Twilio tutorial's webhooks in real Django (runserver,
DEBUG=True), Flask (gunicorn, debug on) and FastAPI (uvicorn, debug=True)
apps protected by twilioguard's integrations, a real twilioguard server, and
requests signed by twilio-python's RequestValidator."""

from __future__ import annotations

import secrets
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pytest
from _e2e import KINDS, Account, TLSTerminatingProxy, TwilioguardServer, WebApp, send
from _need import need_module

import twilioguard

PUBLIC_HOST = "hooks.example.com"
PROXY_PEER = "127.0.0.2"  # the trusted proxy's address; tests send from 127.0.0.1
CALLER = "+15551234567"


@dataclass(frozen=True)
class Paths:
    """Where an app serves the tutorial's voice and messaging webhooks."""

    call: str
    messages: tuple[str, ...]  # the messaging view, in each flavour the app has


PATHS = {
    "django": Paths("/incoming-call/", ("/incoming-message/", "/incoming-message-async/")),
    "flask": Paths("/voice", ("/message",)),
    "fastapi": Paths("/voice", ("/message", "/twilio/message")),  # Depends(guard); the ASGI middleware
}
MESSAGE_PATHS = [(kind, path) for kind in KINDS for path in PATHS[kind].messages]
ALL_PATHS = [(kind, PATHS[kind].call) for kind in KINDS] + MESSAGE_PATHS


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


def params_for(kind: str, path: str, account: Account) -> list[tuple[str, str]]:
    return call_params(account) if path == PATHS[kind].call else message_params(account)


def form(pairs: list[tuple[str, str]]) -> bytes:
    return urllib.parse.urlencode(pairs).encode()


def plain_app(app_factory: Any, server: TwilioguardServer, kind: str) -> WebApp:
    """An app configured with nothing but TWILIOGUARD_URL."""
    return app_factory(kind, TWILIOGUARD_URL=server.url)  # type: ignore[no-any-return]


def public_base_app(app_factory: Any, server: TwilioguardServer, kind: str) -> WebApp:
    """An app that knows its public base URL."""
    return app_factory(kind, TWILIOGUARD_URL=server.url, TWILIOGUARD_PUBLIC_BASE_URL=f"https://{PUBLIC_HOST}")  # type: ignore[no-any-return]


def trusting_app(app_factory: Any, server: TwilioguardServer, kind: str) -> WebApp:
    """An app that trusts forwarding headers from the proxy at 127.0.0.2 only."""
    return app_factory(kind, TWILIOGUARD_URL=server.url, TWILIOGUARD_TRUSTED_PROXIES=f"{PROXY_PEER}/32")  # type: ignore[no-any-return]


@pytest.mark.parametrize("kind", KINDS)
def test_incoming_call_signed_passes(app_factory: Any, twilioguard_server: TwilioguardServer, account: Account, kind: str) -> None:
    app = plain_app(app_factory, twilioguard_server, kind)
    path = PATHS[kind].call
    params = call_params(account)
    sig = twilio_sign(account.token, app.url + path, params)
    resp = send(app.url, path, body=form(params), headers={"X-Twilio-Signature": sig})
    if resp.status != 200:
        pytest.fail(f"status {resp.status}, want 200: {resp.body[:500]}")
    if "<Say>" not in resp.body or " ".join(CALLER) not in resp.body:
        pytest.fail(f"TwiML lacks <Say> with the caller's number: {resp.body}")


@pytest.mark.parametrize(("kind", "path"), MESSAGE_PATHS)
def test_incoming_message_signed_passes(app_factory: Any, twilioguard_server: TwilioguardServer, account: Account, kind: str, path: str) -> None:
    app = plain_app(app_factory, twilioguard_server, kind)
    params = message_params(account, "Hi, twilioguard é ✓")
    sig = twilio_sign(account.token, app.url + path, params)
    resp = send(app.url, path, body=form(params), headers={"X-Twilio-Signature": sig})
    if resp.status != 200:
        pytest.fail(f"status {resp.status}, want 200: {resp.body[:500]}")
    want = "Your text to me was 19 characters long."
    if want not in resp.body:
        pytest.fail(f"reply lacks {want!r}: {resp.body}")


@pytest.mark.parametrize(("kind", "path"), MESSAGE_PATHS)
def test_raw_query_and_repeated_keys_pass(app_factory: Any, twilioguard_server: TwilioguardServer, account: Account, kind: str, path: str) -> None:
    app = plain_app(app_factory, twilioguard_server, kind)
    path += "?src=twilio&note=it%27s+a%20test&empty="
    params = message_params(account) + [("MediaUrl", "https://b.example/2"), ("MediaUrl", "https://a.example/1")]
    sig = twilio_sign(account.token, app.url + path, params)
    resp = send(app.url, path, body=form(params), headers={"X-Twilio-Signature": sig})
    if resp.status != 200:
        pytest.fail(f"status {resp.status}, want 200: {resp.body[:500]}")
    # Dropping one value of the repeated key breaks the signature.
    resp = send(app.url, path, body=form(params[:-1]), headers={"X-Twilio-Signature": sig})
    if resp.status != 403:
        pytest.fail(f"one MediaUrl dropped: status {resp.status}, want 403")


@pytest.mark.parametrize(
    "case",
    ["unsigned", "empty signature", "tampered body", "tampered path", "wrong token", "other account's token", "garbage"],
)
@pytest.mark.parametrize(("kind", "path"), ALL_PATHS)
def test_forged_requests_are_forbidden_even_with_debug(
    app_factory: Any, twilioguard_server: TwilioguardServer, account: Account, other_account: Account, kind: str, path: str, case: str
) -> None:
    app = plain_app(app_factory, twilioguard_server, kind)
    params = params_for(kind, path, account)
    url = app.url + path
    headers = {"X-Twilio-Signature": twilio_sign(account.token, url, params)}
    body = form(params)
    if case == "unsigned":
        headers = {}
    elif case == "empty signature":
        headers = {"X-Twilio-Signature": ""}
    elif case == "tampered body":
        body = form([(k, "+15550000000" if k == "From" else v) for k, v in params])
    elif case == "tampered path":
        path = f"{path}?extra=1"
    elif case == "wrong token":
        headers = {"X-Twilio-Signature": twilio_sign("not-the-token", url, params)}
    elif case == "other account's token":
        headers = {"X-Twilio-Signature": twilio_sign(other_account.token, url, params)}
    elif case == "garbage":
        headers = {"X-Twilio-Signature": "not base64 at all!"}
    resp = send(app.url, path, body=body, headers=headers)
    if resp.status != 403:
        pytest.fail(f"{case}: status {resp.status}, want 403 (debug mode must not skip validation)")


def https_signed(account: Account, kind: str, path: str) -> tuple[bytes, dict[str, str]]:
    """A webhook as Twilio sends it to https://hooks.example.com."""
    params = params_for(kind, path, account)
    sig = twilio_sign(account.token, f"https://{PUBLIC_HOST}{path}", params)
    return form(params), {"X-Twilio-Signature": sig}


def through_proxy(app: WebApp, path: str, body: bytes, headers: dict[str, str], style: str = "x-forwarded") -> Any:
    proxy = TLSTerminatingProxy(app.url, public_host=PUBLIC_HOST, source=PROXY_PEER, style=style)
    try:
        resp = send(proxy.url, path, body=body, headers=headers, context=proxy.client_context)
    finally:
        proxy.close()
    if proxy.forwarded != 1:
        pytest.fail(f"proxy forwarded {proxy.forwarded} requests, want 1")
    return resp


@pytest.mark.parametrize(("kind", "path"), ALL_PATHS)
def test_behind_proxy_fails_without_configuration(app_factory: Any, twilioguard_server: TwilioguardServer, account: Account, kind: str, path: str) -> None:
    resp = through_proxy(plain_app(app_factory, twilioguard_server, kind), path, *https_signed(account, kind, path))
    if resp.status != 403:
        pytest.fail(f"status {resp.status}, want 403: forwarding headers from an untrusted peer must be ignored")


@pytest.mark.parametrize(("kind", "path"), ALL_PATHS)
def test_behind_proxy_passes_with_public_base_url(app_factory: Any, twilioguard_server: TwilioguardServer, account: Account, kind: str, path: str) -> None:
    resp = through_proxy(public_base_app(app_factory, twilioguard_server, kind), path, *https_signed(account, kind, path))
    if resp.status != 200:
        pytest.fail(f"status {resp.status}, want 200: {resp.body[:300]}")


@pytest.mark.parametrize("kind", KINDS)
def test_public_base_url_pins_scheme_and_host(app_factory: Any, twilioguard_server: TwilioguardServer, account: Account, kind: str) -> None:
    app = public_base_app(app_factory, twilioguard_server, kind)
    path = PATHS[kind].messages[0]
    # Signed for http://127.0.0.1:port as received: not the public URL.
    params = message_params(account)
    sig = twilio_sign(account.token, app.url + path, params)
    resp = send(app.url, path, body=form(params), headers={"X-Twilio-Signature": sig})
    if resp.status != 403:
        pytest.fail(f"status {resp.status}, want 403: only the public URL may match")


@pytest.mark.parametrize("style", ["x-forwarded", "forwarded"])
@pytest.mark.parametrize(("kind", "path"), ALL_PATHS)
def test_behind_trusted_proxy_passes(app_factory: Any, twilioguard_server: TwilioguardServer, account: Account, kind: str, path: str, style: str) -> None:
    resp = through_proxy(trusting_app(app_factory, twilioguard_server, kind), path, *https_signed(account, kind, path), style=style)
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
@pytest.mark.parametrize(("kind", "path"), MESSAGE_PATHS)
def test_forwarding_headers_from_untrusted_peer_are_ignored(
    app_factory: Any, twilioguard_server: TwilioguardServer, account: Account, kind: str, path: str, forwarding: dict[str, str]
) -> None:
    app = trusting_app(app_factory, twilioguard_server, kind)
    body, headers = https_signed(account, kind, path)
    resp = send(app.url, path, body=body, headers={**headers, **forwarding})
    if resp.status != 403:
        pytest.fail(f"status {resp.status}, want 403: 127.0.0.1 is not a trusted proxy")
    # The same headers from the trusted peer are believed.
    resp = send(app.url, path, body=body, headers={**headers, **forwarding}, source=PROXY_PEER)
    if resp.status != 200:
        pytest.fail(f"status {resp.status} from the trusted peer, want 200: {resp.body[:300]}")


@pytest.mark.parametrize("kind", KINDS)
def test_service_unreachable_is_503(app_factory: Any, stoppable_server: TwilioguardServer, account: Account, kind: str) -> None:
    stoppable_server.put_account(account)
    app = app_factory(kind, TWILIOGUARD_URL=stoppable_server.url, TWILIOGUARD_TIMEOUT="5")
    paths = (PATHS[kind].call, *PATHS[kind].messages)

    def statuses(signed: bool) -> list[int]:
        got = []
        for path in paths:
            params = params_for(kind, path, account)
            headers = {"X-Twilio-Signature": twilio_sign(account.token, app.url + path, params)} if signed else {}
            got.append(send(app.url, path, body=form(params), headers=headers).status)
        return got

    if statuses(signed=True) != [200] * len(paths):
        pytest.fail(f"{paths} before stopping the service: want 200 each")
    stoppable_server.stop()
    for signed in (True, False):
        got = statuses(signed)
        if got != [503] * len(paths):
            pytest.fail(f"{paths}, service stopped, signed={signed}: statuses {got}, want 503 each (fail closed)")


@pytest.mark.parametrize(("kind", "path"), MESSAGE_PATHS)
def test_shadow_mode_lets_everything_through(app_factory: Any, twilioguard_server: TwilioguardServer, account: Account, kind: str, path: str) -> None:
    app = app_factory(kind, TWILIOGUARD_URL=twilioguard_server.url, TWILIOGUARD_MODE="shadow")
    params = message_params(account)
    resp = send(app.url, path, body=form(params), headers={"X-Twilio-Signature": twilio_sign("not-the-token", app.url + path, params)})
    if resp.status != 200 or "characters long" not in resp.body:
        pytest.fail(f"shadow mode, forged: status {resp.status}, want 200: {resp.body[:300]}")


@pytest.mark.parametrize(("kind", "path"), MESSAGE_PATHS)
def test_duplicates_rejected(app_factory: Any, twilioguard_server: TwilioguardServer, account: Account, kind: str, path: str) -> None:
    app = app_factory(kind, TWILIOGUARD_URL=twilioguard_server.url, TWILIOGUARD_DUPLICATES="reject")
    params = message_params(account)
    headers = {
        "X-Twilio-Signature": twilio_sign(account.token, app.url + path, params),
        "I-Twilio-Idempotency-Token": secrets.token_hex(16),
    }
    # Whether this server checks for duplicates at all: without a check the
    # route fails closed (503) rather than risk handling a webhook twice.
    probe_url = f"https://probe.example/{secrets.token_hex(4)}"
    probe = twilioguard.Client(twilioguard_server.url).verify_webhook(
        url=probe_url, params=params, signature=twilio_sign(account.token, probe_url, params)
    )
    want = (200, 200) if probe.replay_check is None else (200, 409)
    got = tuple(send(app.url, path, body=form(params), headers=headers).status for _ in range(2))
    if got != want:
        pytest.fail(f"the same webhook twice: statuses {got}, want {want} (replay check {probe.replay_check})")
