"""Rebuild the URL Twilio signed from a WSGI request, proxy-aware.

Twilio signs the public URL it requested. Behind a TLS-terminating proxy the
application sees another scheme or host, so the URL has to be rebuilt:

* with a configured *public base URL*: that base + the request path and
  query, byte for byte as received;
* otherwise from the request itself (``wsgi.url_scheme`` and the ``Host``
  header), where the proxy headers ``Forwarded`` (RFC 7239),
  ``X-Forwarded-Proto``/``-Host``/``-Port`` and ``X-Original-Host`` are
  honoured **only** when the peer (``REMOTE_ADDR``) is in a trusted network.
  Headers from any other peer are ignored, so a client cannot make a request
  signed for one host or route pass on another.

:func:`request_url` works on any WSGI environ (Django's ``request.META``,
Flask's ``request.environ``); :mod:`twilioguard.asgi` applies the same rules
to an ASGI scope.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Optional

from ._publicurl import (
    PROXY_HEADERS,
    Incoming,
    Network,
    origin_form,
    parse_networks,
    quote_path,
    rebuild,
    server_host,
    validate_base_url,
)

__all__ = ["PROXY_HEADERS", "Network", "parse_networks", "rebuild_url", "request_url", "validate_base_url"]


def _text(value: str) -> str:
    """Turn a WSGI string (bytes decoded as latin-1) back into text."""
    try:
        raw = value.encode("latin-1")
    except UnicodeEncodeError:
        return value  # already real text
    return raw.decode("utf-8", "replace")


def _raw_target(environ: Mapping[str, Any]) -> str:
    """The request-target (path and query) as the server received it:
    ``RAW_URI`` (gunicorn) or ``REQUEST_URI`` (uWSGI) when the server sets
    one, else rebuilt from ``SCRIPT_NAME``, ``PATH_INFO`` and
    ``QUERY_STRING``."""
    for key in ("RAW_URI", "REQUEST_URI"):
        value = environ.get(key)
        if isinstance(value, str) and value:
            target = origin_form(_text(value))
            if target.startswith("/"):
                return target
    script = environ.get("SCRIPT_NAME", "") or ""
    path = environ.get("PATH_INFO", "") or ""
    target = quote_path((script + path).encode("latin-1", "replace"))
    query = environ.get("QUERY_STRING", "") or ""
    if query:
        target += "?" + _text(query)
    return target


def incoming(environ: Mapping[str, Any], *, scheme: Optional[str] = None, target: Optional[str] = None) -> Incoming:
    """Return the :class:`~twilioguard._publicurl.Incoming` view of a WSGI
    environ (see :func:`request_url` for *scheme* and *target*)."""
    proto = (scheme or environ.get("wsgi.url_scheme") or "http").lower()
    host = _text(environ.get("HTTP_HOST") or "")
    if not host:
        host = server_host(proto, environ.get("SERVER_NAME", "") or "localhost", environ.get("SERVER_PORT"))
    remote = environ.get("REMOTE_ADDR")

    def header(name: str) -> Optional[str]:
        key = name.upper().replace("-", "_")
        value = environ.get(key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key)
        return _text(value) if isinstance(value, str) else None

    return Incoming(
        scheme=proto,
        host=host,
        peer=remote if isinstance(remote, str) and remote else None,
        target=_raw_target(environ) if target is None else target,
        header=header,
    )


def rebuild_url(
    environ: Mapping[str, Any],
    *,
    public_base_url: Optional[str] = None,
    trusted_proxies: Sequence[Network] = (),
    proxy_headers: Optional[Iterable[str]] = None,
    scheme: Optional[str] = None,
    target: Optional[str] = None,
) -> tuple[str, str]:
    """Return the URL Twilio requested and a hint for operators.

    Same arguments as :func:`request_url`. The hint is empty, or says why the
    URL may not be the one Twilio signed (for example forwarding headers
    ignored because the peer is not a trusted proxy); it never contains a
    secret.
    """
    found = rebuild(
        incoming(environ, scheme=scheme, target=target),
        public_base_url=public_base_url,
        trusted_proxies=trusted_proxies,
        proxy_headers=proxy_headers,
    )
    return found.url, found.hint


def request_url(
    environ: Mapping[str, Any],
    *,
    public_base_url: Optional[str] = None,
    trusted_proxies: Sequence[Network] = (),
    proxy_headers: Optional[Iterable[str]] = None,
    scheme: Optional[str] = None,
    target: Optional[str] = None,
) -> str:
    """Return the URL Twilio requested, rebuilt from a WSGI environ.

    Args:
        environ: The WSGI environ (``request.META`` in Django).
        public_base_url: When set (``"https://hooks.example.com"``, maybe with
            a path prefix), the URL is this base + the raw request path and
            query; no header is consulted.
        trusted_proxies: Networks (see :func:`parse_networks`) whose
            forwarding headers are believed. Only when ``REMOTE_ADDR`` is in
            one of them, scheme and host come from, in order:
            ``Forwarded`` proto/host, ``X-Forwarded-Proto``,
            ``X-Forwarded-Host``, ``X-Original-Host``; ``X-Forwarded-Port``
            replaces the port of a host not taken from ``Forwarded``.
            Through several proxies the values written about the right-most
            untrusted hop are used (``X-Forwarded-For`` tells which list
            entry is whose). Invalid values are ignored.
        proxy_headers: The forwarding headers to read from trusted proxies
            (default: all of :data:`PROXY_HEADERS`). A trusted proxy must set
            or strip every header read.
        scheme: The scheme the request came with, when the environ's
            ``wsgi.url_scheme`` is not the one to use.
        target: The raw request-target (path and query), when the caller has
            it byte for byte; by default it is taken from ``RAW_URI`` or
            ``REQUEST_URI`` when the server sets one, else rebuilt from
            ``SCRIPT_NAME``, ``PATH_INFO`` and ``QUERY_STRING``.
    """
    return rebuild_url(
        environ,
        public_base_url=public_base_url,
        trusted_proxies=trusted_proxies,
        proxy_headers=proxy_headers,
        scheme=scheme,
        target=target,
    )[0]
