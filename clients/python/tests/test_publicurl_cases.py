"""The shared public-URL cases (webhookreq/testdata/publicurl_cases.json),
which the Go, Python and Node implementations all pass, through the WSGI and
the ASGI adapters."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from twilioguard import asgi, wsgi
from twilioguard._publicurl import Rebuilt, parse_networks, rebuild

CASES_FILE = Path(__file__).resolve().parents[3] / "webhookreq" / "testdata" / "publicurl_cases.json"
DATA = json.loads(CASES_FILE.read_text(encoding="utf-8"))
CASES: list[dict[str, Any]] = DATA["cases"]


def _peer(peer: str) -> tuple[str, int]:
    """A Go RemoteAddr ("[::1]:80", "10.0.0.1:80", "@") as host and port."""
    if peer.startswith("[") and "]:" in peer:
        host, port = peer[1:].split("]:", 1)
        return host, int(port)
    if peer.count(":") == 1:
        host, port = peer.split(":", 1)
        return host, int(port)
    return peer, 0


def _wsgi(case: dict[str, Any]) -> Any:
    env: dict[str, Any] = {
        "wsgi.url_scheme": "https" if case["tls"] else "http",
        "REQUEST_METHOD": "POST",
        "HTTP_HOST": case["host"],
        "REMOTE_ADDR": _peer(case["peer"])[0],
        "REQUEST_URI": case["target"],
        "PATH_INFO": "/ignored",
    }
    for name, lines in case["headers"].items():
        env["HTTP_" + name.upper().replace("-", "_")] = ", ".join(lines)
    return wsgi.incoming(env)


def _asgi(case: dict[str, Any]) -> Any:
    path, _, query = case["target"].partition("?")
    headers = [(b"host", case["host"].encode())]
    for name, lines in case["headers"].items():
        headers += [(name.lower().encode(), line.encode()) for line in lines]
    scope = {
        "type": "http",
        "scheme": "https" if case["tls"] else "http",
        "method": "POST",
        "path": "/ignored",
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": headers,
        "client": _peer(case["peer"]),
        "server": ("127.0.0.1", 8000),
    }
    return asgi.incoming(scope)


@pytest.mark.parametrize("adapter", [_wsgi, _asgi], ids=["wsgi", "asgi"])
@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_shared_case(case: dict[str, Any], adapter: Any) -> None:
    trusted = parse_networks(case.get("trustedProxies", DATA["trustedProxies"]))
    got = rebuild(
        adapter(case),
        public_base_url=case.get("publicBaseUrl"),
        trusted_proxies=trusted,
        proxy_headers=case.get("proxyHeaders"),
    )
    want = Rebuilt(case["want"], case["wantFrom"], case["wantHint"])
    if got.url != want.url or got.source != want.source:
        pytest.fail(f"{case['name']}: rebuilt {got.url} from {got.source}, want {want.url} from {want.source}")
    if want.hint and want.hint not in got.hint:
        pytest.fail(f"{case['name']}: hint = {got.hint!r}, want it to contain {want.hint!r}")
    if not want.hint and got.hint:
        pytest.fail(f"{case['name']}: hint = {got.hint!r}, want none")


def test_every_case_is_read() -> None:
    if len(CASES) < 30:
        pytest.fail(f"only {len(CASES)} cases in {CASES_FILE}")
