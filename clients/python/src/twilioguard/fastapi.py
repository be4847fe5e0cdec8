"""FastAPI: a dependency that lets a route run only for webhooks Twilio
really sent::

    from fastapi import Depends, FastAPI, Form
    from twilioguard import Verdict
    from twilioguard.fastapi import TwilioGuard

    guard = TwilioGuard(url="http://twilioguard:8080", public_base_url="https://hooks.example.com")
    app = FastAPI()

    @app.post("/sms")
    async def sms(Body: str = Form(), verdict: Verdict = Depends(guard)):
        ...

Each option falls back to its environment variable (``TWILIOGUARD_URL``,
``TWILIOGUARD_ACCOUNTS``, ``TWILIOGUARD_PUBLIC_BASE_URL``,
``TWILIOGUARD_TRUSTED_PROXIES``, …). Calls to the service go through one
:class:`twilioguard.AsyncClient` and run concurrently. For whole path
prefixes use :class:`twilioguard.asgi.TwilioGuardMiddleware` instead.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import Any, Optional, Union

from fastapi import HTTPException, Request

from ._async_client import AsyncClient
from ._config import load_config
from ._enforce import Guard, judge_async
from ._errors import InvalidArgumentError
from ._verdict import Verdict
from .asgi import strip_reserved_headers, webhook

__all__ = ["TwilioGuard"]

logger = logging.getLogger("twilioguard.fastapi")


class TwilioGuard:
    """TwilioGuard is a FastAPI dependency: ``Depends(guard)`` verifies the
    request with the twilioguard service and returns the
    :class:`~twilioguard.Verdict`, or raises ``HTTPException`` 403 (not
    valid), 400 (malformed), 413 (body over *max_body_bytes*), 409 (a
    duplicate, with ``duplicates="reject"``) or 503 (the service cannot
    decide: fail closed).

    Args:
        url: The twilioguard service (``TWILIOGUARD_URL``).
        accounts: Accounts (SIDs or aliases) allowed to sign
            (``TWILIOGUARD_ACCOUNTS``, comma-separated); default any.
        public_base_url: The public base URL Twilio calls
            (``TWILIOGUARD_PUBLIC_BASE_URL``); the signed URL is this base +
            the raw request path and query.
        trusted_proxies: CIDRs of proxies whose ``Forwarded``/
            ``X-Forwarded-*``/``X-Original-Host`` headers are believed
            (``TWILIOGUARD_TRUSTED_PROXIES``).
        proxy_headers: Which of those headers to read
            (``TWILIOGUARD_PROXY_HEADERS``); default all.
        mode: ``"enforce"`` (default) or ``"shadow"``: let every request
            through and log what would have been refused; the verdict is
            then None when the service could not decide
            (``TWILIOGUARD_MODE``).
        duplicates: ``"allow"`` (default) or ``"reject"``: answer 409 to a
            webhook the service verified before, 503 when it cannot tell
            (``TWILIOGUARD_DUPLICATES``).
        timeout: Seconds per call to the service (``TWILIOGUARD_TIMEOUT``).
        max_body_bytes: The largest body read, default 1 MiB
            (``TWILIOGUARD_MAX_BODY_BYTES``).
        route: A label for the service's and this guard's logs.
        client: An :class:`~twilioguard.AsyncClient` to use (default: one of
            the guard's own, closed by :meth:`aclose`).

    The raw body is sent to the service, byte for byte. When the route
    declares ``Form(...)`` parameters, FastAPI has consumed the body into a
    form before any dependency runs, and Starlette keeps no bytes of it: the
    guard then sends the parsed fields (every value of a repeated key, in
    order), which are exactly the values the route receives.

    Client-sent ``X-Twilioguard-*`` and ``X-Twilio-Account-Sid`` headers are
    removed from the request; the verdict is also on
    ``request.state.twilio_verdict``. Create the guard once, at import, and
    close it at shutdown (``await guard.aclose()`` in the lifespan).
    """

    def __init__(
        self,
        url: Optional[str] = None,
        *,
        accounts: Union[str, Iterable[str], None] = None,
        public_base_url: Optional[str] = None,
        trusted_proxies: Union[str, Iterable[str], None] = None,
        proxy_headers: Union[str, Iterable[str], None] = None,
        mode: Optional[str] = None,
        duplicates: Optional[str] = None,
        timeout: Optional[float] = None,
        max_body_bytes: Optional[int] = None,
        route: Optional[str] = None,
        client: Optional[AsyncClient] = None,
    ) -> None:
        self.config = load_config(
            os.environ.get,
            url=url,
            accounts=accounts,
            public_base_url=public_base_url,
            trusted_proxies=trusted_proxies,
            proxy_headers=proxy_headers,
            mode=mode,
            duplicates=duplicates,
            timeout=timeout,
            max_body_bytes=max_body_bytes,
        )
        self._own_client = client is None
        self.client = client or AsyncClient(self.config.url, timeout=self.config.timeout)
        self._guard = Guard(self.config, logger, route=route)

    async def aclose(self) -> None:
        """Close the guard's own client (not one passed in)."""
        if self._own_client:
            await self.client.aclose()

    async def __call__(self, request: Request) -> Optional[Verdict]:
        guard, limit = self._guard, self.config.max_body_bytes
        strip_reserved_headers(request.scope)
        hook = webhook(request.scope, self.config)
        verdict = refusal = None
        size = hook.content_length
        if size is not None and size > limit:
            refusal = guard.too_large(hook, size)
        else:
            body, params = await _body(request)
            if body is not None and len(body) > limit:
                refusal = guard.too_large(hook, len(body))
            elif params is None and body is None:
                refusal = guard.decide(hook, None, _UPLOAD)
            else:
                args = guard.arguments(hook, body, params)
                verdict, refusal = await judge_async(guard, hook, lambda: self.client.verify_webhook(**args))
        request.state.twilio_verdict = verdict
        if refusal is not None:
            raise HTTPException(refusal.status, refusal.text.strip(), headers=dict(refusal.headers) or None)
        return verdict


# A multipart form with a file is never a Twilio webhook, and its fields
# cannot be verified: a malformed request.
_UPLOAD = InvalidArgumentError("invalid_argument", "a form with a file upload is not a Twilio webhook")


async def _body(request: Request) -> tuple[Optional[bytes], Optional[list[tuple[str, str]]]]:
    """The raw body (read now, or cached by Starlette), or, when FastAPI
    consumed it into a form, the form's fields; (None, None) for a form with
    a file upload."""
    try:
        return await request.body(), None
    except RuntimeError:  # "Stream consumed": FastAPI parsed Form(...) parameters
        pass
    form = await request.form()  # the parsed form, cached on the request
    params = [(key, value) for key, value in form.multi_items() if isinstance(value, str)]
    if len(params) != len(form.multi_items()):
        return None, None
    return None, params
