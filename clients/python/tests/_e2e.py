"""End-to-end parts: the real twilioguard server (built from cmd/twilioguard),
Django apps served by ``runserver``, and a TLS-terminating proxy stand-in.

Every part runs as a real process or thread on loopback; requests are real
HTTP. Outside CI a missing part (Go, the server's source, Django, twilio)
skips the end-to-end tests with a message; with CI=true it fails them.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
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


class DjangoApp:
    """The test Django project (tests/djangoapp, DEBUG=True) served for real
    by ``python -m django runserver`` with the given TWILIOGUARD_* settings."""

    def __init__(self, workdir: Path, settings: Mapping[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        self.log = workdir / f"django-{self.port}.log"
        env = _clean_env(
            DJANGO_SETTINGS_MODULE="djangoapp.settings",
            PYTHONPATH=os.pathsep.join([str(HERE), str(SRC)]),
            PYTHONUNBUFFERED="1",
            **dict(settings),
        )
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "django", "runserver", "--noreload", f"127.0.0.1:{self.port}"],
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
) -> Response:
    """Send one real HTTP request, from loopback address *source* if given."""
    target = urllib.parse.urlsplit(base_url)
    conn = http.client.HTTPConnection(
        target.hostname, target.port, timeout=30, source_address=(source, 0) if source else None
    )
    try:
        all_headers = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
        all_headers.update(headers or {})
        conn.request(method, path, body=body, headers=all_headers)
        resp = conn.getresponse()
        return Response(resp.status, resp.read().decode("utf-8", "replace"))
    finally:
        conn.close()


_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "host"}
_FORWARDING = {"forwarded", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port", "x-original-host"}


class TLSTerminatingProxy:
    """A stand-in for a TLS-terminating reverse proxy in front of an app.

    It listens on plain HTTP on 127.0.0.1 (the TLS part is irrelevant to
    signatures), drops client-sent forwarding headers, adds its own saying the
    client came over https to *public_host*, and connects to the app from
    loopback address *source* (so the app sees that peer address). *style*
    picks ``X-Forwarded-*`` headers or an RFC 7239 ``Forwarded`` header.
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
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

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
def django_app_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Start Django apps with given settings; all are stopped at the end."""
    need_module("django")
    need_module("twilio")
    apps: list[DjangoApp] = []
    workdir = tmp_path_factory.mktemp("django")

    def start(**settings: str) -> DjangoApp:
        app = DjangoApp(workdir, settings)
        apps.append(app)
        return app

    yield start
    for app in apps:
        app.stop()
