"""A dependency-free client for the twilioguard VerifierService (Connect JSON)."""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any, Optional

from ._errors import InvalidArgumentError, TwilioguardError, UnavailableError
from ._signature import Params, iter_params
from ._verdict import Verdict

__all__ = ["Client", "DEFAULT_TIMEOUT"]

#: DEFAULT_TIMEOUT is the default timeout, in seconds, of each network
#: operation (connect, send, wait for the answer).
DEFAULT_TIMEOUT = 5.0

_VERIFY_PATH = "/twilioguard.v1.VerifierService/VerifyWebhook"

# Errors on a kept-alive connection that mean the server closed it while it
# was idle, before reading the call: the call is retried once on a fresh
# connection.
_STALE_CONNECTION = (
    http.client.RemoteDisconnected,
    http.client.BadStatusLine,
    ConnectionResetError,
    ConnectionAbortedError,
    BrokenPipeError,
)

# HTTP statuses without a Connect error body, mapped as the Connect protocol
# maps them.
_HTTP_CODES = {
    400: "internal",
    401: "unauthenticated",
    403: "permission_denied",
    404: "unimplemented",
    408: "deadline_exceeded",
    429: "unavailable",
    502: "unavailable",
    503: "unavailable",
    504: "unavailable",
}
_UNAVAILABLE_CODES = frozenset({"unavailable", "deadline_exceeded"})


def _version() -> str:
    from . import __version__

    return __version__


def parse_base_url(base_url: str) -> tuple[urllib.parse.SplitResult, str, Optional[int]]:
    """Check a service base URL and return its parts, host and port; raises
    ValueError when it is not ``http(s)://host[:port][/prefix]``."""
    parts = urllib.parse.urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"twilioguard base URL must be http:// or https:// with a host, got {base_url!r}")
    if parts.username is not None or parts.password is not None:
        raise ValueError("twilioguard base URL must not carry user info")
    if parts.query or parts.fragment:
        raise ValueError(f"twilioguard base URL must not carry a query or fragment, got {base_url!r}")
    try:
        return parts, parts.hostname, parts.port
    except ValueError as exc:
        raise ValueError(f"twilioguard base URL has a bad port: {base_url!r}") from exc


def call_headers(timeout: float, extra: Mapping[str, str]) -> dict[str, str]:
    """The headers of a Connect unary call with JSON and a deadline."""
    return {
        "Content-Type": "application/json",
        "Connect-Protocol-Version": "1",
        "Connect-Timeout-Ms": str(max(1, int(timeout * 1000))),
        "User-Agent": f"twilioguard-python/{_version()}",
        **extra,
    }


def verify_message(
    *,
    url: str,
    params: Optional[Params] = None,
    body: Optional[bytes] = None,
    content_type: Optional[str] = None,
    signature: Optional[str] = None,
    signature_settings: Optional[str] = None,
    account: Optional[str] = None,
    allowed_accounts: Optional[Iterable[str]] = None,
    route: Optional[str] = None,
    idempotency_token: Optional[str] = None,
) -> bytes:
    """Encode a VerifyWebhookRequest as Connect JSON (see
    :meth:`Client.verify_webhook` for the arguments)."""
    if params is not None and body is not None:
        raise ValueError("give params or body, not both")
    message: dict[str, Any] = {"url": url}
    if params is not None:
        pairs = [{"key": key, "value": value} for key, value in iter_params(params)]
        if pairs:
            message["params"] = pairs
    if body:
        message["body"] = base64.b64encode(bytes(body)).decode("ascii")
    optional = {
        "contentType": content_type,
        "signature": signature,
        "signatureSettings": signature_settings,
        "account": account,
        "route": route,
        "idempotencyToken": idempotency_token,
    }
    message.update((key, value) for key, value in optional.items() if value)
    if allowed_accounts:
        accounts = [a for a in allowed_accounts if a]
        if accounts:
            message["allowedAccounts"] = accounts
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def decode_answer(base_url: str, status: int, data: bytes) -> Mapping[str, Any]:
    """Return the JSON object of a 200 answer, or raise the error a Connect
    error answer (or a bare HTTP error) stands for."""
    try:
        decoded = json.loads(data) if data else None
    except ValueError:
        decoded = None
    if status == 200:
        if not isinstance(decoded, dict):
            raise TwilioguardError("unknown", f"{base_url}: answer is not a JSON object: is this a twilioguard service?")
        return decoded
    code = decoded.get("code") if isinstance(decoded, dict) else None
    if isinstance(code, str) and code:
        message = decoded.get("message") if isinstance(decoded, dict) else ""
        message = message if isinstance(message, str) else ""
    else:
        code = _HTTP_CODES.get(status, "unavailable" if status >= 500 else "unknown")
        message = f"{base_url}: HTTP {status} without a Connect error"
        if status == 404:
            message += ": is this a twilioguard service?"
    if code == "invalid_argument":
        raise InvalidArgumentError(code, message)
    if code in _UNAVAILABLE_CODES:
        raise UnavailableError(code, message)
    raise TwilioguardError(code, message)


class Client:
    """Client calls a twilioguard service over Connect with JSON.

    *base_url* is the service's address, e.g. ``"http://twilioguard:8080"``
    (a path prefix is kept, for a service behind a gateway). *timeout* bounds
    each network operation in seconds. *ssl_context* configures TLS for an
    ``https://`` base URL (the default verifies the server certificate
    against the system's CAs). *headers* are sent with every call.

    A Client is safe to share between threads: each thread keeps one
    kept-alive connection, reopened transparently when the server closes it
    (and after a fork).
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        ssl_context: Optional[ssl.SSLContext] = None,
        headers: Optional[Mapping[str, str]] = None,
    ) -> None:
        parts, host, port = parse_base_url(base_url)
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.base_url = base_url.rstrip("/")
        self.timeout = float(timeout)
        self._https = parts.scheme == "https"
        self._host = host
        self._port = port
        self._prefix = parts.path.rstrip("/")
        self._ssl_context = ssl_context
        self._headers = dict(headers or {})
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"Client({self.base_url!r}, timeout={self.timeout!r})"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the calling thread's kept-alive connection, if any."""
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.close()

    def verify_webhook(
        self,
        *,
        url: str,
        params: Optional[Params] = None,
        body: Optional[bytes] = None,
        content_type: Optional[str] = None,
        signature: Optional[str] = None,
        signature_settings: Optional[str] = None,
        account: Optional[str] = None,
        allowed_accounts: Optional[Iterable[str]] = None,
        route: Optional[str] = None,
        idempotency_token: Optional[str] = None,
    ) -> Verdict:
        """Ask the service whether Twilio really sent a webhook request.

        Args:
            url: The full URL Twilio requested (scheme, host, optional port,
                path and query), byte for byte as received.
            params: Decoded form fields (see :data:`twilioguard.Params`);
                every value of a repeated key counts.
            body: The raw request body, instead of *params* (preferred: the
                service parses form bodies itself and checks the
                ``bodySHA256`` of JSON bodies).
            content_type: The request's Content-Type; selects the raw body
                mode even when the body is empty.
            signature: The ``X-Twilio-Signature`` header value.
            signature_settings: The ``X-Twilio-Webhooks-Signature-Settings``
                header value, when present.
            account: An account SID or alias; by default the request's
                ``AccountSid`` field names the account.
            allowed_accounts: Only these accounts (SIDs or aliases) may have
                signed the request.
            route: A label for the service's logs and metrics.
            idempotency_token: The ``I-Twilio-Idempotency-Token`` header
                value, when present: the service flags a second copy of the
                same webhook as a duplicate (see
                :attr:`~twilioguard.Verdict.duplicate`).

        Returns:
            The :class:`~twilioguard.Verdict`. A bad signature is a verdict
            with ``valid=False``, not an exception.

        Raises:
            UnavailableError: The service could not be reached or did not
                answer in time.
            InvalidArgumentError: The service found the request malformed.
            TwilioguardError: Any other failure to get a verdict.
            ValueError: Both *params* and *body* were given.
        """
        payload = verify_message(
            url=url,
            params=params,
            body=body,
            content_type=content_type,
            signature=signature,
            signature_settings=signature_settings,
            account=account,
            allowed_accounts=allowed_accounts,
            route=route,
            idempotency_token=idempotency_token,
        )
        return Verdict.from_json(self._call(_VERIFY_PATH, payload))

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        conn = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            return conn, True
        if self._https:
            context = self._ssl_context or ssl.create_default_context()
            conn = http.client.HTTPSConnection(self._host, self._port, timeout=self.timeout, context=context)
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
        self._local.conn = conn
        self._local.pid = os.getpid()
        return conn, False

    def _drop(self, conn: http.client.HTTPConnection) -> None:
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None
        conn.close()

    def _call(self, method: str, payload: bytes) -> Mapping[str, Any]:
        headers = call_headers(self.timeout, self._headers)
        path = self._prefix + method
        for attempt in (1, 2):
            conn, reused = self._connection()
            try:
                conn.request("POST", path, body=payload, headers=headers)
                response = conn.getresponse()
                data = response.read()
            except _STALE_CONNECTION as exc:
                self._drop(conn)
                if reused and attempt == 1:
                    continue
                raise UnavailableError("unavailable", f"{self.base_url}: connection lost: {exc}") from exc
            except (TimeoutError, socket.timeout) as exc:
                self._drop(conn)
                raise UnavailableError("deadline_exceeded", f"{self.base_url}: no answer within {self.timeout:g}s") from exc
            except (OSError, http.client.HTTPException) as exc:
                self._drop(conn)
                raise UnavailableError("unavailable", f"{self.base_url}: {exc}") from exc
            if response.will_close:
                self._drop(conn)
            return decode_answer(self.base_url, response.status, data)
        raise AssertionError("unreachable")  # pragma: no cover


# Public classes show as twilioguard.X in reprs and tracebacks.
Client.__module__ = "twilioguard"
