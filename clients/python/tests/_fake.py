"""A hand-written fake of the twilioguard VerifierService for unit tests."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional


@dataclass
class Call:
    """One request the fake received."""

    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    """What the fake answers: a status and a body (JSON-encoded unless bytes)."""

    status: int = 200
    body: Any = field(default_factory=lambda: {"valid": True})
    close: bool = False


class FakeService:
    """FakeService answers every call with ``reply`` (or ``respond(call)``)
    after ``delay`` seconds, records the calls, and counts TCP
    connections."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.reply = Reply()
        self.respond: Optional[Callable[[Call], Reply]] = None
        self.connections = 0
        self.delay = 0.0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                fake.connections += 1

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                call = Call(self.path, {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length))
                fake.calls.append(call)
                reply = fake.respond(call) if fake.respond else fake.reply
                if fake.delay:
                    time.sleep(fake.delay)
                data = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if reply.close:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def last(self) -> Call:
        return self.calls[-1]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
