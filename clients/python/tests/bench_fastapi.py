"""Throughput of the FastAPI test app (uvicorn, one process) protected by
TwilioGuard against the real twilioguard server: signed webhooks per second
with 1 and with 16 requests in flight. Not a test (nothing is asserted);
run it on a quiet machine:

    TWILIOGUARD_TEST_BIN=/path/to/twilioguard python clients/python/tests/bench_fastapi.py [seconds]

Each sender thread keeps one connection to the app and sends the tutorial's
signed SMS webhook in a loop; every answer must be 200.
"""

from __future__ import annotations

import http.client
import os
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "src")]

from _e2e import TwilioguardServer, WebApp, new_account  # noqa: E402

from twilioguard import sign  # noqa: E402

PATH = "/message"


def run(app: WebApp, body: bytes, signature: str, concurrency: int, seconds: float) -> float:
    """Send for *seconds* with *concurrency* threads; return requests/s."""
    counts = [0] * concurrency
    errors: list[str] = []
    stop = time.monotonic() + seconds

    def sender(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=30)
        headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature}
        while time.monotonic() < stop:
            conn.request("POST", PATH, body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                errors.append(f"status {resp.status}")
                return
            counts[i] += 1
        conn.close()

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(concurrency)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    if errors:
        raise SystemExit(f"concurrency {concurrency}: {errors[0]}")
    return sum(counts) / elapsed


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
    binary = os.environ.get("TWILIOGUARD_TEST_BIN")
    if not binary:
        raise SystemExit("set TWILIOGUARD_TEST_BIN to a built twilioguard binary")
    with tempfile.TemporaryDirectory() as tmp:
        server = TwilioguardServer(Path(binary), Path(tmp) / "server")
        app = None
        try:
            account = new_account()
            server.put_account(account)
            app = WebApp("fastapi", Path(tmp) / "app", {"TWILIOGUARD_URL": server.url})
            params = [("AccountSid", account.sid), ("From", "+15551234567"), ("To", "+15557654321"), ("Body", "hi")]
            body = urllib.parse.urlencode(params).encode()
            signature = sign(account.token, app.url + PATH, params)
            run(app, body, signature, 4, 0.5)  # warm up
            for concurrency in (1, 16):
                rate = run(app, body, signature, concurrency, seconds)
                print(f"concurrency {concurrency:2d}: {rate:7.1f} requests/s")
        finally:
            if app is not None:
                app.stop()
            server.stop()


if __name__ == "__main__":
    main()
