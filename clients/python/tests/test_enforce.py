"""The rules every integration shares: answers, shadow mode, duplicates, log
levels and log fields, settings."""

from __future__ import annotations

import datetime
import logging
from typing import Any, Optional

import pytest

from twilioguard import InvalidArgumentError, TwilioguardError, UnavailableError, Verdict
from twilioguard._config import Config, load_config
from twilioguard._enforce import Guard, RouteOptions, Webhook, is_reserved_header
from twilioguard._logline import bounded, logfmt
from twilioguard._publicurl import Rebuilt

INFO, ERROR, DEBUG, WARNING = logging.INFO, logging.ERROR, logging.DEBUG, logging.WARNING
VALID = Verdict(True, "AC1", "auth_token", replay_check="CHECKED", duplicate=False)
DUPLICATE = Verdict(
    True,
    "AC1",
    "auth_token",
    duplicate=True,
    replay_check="CHECKED",
    first_seen_time=datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
)
UNKNOWN = Verdict(True, "AC1", "auth_token", replay_check="UNAVAILABLE")
NOT_CHECKED = Verdict(True, "AC1", "auth_token")
INVALID = Verdict(False, "AC1", reason="SIGNATURE_MISMATCH", hint="try https")


def hook(path: str = "/sms", hint: str = "") -> Webhook:
    return Webhook(
        method="POST",
        path=path,
        rebuilt=Rebuilt("https://example.com" + path, "connection", hint),
        peer="203.0.113.9",
        header={"X-Twilio-Signature": "sig=", "Content-Type": "application/x-www-form-urlencoded"}.get,
    )


CASES: list[tuple[str, dict[str, Any], Optional[Verdict], Optional[TwilioguardError], Optional[int], int]] = [
    # name, config, verdict, error, want status (None: let through), want log level
    ("valid", {}, VALID, None, None, DEBUG),
    ("not valid", {}, INVALID, None, 403, INFO),
    ("malformed", {}, None, InvalidArgumentError("invalid_argument", "url"), 400, INFO),
    ("unavailable", {}, None, UnavailableError("unavailable", "down"), 503, ERROR),
    ("unauthenticated", {}, None, TwilioguardError("unauthenticated", "who"), 503, ERROR),
    ("duplicate allowed", {}, DUPLICATE, None, None, DEBUG),
    ("duplicate rejected", {"duplicates": "reject"}, DUPLICATE, None, 409, INFO),
    ("not a duplicate", {"duplicates": "reject"}, VALID, None, None, DEBUG),
    ("duplicate unknown, rejecting", {"duplicates": "reject"}, UNKNOWN, None, None, WARNING),
    ("duplicates not checked, rejecting", {"duplicates": "reject"}, NOT_CHECKED, None, None, WARNING),
    ("duplicate unknown, allowing", {}, UNKNOWN, None, None, DEBUG),
    ("shadow: not valid", {"mode": "shadow"}, INVALID, None, None, INFO),
    ("shadow: malformed", {"mode": "shadow"}, None, InvalidArgumentError("invalid_argument", "x"), None, INFO),
    ("shadow: unavailable", {"mode": "shadow"}, None, UnavailableError("unavailable", "down"), None, ERROR),
    ("shadow: duplicate", {"mode": "shadow", "duplicates": "reject"}, DUPLICATE, None, None, INFO),
    ("shadow: duplicate unknown", {"mode": "shadow", "duplicates": "reject"}, UNKNOWN, None, None, WARNING),
]


@pytest.mark.parametrize(("name", "config", "verdict", "error", "status", "level"), CASES, ids=[c[0] for c in CASES])
def test_decide(
    caplog: pytest.LogCaptureFixture,
    name: str,
    config: dict[str, Any],
    verdict: Optional[Verdict],
    error: Optional[TwilioguardError],
    status: Optional[int],
    level: int,
) -> None:
    guard = Guard(Config("http://tg", **config), logging.getLogger("test.enforce"), route="sms")
    with caplog.at_level(DEBUG, logger="test.enforce"):
        refusal = guard.decide(hook(), verdict, error)
    got = refusal.status if refusal else None
    if got != status:
        pytest.fail(f"{name}: status {got}, want {status}")
    levels = [r.levelno for r in caplog.records]
    if levels != [level]:
        pytest.fail(f"{name}: logged at {levels}, want one line at {logging.getLevelName(level)}")
    if "sig=" in caplog.text:
        pytest.fail(f"{name}: the signature was logged")
    if "route=sms" not in caplog.text:
        pytest.fail(f"{name}: log line lacks the route: {caplog.text!r}")


def test_503_tells_to_retry() -> None:
    refusal = Guard(Config("http://tg"), logging.getLogger("test")).decide(hook(), None, UnavailableError("unavailable", ""))
    if refusal is None or ("Retry-After", "1") not in refusal.headers:
        pytest.fail(f"refusal = {refusal}")


def test_refusal_fields(caplog: pytest.LogCaptureFixture) -> None:
    guard = Guard(Config("http://tg"), logging.getLogger("test.enforce"), route="voice")
    with caplog.at_level(INFO, logger="test.enforce"):
        guard.decide(hook(hint="ignored X-Forwarded-Proto from peer 203.0.113.9"), INVALID)
    record = caplog.records[0]
    fields = record.twilioguard  # type: ignore[attr-defined]
    want = {
        "route": "voice",
        "reason": "SIGNATURE_MISMATCH",
        "account_sid": "AC1",
        "hint": "try https",
        "proxy_hint": "ignored X-Forwarded-Proto from peer 203.0.113.9",
        "peer": "203.0.113.9",
        "url": "https://example.com/sms",
        "url_from": "connection",
    }
    for key, value in want.items():
        if fields.get(key) != value:
            pytest.fail(f"field {key} = {fields.get(key)!r}, want {value!r}")
    if not record.getMessage().startswith("twilio webhook refused: route=voice method=POST path=/sms "):
        pytest.fail(f"message = {record.getMessage()!r}")


def test_forged_log_line_is_escaped(caplog: pytest.LogCaptureFixture) -> None:
    guard = Guard(Config("http://tg"), logging.getLogger("test.enforce"), route="r\nINFO forged")
    path = "/sms\nINFO twilio webhook verified account_sid=AC1 \x1b[31m\u2028"
    with caplog.at_level(INFO, logger="test.enforce"):
        guard.decide(hook(path), INVALID)
    message = caplog.records[0].getMessage()
    for bad in ("\n", "\x1b", "\u2028"):
        if bad in message:
            pytest.fail(f"log line holds a raw {bad!r}: {message!r}")
    if '"/sms\\nINFO twilio webhook verified account_sid=AC1 \\x1b[31m\\u2028"' not in message:
        pytest.fail(f"path not escaped and quoted: {message!r}")


@pytest.mark.parametrize(
    ("value", "limit", "want"),
    [
        ("plain", 64, "plain"),
        ("a\nb\rc\td", 64, "a\\nb\\rc\\td"),
        ('q"b\\s', 64, 'q\\"b\\\\s'),
        ("\x00\x7f\x85\u2029", 64, "\\x00\\x7f\\x85\\u2029"),
        ("x" * 300, 256, "x" * 253 + "…"),
        ("é" * 40, 64, "é" * 30 + "…"),
        ("\n" * 100, 64, "\\n" * 30 + "…"),
    ],
)
def test_bounded(value: str, limit: int, want: str) -> None:
    got = bounded(value, limit)
    if got != want:
        pytest.fail(f"bounded({value!r}, {limit}) = {got!r}, want {want!r}")
    if len(got.encode()) > limit:
        pytest.fail(f"{len(got.encode())} bytes > {limit}")


def test_logfmt() -> None:
    got = logfmt({"a": "x", "b": "two words", "c": "", "d": None, "e": 'q\\"', "f": "k=v"})
    want = 'a=x b="two words" c="" e="q\\"" f="k=v"'
    if got != want:
        pytest.fail(f"logfmt = {got!r}, want {want!r}")


@pytest.mark.parametrize(
    ("name", "want"),
    [
        ("X-Twilioguard-Verified", True),
        ("x-twilioguard-route", True),
        ("X_TWILIOGUARD_VERIFIED", True),
        ("X-Twilio-Account-Sid", True),
        ("x_twilio_account_sid", True),
        ("X-Twilio-Signature", False),
        ("X-Twilioguardian", False),
        ("I-Twilio-Idempotency-Token", False),
    ],
)
def test_reserved_headers(name: str, want: bool) -> None:
    if is_reserved_header(name) != want:
        pytest.fail(f"is_reserved_header({name!r}) = {not want}, want {want}")


def test_arguments() -> None:
    webhook = Webhook(
        method="POST",
        path="/sms",
        rebuilt=Rebuilt("https://example.com/sms", "base_url", ""),
        peer=None,
        header={
            "X-Twilio-Signature": "sig=",
            "X-Twilio-Webhooks-Signature-Settings": "key=k,algorithm=HMAC_SHA256",
            "I-Twilio-Idempotency-Token": "tok-1",
            "Content-Type": "application/x-www-form-urlencoded",
        }.get,
    )
    guard = RouteOptions(accounts=["AC9"], route="sms").guard(Config("http://tg", accounts=("AC1",)), logging.getLogger("t"))
    got = guard.arguments(webhook, b"A=1")
    want = {
        "url": "https://example.com/sms",
        "signature": "sig=",
        "signature_settings": "key=k,algorithm=HMAC_SHA256",
        "idempotency_token": "tok-1",
        "allowed_accounts": ("AC9",),
        "route": "sms",
        "body": b"A=1",
        "content_type": "application/x-www-form-urlencoded",
    }
    if got != want:
        pytest.fail(f"arguments = {got}, want {want}")
    params = guard.arguments(webhook, None, [("A", "1"), ("A", "2")])
    if params.get("params") != [("A", "1"), ("A", "2")] or "body" in params:
        pytest.fail(f"arguments with params = {params}")


def test_load_config() -> None:
    env = {
        "TWILIOGUARD_URL": "http://tg:8080",
        "TWILIOGUARD_TIMEOUT": "2.5",
        "TWILIOGUARD_ACCOUNTS": "AC1, prod",
        "TWILIOGUARD_PUBLIC_BASE_URL": "https://hooks.example.com/",
        "TWILIOGUARD_TRUSTED_PROXIES": "10.0.0.0/8 ::1",
        "TWILIOGUARD_PROXY_HEADERS": "x-forwarded-proto,Forwarded",
        "TWILIOGUARD_MODE": "Shadow",
        "TWILIOGUARD_DUPLICATES": "reject",
        "TWILIOGUARD_MAX_BODY_BYTES": "1000",
    }
    config = load_config(env.get, accounts=["AC2"])
    got = (
        config.url,
        config.timeout,
        config.accounts,
        config.public_base_url,
        [str(n) for n in config.trusted_proxies],
        config.proxy_headers,
        config.shadow,
        config.duplicates,
        config.max_body_bytes,
    )
    want = (
        "http://tg:8080",
        2.5,
        ("AC2",),
        "https://hooks.example.com",
        ["10.0.0.0/8", "::1/128"],
        ("Forwarded", "X-Forwarded-Proto"),
        True,
        "reject",
        1000,
    )
    if got != want:
        pytest.fail(f"config = {got}, want {want}")


@pytest.mark.parametrize(
    ("given", "setting"),
    [
        ({}, "TWILIOGUARD_URL"),
        ({"mode": "off"}, "TWILIOGUARD_MODE"),
        ({"duplicates": "drop"}, "TWILIOGUARD_DUPLICATES"),
        ({"timeout": "0"}, "TWILIOGUARD_TIMEOUT"),
        ({"max_body_bytes": "-1"}, "TWILIOGUARD_MAX_BODY_BYTES"),
        ({"trusted_proxies": "10.0.0.0/33"}, "TWILIOGUARD_TRUSTED_PROXIES"),
        ({"proxy_headers": "X-Real-IP"}, "TWILIOGUARD_PROXY_HEADERS"),
        ({"public_base_url": "hooks.example.com"}, "TWILIOGUARD_PUBLIC_BASE_URL"),
    ],
)
def test_bad_config_names_the_setting(given: dict[str, Any], setting: str) -> None:
    env = {} if not given else {"TWILIOGUARD_URL": "http://tg"}
    with pytest.raises(ValueError, match=setting):
        load_config(env.get, **given)
