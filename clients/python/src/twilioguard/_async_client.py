"""The asyncio client of the twilioguard VerifierService, on httpx."""

from __future__ import annotations

import ssl
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Optional

from ._client import DEFAULT_TIMEOUT, _VERIFY_PATH, call_headers, decode_answer, parse_base_url, verify_message
from ._errors import UnavailableError
from ._signature import Params
from ._verdict import Verdict

if TYPE_CHECKING:
    import httpx

__all__ = ["AsyncClient"]

#: DEFAULT_MAX_CONNECTIONS bounds the connections an AsyncClient opens to
#: the service (HTTP/1.1: one per call in flight).
DEFAULT_MAX_CONNECTIONS = 100


def _httpx() -> Any:
    try:
        import httpx
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError(
            "twilioguard.AsyncClient needs httpx: pip install 'twilioguard[fastapi]' (or httpx)"
        ) from exc
    return httpx


class AsyncClient:
    """AsyncClient calls a twilioguard service from asyncio code; it mirrors
    :class:`~twilioguard.Client`.

    *base_url*, *timeout*, *ssl_context* and *headers* are as for
    :class:`~twilioguard.Client`. Calls run concurrently: each call in flight
    uses its own pooled, kept-alive HTTP/1.1 connection (at most
    *max_connections*), or, with *http2* (needs the ``h2`` package,
    ``pip install 'twilioguard[http2]'``), all calls share one HTTP/2
    connection (prior knowledge for ``http://``, ALPN for ``https://``).

    Use one AsyncClient per event loop and close it with :meth:`aclose` (or
    ``async with``). It needs `httpx <https://www.python-httpx.org>`_
    (``pip install 'twilioguard[fastapi]'``); importing :mod:`twilioguard`
    does not.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        ssl_context: Optional[ssl.SSLContext] = None,
        headers: Optional[Mapping[str, str]] = None,
        http2: bool = False,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        parts, _, _ = parse_base_url(base_url)
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if max_connections <= 0:
            raise ValueError("max_connections must be positive")
        lib = _httpx()
        self.base_url = base_url.rstrip("/")
        self.timeout = float(timeout)
        self._headers = call_headers(self.timeout, headers or {})
        self._url = self.base_url + _VERIFY_PATH
        # retries=1 retries only a connection that could not be opened,
        # never a call that may have reached the service.
        transport = lib.AsyncHTTPTransport(
            verify=ssl_context if ssl_context is not None else True,
            http1=not (http2 and parts.scheme == "http"),
            http2=http2,
            limits=lib.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            retries=1,
        )
        self._http: httpx.AsyncClient = lib.AsyncClient(
            transport=transport, timeout=lib.Timeout(self.timeout), trust_env=False
        )

    def __repr__(self) -> str:
        return f"AsyncClient({self.base_url!r}, timeout={self.timeout!r})"

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._http.aclose()

    async def verify_webhook(
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

        The arguments, the result and the exceptions are those of
        :meth:`twilioguard.Client.verify_webhook`.
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
        lib = _httpx()
        try:
            response = await self._http.post(self._url, content=payload, headers=self._headers)
        except lib.TimeoutException as exc:
            raise UnavailableError("deadline_exceeded", f"{self.base_url}: no answer within {self.timeout:g}s") from exc
        except (lib.TransportError, OSError) as exc:
            raise UnavailableError("unavailable", f"{self.base_url}: {exc or type(exc).__name__}") from exc
        return Verdict.from_json(decode_answer(self.base_url, response.status_code, response.content))


# Public classes show as twilioguard.X in reprs and tracebacks.
AsyncClient.__module__ = "twilioguard"
