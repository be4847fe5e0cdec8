"""twilioguard.flask against a fake service, through Flask's test client:
answers, settings, verdict, shadow mode, duplicates, headers. (The real app
under gunicorn and the real server are in test_e2e_apps.)"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from _fake import FakeService, Reply
from _need import need_module

need_module("flask")

from flask import Flask, g, request  # noqa: E402

from twilioguard.flask import validate_twilio_request  # noqa: E402

FORM = "application/x-www-form-urlencoded"
VALID = {"valid": True, "accountSid": "AC1", "credential": "auth_token", "replayCheck": "CHECKED", "duplicate": False}


def make_app(service_url: str, **config: Any) -> Flask:
    app = Flask(__name__)
    app.config.update(DEBUG=True, TESTING=True, TWILIOGUARD_URL=service_url, **config)

    @app.post("/message")
    @validate_twilio_request
    def message() -> str:
        verdict = g.twilio_verdict
        seen = ",".join(sorted(k for k in request.headers.keys() if k.lower().startswith(("x-twilioguard", "x-twilio-account"))))
        return f"{verdict.account_sid if verdict else None}|{request.form.getlist('A')}|{seen}"

    @app.post("/shadow")
    @validate_twilio_request(mode="shadow", route="shadowed")
    def shadow() -> str:
        verdict = g.twilio_verdict
        return "ran:" + (verdict.reason or "valid" if verdict else "no verdict")

    @app.post("/once")
    @validate_twilio_request(duplicates="reject", accounts=["AC_A"])
    def once() -> str:
        return "ran"

    @app.post("/async")
    @validate_twilio_request
    async def async_view() -> str:
        return "async:" + g.twilio_verdict.account_sid

    return app


@pytest.fixture
def service(fake_service: FakeService) -> FakeService:
    fake_service.reply = Reply(200, VALID)
    return fake_service


def post(app: Flask, path: str = "/message", body: bytes = b"A=1&A=2&B=%C3%A9", **headers: str) -> Any:
    return app.test_client().post(
        path, data=body, content_type=FORM, headers={"X-Twilio-Signature": "sig=", **headers}
    )


def test_valid_request_runs_view(service: FakeService) -> None:
    resp = post(make_app(service.url), "/message?q=a%20b", **{"I-Twilio-Idempotency-Token": "tok-1"})
    if resp.status_code != 200 or resp.text != "AC1|['1', '2']|":
        pytest.fail(f"response {resp.status_code} {resp.text!r}")
    want = {
        "url": "http://localhost/message?q=a%20b",
        "body": "QT0xJkE9MiZCPSVDMyVBOQ==",
        "contentType": FORM,
        "signature": "sig=",
        "route": "message",
        "idempotencyToken": "tok-1",
    }
    if service.last.json != want:
        pytest.fail(f"sent {service.last.json}, want {want}")


def test_invalid_is_403_with_debug(service: FakeService, caplog: pytest.LogCaptureFixture) -> None:
    service.reply = Reply(200, {"accountSid": "AC1", "reason": "SIGNATURE_MISMATCH", "hint": "try https"})
    app = make_app(service.url)
    with caplog.at_level(logging.INFO, logger="twilioguard.flask"):
        resp = post(app)
    if not app.debug or resp.status_code != 403:
        pytest.fail(f"status {resp.status_code} (debug {app.debug}), want 403")
    if "reason=SIGNATURE_MISMATCH" not in caplog.text or "try https" not in caplog.text:
        pytest.fail(f"log lacks the reason and hint: {caplog.text!r}")
    if any(r.levelno != logging.INFO for r in caplog.records):
        pytest.fail(f"a refusal logs at INFO, got {[r.levelname for r in caplog.records]}")


@pytest.mark.parametrize(
    ("status", "body", "want"),
    [
        (503, {"code": "unavailable", "message": "store down"}, 503),
        (401, {"code": "unauthenticated", "message": "?"}, 503),
        (500, b"crash", 503),
        (400, {"code": "invalid_argument", "message": "url too long"}, 400),
    ],
)
def test_service_errors(service: FakeService, status: int, body: Any, want: int) -> None:
    service.reply = Reply(status, body)
    resp = post(make_app(service.url))
    if resp.status_code != want:
        pytest.fail(f"status {resp.status_code}, want {want}")
    if want == 503 and resp.headers.get("Retry-After") != "1":
        pytest.fail(f"503 without Retry-After: {dict(resp.headers)}")


def test_unreachable_is_503(fake_service: FakeService) -> None:
    url = fake_service.url
    fake_service.close()
    resp = post(make_app(url, TWILIOGUARD_TIMEOUT=1))
    if resp.status_code != 503:
        pytest.fail(f"status {resp.status_code}, want 503")


def test_config_then_environment(service: FakeService, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWILIOGUARD_PUBLIC_BASE_URL", "https://env.example")
    monkeypatch.setenv("TWILIOGUARD_ACCOUNTS", "AC_ENV")
    post(make_app(service.url, TWILIOGUARD_ACCOUNTS=["AC_CONFIG"]))
    sent = service.last.json
    if sent["url"] != "https://env.example/message" or sent["allowedAccounts"] != ["AC_CONFIG"]:
        pytest.fail(f"sent {sent}")
    monkeypatch.setenv("TWILIOGUARD_URL", service.url)
    app = make_app("")
    app.config.pop("TWILIOGUARD_URL")
    if post(app).status_code != 200:
        pytest.fail("TWILIOGUARD_URL from the environment was not used")


def test_trusted_proxies(service: FakeService) -> None:
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "hooks.example.com"}
    post(make_app(service.url, TWILIOGUARD_TRUSTED_PROXIES="127.0.0.1"), **headers)
    if service.last.json["url"] != "https://hooks.example.com/message":
        pytest.fail(f"trusted: sent {service.last.json['url']}")
    post(make_app(service.url, TWILIOGUARD_TRUSTED_PROXIES="10.0.0.0/8"), **headers)
    if service.last.json["url"] != "http://localhost/message":
        pytest.fail(f"untrusted: sent {service.last.json['url']}")


def test_reserved_headers_removed(service: FakeService) -> None:
    forged = {"X-Twilioguard-Verified": "true", "X-Twilio-Account-Sid": "AC_FORGED", "X-TwilioGuard-Route": "x"}
    resp = post(make_app(service.url), **forged)
    if not resp.text.endswith("|"):
        pytest.fail(f"the view saw forged headers: {resp.text!r}")


def test_shadow_mode(service: FakeService) -> None:
    service.reply = Reply(200, {"reason": "MISSING_SIGNATURE"})
    resp = post(make_app(service.url), "/shadow")
    if resp.status_code != 200 or resp.text != "ran:MISSING_SIGNATURE":
        pytest.fail(f"shadow, invalid: {resp.status_code} {resp.text!r}")
    if service.last.json["route"] != "shadowed":
        pytest.fail(f"sent {service.last.json}")
    service.reply = Reply(503, {"code": "unavailable", "message": "down"})
    resp = post(make_app(service.url), "/shadow")
    if resp.status_code != 200 or resp.text != "ran:no verdict":
        pytest.fail(f"shadow, unavailable: {resp.status_code} {resp.text!r}")


@pytest.mark.parametrize(
    ("verdict", "want"),
    [
        ({"valid": True, "duplicate": True, "replayCheck": "CHECKED", "firstSeenTime": "2026-01-01T00:00:00Z"}, 409),
        ({"valid": True, "duplicate": False, "replayCheck": "CHECKED"}, 200),
        ({"valid": True, "replayCheck": "UNAVAILABLE"}, 200),
    ],
)
def test_duplicates_rejected(service: FakeService, verdict: dict[str, Any], want: int) -> None:
    service.reply = Reply(200, verdict)
    resp = post(make_app(service.url), "/once")
    if resp.status_code != want:
        pytest.fail(f"status {resp.status_code}, want {want}")
    if service.last.json.get("allowedAccounts") != ["AC_A"]:
        pytest.fail(f"sent {service.last.json}")


def test_body_too_large(service: FakeService) -> None:
    resp = post(make_app(service.url, TWILIOGUARD_MAX_BODY_BYTES=10), body=b"A=" + b"x" * 20)
    if resp.status_code != 413 or service.calls:
        pytest.fail(f"status {resp.status_code}, {len(service.calls)} calls; want 413 and none")


def test_form_parsed_before(service: FakeService) -> None:
    app = make_app(service.url)

    @app.before_request
    def read_form() -> None:
        request.form.get("A")  # consumes the body without keeping its bytes

    resp = post(app)
    if resp.status_code != 200:
        pytest.fail(f"status {resp.status_code}")
    sent = service.last.json
    if sent.get("params") != [{"key": "A", "value": "1"}, {"key": "A", "value": "2"}, {"key": "B", "value": "é"}]:
        pytest.fail(f"sent {sent}")


def test_async_view(service: FakeService) -> None:
    need_module("asgiref")
    resp = post(make_app(service.url), "/async")
    if resp.status_code != 200 or resp.text != "async:AC1":
        pytest.fail(f"response {resp.status_code} {resp.text!r}")


def test_bad_settings_raise(service: FakeService) -> None:
    app = make_app(service.url, TWILIOGUARD_MODE="off")
    with pytest.raises(ValueError, match="TWILIOGUARD_MODE"):
        post(app)
    if service.calls:
        pytest.fail("a call reached the service with bad settings")


def test_bad_option_raises_at_decoration() -> None:
    with pytest.raises(ValueError, match="TWILIOGUARD_DUPLICATES"):
        validate_twilio_request(duplicates="sometimes")(lambda: "")
