"""ASGI: the URL Twilio signed, rebuilt from a scope, and a middleware that
verifies every webhook under some path prefixes.

:func:`request_url` applies the rules of :mod:`twilioguard.wsgi` to an ASGI
scope: the request-target is ``raw_path`` (with ``root_path`` in front when
the server left it out) and ``query_string``, the connection is ``scheme``,
the ``Host`` header (or ``server``) and ``client``. Forwarding headers count
only when ``client`` is a trusted proxy.

Note that ASGI servers may rewrite ``scheme`` and ``client`` from forwarding
headers themselves: uvicorn does so, by default, for requests from
127.0.0.1 (``--forwarded-allow-ips``, ``--proxy-headers``). twilioguard sees
the rewritten values and cannot undo that; limit the server's list to your
proxies (or turn it off and list them in ``trusted_proxies``).

:class:`TwilioGuardMiddleware` needs no framework (it works for Starlette,
FastAPI, Django's ASGI application, …) and needs aiohttp, like
:class:`twilioguard.AsyncClient`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Iterable, MutableMapping, Sequence
from typing import Any, Callable, Optional, Union

from ._async_client import AsyncClient
from ._config import Config, load_config
from ._enforce import Guard, Refusal, Webhook, is_reserved_header, judge_async
from ._publicurl import Incoming, Network, origin_form, quote_path, rebuild, server_host

__all__ = ["TwilioGuardMiddleware", "rebuild_url", "request_url"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

logger = logging.getLogger("twilioguard.asgi")


def _headers(scope: Scope) -> Callable[[str], Optional[str]]:
    found: dict[str, list[str]] = {}
    for name, value in scope.get("headers") or ():
        found.setdefault(bytes(name).decode("latin-1").lower(), []).append(bytes(value).decode("utf-8", "replace"))

    def header(name: str) -> Optional[str]:
        values = found.get(name.lower())
        return ", ".join(values) if values else None

    return header


def _target(scope: Scope) -> str:
    root = scope.get("root_path") or ""
    path = scope.get("path") or ""
    raw = scope.get("raw_path")
    if isinstance(raw, (bytes, bytearray)) and raw:
        target = origin_form(bytes(raw).decode("utf-8", "replace"))
        if not target.startswith("/"):
            target = quote_path(path.encode("utf-8"))
    else:
        target = quote_path(path.encode("utf-8"))
    if root and not path.startswith(root):  # the server left root_path out
        target = quote_path(root.encode("utf-8")).rstrip("/") + target
    query = scope.get("query_string") or b""
    if query:
        target += "?" + (query if isinstance(query, str) else bytes(query).decode("utf-8", "replace"))
    return target


def incoming(scope: Scope) -> Incoming:
    """Return the :class:`~twilioguard._publicurl.Incoming` view of an HTTP
    scope."""
    header = _headers(scope)
    scheme = str(scope.get("scheme") or "http").lower()
    host = header("Host") or ""
    if not host:
        server = scope.get("server") or ("localhost", None)
        host = server_host(scheme, str(server[0]), server[1])
    client = scope.get("client")
    return Incoming(
        scheme=scheme,
        host=host,
        peer=str(client[0]) if client else None,
        target=_target(scope),
        header=header,
    )


def rebuild_url(
    scope: Scope,
    *,
    public_base_url: Optional[str] = None,
    trusted_proxies: Sequence[Network] = (),
    proxy_headers: Optional[Iterable[str]] = None,
) -> tuple[str, str]:
    """Return the URL Twilio requested and a hint for operators, as
    :func:`twilioguard.wsgi.rebuild_url` does for WSGI."""
    found = rebuild(
        incoming(scope),
        public_base_url=public_base_url,
        trusted_proxies=trusted_proxies,
        proxy_headers=proxy_headers,
    )
    return found.url, found.hint


def request_url(
    scope: Scope,
    *,
    public_base_url: Optional[str] = None,
    trusted_proxies: Sequence[Network] = (),
    proxy_headers: Optional[Iterable[str]] = None,
) -> str:
    """Return the URL Twilio requested, rebuilt from an ASGI HTTP scope;
    the options are those of :func:`twilioguard.wsgi.request_url`.

    A bare ``?`` at the end of the URL cannot be seen in ASGI (the query
    string is empty either way), so a URL configured with one at Twilio
    fails verification.
    """
    return rebuild_url(
        scope, public_base_url=public_base_url, trusted_proxies=trusted_proxies, proxy_headers=proxy_headers
    )[0]


def webhook(scope: Scope, config: Config) -> Webhook:
    """Describe an HTTP scope for a :class:`~twilioguard._enforce.Guard`."""
    return Webhook.describe(
        incoming(scope), config, method=str(scope.get("method") or "GET"), path=str(scope.get("path") or "")
    )


def strip_reserved_headers(scope: Scope) -> None:
    """Remove client-sent ``X-Twilioguard-*`` and ``X-Twilio-Account-Sid``
    headers (any spelling) from *scope*, in place: the list object is kept,
    so a Starlette ``Headers`` built on it earlier sees the change too."""
    headers = scope.get("headers")
    if headers:
        headers[:] = [(k, v) for k, v in headers if not is_reserved_header(bytes(k).decode("latin-1"))]


async def respond(send: Send, refusal: Refusal) -> None:
    """Send *refusal* as a plain-text response."""
    body = refusal.text.encode("utf-8")
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in refusal.headers]
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _prefixes(paths: Union[str, Iterable[str]]) -> tuple[str, ...]:
    if isinstance(paths, str):
        paths = [paths]
    prefixes = []
    for path in paths:
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValueError(f"path prefix {path!r} must start with '/'")
        prefixes.append(path.rstrip("/"))
    if not prefixes:
        raise ValueError("TwilioGuardMiddleware needs paths, the webhook path prefixes, e.g. ['/twilio']")
    return tuple(prefixes)


def _route_path(scope: Scope) -> str:
    """The path without root_path, as routers match it."""
    path = str(scope.get("path") or "")
    root = str(scope.get("root_path") or "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("", "/"):
        return path[len(root) :]
    return path


class TwilioGuardMiddleware:
    """TwilioGuardMiddleware verifies every HTTP request whose path is under
    one of *paths* (prefixes such as ``"/twilio"``, matching ``/twilio`` and
    ``/twilio/…`` but not ``/twilios``) before the application sees it::

        app.add_middleware(TwilioGuardMiddleware, paths=["/twilio"])

    Options are those of :class:`twilioguard.fastapi.TwilioGuard`; each
    falls back to its ``TWILIOGUARD_*`` environment variable. Answers: 403
    not valid, 400 malformed, 413 body too large, 409 duplicate (with
    ``duplicates="reject"``), 503 when the service cannot decide; in shadow
    mode (``mode="shadow"``) every request goes through. The application
    gets the body byte for byte, without client-sent ``X-Twilioguard-*`` or
    ``X-Twilio-Account-Sid`` headers, and the verdict as
    ``scope["state"]["twilio_verdict"]`` (Starlette:
    ``request.state.twilio_verdict``; None in shadow mode when there is
    none). The route label sent to the service is the matching prefix.

    Use either this middleware or the ``Depends`` guard on a route, not
    both: each verification of a webhook counts for duplicate detection.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        paths: Union[str, Iterable[str]],
        client: Optional[AsyncClient] = None,
        **options: Any,
    ) -> None:
        self.app = app
        self._prefixes = _prefixes(paths)
        self.config = load_config(os.environ.get, **options)
        self._own_client = client is None
        self.client = client or AsyncClient(self.config.url, timeout=self.config.timeout)
        self._guards = {p: Guard(self.config, logger, route=p or "/") for p in self._prefixes}

    def _guard(self, scope: Scope) -> Optional[Guard]:
        path = _route_path(scope)
        for prefix in self._prefixes:
            if path == prefix or path.startswith(prefix + "/"):
                return self._guards[prefix]
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan" and self._own_client:
            await self.app(scope, receive, self._closing(send))
            return
        guard = self._guard(scope) if scope["type"] == "http" else None
        if guard is None:
            await self.app(scope, receive, send)
            return
        scope = dict(scope, headers=list(scope.get("headers") or ()))
        strip_reserved_headers(scope)
        hook = webhook(scope, self.config)
        limit, verdict, refusal = self.config.max_body_bytes, None, None
        chunks: list[bytes] = []
        complete = False
        if (hook.content_length or 0) <= limit:
            read = await _read(receive, limit)
            if read is None:
                return  # the client went away
            chunks, complete = read
        if complete:
            body = b"".join(chunks)
            verdict, refusal = await judge_async(
                guard, hook, lambda: self.client.verify_webhook(**guard.arguments(hook, body))
            )
        else:
            refusal = guard.too_large(hook, hook.content_length or sum(map(len, chunks)))
        if refusal is not None:
            await respond(send, refusal)
            return
        scope["state"] = {**(scope.get("state") or {}), "twilio_verdict": verdict}
        await self.app(scope, _replay(chunks, complete, receive), send)

    def _closing(self, send: Send) -> Send:
        async def closing(message: Message) -> None:
            if message.get("type") == "lifespan.shutdown.complete":
                await self.client.aclose()
            await send(message)

        return closing


async def _read(receive: Receive, limit: int) -> Optional[tuple[list[bytes], bool]]:
    """Read the body: its chunks and whether it is complete (False when it
    grew over *limit*; the rest is left unread). None when the client
    disconnected."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = bytes(message.get("body") or b"")
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return chunks, False
        if not message.get("more_body"):
            return chunks, True


def _replay(chunks: list[bytes], complete: bool, receive: Receive) -> Receive:
    """A receive that hands out the body read so far, then continues with
    *receive* (the rest of an incomplete body, then the disconnect)."""
    pending = [{"type": "http.request", "body": b"".join(chunks), "more_body": not complete}]

    async def replay() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replay
