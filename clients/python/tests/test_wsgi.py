"""request_url: the URL Twilio signed, rebuilt from a WSGI environ."""

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


# The table of the Go middleware's TestRebuild (middleware/publicurl_test.go):
# name, peer, TLS, Host, request-target, headers, options, URL, hint substring.
# Both implementations must rebuild the same URL from the same request.
GO_TRUSTED = parse_networks(["10.0.0.0/8", "192.168.1.1", "2001:db8::/32"])
GO_MIDDLEWARE_CASES: list[tuple[str, str, bool, str, str, dict[str, list[str]], dict[str, Any], str, str]] = [
    ('direct plain HTTP', '203.0.113.9:1234', False, 'example.com', '/sms?x=1', {}, {}, 'http://example.com/sms?x=1', 'plain-HTTP connection'),
    ('direct TLS', '203.0.113.9:1234', True, 'example.com', '/sms', {}, {}, 'https://example.com/sms', ''),
    ('untrusted peer: X-Forwarded-* ignored', '203.0.113.9:1234', False, 'example.com', '/sms', {'X-Forwarded-Proto': ['https'], 'X-Forwarded-Host': ['evil.example']}, {}, 'http://example.com/sms', 'ignored X-Forwarded-Proto, X-Forwarded-Host from peer 203.0.113.9'),
    ('untrusted peer: Forwarded and X-Original-Host ignored', '[2001:db9::1]:1234', True, 'example.com', '/sms', {'Forwarded': ['for=10.0.0.1;proto=http;host=evil.example'], 'X-Original-Host': ['evil.example']}, {}, 'https://example.com/sms', 'ignored Forwarded, X-Original-Host from peer 2001:db9::1'),
    ('unparseable peer is untrusted', '@', False, 'example.com', '/sms', {'X-Forwarded-Proto': ['https']}, {}, 'http://example.com/sms', 'from peer @'),
    ('trusted peer without headers', '10.1.2.3:5555', False, 'internal:8080', '/sms', {}, {}, 'http://internal:8080/sms', ''),
    ('trusted peer: X-Forwarded-Proto', '10.1.2.3:5555', False, 'example.com', '/sms', {'X-Forwarded-Proto': ['https']}, {}, 'https://example.com/sms', ''),
    ('trusted peer: proto and host', '192.168.1.1:5555', False, 'internal:8080', '/sms?a=b', {'X-Forwarded-Proto': ['HTTPS'], 'X-Forwarded-Host': ['public.example']}, {}, 'https://public.example/sms?a=b', ''),
    ('X-Forwarded-Host keeps its port', '10.1.2.3:5555', False, 'internal', '/sms', {'X-Forwarded-Proto': ['https'], 'X-Forwarded-Host': ['public.example:8443']}, {}, 'https://public.example:8443/sms', ''),
    ('X-Forwarded-Port default port dropped', '10.1.2.3:5555', False, 'internal:8080', '/sms', {'X-Forwarded-Proto': ['https'], 'X-Forwarded-Port': ['443']}, {}, 'https://internal/sms', ''),
    ('X-Forwarded-Port replaces port', '10.1.2.3:5555', False, 'internal:8080', '/sms', {'X-Forwarded-Proto': ['https'], 'X-Forwarded-Host': ['public.example'], 'X-Forwarded-Port': ['8443']}, {}, 'https://public.example:8443/sms', ''),
    ('X-Forwarded-Port on an IPv6 host', '10.1.2.3:5555', False, '[2001:db8::80]:8080', '/sms', {'X-Forwarded-Port': ['9000']}, {}, 'http://[2001:db8::80]:9000/sms', ''),
    ('X-Original-Host', '10.1.2.3:5555', False, 'internal', '/sms', {'X-Original-Host': ['orig.example']}, {}, 'http://orig.example/sms', ''),
    ('X-Forwarded-Host wins over X-Original-Host', '10.1.2.3:5555', False, 'internal', '/sms', {'X-Original-Host': ['orig.example'], 'X-Forwarded-Host': ['fwd.example']}, {}, 'http://fwd.example/sms', ''),
    ('Forwarded', '10.1.2.3:5555', False, 'internal', '/sms', {'Forwarded': ['for=203.0.113.9;proto=https;host=public.example']}, {}, 'https://public.example/sms', ''),
    ('Forwarded quoted IPv6 for and host with port', '10.1.2.3:5555', False, 'internal', '/sms', {'Forwarded': ['For="[2001:db9:cafe::17]:4711";PROTO=https;host="public.example:8443"']}, {}, 'https://public.example:8443/sms', ''),
    ('Forwarded wins over X-Forwarded-*', '10.1.2.3:5555', False, 'internal', '/sms', {'Forwarded': ['for=203.0.113.9;proto=https;host=public.example'], 'X-Forwarded-Proto': ['http'], 'X-Forwarded-Host': ['other.example'], 'X-Forwarded-Port': ['81']}, {}, 'https://public.example/sms', ''),
    ('Forwarded without host: X-Forwarded-Host fills it', '10.1.2.3:5555', False, 'internal', '/sms', {'Forwarded': ['for=203.0.113.9;proto=https'], 'X-Forwarded-Host': ['public.example']}, {}, 'https://public.example/sms', ''),
    ('Forwarded two hops, inner proxy trusted', '10.1.2.3:5555', False, 'internal', '/sms', {'Forwarded': ['for=203.0.113.9;proto=https;host=public.example, for=10.9.9.9;proto=http;host=mid.internal']}, {}, 'https://public.example/sms', ''),
    ('Forwarded two header lines', '10.1.2.3:5555', False, 'internal', '/sms', {'Forwarded': ['for=203.0.113.9;proto=https;host=public.example', 'for=10.9.9.9;proto=http;host=mid.internal']}, {}, 'https://public.example/sms', ''),
    ('Forwarded forged element left of an untrusted hop is ignored', '10.1.2.3:5555', False, 'internal', '/sms', {'Forwarded': ['for=10.9.9.9;proto=https;host=evil.example, for=203.0.113.9;proto=http;host=example.com']}, {}, 'http://example.com/sms', ''),
    ('Forwarded every hop trusted: left-most', '10.1.2.3:5555', False, 'internal', '/sms', {'Forwarded': ['for=10.0.0.7;proto=https;host=first.example, for=10.0.0.8;proto=http;host=second.example']}, {}, 'https://first.example/sms', ''),
    ('Forwarded for=unknown stops the walk', '10.1.2.3:5555', False, 'internal', '/sms', {'Forwarded': ['for=10.0.0.7;proto=https;host=evil.example, for=unknown;proto=https;host=public.example']}, {}, 'https://public.example/sms', ''),
    ('Forwarded obfuscated for stops the walk', '10.1.2.3:5555', False, 'internal', '/sms', {'Forwarded': ['for=10.0.0.7;host=evil.example, for="_hidden";proto=https;host=public.example']}, {}, 'https://public.example/sms', ''),
    ('malformed Forwarded is ignored', '10.1.2.3:5555', False, 'internal', '/sms', {'Forwarded': ['for="203.0.113.9;proto=https;host=evil.example'], 'X-Forwarded-Proto': ['https']}, {}, 'https://internal/sms', ''),
    ('X-Forwarded lists aligned with X-Forwarded-For', '10.1.2.3:5555', False, 'internal', '/sms', {'X-Forwarded-For': ['203.0.113.9, 10.9.9.9'], 'X-Forwarded-Proto': ['https, http'], 'X-Forwarded-Host': ['public.example', 'mid.internal']}, {}, 'https://public.example/sms', ''),
    ('X-Forwarded lists: forged entries left of an untrusted hop ignored', '10.1.2.3:5555', False, 'internal', '/sms', {'X-Forwarded-For': ['10.9.9.9, 203.0.113.9'], 'X-Forwarded-Proto': ['https, http'], 'X-Forwarded-Host': ['evil.example, example.com']}, {}, 'http://example.com/sms', ''),
    ('X-Forwarded lists not aligned: right-most entry', '10.1.2.3:5555', False, 'internal', '/sms', {'X-Forwarded-For': ['203.0.113.9, 10.9.9.9, 10.9.9.10'], 'X-Forwarded-Proto': ['http, https']}, {}, 'https://internal/sms', ''),
    ('invalid forwarded values ignored', '10.1.2.3:5555', False, 'internal', '/sms', {'X-Forwarded-Proto': ['ftp'], 'X-Forwarded-Host': ['evil.example/x'], 'X-Forwarded-Port': ['99999'], 'X-Original-Host': ['a b']}, {}, 'http://internal/sms', ''),
    ('host with userinfo ignored', '10.1.2.3:5555', False, 'internal', '/sms', {'X-Forwarded-Host': ['user:pw@evil.example']}, {}, 'http://internal/sms', ''),
    ('IPv6 peer trusted', '[2001:db8::5]:443', False, 'internal', '/sms', {'X-Forwarded-Proto': ['https']}, {}, 'https://internal/sms', ''),
    ('IPv4-mapped peer trusted', '[::ffff:10.1.2.3]:443', False, 'internal', '/sms', {'X-Forwarded-Proto': ['https']}, {}, 'https://internal/sms', ''),
    ('proxy headers restricted', '10.1.2.3:5555', False, 'example.com', '/sms', {'X-Forwarded-Proto': ['https'], 'X-Forwarded-Host': ['evil.example'], 'Forwarded': ['host=evil.example']}, {'proxy_headers': ['x-forwarded-proto']}, 'https://example.com/sms', ''),
    ('base URL ignores every header', '10.1.2.3:5555', False, 'internal', '/sms?x=1', {'X-Forwarded-Proto': ['http'], 'X-Forwarded-Host': ['evil.example'], 'Forwarded': ['host=evil.example']}, {'public_base_url': 'https://public.example/twilio/'}, 'https://public.example/twilio/sms?x=1', ''),
    ('raw request-target kept byte for byte', '203.0.113.9:1', False, 'internal', "/a%2Fb/c?q=it's+a%2Btest&e=&x=%7e&x=%7E", {}, {'public_base_url': 'https://public.example'}, "https://public.example/a%2Fb/c?q=it's+a%2Btest&e=&x=%7e&x=%7E", ''),
    ('absolute-form request-target', '203.0.113.9:1', True, 'example.com', 'https://example.com/sms?x=1', {}, {}, 'https://example.com/sms?x=1', ''),
    ('absolute-form request-target without path', '203.0.113.9:1', True, 'example.com', 'https://example.com?x=1', {}, {}, 'https://example.com/?x=1', ''),
]


def _wsgi_peer(remote: str) -> str:
    """A Go RemoteAddr ("[::1]:80", "10.0.0.1:80") as WSGI's REMOTE_ADDR."""
    if remote.startswith("[") and "]" in remote:
        return remote[1 : remote.index("]")]
    if remote.count(":") == 1:
        return remote.split(":", 1)[0]
    return remote


@pytest.mark.parametrize(
    ("name", "remote", "tls", "host", "target", "headers", "opts", "want", "hint"),
    GO_MIDDLEWARE_CASES,
    ids=[c[0] for c in GO_MIDDLEWARE_CASES],
)
def test_same_as_go_middleware(
    name: str, remote: str, tls: bool, host: str, target: str,
    headers: dict[str, list[str]], opts: dict[str, Any], want: str, hint: str,
) -> None:
    env: dict[str, Any] = {
        "wsgi.url_scheme": "https" if tls else "http",
        "REQUEST_METHOD": "POST",
        "HTTP_HOST": host,
        "REMOTE_ADDR": _wsgi_peer(remote),
        "REQUEST_URI": target,
        "PATH_INFO": "/ignored",
    }
    for key, values in headers.items():
        env["HTTP_" + key.upper().replace("-", "_")] = ", ".join(values)
    got, got_hint = rebuild_url(env, trusted_proxies=GO_TRUSTED, **opts)
    if got != want:
        pytest.fail(f"{name}: url = {got}, want {want}")
    if hint and hint not in got_hint:
        pytest.fail(f"{name}: hint = {got_hint!r}, want it to contain {hint!r}")
    if not hint and got_hint:
        pytest.fail(f"{name}: hint = {got_hint!r}, want none")
