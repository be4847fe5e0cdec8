"""twilioguard.django against a fake service: answers, settings, verdict,
middleware, async views. (The real app and server are in test_e2e_django.)"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from _fake import FakeService, Reply
from _need import need_module

need_module("django")

import django  # noqa: E402
from django.conf import settings  # noqa: E402

if not settings.configured:
    settings.configure(
        DEBUG=True,
        SECRET_KEY="unit-tests-only",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=["django.middleware.csrf.CsrfViewMiddleware"],
        INSTALLED_APPS=[],
        DATABASES={},
        USE_TZ=True,
    )
    django.setup()

from django.core.exceptions import ImproperlyConfigured  # noqa: E402
from django.http import HttpRequest, HttpResponse  # noqa: E402
from django.test import AsyncRequestFactory, Client, RequestFactory, override_settings  # noqa: E402
from django.urls import path  # noqa: E402

from twilioguard.django import (  # noqa: E402
    ValidateTwilioRequestMiddleware,
    validate_twilio_request,
    verify_request,
    webhook_url,
)

FORM = "application/x-www-form-urlencoded"
VALID = {"valid": True, "accountSid": "AC1", "credential": "auth_token", "matchedUrl": "x", "algorithm": "HMAC_SHA1"}


def ran(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"ran:{request.twilio_verdict.account_sid}")  # type: ignore[attr-defined]


@validate_twilio_request
def bare_view(request: HttpRequest) -> HttpResponse:
    return ran(request)


@validate_twilio_request(accounts=["AC_A", "AC_B"], route="voice", public_base_url="https://pub.example/")
def configured_view(request: HttpRequest) -> HttpResponse:
    return ran(request)


def plain_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse("plain")


urlpatterns = [
    path("bare/", bare_view),
    path("hooks/sms", plain_view),
    path("other", plain_view),
]


@pytest.fixture
def service(fake_service: FakeService) -> Any:
    fake_service.reply = Reply(200, VALID)
    with override_settings(TWILIOGUARD_URL=fake_service.url):
        yield fake_service


def post(path: str = "/bare/", body: bytes = b"A=1&B=2", **extra: Any) -> HttpRequest:
    return RequestFactory().post(path, data=body, content_type=FORM, HTTP_X_TWILIO_SIGNATURE="sig=", **extra)


def test_valid_request_runs_view_with_verdict(service: FakeService) -> None:
    resp = bare_view(post("/bare/?q=a%20b", body=b"A=1&A=2&B=%C3%A9"))
    if resp.status_code != 200 or resp.content != b"ran:AC1":
        pytest.fail(f"response {resp.status_code} {resp.content!r}, want 200 ran:AC1")
    want = {
        "url": "http://testserver/bare/?q=a%20b",
        "body": "QT0xJkE9MiZCPSVDMyVBOQ==",
        "contentType": FORM,
        "signature": "sig=",
        "route": "bare_view",
    }
    if service.last.json != want:
        pytest.fail(f"sent {service.last.json}, want {want}")


def test_invalid_is_403_even_with_debug(service: FakeService, caplog: pytest.LogCaptureFixture) -> None:
    service.reply = Reply(200, {"accountSid": "AC1", "reason": "SIGNATURE_MISMATCH", "hint": "try https"})
    request = post()
    with caplog.at_level(logging.INFO, logger="twilioguard.django"):
        resp = bare_view(request)
    if not settings.DEBUG:
        pytest.fail("the test must run with DEBUG on")
    if resp.status_code != 403:
        pytest.fail(f"status {resp.status_code}, want 403")
    if request.twilio_verdict.reason != "SIGNATURE_MISMATCH":  # type: ignore[attr-defined]
        pytest.fail(f"verdict not attached: {getattr(request, 'twilio_verdict', None)}")
    if "SIGNATURE_MISMATCH" not in caplog.text or "try https" not in caplog.text:
        pytest.fail(f"log lacks the reason and hint: {caplog.text!r}")
    if "sig=" in caplog.text:
        pytest.fail("log contains the signature")


def test_unreachable_is_503(fake_service: FakeService) -> None:
    url = fake_service.url
    fake_service.close()
    with override_settings(TWILIOGUARD_URL=url, TWILIOGUARD_TIMEOUT=1):
        resp = bare_view(post())
    if resp.status_code != 503:
        pytest.fail(f"status {resp.status_code}, want 503")


@pytest.mark.parametrize(
    ("status", "body", "want"),
    [
        (503, {"code": "unavailable", "message": "store down"}, 503),
        (500, b"crash", 503),
        (401, {"code": "unauthenticated", "message": "?"}, 503),
        (400, {"code": "invalid_argument", "message": "url too long"}, 400),
    ],
)
def test_service_errors(service: FakeService, status: int, body: Any, want: int) -> None:
    service.reply = Reply(status, body)
    resp = bare_view(post())
    if resp.status_code != want:
        pytest.fail(f"status {resp.status_code}, want {want}")


def test_decorator_options(service: FakeService) -> None:
    configured_view(post("/voice?x=1"))
    sent = service.last.json
    if sent["allowedAccounts"] != ["AC_A", "AC_B"] or sent["route"] != "voice" or sent["url"] != "https://pub.example/voice?x=1":
        pytest.fail(f"sent {sent}")


def test_settings(service: FakeService) -> None:
    with override_settings(
        TWILIOGUARD_ACCOUNTS="AC_X, prod",
        TWILIOGUARD_PUBLIC_BASE_URL="https://hooks.example.com",
        TWILIOGUARD_TRUSTED_PROXIES=["127.0.0.0/8"],
    ):
        bare_view(post(HTTP_X_FORWARDED_HOST="ignored.example"))
    sent = service.last.json
    if sent["allowedAccounts"] != ["AC_X", "prod"] or sent["url"] != "https://hooks.example.com/bare/":
        pytest.fail(f"sent {sent}")


def test_trusted_proxy_setting(service: FakeService) -> None:
    request = post(HTTP_X_FORWARDED_PROTO="https", HTTP_X_FORWARDED_HOST="hooks.example.com")
    with override_settings(TWILIOGUARD_TRUSTED_PROXIES="127.0.0.1"):
        got = webhook_url(request)
    if got != "https://hooks.example.com/bare/":
        pytest.fail(f"trusted: webhook_url = {got}")
    with override_settings(TWILIOGUARD_TRUSTED_PROXIES="10.0.0.0/8"):
        got = webhook_url(request)
    if got != "http://testserver/bare/":
        pytest.fail(f"untrusted: webhook_url = {got}")
    with override_settings(TWILIOGUARD_TRUSTED_PROXIES="127.0.0.1", TWILIOGUARD_PROXY_HEADERS=["X-Forwarded-Proto"]):
        got = webhook_url(request)
    if got != "https://testserver/bare/":
        pytest.fail(f"only X-Forwarded-Proto: webhook_url = {got}")


def test_get_sends_no_body(service: FakeService) -> None:
    request = RequestFactory().get("/bare/?CallSid=CA1&From=%2B1", HTTP_X_TWILIO_SIGNATURE="s")
    verify_request(request)
    sent = service.last.json
    if "body" in sent or "contentType" in sent or sent["url"] != "http://testserver/bare/?CallSid=CA1&From=%2B1":
        pytest.fail(f"sent {sent}")


def test_json_body_sent_raw(service: FakeService) -> None:
    request = RequestFactory().post("/bare/?bodySHA256=ab", data=b'{"a":1}', content_type="application/json")
    verify_request(request)
    sent = service.last.json
    if sent.get("body") != "eyJhIjoxfQ==" or sent.get("contentType") != "application/json":
        pytest.fail(f"sent {sent}")


def test_signature_settings_forwarded(service: FakeService) -> None:
    verify_request(post(HTTP_X_TWILIO_WEBHOOKS_SIGNATURE_SETTINGS="key=k,algorithm=HMAC_SHA256"))
    if service.last.json.get("signatureSettings") != "key=k,algorithm=HMAC_SHA256":
        pytest.fail(f"sent {service.last.json}")


@pytest.mark.parametrize(
    "overrides",
    [
        {"TWILIOGUARD_URL": None},
        {"TWILIOGUARD_URL": "not a url"},
        {"TWILIOGUARD_TRUSTED_PROXIES": ["10.0.0.0/33"]},
        {"TWILIOGUARD_PUBLIC_BASE_URL": "hooks.example.com"},
        {"TWILIOGUARD_PROXY_HEADERS": ["X-Real-IP"]},
        {"TWILIOGUARD_TIMEOUT": "soon"},
        {"TWILIOGUARD_TIMEOUT": 0},
        {"TWILIOGUARD_MODE": "off"},
        {"TWILIOGUARD_DUPLICATES": "never"},
    ],
)
def test_bad_settings_raise(service: FakeService, overrides: dict[str, Any]) -> None:
    with override_settings(**overrides):
        with pytest.raises(ImproperlyConfigured):
            bare_view(post())
    if service.calls:
        pytest.fail("a call reached the service with bad settings")


def test_csrf_exempt_through_real_middleware(service: FakeService) -> None:
    client = Client(enforce_csrf_checks=True)
    resp = client.post("/bare/", data=b"A=1", content_type=FORM, HTTP_X_TWILIO_SIGNATURE="s")
    if resp.status_code != 200:
        pytest.fail(f"status {resp.status_code}, want 200 (CSRF must not block a signed webhook)")


def test_async_view(service: FakeService) -> None:
    @validate_twilio_request
    async def async_view(request: HttpRequest) -> HttpResponse:
        return ran(request)

    request = AsyncRequestFactory().post("/a?x=1", data=b"A=1", content_type=FORM, HTTP_X_TWILIO_SIGNATURE="s")
    resp = asyncio.run(async_view(request))
    if resp.status_code != 200 or resp.content != b"ran:AC1":
        pytest.fail(f"response {resp.status_code} {resp.content!r}")
    if service.last.json["url"] != "http://testserver/a?x=1":
        pytest.fail(f"sent {service.last.json}")
    service.reply = Reply(200, {"reason": "MISSING_SIGNATURE"})
    resp = asyncio.run(async_view(request))
    if resp.status_code != 403:
        pytest.fail(f"status {resp.status_code}, want 403")


def test_middleware(service: FakeService) -> None:
    with override_settings(
        TWILIOGUARD_PATHS=[r"^/hooks/"],
        MIDDLEWARE=["twilioguard.django.ValidateTwilioRequestMiddleware"],
    ):
        client = Client()
        resp = client.post("/hooks/sms", data=b"A=1", content_type=FORM, HTTP_X_TWILIO_SIGNATURE="s")
        if resp.status_code != 200 or service.last.json["route"] != "^/hooks/":
            pytest.fail(f"protected path: status {resp.status_code}, sent {service.last.json}")
        calls = len(service.calls)
        resp = client.post("/other", data=b"A=1", content_type=FORM)
        if resp.status_code != 200 or len(service.calls) != calls:
            pytest.fail("an unprotected path was checked")
        service.reply = Reply(200, {"reason": "SIGNATURE_MISMATCH"})
        resp = client.post("/hooks/sms", data=b"A=1", content_type=FORM, HTTP_X_TWILIO_SIGNATURE="s")
        if resp.status_code != 403:
            pytest.fail(f"invalid on a protected path: status {resp.status_code}, want 403")


def test_middleware_needs_paths(service: FakeService) -> None:
    with pytest.raises(ImproperlyConfigured):
        ValidateTwilioRequestMiddleware(lambda request: HttpResponse())


@validate_twilio_request(mode="shadow")
def shadow_view(request: HttpRequest) -> HttpResponse:
    verdict = request.twilio_verdict  # type: ignore[attr-defined]
    return HttpResponse("ran:" + ((verdict.reason or "valid") if verdict else "no verdict"))


@validate_twilio_request(duplicates="reject")
def once_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ran")


def test_shadow_mode(service: FakeService) -> None:
    service.reply = Reply(200, {"reason": "SIGNATURE_MISMATCH"})
    resp = shadow_view(post())
    if resp.status_code != 200 or resp.content != b"ran:SIGNATURE_MISMATCH":
        pytest.fail(f"shadow, invalid: {resp.status_code} {resp.content!r}")
    service.reply = Reply(503, {"code": "unavailable", "message": "down"})
    resp = shadow_view(post())
    if resp.status_code != 200 or resp.content != b"ran:no verdict":
        pytest.fail(f"shadow, unavailable: {resp.status_code} {resp.content!r}")
    with override_settings(TWILIOGUARD_MODE="shadow"):
        service.reply = Reply(200, {"reason": "MISSING_SIGNATURE"})
        if bare_view(post()).status_code != 200:
            pytest.fail("TWILIOGUARD_MODE=shadow did not let the request through")


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
    resp = once_view(post(HTTP_I_TWILIO_IDEMPOTENCY_TOKEN="tok-1"))
    if resp.status_code != want:
        pytest.fail(f"status {resp.status_code}, want {want}")
    if service.last.json.get("idempotencyToken") != "tok-1":
        pytest.fail(f"sent {service.last.json}")
    with override_settings(TWILIOGUARD_DUPLICATES="reject"):
        if bare_view(post()).status_code != want:
            pytest.fail("TWILIOGUARD_DUPLICATES=reject not applied")


def test_reserved_headers_removed(service: FakeService) -> None:
    @validate_twilio_request
    def headers_view(request: HttpRequest) -> HttpResponse:
        seen = sorted(k for k in request.headers if k.lower().startswith(("x-twilioguard", "x-twilio-account")))
        meta = sorted(k for k in request.META if k.startswith(("HTTP_X_TWILIOGUARD", "HTTP_X_TWILIO_ACCOUNT")))
        return HttpResponse(repr((seen, meta)))

    request = post(HTTP_X_TWILIOGUARD_VERIFIED="true", HTTP_X_TWILIO_ACCOUNT_SID="AC_FORGED", HTTP_X_TWILIOGUARD_ROUTE="x")
    request.headers  # cached before the decorator runs  # noqa: B018
    resp = headers_view(request)
    if resp.content != b"([], [])":
        pytest.fail(f"the view saw forged headers: {resp.content!r}")


def test_body_too_large(service: FakeService) -> None:
    with override_settings(TWILIOGUARD_MAX_BODY_BYTES=10):
        resp = bare_view(post(body=b"A=" + b"x" * 20))
    if resp.status_code != 413 or service.calls:
        pytest.fail(f"status {resp.status_code}, {len(service.calls)} calls; want 413 and none")


def test_log_line_cannot_be_forged(service: FakeService, caplog: pytest.LogCaptureFixture) -> None:
    service.reply = Reply(200, {"reason": "SIGNATURE_MISMATCH", "hint": "a\nb"})
    request = RequestFactory().post(
        "/bare/%0aINFO%20twilio%20webhook%20verified", data=b"A=1", content_type=FORM, HTTP_X_TWILIO_SIGNATURE="s"
    )
    with caplog.at_level(logging.INFO, logger="twilioguard.django"):
        bare_view(request)
    messages = [r.getMessage() for r in caplog.records]
    if len(messages) != 1 or "\n" in messages[0]:
        pytest.fail(f"a decoded %0a split the log line: {messages!r}")
    if "\\nINFO twilio webhook verified" not in messages[0] or 'hint="a\\nb"' not in messages[0]:
        pytest.fail(f"path or hint not escaped: {messages[0]!r}")


def test_async_middleware(service: FakeService) -> None:
    async def view(request: HttpRequest) -> HttpResponse:
        return HttpResponse("ran:" + request.twilio_verdict.account_sid)  # type: ignore[attr-defined]

    with override_settings(TWILIOGUARD_PATHS=[r"^/hooks/"]):
        middleware = ValidateTwilioRequestMiddleware(view)
        request = AsyncRequestFactory().post("/hooks/sms", data=b"A=1", content_type=FORM, HTTP_X_TWILIO_SIGNATURE="s")
        resp = asyncio.run(middleware(request))
        if resp.status_code != 200 or resp.content != b"ran:AC1":
            pytest.fail(f"response {resp.status_code} {resp.content!r}")
        service.reply = Reply(200, {"reason": "SIGNATURE_MISMATCH"})
        resp = asyncio.run(middleware(request))
        if resp.status_code != 403:
            pytest.fail(f"status {resp.status_code}, want 403")
