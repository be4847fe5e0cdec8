"""End to end: twilioguard.Client and AsyncClient against a real twilioguard
server."""

from __future__ import annotations

import asyncio
import subprocess
import urllib.parse
from pathlib import Path

import pytest
from _e2e import Account, TwilioguardServer

import twilioguard

URL = "https://example.com/twilio/sms?tenant=42"


def params(account: Account) -> list[tuple[str, str]]:
    return [
        ("AccountSid", account.sid),
        ("Body", "Hello + goodbye & more"),
        ("From", "+15551234567"),
        ("MediaUrl0", "https://a.example/1"),
        ("Tag", "b"),
        ("Tag", "a"),
        ("Tag", "b"),
    ]


@pytest.fixture(scope="module")
def client(twilioguard_server: TwilioguardServer) -> twilioguard.Client:
    return twilioguard.Client(twilioguard_server.url, timeout=10)


def test_valid_params(client: twilioguard.Client, account: Account) -> None:
    p = params(account)
    verdict = client.verify_webhook(url=URL, params=p, signature=twilioguard.sign(account.token, URL, p))
    want = twilioguard.Verdict(
        valid=True, account_sid=account.sid, credential="auth_token", matched_url=URL, algorithm="HMAC_SHA1",
        duplicate=False, replay_check="CHECKED",
    )
    if verdict != want:
        pytest.fail(f"verdict = {verdict}, want {want}")


def test_valid_raw_form_body(client: twilioguard.Client, account: Account) -> None:
    p = params(account)
    verdict = client.verify_webhook(
        url=URL,
        body=urllib.parse.urlencode(p).encode(),
        content_type="application/x-www-form-urlencoded; charset=utf-8",
        signature=twilioguard.sign(account.token, URL, p),
        route="sms",
    )
    if not verdict.valid or verdict.account_sid != account.sid:
        pytest.fail(f"verdict = {verdict}, want valid for {account.sid}")


def test_port_variant_matches(client: twilioguard.Client, account: Account) -> None:
    p = params(account)
    signed = "https://example.com:443/twilio/sms?tenant=42"
    verdict = client.verify_webhook(url=URL, params=p, signature=twilioguard.sign(account.token, signed, p))
    if not verdict.valid or verdict.matched_url != signed:
        pytest.fail(f"verdict = {verdict}, want valid with matched_url {signed}")


def test_json_body(client: twilioguard.Client, account: Account) -> None:
    body = b'{"AccountSid":"%s","event":"hello"}' % account.sid.encode()
    url = f"https://example.com/events?bodySHA256={twilioguard.body_sha256(body)}"
    sig = twilioguard.sign(account.token, url)
    verdict = client.verify_webhook(url=url, body=body, content_type="application/json", signature=sig, account=account.sid)
    if not verdict.valid:
        pytest.fail(f"verdict = {verdict}, want valid")
    verdict = client.verify_webhook(
        url=url, body=body.replace(b"hello", b"HELLO"), content_type="application/json", signature=sig, account=account.sid
    )
    if verdict.valid or verdict.reason != "BODY_HASH_MISMATCH":
        pytest.fail(f"tampered JSON: verdict = {verdict}, want BODY_HASH_MISMATCH")


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("no signature", "MISSING_SIGNATURE"),
        ("malformed", "MALFORMED_SIGNATURE"),
        ("http instead of https", "SIGNATURE_MISMATCH"),
        ("unknown account", "UNKNOWN_ACCOUNT"),
        ("account not allowed", "ACCOUNT_NOT_ALLOWED"),
    ],
)
def test_invalid_is_a_verdict(
    client: twilioguard.Client, account: Account, other_account: Account, case: str, reason: str
) -> None:
    p = params(account)
    kwargs: dict[str, object] = {"url": URL, "params": p, "signature": twilioguard.sign(account.token, URL, p)}
    if case == "no signature":
        kwargs["signature"] = None
    elif case == "malformed":
        kwargs["signature"] = "abc"
    elif case == "http instead of https":
        kwargs["url"] = URL.replace("https://", "http://")
    elif case == "unknown account":
        kwargs["account"] = "AC" + "f" * 32
    elif case == "account not allowed":
        kwargs["allowed_accounts"] = [other_account.sid]
    verdict = client.verify_webhook(**kwargs)  # type: ignore[arg-type]
    if verdict.valid or verdict.reason != reason:
        pytest.fail(f"verdict = {verdict}, want reason {reason}")
    if verdict.credential or verdict.matched_url:
        pytest.fail(f"invalid verdict names a credential or URL: {verdict}")


def test_https_hint(client: twilioguard.Client, account: Account) -> None:
    p = params(account)
    verdict = client.verify_webhook(
        url=URL.replace("https://", "http://"), params=p, signature=twilioguard.sign(account.token, URL, p)
    )
    if "https" not in verdict.hint:
        pytest.fail(f"hint = {verdict.hint!r}, want a hint about https")
    if account.token in verdict.hint:
        pytest.fail("hint contains the auth token")


def test_malformed_request_is_invalid_argument(client: twilioguard.Client) -> None:
    with pytest.raises(twilioguard.InvalidArgumentError) as info:
        client.verify_webhook(url="example.com/no-scheme", signature="x")
    if info.value.code != "invalid_argument" or not info.value.message:
        pytest.fail(f"error = {info.value!r}, want invalid_argument with a message")


def test_sign_agrees_with_cli(twilioguard_binary: Path, account: Account) -> None:
    p = params(account)
    args = [str(twilioguard_binary), "sign", "--url", URL]
    for key, value in p:
        args += ["-d", f"{key}={value}"]
    out = subprocess.run(
        args, env={"TWILIOGUARD_AUTH_TOKEN": account.token}, capture_output=True, text=True, timeout=30, check=True
    )
    got = out.stdout.strip()
    if got != twilioguard.sign(account.token, URL, p):
        pytest.fail(f"twilioguard sign printed {out.stdout!r}, sign() = {twilioguard.sign(account.token, URL, p)}")


def test_stopped_service_is_unavailable(stoppable_server: TwilioguardServer, account: Account) -> None:
    stoppable_server.put_account(account)
    client = twilioguard.Client(stoppable_server.url, timeout=5)
    p = params(account)
    sig = twilioguard.sign(account.token, URL, p)
    if not client.verify_webhook(url=URL, params=p, signature=sig).valid:
        pytest.fail("not valid before stopping the service")
    stoppable_server.stop()
    with pytest.raises(twilioguard.UnavailableError):
        client.verify_webhook(url=URL, params=p, signature=sig)


def test_async_client(twilioguard_server: TwilioguardServer, account: Account, other_account: Account) -> None:
    # Valid, invalid and malformed calls, all at once on one AsyncClient.
    p = params(account)
    body = urllib.parse.urlencode(p).encode()
    form = "application/x-www-form-urlencoded"

    async def calls() -> list[object]:
        async with twilioguard.AsyncClient(twilioguard_server.url, timeout=10) as client:
            valid = [
                client.verify_webhook(url=f"{URL}&n={n}", body=body, content_type=form, signature=twilioguard.sign(account.token, f"{URL}&n={n}", p))
                for n in range(8)
            ]
            forged = client.verify_webhook(url=URL, body=body, content_type=form, signature=twilioguard.sign(other_account.token, URL, p))
            malformed = client.verify_webhook(url="not a url", body=body, content_type=form)
            return await asyncio.gather(*valid, forged, malformed, return_exceptions=True)

    *valid, forged, malformed = asyncio.run(calls())
    if not all(isinstance(v, twilioguard.Verdict) and v.valid and v.account_sid == account.sid for v in valid):
        pytest.fail(f"valid calls: {valid}")
    if not isinstance(forged, twilioguard.Verdict) or forged.valid or forged.reason != "SIGNATURE_MISMATCH":
        pytest.fail(f"forged call: {forged}")
    if not isinstance(malformed, twilioguard.InvalidArgumentError):
        pytest.fail(f"malformed call: {malformed!r}, want InvalidArgumentError")


def test_async_client_stopped_service(stoppable_server: TwilioguardServer) -> None:
    async def call() -> twilioguard.Verdict:
        async with twilioguard.AsyncClient(stoppable_server.url, timeout=5) as client:
            first = await client.verify_webhook(url=URL)
            stoppable_server.stop()
            try:
                await client.verify_webhook(url=URL)
            except twilioguard.UnavailableError:
                return first
            pytest.fail("a stopped service gave a verdict")

    if asyncio.run(call()).reason != "MISSING_SIGNATURE":
        pytest.fail("the running service did not answer MISSING_SIGNATURE")
