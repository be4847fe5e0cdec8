"""twilioguard.fastapi (Depends) and twilioguard.asgi (middleware) against a
fake service, through Starlette's test client: answers, the raw body with and
without Form parameters, shadow mode, duplicates, headers, URL rules. (The
real app under uvicorn and the real server are in test_e2e_apps.)"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Optional

import pytest
from _fake import FakeService, Reply
from _need import need_module

need_module("fastapi")
need_module("httpx2")  # Starlette's test client
need_module("python_multipart")

from fastapi import Depends, FastAPI, Form, Request  # noqa: E402
from fastapi.responses import PlainTextResponse  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from twilioguard import Verdict  # noqa: E402
from twilioguard.asgi import TwilioGuardMiddleware, request_url  # noqa: E402
from twilioguard.fastapi import TwilioGuard  # noqa: E402
from twilioguard.wsgi import parse_networks  # noqa: E402

FORM = "application/x-www-form-urlencoded"
VALID = {"valid": True, "accountSid": "AC1", "credential": "auth_token", "replayCheck": "CHECKED", "duplicate": False}
BODY = b"A=1&A=2&B=%C3%A9"


def _seen(request: Request) -> str:
    return ",".join(sorted(k for k in request.headers if k.startswith(("x-twilioguard", "x-twilio-account"))))


def make_app(service_url: str, **options: Any) -> FastAPI:
    guard = TwilioGuard(service_url, route="sms", **options)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await guard.aclose()

    app = FastAPI(debug=True, lifespan=lifespan)

    @app.post("/form", response_class=PlainTextResponse)
    async def with_form(request: Request, A: list[str] = Form(), verdict: Optional[Verdict] = Depends(guard)) -> str:
        return f"{verdict.account_sid if verdict else None}|{A}|{_seen(request)}"

    @app.post("/raw", response_class=PlainTextResponse)
    async def raw(request: Request, verdict: Optional[Verdict] = Depends(guard)) -> str:
        body = await request.body()
        form = await request.form()
        return f"{verdict.account_sid if verdict else None}|{form.getlist('A')}|{body!r}"

    @app.post("/twilio/sms", response_class=PlainTextResponse)
    async def behind_middleware(request: Request) -> str:
        verdict = request.state.twilio_verdict
        return f"{verdict.account_sid if verdict else None}|{await request.body()!r}|{_seen(request)}"

    @app.post("/open", response_class=PlainTextResponse)
    async def open_route(request: Request) -> str:
        return "open:" + str(getattr(request.state, "twilio_verdict", "unset"))

    app.add_middleware(TwilioGuardMiddleware, paths=["/twilio/"], url=service_url, **options)
    return app


def post(app: FastAPI, path: str, body: bytes = BODY, content_type: str = FORM, **headers: str) -> Any:
    """One request through the app, started and shut down around it."""
    with TestClient(app, base_url="http://app.internal:8000", client=("203.0.113.9", 4711)) as client:
        return client.post(
            path, content=body, headers={"Content-Type": content_type, "X-Twilio-Signature": "sig=", **headers}
        )


@pytest.fixture
def service(fake_service: FakeService) -> FakeService:
    fake_service.reply = Reply(200, VALID)
    return fake_service


@pytest.mark.parametrize(
    ("path", "want_text", "want_sent"),
    [
        # Form(...) parameters: FastAPI consumed the body before the guard.
        ("/form", "AC1|['1', '2']|", {"params": [{"key": "A", "value": "1"}, {"key": "A", "value": "2"}, {"key": "B", "value": "é"}]}),
        # No Form parameters: the raw bytes, still readable by the route.
        ("/raw", "AC1|['1', '2']|" + repr(BODY), {"body": base64.b64encode(BODY).decode(), "contentType": FORM}),
        ("/twilio/sms", "AC1|" + repr(BODY) + "|", {"body": base64.b64encode(BODY).decode(), "contentType": FORM}),
    ],
)
def test_valid_request(service: FakeService, path: str, want_text: str, want_sent: dict[str, Any]) -> None:
    resp = post(make_app(service.url), path + "?q=a%20b", **{"I-Twilio-Idempotency-Token": "tok-1"})
    if resp.status_code != 200 or resp.text != want_text:
        pytest.fail(f"response {resp.status_code} {resp.text!r}, want {want_text!r}")
    sent = service.last.json
    want = {
        "url": f"http://app.internal:8000{path}?q=a%20b",
        "signature": "sig=",
        "idempotencyToken": "tok-1",
        "route": "/twilio" if path.startswith("/twilio") else "sms",
        **want_sent,
    }
    if sent != want:
        pytest.fail(f"sent {sent}, want {want}")


def test_json_body_is_sent_raw(service: FakeService) -> None:
    body = b'{"AccountSid": "AC1", "x": [1, 2]}'
    resp = post(make_app(service.url), "/raw?bodySHA256=ab", body=body, content_type="application/json")
    if resp.status_code != 200 or service.last.json.get("body") != base64.b64encode(body).decode():
        pytest.fail(f"{resp.status_code}: sent {service.last.json}")


@pytest.mark.parametrize("path", ["/form", "/raw", "/twilio/sms"])
@pytest.mark.parametrize(
    ("status", "body", "want"),
    [
        (200, {"accountSid": "AC1", "reason": "SIGNATURE_MISMATCH"}, 403),
        (400, {"code": "invalid_argument", "message": "url too long"}, 400),
        (401, {"code": "unauthenticated", "message": "?"}, 503),
        (503, {"code": "unavailable", "message": "down"}, 503),
    ],
)
def test_refusals(service: FakeService, path: str, status: int, body: Any, want: int) -> None:
    service.reply = Reply(status, body)
    resp = post(make_app(service.url), path)
    if resp.status_code != want:
        pytest.fail(f"status {resp.status_code}, want {want}")
    if want == 503 and resp.headers.get("retry-after") != "1":
        pytest.fail(f"503 without Retry-After: {dict(resp.headers)}")


def test_untouched_paths(service: FakeService) -> None:
    resp = post(make_app(service.url), "/open")
    if resp.status_code != 200 or resp.text != "open:unset" or service.calls:
        pytest.fail(f"{resp.status_code} {resp.text!r}, {len(service.calls)} calls: an unprotected path was checked")
    resp = post(make_app(service.url), "/twilios")
    if resp.status_code != 404 or service.calls:
        pytest.fail(f"/twilios: {resp.status_code}, {len(service.calls)} calls")


@pytest.mark.parametrize("path", ["/form", "/twilio/sms"])
def test_reserved_headers_removed(service: FakeService, path: str) -> None:
    forged = {"X-Twilioguard-Verified": "true", "X-Twilio-Account-Sid": "AC_FORGED", "x-twilioguard_route": "x"}
    resp = post(make_app(service.url), path, **forged)
    if resp.status_code != 200 or not resp.text.endswith("|"):
        pytest.fail(f"the route saw forged headers: {resp.text!r}")


@pytest.mark.parametrize("path", ["/form", "/raw", "/twilio/sms"])
def test_shadow_mode(service: FakeService, path: str, caplog: pytest.LogCaptureFixture) -> None:
    service.reply = Reply(200, {"accountSid": "AC2", "reason": "SIGNATURE_MISMATCH"})
    with caplog.at_level(logging.INFO, logger="twilioguard"):
        resp = post(make_app(service.url, mode="shadow"), path)
    if resp.status_code != 200 or not resp.text.startswith("AC2|"):
        pytest.fail(f"shadow, invalid: {resp.status_code} {resp.text!r}")
    if "would be refused (shadow mode)" not in caplog.text:
        pytest.fail(f"log: {caplog.text!r}")
    service.reply = Reply(503, {"code": "unavailable", "message": "down"})
    resp = post(make_app(service.url, mode="shadow"), path)
    if resp.status_code != 200 or not resp.text.startswith("None|"):
        pytest.fail(f"shadow, unavailable: {resp.status_code} {resp.text!r}")


@pytest.mark.parametrize("path", ["/form", "/twilio/sms"])
@pytest.mark.parametrize(
    ("verdict", "want"),
    [
        ({"valid": True, "duplicate": True, "replayCheck": "CHECKED"}, 409),
        ({"valid": True, "duplicate": False, "replayCheck": "CHECKED"}, 200),
        ({"valid": True, "replayCheck": "UNAVAILABLE"}, 200),
    ],
)
def test_duplicates_rejected(service: FakeService, path: str, verdict: dict[str, Any], want: int) -> None:
    service.reply = Reply(200, verdict)
    resp = post(make_app(service.url, duplicates="reject"), path)
    if resp.status_code != want:
        pytest.fail(f"status {resp.status_code}, want {want}")


@pytest.mark.parametrize("path", ["/raw", "/twilio/sms"])
@pytest.mark.parametrize("mode", ["enforce", "shadow"])
def test_body_too_large(service: FakeService, path: str, mode: str, caplog: pytest.LogCaptureFixture) -> None:
    body = b"A=" + b"x" * 100
    with caplog.at_level(logging.INFO, logger="twilioguard"):
        resp = post(make_app(service.url, max_body_bytes=50, mode=mode), path, body=body)
    want = 413 if mode == "enforce" else 200
    if resp.status_code != want or service.calls:
        pytest.fail(f"status {resp.status_code}, {len(service.calls)} calls; want {want} and none")
    if len(caplog.records) != 1 or "request body too large" not in caplog.text:
        pytest.fail(f"want one log line about the body, got {caplog.text!r}")
    if mode == "shadow" and path == "/twilio/sms" and repr(body) not in resp.text:
        pytest.fail(f"shadow mode: the route did not get the whole body: {resp.text!r}")


def test_file_upload_is_malformed(service: FakeService) -> None:
    with TestClient(make_app(service.url)) as client:
        resp = client.post("/form", data={"A": "1"}, files={"f": ("f.txt", b"data")})
    if resp.status_code != 400 or service.calls:
        pytest.fail(f"status {resp.status_code}, {len(service.calls)} calls; want 400 and none")


def test_options_fall_back_to_environment(service: FakeService, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWILIOGUARD_URL", service.url)
    monkeypatch.setenv("TWILIOGUARD_PUBLIC_BASE_URL", "https://hooks.example.com")
    monkeypatch.setenv("TWILIOGUARD_ACCOUNTS", "AC_ENV")
    guard = TwilioGuard(accounts=["AC_ARG"])
    if guard.config.url != service.url or guard.config.public_base_url != "https://hooks.example.com":
        pytest.fail(f"config {guard.config}")
    if guard.config.accounts != ("AC_ARG",):
        pytest.fail(f"accounts {guard.config.accounts}: an argument must win over the environment")


@pytest.mark.parametrize(
    ("options", "setting"),
    [({}, "TWILIOGUARD_URL"), ({"url": "http://tg", "mode": "off"}, "TWILIOGUARD_MODE"), ({"url": "http://tg", "trusted_proxies": "x"}, "TWILIOGUARD_TRUSTED_PROXIES")],
)
def test_bad_options(monkeypatch: pytest.MonkeyPatch, options: dict[str, Any], setting: str) -> None:
    monkeypatch.delenv("TWILIOGUARD_URL", raising=False)
    with pytest.raises(ValueError, match=setting):
        TwilioGuard(**options)
    with pytest.raises(ValueError, match=setting):
        TwilioGuardMiddleware(FastAPI(), paths=["/x"], **options)


def test_middleware_needs_paths() -> None:
    with pytest.raises(ValueError, match="paths"):
        TwilioGuardMiddleware(FastAPI(), paths=[], url="http://tg")
    with pytest.raises(ValueError, match="start with '/'"):
        TwilioGuardMiddleware(FastAPI(), paths=["twilio"], url="http://tg")


SCOPE: dict[str, Any] = {
    "type": "http",
    "scheme": "http",
    "path": "/sms",
    "raw_path": b"/sms",
    "query_string": b"",
    "root_path": "",
    "headers": [(b"host", b"app:8000")],
    "client": ("10.1.2.3", 5555),
    "server": ("10.0.0.1", 8000),
}


@pytest.mark.parametrize(
    ("name", "over", "want"),
    [
        ("as received", {}, "http://app:8000/sms"),
        ("raw path byte for byte", {"path": "/a/b", "raw_path": b"/a%2Fb", "query_string": b"x=%41&y=it's"}, "http://app:8000/a%2Fb?x=%41&y=it's"),
        ("no raw_path: path re-escaped", {"path": "/a b/é", "raw_path": None}, "http://app:8000/a%20b/%C3%A9"),
        ("root_path already in path (uvicorn)", {"root_path": "/api", "path": "/api/sms", "raw_path": b"/api/sms"}, "http://app:8000/api/sms"),
        ("root_path left out of path", {"root_path": "/api", "path": "/sms", "raw_path": b"/sms"}, "http://app:8000/api/sms"),
        ("no Host header: server", {"headers": []}, "http://10.0.0.1:8000/sms"),
        ("no Host header, default port", {"headers": [], "server": ("10.0.0.1", 80)}, "http://10.0.0.1/sms"),
        ("https scheme", {"scheme": "https"}, "https://app:8000/sms"),
        ("untrusted peer", {"client": ("203.0.113.9", 1), "headers": [(b"host", b"app"), (b"x-forwarded-proto", b"https")]}, "http://app/sms"),
        ("trusted peer", {"headers": [(b"host", b"app"), (b"x-forwarded-proto", b"https")]}, "https://app/sms"),
        ("no client", {"client": None, "headers": [(b"host", b"app"), (b"x-forwarded-proto", b"https")]}, "http://app/sms"),
        ("underscore spelling is not the header", {"headers": [(b"host", b"app"), (b"x_forwarded_proto", b"https")]}, "http://app/sms"),
        ("forwarded lines", {"headers": [(b"host", b"app"), (b"forwarded", b"for=1.1.1.1;proto=https;host=pub.example"), (b"forwarded", b"for=10.9.9.9;host=mid")]}, "https://pub.example/sms"),
    ],
)
def test_asgi_request_url(name: str, over: dict[str, Any], want: str) -> None:
    scope = {**SCOPE, **over}
    got = request_url(scope, trusted_proxies=parse_networks("10.0.0.0/8"))
    if got != want:
        pytest.fail(f"{name}: request_url = {got}, want {want}")


@pytest.mark.parametrize(("mode", "want"), [("enforce", 413), ("shadow", 200)])
def test_middleware_chunked_body_over_limit(service: FakeService, mode: str, want: int) -> None:
    # No Content-Length: the middleware finds out while reading, and in
    # shadow mode hands the application every byte, read or not.
    got: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        got["body"] = body
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    middleware = TwilioGuardMiddleware(app, paths="/twilio", url=service.url, max_body_bytes=50, mode=mode)
    chunks = [{"type": "http.request", "body": b"x" * 30, "more_body": i < 2} for i in range(3)]
    sent: list[dict[str, Any]] = []

    async def receive() -> Any:
        return chunks.pop(0) if chunks else {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {**SCOPE, "path": "/twilio/sms", "raw_path": b"/twilio/sms", "method": "POST"}
    asyncio.run(middleware(scope, receive, send))
    if sent[0]["status"] != want or service.calls:
        pytest.fail(f"status {sent[0]['status']}, {len(service.calls)} calls; want {want} and none")
    if mode == "shadow" and got.get("body") != b"x" * 90:
        pytest.fail(f"the application got {len(got.get('body', b''))} bytes, want 90")
