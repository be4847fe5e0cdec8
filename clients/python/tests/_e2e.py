"""End-to-end parts: the real twilioguard server (built from cmd/twilioguard),
the Django, Flask and FastAPI test apps served by ``runserver``, gunicorn
and uvicorn, and a TLS-terminating proxy.

Every part runs as a real process or thread on loopback; requests are real
HTTP. Outside CI a missing part (Go, the server's source, Django, twilio)
skips the end-to-end tests with a message; with CI=true it fails them.
"""

from __future__ import annotations

import functools
import http.client
import json
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Optional

import pytest
from _need import missing, need_module

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
SRC = HERE.parent / "src"
START_TIMEOUT = 60.0


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment for a child process, without TWILIOGUARD_* settings
    that the test run's own environment may carry."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWILIOGUARD_")}
    env.update(extra)
    return env


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, *, want_status: Optional[int]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}:\n{_log_tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if want_status is None or resp.status == want_status:
                    return
        except urllib.error.HTTPError as exc:
            if want_status is None:
                return
            exc.close()
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready within {START_TIMEOUT:g}s:\n{_log_tail(log)}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass(frozen=True)
class Account:
    """A Twilio account the server knows: its SID and auth token."""

    sid: str
    token: str


def new_account() -> Account:
    return Account("AC" + secrets.token_hex(16), secrets.token_hex(16))


class TwilioguardServer:
    """A running ``twilioguard serve`` on a free loopback port, SQLite in a
    temporary data directory."""

    def __init__(self, binary: Path, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.admin_token = secrets.token_hex(16)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "twilioguard.log"
        data = workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [str(binary), "serve", "--addr", f"127.0.0.1:{self.port}", "--data-dir", str(data)],
                env=_clean_env(TWILIOGUARD_ADMIN_TOKEN=self.admin_token),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        try:
            _wait_http(self.url + "/readyz", self.proc, self.log, want_status=200)
        except BaseException:
            self.stop()
            raise

    def put_account(self, account: Account) -> None:
        """Create or replace *account* through the admin API."""
        body = json.dumps({"account": {"sid": account.sid, "authToken": account.token}}).encode()
        request = urllib.request.Request(
            self.url + "/twilioguard.v1.AccountService/PutAccount",
            data=body,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.admin_token}"},
        )
        with urllib.request.urlopen(request, timeout=10) as resp:
            if resp.status != 200:
                raise RuntimeError(f"PutAccount answered {resp.status}")

    def stop(self) -> None:
        _stop(self.proc)


#: KINDS are the web apps the end-to-end tests run: each serves the Twilio
#: tutorial's webhooks, protected by twilioguard's integration.
KINDS = ("django", "flask", "fastapi")

# The servers are told to trust no proxy themselves (gunicorn and uvicorn
# trust forwarding headers from 127.0.0.1 by default), so twilioguard's own
# trusted-proxy setting alone decides which forwarding headers count.
_NO_PROXY = "192.0.2.1"


def _command(kind: str, port: int) -> list[str]:
    bind = f"127.0.0.1:{port}"
    if kind == "django":
        return [sys.executable, "-m", "django", "runserver", "--noreload", bind]
    if kind == "flask":
        return [
            sys.executable, "-m", "gunicorn", "--bind", bind, "--workers", "1", "--threads", "4",
            "--forwarded-allow-ips", _NO_PROXY, "--chdir", str(HERE / "flaskapp"), "app:app",
        ]
    if kind == "fastapi":
        return [
            sys.executable, "-m", "uvicorn", "app:app", "--host", "127.0.0.1", "--port", str(port),
            "--app-dir", str(HERE / "fastapiapp"), "--no-proxy-headers", "--log-level", "warning",
        ]
    raise ValueError(f"unknown app kind {kind!r}")


class WebApp:
    """One of the test apps (tests/djangoapp under ``runserver``,
    tests/flaskapp under gunicorn, tests/fastapiapp under uvicorn), served
    for real with the given TWILIOGUARD_* settings in its environment."""

    def __init__(self, kind: str, workdir: Path, settings: Mapping[str, str]) -> None:
        self.kind = kind
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        self.log = workdir / f"{kind}-{self.port}.log"
        env = _clean_env(
            DJANGO_SETTINGS_MODULE="djangoapp.settings",
            PYTHONPATH=os.pathsep.join([str(HERE), str(SRC)]),
            PYTHONUNBUFFERED="1",
            **dict(settings),
        )
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                _command(kind, self.port),
                env=env,
                cwd=str(workdir),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        try:
            _wait_http(self.url + "/", self.proc, self.log, want_status=None)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        _stop(self.proc)


_MODULES = {"django": ("django",), "flask": ("flask", "gunicorn"), "fastapi": ("fastapi", "uvicorn", "aiohttp", "python_multipart")}


@dataclass(frozen=True)
class Response:
    status: int
    body: str


def send(
    base_url: str,
    path: str,
    *,
    body: bytes = b"",
    headers: Optional[Mapping[str, str]] = None,
    source: Optional[str] = None,
    method: str = "POST",
    context: Optional[ssl.SSLContext] = None,
) -> Response:
    """Send one real HTTP request (HTTPS for an https:// *base_url*, trusting
    *context*), from loopback address *source* if given."""
    target = urllib.parse.urlsplit(base_url)
    address = (source, 0) if source else None
    conn: http.client.HTTPConnection
    if target.scheme == "https":
        conn = http.client.HTTPSConnection(target.hostname, target.port, timeout=30, source_address=address, context=context)
    else:
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30, source_address=address)
    try:
        all_headers = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
        all_headers.update(headers or {})
        conn.request(method, path, body=body, headers=all_headers)
        resp = conn.getresponse()
        return Response(resp.status, resp.read().decode("utf-8", "replace"))
    finally:
        conn.close()


@functools.lru_cache(maxsize=None)
def _certificate() -> tuple[str, str]:
    """A self-signed certificate and key for 127.0.0.1 (made once per test
    process with openssl)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        missing("openssl", "install it (apt-get install openssl) to run the TLS proxy of the end-to-end tests")
    directory = Path(tempfile.mkdtemp(prefix="twilioguard-tls-"))
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            str(openssl), "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return str(cert), str(key)


_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "host"}
_FORWARDING = {"forwarded", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port", "x-original-host"}


class TLSTerminatingProxy:
    """A TLS-terminating reverse proxy in front of an app.

    It serves HTTPS on 127.0.0.1 with a self-signed certificate (clients
    trust it through :attr:`client_context`), drops client-sent forwarding
    headers, adds its own saying the client came over https to
    *public_host*, and connects to the app over plain HTTP from loopback
    address *source* (so the app sees that peer address). *style* picks
    ``X-Forwarded-*`` headers or an RFC 7239 ``Forwarded`` header.
    """

    def __init__(self, upstream: str, *, public_host: str, source: str, style: str = "x-forwarded") -> None:
        up = urllib.parse.urlsplit(upstream)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length", "0") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP | _FORWARDING
                }
                client = self.client_address[0]
                if style == "forwarded":
                    headers["Forwarded"] = f'for="{client}";proto=https;host="{public_host}"'
                else:
                    headers["X-Forwarded-For"] = client
                    headers["X-Forwarded-Proto"] = "https"
                    headers["X-Forwarded-Host"] = public_host
                conn = http.client.HTTPConnection(up.hostname, up.port, timeout=30, source_address=(source, 0))
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                finally:
                    conn.close()
                proxy.forwarded += 1
                self.send_response(resp.status)
                for key, value in resp.getheaders():
                    if key.lower() not in _HOP_BY_HOP | {"content-length"}:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _forward

        self.forwarded = 0
        cert, key = _certificate()
        server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_context.load_cert_chain(cert, key)
        #: client_context trusts the proxy's certificate.
        self.client_context = ssl.create_default_context(cafile=cert)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.socket = server_context.wrap_socket(self._server.socket, server_side=True)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        self.url = f"https://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


# --- fixtures ---------------------------------------------------------------


@pytest.fixture(scope="session")
def twilioguard_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The twilioguard binary: TWILIOGUARD_TEST_BIN, or built once per session
    with ``go build ./cmd/twilioguard``."""
    given = os.environ.get("TWILIOGUARD_TEST_BIN")
    if given:
        if not os.access(given, os.X_OK):
            missing(f"TWILIOGUARD_TEST_BIN={given}", "point it at a built twilioguard binary or unset it")
        return Path(given)
    if not (ROOT / "cmd" / "twilioguard" / "main.go").exists():
        missing(f"{ROOT}/cmd/twilioguard", "the end-to-end tests build the server from this checkout")
    go = shutil.which("go")
    if go is None:
        missing("the Go toolchain", "install Go 1.26 to build cmd/twilioguard")
    out = tmp_path_factory.mktemp("bin") / "twilioguard"
    build = subprocess.run(
        [go, "build", "-o", str(out), "./cmd/twilioguard"],
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        timeout=900,
    )
    if build.returncode != 0:
        pytest.fail(f"go build ./cmd/twilioguard failed:\n{build.stderr[-4000:]}", pytrace=False)
    return out


@pytest.fixture(scope="session")
def twilioguard_server(twilioguard_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwilioguardServer]:
    """One real twilioguard server for the session."""
    server = TwilioguardServer(twilioguard_binary, tmp_path_factory.mktemp("twilioguard"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def account(twilioguard_server: TwilioguardServer) -> Account:
    """An account the session server knows."""
    acct = new_account()
    twilioguard_server.put_account(acct)
    return acct


@pytest.fixture(scope="session")
def other_account(twilioguard_server: TwilioguardServer) -> Account:
    """A second account the session server knows."""
    acct = new_account()
    twilioguard_server.put_account(acct)
    return acct


@pytest.fixture
def stoppable_server(twilioguard_binary: Path, tmp_path: Path) -> Iterator[TwilioguardServer]:
    """A twilioguard server of the test's own, which the test may stop."""
    server = TwilioguardServer(twilioguard_binary, tmp_path / "twilioguard")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def app_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Start web apps of a kind with given settings, at most once per kind
    and settings; all are stopped at the end."""
    apps: dict[tuple[str, tuple[tuple[str, str], ...]], WebApp] = {}
    workdir = tmp_path_factory.mktemp("apps")

    def start(kind: str, **settings: str) -> WebApp:
        for module in (*_MODULES[kind], "twilio"):
            need_module(module)
        key = (kind, tuple(sorted(settings.items())))
        if key not in apps:
            apps[key] = WebApp(kind, workdir, settings)
        return apps[key]

    yield start
    for app in apps.values():
        app.stop()
