"""The asyncio client of the twilioguard VerifierService, on aiohttp."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Optional

from ._client import DEFAULT_TIMEOUT, _VERIFY_PATH, call_headers, decode_answer, parse_base_url, verify_message
from ._errors import UnavailableError
from ._signature import Params
from ._verdict import Verdict

if TYPE_CHECKING:
    import aiohttp

__all__ = ["AsyncClient"]

#: DEFAULT_MAX_CONNECTIONS bounds the connections an AsyncClient opens to
#: the service (one per call in flight).
DEFAULT_MAX_CONNECTIONS = 100


def _aiohttp() -> Any:
    try:
        import aiohttp
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError(
            "twilioguard.AsyncClient needs aiohttp: pip install 'twilioguard[fastapi]' (or aiohttp)"
        ) from exc
    return aiohttp


class AsyncClient:
    """AsyncClient calls a twilioguard service from asyncio code; it mirrors
    :class:`~twilioguard.Client`.

    *base_url*, *timeout*, *ssl_context* and *headers* are as for
    :class:`~twilioguard.Client`. Calls run concurrently, each on its own
    pooled, kept-alive HTTP/1.1 connection (at most *max_connections*; a
    call waits for a free one at most *timeout*).

    The connections belong to the event loop of the first call; a call from
    another loop starts a new pool. Close the client with :meth:`aclose` (or
    ``async with``). It needs `aiohttp <https://docs.aiohttp.org>`_
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
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        parse_base_url(base_url)
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if max_connections <= 0:
            raise ValueError("max_connections must be positive")
        self._lib = _aiohttp()
        self.base_url = base_url.rstrip("/")
        self.timeout = float(timeout)
        self._url = self.base_url + _VERIFY_PATH
        self._headers = call_headers(self.timeout, headers or {})
        self._ssl: Any = ssl_context if ssl_context is not None else True
        self._max_connections = max_connections
        self._session: Optional[aiohttp.ClientSession] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None

    def __repr__(self) -> str:
        return f"AsyncClient({self.base_url!r}, timeout={self.timeout!r})"

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the pooled connections."""
        session, self._session = self._session, None
        if session is not None and self._loop is asyncio.get_running_loop():
            await session.close()

    def _pool(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._loop is not loop or self._session.closed:
            lib = self._lib
            self._loop = loop
            self._session = lib.ClientSession(
                connector=lib.TCPConnector(limit=self._max_connections, ssl=self._ssl),
                timeout=lib.ClientTimeout(connect=self.timeout, sock_connect=self.timeout, sock_read=self.timeout),
                headers=self._headers,
                trust_env=False,
            )
        return self._session

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
        try:
            async with self._pool().post(self._url, data=payload) as response:
                status, data = response.status, await response.read()
        except asyncio.TimeoutError as exc:
            raise UnavailableError("deadline_exceeded", f"{self.base_url}: no answer within {self.timeout:g}s") from exc
        except (self._lib.ClientError, OSError) as exc:
            raise UnavailableError("unavailable", f"{self.base_url}: {exc or type(exc).__name__}") from exc
        return Verdict.from_json(decode_answer(self.base_url, status, data))


# Public classes show as twilioguard.X in reprs and tracebacks.
AsyncClient.__module__ = "twilioguard"
