"""request_url: the URL Twilio signed, rebuilt from a WSGI environ (the cases
only WSGI has; the shared cases are in test_publicurl_cases.py)."""

from __future__ import annotations

from typing import Any, Optional

import pytest

from twilioguard.wsgi import parse_networks, rebuild_url, request_url, validate_base_url

TRUSTED = parse_networks("10.0.0.0/8, 192.0.2.1, fd00::/8")


def environ(**over: Any) -> dict[str, Any]:
    env: dict[str, Any] = {
        "wsgi.url_scheme": "http",
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/sms",
        "QUERY_STRING": "",
        "SERVER_NAME": "app",
        "SERVER_PORT": "8000",
        "HTTP_HOST": "app:8000",
        "REMOTE_ADDR": "10.1.2.3",
    }
    env.update(over)
    return {k: v for k, v in env.items() if v is not None}


CASES: list[tuple[str, dict[str, Any], dict[str, Any], str]] = [
    ("as received", {}, {}, "http://app:8000/sms"),
    ("https server", {"wsgi.url_scheme": "https", "HTTP_HOST": "example.com"}, {}, "https://example.com/sms"),
    ("no Host header, default port", {"HTTP_HOST": None, "SERVER_PORT": "80"}, {}, "http://app/sms"),
    ("no Host header, other port", {"HTTP_HOST": None}, {}, "http://app:8000/sms"),
    ("raw query byte for byte", {"QUERY_STRING": "b=2&a=it's+a%20b&c"}, {}, "http://app:8000/sms?b=2&a=it's+a%20b&c"),
    ("script name", {"SCRIPT_NAME": "/hooks"}, {}, "http://app:8000/hooks/sms"),
    ("decoded path re-escaped", {"PATH_INFO": "/a b/é".encode().decode("latin-1")}, {}, "http://app:8000/a%20b/%C3%A9"),
    ("reserved path characters kept", {"PATH_INFO": "/a;b=c/@x:y!$&'()*+,"}, {}, "http://app:8000/a;b=c/@x:y!$&'()*+,"),
    ("REQUEST_URI wins", {"REQUEST_URI": "/sms/%7Euser?x=%41", "PATH_INFO": "/sms/~user", "QUERY_STRING": "x=%41"}, {}, "http://app:8000/sms/%7Euser?x=%41"),
    ("RAW_URI keeps a bare ?", {"RAW_URI": "/sms?"}, {}, "http://app:8000/sms?"),
    ("absolute-form target", {"REQUEST_URI": "http://proxy.example/sms?x=1"}, {}, "http://app:8000/sms?x=1"),
    ("absolute-form target, query only", {"REQUEST_URI": "http://proxy.example?x=1"}, {}, "http://app:8000/?x=1"),
    (
        "public base URL",
        {"QUERY_STRING": "z=1&a=%2F", "HTTP_X_FORWARDED_HOST": "evil.example"},
        {"public_base_url": "https://hooks.example.com/"},
        "https://hooks.example.com/sms?z=1&a=%2F",
    ),
    ("public base URL with prefix", {}, {"public_base_url": "https://hooks.example.com/twilio"}, "https://hooks.example.com/twilio/sms"),
    # Untrusted peers: every forwarding header is ignored.
    (
        "untrusted peer",
        {"REMOTE_ADDR": "203.0.113.9", "HTTP_X_FORWARDED_PROTO": "https", "HTTP_X_FORWARDED_HOST": "evil.example", "HTTP_FORWARDED": "proto=https;host=evil.example", "HTTP_X_ORIGINAL_HOST": "evil.example"},
        {"trusted_proxies": TRUSTED},
        "http://app:8000/sms",
    ),
    ("nothing trusted", {"HTTP_X_FORWARDED_PROTO": "https"}, {}, "http://app:8000/sms"),
    ("no REMOTE_ADDR", {"REMOTE_ADDR": None, "HTTP_X_FORWARDED_PROTO": "https"}, {"trusted_proxies": TRUSTED}, "http://app:8000/sms"),
    # Trusted peers.
    (
        "x-forwarded proto and host",
        {"HTTP_X_FORWARDED_PROTO": "https", "HTTP_X_FORWARDED_HOST": "hooks.example.com"},
        {"trusted_proxies": TRUSTED},
        "https://hooks.example.com/sms",
    ),
    ("x-forwarded proto only", {"HTTP_X_FORWARDED_PROTO": "HTTPS"}, {"trusted_proxies": TRUSTED}, "https://app:8000/sms"),
    (
        "x-forwarded port replaces the port",
        {"HTTP_X_FORWARDED_PROTO": "https", "HTTP_X_FORWARDED_HOST": "hooks.example.com:8080", "HTTP_X_FORWARDED_PORT": "8443"},
        {"trusted_proxies": TRUSTED},
        "https://hooks.example.com:8443/sms",
    ),
    (
        "x-forwarded default port dropped",
        {"HTTP_X_FORWARDED_PROTO": "https", "HTTP_X_FORWARDED_PORT": "443"},
        {"trusted_proxies": TRUSTED},
        "https://app/sms",
    ),
    (
        "x-original-host",
        {"HTTP_X_FORWARDED_PROTO": "https", "HTTP_X_ORIGINAL_HOST": "hooks.example.com"},
        {"trusted_proxies": TRUSTED},
        "https://hooks.example.com/sms",
    ),
    (
        "x-forwarded-host wins over x-original-host",
        {"HTTP_X_FORWARDED_HOST": "a.example", "HTTP_X_ORIGINAL_HOST": "b.example"},
        {"trusted_proxies": TRUSTED},
        "http://a.example/sms",
    ),
    (
        "forwarded",
        {"HTTP_FORWARDED": 'for=198.51.100.7;proto=https;host="hooks.example.com"'},
        {"trusted_proxies": TRUSTED},
        "https://hooks.example.com/sms",
    ),
    (
        "forwarded wins over x-forwarded",
        {"HTTP_FORWARDED": "proto=https;host=a.example", "HTTP_X_FORWARDED_PROTO": "http", "HTTP_X_FORWARDED_HOST": "b.example"},
        {"trusted_proxies": TRUSTED},
        "https://a.example/sms",
    ),
    (
        "forwarded proto, x-forwarded host",
        {"HTTP_FORWARDED": "for=198.51.100.7;proto=https", "HTTP_X_FORWARDED_HOST": "b.example", "HTTP_X_FORWARDED_PORT": "8443"},
        {"trusted_proxies": TRUSTED},
        "https://b.example:8443/sms",
    ),
    (
        "forwarded chain: right-most untrusted hop",
        {"HTTP_FORWARDED": "for=1.1.1.1;proto=http;host=forged.example, for=198.51.100.7;proto=https;host=hooks.example.com, for=10.0.0.5;proto=http;host=lb.internal"},
        {"trusted_proxies": TRUSTED},
        "https://hooks.example.com/sms",
    ),
    (
        "forwarded chain: all trusted, left-most",
        {"HTTP_FORWARDED": 'for="[fd00::1]:4711";proto=https;host=hooks.example.com, for=10.0.0.5;proto=http;host=lb.internal'},
        {"trusted_proxies": TRUSTED},
        "https://hooks.example.com/sms",
    ),
    (
        "malformed forwarded ignored",
        {"HTTP_FORWARDED": 'proto=https;host="unterminated', "HTTP_X_FORWARDED_HOST": "b.example"},
        {"trusted_proxies": TRUSTED},
        "http://b.example/sms",
    ),
    (
        "repeated forwarded parameter ignored",
        {"HTTP_FORWARDED": "proto=https;proto=http"},
        {"trusted_proxies": TRUSTED},
        "http://app:8000/sms",
    ),
    (
        "x-forwarded lists hop by hop",
        {
            "HTTP_X_FORWARDED_FOR": "1.1.1.1, 198.51.100.7, 10.0.0.5",
            "HTTP_X_FORWARDED_PROTO": "http, https, http",
            "HTTP_X_FORWARDED_HOST": "forged.example, hooks.example.com, lb.internal",
        },
        {"trusted_proxies": TRUSTED},
        "https://hooks.example.com/sms",
    ),
    (
        "x-forwarded lists of another length: right-most",
        {"HTTP_X_FORWARDED_FOR": "198.51.100.7, 10.0.0.5", "HTTP_X_FORWARDED_PROTO": "http, http, https"},
        {"trusted_proxies": TRUSTED},
        "https://app:8000/sms",
    ),
    (
        "invalid values ignored",
        {"HTTP_X_FORWARDED_PROTO": "javascript", "HTTP_X_FORWARDED_HOST": "evil.example/path?", "HTTP_X_FORWARDED_PORT": "99999"},
        {"trusted_proxies": TRUSTED},
        "http://app:8000/sms",
    ),
    (
        "ipv6 forwarded host",
        {"HTTP_X_FORWARDED_HOST": "[2001:db8::1]", "HTTP_X_FORWARDED_PORT": "8443"},
        {"trusted_proxies": TRUSTED},
        "http://[2001:db8::1]:8443/sms",
    ),
    ("ipv4-mapped peer", {"REMOTE_ADDR": "::ffff:10.9.9.9", "HTTP_X_FORWARDED_PROTO": "https"}, {"trusted_proxies": TRUSTED}, "https://app:8000/sms"),
    ("single trusted address", {"REMOTE_ADDR": "192.0.2.1", "HTTP_X_FORWARDED_PROTO": "https"}, {"trusted_proxies": TRUSTED}, "https://app:8000/sms"),
    ("next address not trusted", {"REMOTE_ADDR": "192.0.2.2", "HTTP_X_FORWARDED_PROTO": "https"}, {"trusted_proxies": TRUSTED}, "http://app:8000/sms"),
    (
        "only chosen headers read",
        {"HTTP_X_FORWARDED_PROTO": "https", "HTTP_X_FORWARDED_HOST": "spoofed.example"},
        {"trusted_proxies": TRUSTED, "proxy_headers": ["x-forwarded-proto"]},
        "https://app:8000/sms",
    ),
    (
        "forwarded not chosen",
        {"HTTP_FORWARDED": "host=spoofed.example", "HTTP_X_FORWARDED_HOST": "hooks.example.com"},
        {"trusted_proxies": TRUSTED, "proxy_headers": "X-Forwarded-Host"},
        "http://hooks.example.com/sms",
    ),
    ("asgi scheme and target", {"wsgi.url_scheme": None}, {"scheme": "https", "target": "/raw%2Fpath?q"}, "https://app:8000/raw%2Fpath?q"),
]


@pytest.mark.parametrize(("name", "env", "kwargs", "want"), CASES, ids=[c[0] for c in CASES])
def test_request_url(name: str, env: dict[str, Any], kwargs: dict[str, Any], want: str) -> None:
    got = request_url(environ(**env), **kwargs)
    if got != want:
        pytest.fail(f"{name}: request_url = {got}, want {want}")


@pytest.mark.parametrize(
    ("env", "kwargs", "want"),
    [
        ({"REMOTE_ADDR": "203.0.113.9", "HTTP_X_FORWARDED_PROTO": "https"}, {"trusted_proxies": TRUSTED}, "ignored X-Forwarded-Proto from peer 203.0.113.9"),
        ({}, {}, "plain-HTTP connection with no forwarded headers"),
        ({"wsgi.url_scheme": "https"}, {}, None),
        ({"HTTP_X_FORWARDED_PROTO": "https"}, {"trusted_proxies": TRUSTED}, None),
        ({}, {"public_base_url": "https://x.example"}, None),
    ],
)
def test_proxy_hint(env: dict[str, Any], kwargs: dict[str, Any], want: Optional[str]) -> None:
    _, hint = rebuild_url(environ(**env), **kwargs)
    if want is None and hint:
        pytest.fail(f"hint = {hint!r}, want none")
    if want is not None and want not in hint:
        pytest.fail(f"hint = {hint!r}, want it to contain {want!r}")


def test_parse_networks() -> None:
    got = [str(n) for n in parse_networks(["10.1.2.3/8", " ::1 ", "::ffff:192.168.0.0/112", ""])]
    want = ["10.0.0.0/8", "::1/128", "192.168.0.0/16"]
    if got != want:
        pytest.fail(f"parse_networks = {got}, want {want}")
    with pytest.raises(ValueError, match="example.com"):
        parse_networks("10.0.0.0/8,example.com")


@pytest.mark.parametrize("bad", ["hooks.example.com", "ftp://x", "https://u:p@x", "https://x/?q", "https://x/#f", "https://"])
def test_bad_base_url(bad: str) -> None:
    with pytest.raises(ValueError):
        validate_base_url(bad)


def test_unknown_proxy_header() -> None:
    with pytest.raises(ValueError, match="X-Real-IP"):
        request_url(environ(), proxy_headers=["X-Real-IP"])
