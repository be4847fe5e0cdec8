"""Django integration: the drop-in successor of the classic Twilio decorator.

The classic recipe keeps the auth token in the app and validates locally::

    validator = RequestValidator(os.environ["TWILIO_AUTH_TOKEN"])
    if validator.validate(request.build_absolute_uri(), request.POST, sig) or settings.DEBUG:
        ...

This module asks a twilioguard service instead, so the app holds no token.
Settings:

``TWILIOGUARD_URL`` (required)
    The service, e.g. ``"http://twilioguard:8080"``.
``TWILIOGUARD_TIMEOUT``
    Seconds per network operation (default 5).
``TWILIOGUARD_ACCOUNTS``
    Account SIDs or aliases allowed to sign requests (list, or a
    comma-separated string); default: any account the service knows.
``TWILIOGUARD_PUBLIC_BASE_URL``
    The public base URL Twilio calls (``"https://hooks.example.com"``); the
    signed URL is this base + the request path + the raw query string.
``TWILIOGUARD_TRUSTED_PROXIES``
    CIDRs of proxies whose ``Forwarded``/``X-Forwarded-*``/
    ``X-Original-Host`` headers are believed; from any other peer the URL is
    built from the request as it came. Django's ``SECURE_PROXY_SSL_HEADER``
    and ``USE_X_FORWARDED_HOST`` are not used.
``TWILIOGUARD_PROXY_HEADERS``
    Which forwarding headers to read from trusted proxies (default all of
    ``Forwarded``, ``X-Forwarded-Proto``, ``X-Forwarded-Host``,
    ``X-Forwarded-Port``, ``X-Original-Host``); a trusted proxy must set or
    strip every header read.
``TWILIOGUARD_MODE``
    ``"enforce"`` (default) or ``"shadow"``: let every request through and
    log what would have been refused, to roll verification out.
``TWILIOGUARD_DUPLICATES``
    ``"allow"`` (default) or ``"reject"``: answer 409 to a webhook the
    service verified before (``I-Twilio-Idempotency-Token``), and 503 when
    the service cannot tell.
``TWILIOGUARD_MAX_BODY_BYTES``
    The largest body read (default 1 MiB); a larger one gets 413.
``TWILIOGUARD_PATHS``
    For :class:`ValidateTwilioRequestMiddleware` only: regular expressions
    matched against the start of ``request.path_info``.

Answers: 403 when the signature is not valid, 400 when the service finds the
request malformed, 413 when the body is too large, 409 for a duplicate on a
route that rejects them, 503 when the service cannot be reached or cannot
decide (fail closed). Validation never depends on ``DEBUG``. The verdict is
put on the request as ``request.twilio_verdict`` (in shadow mode it may be
invalid, or None when the service could not decide). Client-sent
``X-Twilioguard-*`` and ``X-Twilio-Account-Sid`` headers are removed before
the view runs. Decisions are logged on the ``twilioguard.django`` logger:
refusals at INFO, "could not decide" at ERROR, verified requests at DEBUG.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterable
from typing import Any, Callable, Optional, TypeVar, Union, overload

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse

from . import asgi, wsgi
from ._client import Client
from ._config import Config, Configured
from ._enforce import Guard, Refusal, RouteOptions, Webhook, is_reserved_header, judge
from ._verdict import Verdict

__all__ = ["ValidateTwilioRequestMiddleware", "validate_twilio_request", "verify_request", "webhook_url"]

logger = logging.getLogger("twilioguard.django")

_View = TypeVar("_View", bound=Callable[..., Any])

_settings = Configured()


def _setting(name: str) -> Any:
    return getattr(settings, name, None)


def _configured() -> tuple[Config, Client]:
    """The checked settings and the client, rebuilt when settings change."""
    try:
        return _settings.get(_setting)
    except (TypeError, ValueError) as exc:
        raise ImproperlyConfigured(f"twilioguard settings: {exc}") from exc


def _options(**given: Any) -> RouteOptions:
    try:
        return RouteOptions(**given)
    except ValueError as exc:
        raise ImproperlyConfigured(f"twilioguard: {exc}") from exc


def _webhook(request: HttpRequest, config: Config) -> Webhook:
    scope = getattr(request, "scope", None)
    # Under ASGI the scope has the raw path bytes the server received.
    found = asgi.incoming(scope) if isinstance(scope, dict) else wsgi.incoming(request.META)
    return Webhook.describe(found, config, method=request.method or "GET", path=request.path)


def webhook_url(request: HttpRequest, *, public_base_url: Optional[str] = None) -> str:
    """Return the URL Twilio signed for *request*.

    It is *public_base_url* (default ``TWILIOGUARD_PUBLIC_BASE_URL``) + the
    request path + the raw query string when one is configured; otherwise the
    scheme and host the request came with, corrected by forwarding headers
    only when the peer is in ``TWILIOGUARD_TRUSTED_PROXIES``.
    """
    guard = _options(public_base_url=public_base_url).guard(_configured()[0], logger)
    return _webhook(request, guard.config).rebuilt.url


def _strip_reserved_headers(request: HttpRequest) -> None:
    for key in [k for k in request.META if k.startswith("HTTP_") and is_reserved_header(k[5:])]:
        del request.META[key]
    request.__dict__.pop("headers", None)  # Django caches request.headers


def _check(request: HttpRequest, guard: Guard, client: Client) -> tuple[Optional[Verdict], Optional[Refusal]]:
    _strip_reserved_headers(request)
    hook = _webhook(request, guard.config)
    limit = guard.config.max_body_bytes
    size = hook.content_length
    if size is None or size <= limit:
        body = request.body
        size = len(body)
        if size <= limit:
            return judge(guard, hook, lambda: client.verify_webhook(**guard.arguments(hook, body)))
    return None, guard.too_large(hook, size)


def _answer(request: HttpRequest, options: RouteOptions) -> Optional[HttpResponse]:
    """Verify *request*; return the response that refuses it, or None to
    let it through."""
    config, client = _configured()
    verdict, refusal = _check(request, options.guard(config, logger), client)
    request.twilio_verdict = verdict  # type: ignore[attr-defined,unused-ignore]
    if refusal is None:
        return None
    response = HttpResponse(refusal.text, status=refusal.status, content_type="text/plain; charset=utf-8")
    for name, value in refusal.headers:
        response[name] = value
    return response


def verify_request(
    request: HttpRequest,
    *,
    accounts: Optional[Iterable[str]] = None,
    route: Optional[str] = None,
    public_base_url: Optional[str] = None,
) -> Verdict:
    """Ask the twilioguard service whether Twilio sent *request*.

    The raw body (``request.body``) and its Content-Type are sent as they
    are, so the service parses form fields itself (every value of a repeated
    key counts) and checks the ``bodySHA256`` of JSON bodies. *accounts*
    (default ``TWILIOGUARD_ACCOUNTS``) limits which accounts may have signed.
    The verdict is also stored as ``request.twilio_verdict``. Nothing is
    logged and no answer chosen: that is for the caller.

    Raises the client's exceptions (:class:`twilioguard.UnavailableError`,
    :class:`twilioguard.InvalidArgumentError`, …) when there is no verdict.
    """
    config, client = _configured()
    guard = _options(accounts=accounts, route=route, public_base_url=public_base_url).guard(config, logger)
    hook = _webhook(request, guard.config)
    verdict = client.verify_webhook(**guard.arguments(hook, request.body))
    request.twilio_verdict = verdict  # type: ignore[attr-defined,unused-ignore]
    return verdict


@overload
def validate_twilio_request(view: _View) -> _View: ...


@overload
def validate_twilio_request(
    view: None = None,
    *,
    accounts: Optional[Iterable[str]] = None,
    route: Optional[str] = None,
    public_base_url: Optional[str] = None,
    mode: Optional[str] = None,
    duplicates: Optional[str] = None,
) -> Callable[[_View], _View]: ...


def validate_twilio_request(
    view: Optional[_View] = None,
    *,
    accounts: Optional[Iterable[str]] = None,
    route: Optional[str] = None,
    public_base_url: Optional[str] = None,
    mode: Optional[str] = None,
    duplicates: Optional[str] = None,
) -> Union[_View, Callable[[_View], _View]]:
    """Let a view run only for requests Twilio really sent.

    Use it bare (``@validate_twilio_request``) or with options
    (``@validate_twilio_request(accounts=["AC…"], route="sms",
    public_base_url="https://hooks.example.com", mode="shadow",
    duplicates="reject")``); options override the ``TWILIOGUARD_*``
    settings for this view. *route* labels the service's logs and metrics
    (default: the view's name).

    The decorated view answers 403 when the signature is not valid, 400 when
    the service finds the request malformed, 413 when the body is too large,
    409 for a duplicate when duplicates are rejected, and 503 when the
    service cannot decide; ``DEBUG`` changes nothing; in shadow mode the
    view always runs. The view is marked CSRF-exempt, since Twilio cannot
    send a CSRF token and the signature proves the sender. Async views are
    supported (the call to the service runs in a worker thread, so requests
    are not serialized). For class-based views use
    ``method_decorator(validate_twilio_request, name="dispatch")``.
    """

    def decorate(func: _View) -> _View:
        options = _options(
            accounts=accounts,
            route=route or getattr(func, "__name__", None),
            public_base_url=public_base_url,
            mode=mode,
            duplicates=duplicates,
        )
        wrapper: Any
        if iscoroutinefunction(func):
            answer = sync_to_async(_answer, thread_sensitive=False)

            @functools.wraps(func)
            async def async_wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
                denied = await answer(request, options)
                if denied is not None:
                    return denied
                return await func(request, *args, **kwargs)

            wrapper = async_wrapper
        else:

            @functools.wraps(func)
            def sync_wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
                denied = _answer(request, options)
                if denied is not None:
                    return denied
                return func(request, *args, **kwargs)

            wrapper = sync_wrapper
        wrapper.csrf_exempt = True
        return wrapper  # type: ignore[no-any-return]

    if view is not None:
        return decorate(view)
    return decorate


class ValidateTwilioRequestMiddleware:
    """ValidateTwilioRequestMiddleware validates every request whose path
    matches ``TWILIOGUARD_PATHS`` (regular expressions matched against the
    start of ``request.path_info``), with the same answers as
    :func:`validate_twilio_request`. Other requests pass untouched. It works
    in sync and async middleware chains.

    Add ``"twilioguard.django.ValidateTwilioRequestMiddleware"`` to
    ``MIDDLEWARE`` before ``CsrfViewMiddleware``; the webhook views still
    need ``csrf_exempt``. Django raises ImproperlyConfigured at start when
    ``TWILIOGUARD_PATHS`` is missing, so the middleware never silently
    protects nothing. Do not also decorate the views it protects: each
    verification of a webhook counts for duplicate detection.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        patterns = getattr(settings, "TWILIOGUARD_PATHS", None)
        if not patterns:
            raise ImproperlyConfigured("ValidateTwilioRequestMiddleware needs TWILIOGUARD_PATHS, the webhook paths")
        if isinstance(patterns, str):
            patterns = [patterns]
        try:
            self._patterns = [(re.compile(p), RouteOptions(route=p)) for p in patterns]
        except re.error as exc:
            raise ImproperlyConfigured(f"TWILIOGUARD_PATHS: {exc}") from exc
        _configured()  # fail at start on bad settings
        self.get_response = get_response
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def _match(self, request: HttpRequest) -> Optional[RouteOptions]:
        for pattern, options in self._patterns:
            if pattern.match(request.path_info):
                return options
        return None

    def __call__(self, request: HttpRequest) -> Any:
        if self._async:
            return self._acall(request)
        options = self._match(request)
        denied = _answer(request, options) if options is not None else None
        return denied if denied is not None else self.get_response(request)

    async def _acall(self, request: HttpRequest) -> Any:
        options = self._match(request)
        if options is not None:
            denied = await sync_to_async(_answer, thread_sensitive=False)(request, options)
            if denied is not None:
                return denied
        return await self.get_response(request)
