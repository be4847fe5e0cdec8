"""Client and AsyncClient against a fake VerifierService: wire format,
verdicts, errors, connections."""

from __future__ import annotations

import asyncio
import base64
import datetime
import socket
import threading
import time
from typing import Any

import pytest
from _fake import Call, FakeService, Reply

import twilioguard

URL = "https://example.com/sms?x=1"
PATH = "/twilioguard.v1.VerifierService/VerifyWebhook"


def verify(kind: str, base_url: str, **kwargs: Any) -> twilioguard.Verdict:
    """One call through the sync Client or the AsyncClient."""
    timeout = kwargs.pop("timeout", twilioguard.DEFAULT_TIMEOUT)
    if kind == "sync":
        return twilioguard.Client(base_url, timeout=timeout).verify_webhook(**kwargs)

    async def call() -> twilioguard.Verdict:
        async with twilioguard.AsyncClient(base_url, timeout=timeout) as client:
            return await client.verify_webhook(**kwargs)

    return asyncio.run(call())


CLIENTS = pytest.mark.parametrize("kind", ["sync", "async"])


class _QueryDictLike(dict):  # type: ignore[type-arg]
    """A Django QueryDict look-alike: a dict whose lists() keeps every value."""

    def __init__(self, lists: dict[str, list[str]]) -> None:
        super().__init__({k: v[-1] for k, v in lists.items()})
        self._lists = lists

    def lists(self) -> Any:
        return iter(self._lists.items())


@pytest.mark.parametrize(
    ("name", "kwargs", "want"),
    [
        ("url only", {}, {"url": URL}),
        (
            "params as pairs",
            {"params": [("b", "2"), ("a", "1"), ("b", "1")], "signature": "sig="},
            {
                "url": URL,
                "params": [{"key": "b", "value": "2"}, {"key": "a", "value": "1"}, {"key": "b", "value": "1"}],
                "signature": "sig=",
            },
        ),
        (
            "params as a QueryDict keep every value",
            {"params": _QueryDictLike({"k": ["v1", "v2"]})},
            {"url": URL, "params": [{"key": "k", "value": "v1"}, {"key": "k", "value": "v2"}]},
        ),
        ("empty params are left out", {"params": {}}, {"url": URL}),
        (
            "raw body",
            {"body": b"A=1&B=%C3%A9\x00\xff", "content_type": "application/x-www-form-urlencoded"},
            {
                "url": URL,
                "body": base64.b64encode(b"A=1&B=%C3%A9\x00\xff").decode(),
                "contentType": "application/x-www-form-urlencoded",
            },
        ),
        ("empty body with a content type", {"body": b"", "content_type": "text/plain"}, {"url": URL, "contentType": "text/plain"}),
        (
            "every other field",
            {
                "signature": "s",
                "signature_settings": "key=k1,algorithm=HMAC_SHA256",
                "account": "prod",
                "allowed_accounts": ("AC1", "", "AC2"),
                "route": "sms",
                "idempotency_token": "IT0a1b",
            },
            {
                "url": URL,
                "signature": "s",
                "signatureSettings": "key=k1,algorithm=HMAC_SHA256",
                "account": "prod",
                "allowedAccounts": ["AC1", "AC2"],
                "route": "sms",
                "idempotencyToken": "IT0a1b",
            },
        ),
        ("unicode is sent as UTF-8", {"params": {"Body": "é ✓ 😀"}}, {"url": URL, "params": [{"key": "Body", "value": "é ✓ 😀"}]}),
    ],
)
@CLIENTS
def test_request_encoding(fake_service: FakeService, kind: str, name: str, kwargs: dict[str, Any], want: dict[str, Any]) -> None:
    verify(kind, fake_service.url, url=URL, **kwargs)
    if fake_service.last.json != want:
        pytest.fail(f"{name}: sent {fake_service.last.json}, want {want}")


@CLIENTS
def test_request_headers(fake_service: FakeService, kind: str) -> None:
    if kind == "sync":
        twilioguard.Client(fake_service.url, timeout=2.5, headers={"X-Extra": "1"}).verify_webhook(url=URL)
    else:

        async def call() -> None:
            async with twilioguard.AsyncClient(fake_service.url, timeout=2.5, headers={"X-Extra": "1"}) as client:
                await client.verify_webhook(url=URL)

        asyncio.run(call())
    call = fake_service.last
    want = {
        "content-type": "application/json",
        "connect-protocol-version": "1",
        "connect-timeout-ms": "2500",
        "user-agent": f"twilioguard-python/{twilioguard.__version__}",
        "x-extra": "1",
    }
    for key, value in want.items():
        if call.headers.get(key) != value:
            pytest.fail(f"header {key} = {call.headers.get(key)!r}, want {value!r}")
    if call.path != PATH:
        pytest.fail(f"path = {call.path}, want {PATH}")


@CLIENTS
def test_base_url_path_prefix(fake_service: FakeService, kind: str) -> None:
    verify(kind, fake_service.url + "/gateway/tg/", url=URL)
    if fake_service.last.path != "/gateway/tg" + PATH:
        pytest.fail(f"path = {fake_service.last.path}, want /gateway/tg{PATH}")


@pytest.mark.parametrize(
    ("body", "want"),
    [
        (
            {
                "valid": True,
                "accountSid": "AC1",
                "credential": "previous_auth_token",
                "matchedUrl": "https://example.com:443/sms",
                "algorithm": "HMAC_SHA1",
                "someFutureField": 1,
            },
            twilioguard.Verdict(True, "AC1", "previous_auth_token", "https://example.com:443/sms", None, "", "HMAC_SHA1"),
        ),
        ({}, twilioguard.Verdict(False)),
        (
            {"accountSid": "AC1", "reason": "SIGNATURE_MISMATCH", "hint": "try https"},
            twilioguard.Verdict(False, "AC1", reason="SIGNATURE_MISMATCH", hint="try https"),
        ),
        ({"reason": 5, "algorithm": 0}, twilioguard.Verdict(False, reason="ACCOUNT_NOT_ALLOWED")),
        ({"valid": "true"}, twilioguard.Verdict(False)),
        ({"valid": True, "reason": "REASON_UNSPECIFIED", "algorithm": 2}, twilioguard.Verdict(True, algorithm="HMAC_SHA256")),
        ({"reason": "ACCOUNT_MISMATCH"}, twilioguard.Verdict(False, reason="ACCOUNT_MISMATCH")),
        ({"reason": 11}, twilioguard.Verdict(False, reason="BODY_NOT_FORWARDED")),
        (
            {"valid": True, "duplicate": True, "firstSeenTime": "2026-11-28T19:04:05.123456789Z", "replayCheck": "CHECKED"},
            twilioguard.Verdict(
                True,
                duplicate=True,
                first_seen_time=datetime.datetime(2026, 11, 28, 19, 4, 5, 123456, tzinfo=datetime.timezone.utc),
                replay_check="CHECKED",
            ),
        ),
        (
            {"valid": True, "duplicate": False, "replayCheck": 1, "firstSeenTime": "2026-11-28T21:04:05+02:00"},
            twilioguard.Verdict(
                True,
                duplicate=False,
                first_seen_time=datetime.datetime(2026, 11, 28, 19, 4, 5, tzinfo=datetime.timezone.utc),
                replay_check="CHECKED",
            ),
        ),
        (
            {"valid": True, "replayCheck": "UNAVAILABLE", "firstSeenTime": "yesterday", "duplicate": "yes"},
            twilioguard.Verdict(True, replay_check="UNAVAILABLE"),
        ),
    ],
)
@CLIENTS
def test_verdict_decoding(fake_service: FakeService, kind: str, body: dict[str, Any], want: twilioguard.Verdict) -> None:
    fake_service.reply = Reply(200, body)
    got = verify(kind, fake_service.url, url=URL)
    if got != want:
        pytest.fail(f"verdict = {got}, want {want}")


@pytest.mark.parametrize(
    ("status", "body", "error", "code"),
    [
        (400, {"code": "invalid_argument", "message": "url: must be absolute"}, twilioguard.InvalidArgumentError, "invalid_argument"),
        (503, {"code": "unavailable", "message": "store down"}, twilioguard.UnavailableError, "unavailable"),
        (504, {"code": "deadline_exceeded", "message": "slow"}, twilioguard.UnavailableError, "deadline_exceeded"),
        (401, {"code": "unauthenticated", "message": "no"}, twilioguard.TwilioguardError, "unauthenticated"),
        (500, {"code": "internal", "message": "bug"}, twilioguard.TwilioguardError, "internal"),
        (502, b"<html>Bad Gateway</html>", twilioguard.UnavailableError, "unavailable"),
        (500, b"oops", twilioguard.UnavailableError, "unavailable"),
        (429, b"", twilioguard.UnavailableError, "unavailable"),
        (404, b"404 page not found", twilioguard.TwilioguardError, "unimplemented"),
        (200, b"<html>not json</html>", twilioguard.TwilioguardError, "unknown"),
        (200, b"[1,2]", twilioguard.TwilioguardError, "unknown"),
        (200, b"", twilioguard.TwilioguardError, "unknown"),
    ],
)
@CLIENTS
def test_error_mapping(fake_service: FakeService, kind: str, status: int, body: Any, error: type, code: str) -> None:
    fake_service.reply = Reply(status, body)
    with pytest.raises(twilioguard.TwilioguardError) as info:
        verify(kind, fake_service.url, url=URL)
    if type(info.value) is not error or info.value.code != code:
        pytest.fail(f"raised {info.value!r} ({type(info.value).__name__}, {info.value.code}), want {error.__name__} {code}")
    if isinstance(body, dict) and info.value.message != body["message"]:
        pytest.fail(f"message = {info.value.message!r}, want {body['message']!r}")


def test_bad_signature_is_not_an_error(fake_service: FakeService) -> None:
    fake_service.reply = Reply(200, {"reason": "SIGNATURE_MISMATCH"})
    verdict = twilioguard.Client(fake_service.url).verify_webhook(url=URL, signature="bad")
    if verdict.valid or verdict.reason != "SIGNATURE_MISMATCH":
        pytest.fail(f"verdict = {verdict}")


@CLIENTS
def test_connection_refused_is_unavailable(kind: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused
        with pytest.raises(twilioguard.UnavailableError) as info:
            verify(kind, f"http://127.0.0.1:{port}", url=URL)
    if info.value.code != "unavailable":
        pytest.fail(f"code = {info.value.code}, want unavailable")


@CLIENTS
def test_no_answer_is_unavailable(kind: str) -> None:
    # A server that accepts the connection and never answers.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(twilioguard.UnavailableError) as info:
            verify(kind, f"http://127.0.0.1:{port}", url=URL, timeout=0.2)
    if info.value.code != "deadline_exceeded":
        pytest.fail(f"code = {info.value.code}, want deadline_exceeded")


def test_connection_is_kept_alive(fake_service: FakeService) -> None:
    client = twilioguard.Client(fake_service.url)
    for _ in range(3):
        client.verify_webhook(url=URL)
    if fake_service.connections != 1:
        pytest.fail(f"{fake_service.connections} connections for 3 calls, want 1")
    client.close()
    client.verify_webhook(url=URL)
    if fake_service.connections != 2:
        pytest.fail(f"{fake_service.connections} connections after close(), want 2")


def test_server_closing_connection_is_retried_once(fake_service: FakeService) -> None:
    # The fake answers, then closes the connection; the next call finds the
    # kept connection dead and must transparently use a new one.
    fake_service.reply = Reply(200, {"valid": True}, close=True)
    client = twilioguard.Client(fake_service.url)
    for _ in range(3):
        if not client.verify_webhook(url=URL).valid:
            pytest.fail("verdict not valid")
    if len(fake_service.calls) != 3:
        pytest.fail(f"{len(fake_service.calls)} calls reached the service, want 3")


def test_stale_connection_is_retried(fake_service: FakeService) -> None:
    client = twilioguard.Client(fake_service.url)
    client.verify_webhook(url=URL)
    # Kill the kept connection under the client, as an idle timeout would.
    conn = client._local.conn
    conn.sock.shutdown(socket.SHUT_RDWR)
    if not client.verify_webhook(url=URL).valid:
        pytest.fail("verdict not valid after a stale connection")
    if len(fake_service.calls) != 2:
        pytest.fail(f"{len(fake_service.calls)} calls reached the service, want 2")


def test_threads_share_a_client(fake_service: FakeService) -> None:
    client = twilioguard.Client(fake_service.url)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for j in range(5):
                client.verify_webhook(url=f"{URL}&t={i}&j={j}")
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        pytest.fail(f"errors: {errors}")
    urls = sorted(c.json["url"] for c in fake_service.calls)
    want = sorted(f"{URL}&t={i}&j={j}" for i in range(4) for j in range(5))
    if urls != want:
        pytest.fail(f"service saw {len(urls)} calls, want the 20 distinct ones")


def test_async_calls_run_concurrently(fake_service: FakeService) -> None:
    # Each answer takes 0.3 s; 8 calls at once take about as long as one
    # when the client does not serialize them (each one its own connection).
    fake_service.delay = 0.3

    async def calls() -> list[twilioguard.Verdict]:
        async with twilioguard.AsyncClient(fake_service.url) as client:
            return await asyncio.gather(*(client.verify_webhook(url=f"{URL}&n={n}") for n in range(8)))

    start = time.monotonic()
    verdicts = asyncio.run(calls())
    elapsed = time.monotonic() - start
    if len(verdicts) != 8 or not all(v.valid for v in verdicts):
        pytest.fail(f"verdicts = {verdicts}")
    if elapsed >= 8 * 0.3:
        pytest.fail(f"8 concurrent calls took {elapsed:.2f}s: serialized (one call takes 0.3s)")
    if fake_service.connections < 2:
        pytest.fail(f"{fake_service.connections} connection(s) for 8 concurrent calls: the calls were serialized")


def test_async_connections_are_pooled(fake_service: FakeService) -> None:
    async def calls() -> None:
        async with twilioguard.AsyncClient(fake_service.url) as client:
            for _ in range(3):
                await client.verify_webhook(url=URL)

    asyncio.run(calls())
    if fake_service.connections != 1:
        pytest.fail(f"{fake_service.connections} connections for 3 calls in a row, want 1")


@pytest.mark.parametrize(
    "base_url",
    ["", "localhost:8080", "ftp://x", "http://user:pw@host", "http://host?x=1", "http://host:99999", "http://"],
)
@pytest.mark.parametrize("client", [twilioguard.Client, twilioguard.AsyncClient])
def test_bad_base_url(base_url: str, client: Any) -> None:
    with pytest.raises(ValueError):
        client(base_url)


def test_params_and_body_together(fake_service: FakeService) -> None:
    with pytest.raises(ValueError):
        twilioguard.Client(fake_service.url).verify_webhook(url=URL, params={"a": "1"}, body=b"a=1")
    if fake_service.calls:
        pytest.fail("a call reached the service")


def test_errors_name_no_secret(fake_service: FakeService) -> None:
    def respond(call: Call) -> Reply:
        return Reply(400, {"code": "invalid_argument", "message": "bad url"})

    fake_service.respond = respond
    with pytest.raises(twilioguard.InvalidArgumentError) as info:
        twilioguard.Client(fake_service.url).verify_webhook(url=URL, signature="c2VjcmV0LXNpZw==")
    if "c2VjcmV0LXNpZw==" in str(info.value):
        pytest.fail("the error repeats the signature")
