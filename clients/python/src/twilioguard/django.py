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
``TWILIOGUARD_PATHS``
    For :class:`ValidateTwilioRequestMiddleware` only: regular expressions
    matched against the start of ``request.path_info``.

Answers: 403 when the signature is not valid, 503 when the service cannot
be reached or cannot decide, 400 when the service finds the request
malformed. Validation never depends on ``DEBUG``. The verdict is put on the
request as ``request.twilio_verdict``.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Callable, Optional, TypeVar, Union, overload

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseForbidden

from ._client import DEFAULT_TIMEOUT, Client
from ._errors import InvalidArgumentError, TwilioguardError
from ._verdict import Verdict
from .wsgi import Network, parse_networks, rebuild_url, validate_base_url

__all__ = ["ValidateTwilioRequestMiddleware", "validate_twilio_request", "verify_request", "webhook_url"]

logger = logging.getLogger("twilioguard.django")

_View = TypeVar("_View", bound=Callable[..., Any])
_NO_BODY_METHODS = frozenset({"GET", "HEAD"})


@dataclass(frozen=True)
class _Config:
    client: Client
    accounts: tuple[str, ...]
    public_base_url: Optional[str]
    trusted_proxies: tuple[Network, ...]
    proxy_headers: Optional[tuple[str, ...]]


_lock = threading.Lock()
_cached: Optional[tuple[tuple[Any, ...], _Config]] = None


def _freeze(value: Any) -> Any:
    if isinstance(value, (list, tuple, set, frozenset)):
        return tuple(value)
    return value


def _accounts(value: Union[str, Iterable[str], None]) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = value.split(",")
    return tuple(a.strip() for a in value if a and a.strip())


def _proxy_headers(value: Union[str, Iterable[str], None]) -> Optional[tuple[str, ...]]:
    if value is None:
        return None
    names = tuple(value.replace(",", " ").split()) if isinstance(value, str) else tuple(value)
    rebuild_url({}, proxy_headers=names)  # raises ValueError on an unknown name
    return names


def _config() -> _Config:
    global _cached
    url = getattr(settings, "TWILIOGUARD_URL", None)
    timeout = getattr(settings, "TWILIOGUARD_TIMEOUT", DEFAULT_TIMEOUT)
    accounts = getattr(settings, "TWILIOGUARD_ACCOUNTS", None)
    base = getattr(settings, "TWILIOGUARD_PUBLIC_BASE_URL", None)
    proxies = getattr(settings, "TWILIOGUARD_TRUSTED_PROXIES", None)
    headers = getattr(settings, "TWILIOGUARD_PROXY_HEADERS", None)
    key = (url, timeout, _freeze(accounts), base, _freeze(proxies), _freeze(headers))
    cached = _cached
    if cached is not None and cached[0] == key:
        return cached[1]
    with _lock:
        if _cached is not None and _cached[0] == key:
            return _cached[1]
        if not url:
            raise ImproperlyConfigured("TWILIOGUARD_URL must name the twilioguard service, e.g. 'http://twilioguard:8080'")
        try:
            config = _Config(
                client=Client(url, timeout=float(timeout)),
                accounts=_accounts(accounts),
                public_base_url=validate_base_url(base) if base else None,
                trusted_proxies=parse_networks(proxies),
                proxy_headers=_proxy_headers(headers),
            )
        except (TypeError, ValueError) as exc:
            raise ImproperlyConfigured(f"twilioguard settings: {exc}") from exc
        if _cached is not None:
            _cached[1].client.close()
        _cached = (key, config)
        return config


def webhook_url(request: HttpRequest, *, public_base_url: Optional[str] = None) -> str:
    """Return the URL Twilio signed for *request*.

    It is *public_base_url* (default ``TWILIOGUARD_PUBLIC_BASE_URL``) + the
    request path + the raw query string when one is configured; otherwise the
    scheme and host the request came with, corrected by forwarding headers
    only when the peer is in ``TWILIOGUARD_TRUSTED_PROXIES``.
    """
    return _webhook_url(request, public_base_url)[0]


def _webhook_url(request: HttpRequest, public_base_url: Optional[str]) -> tuple[str, str]:
    config = _config()
    if public_base_url:
        try:
            public_base_url = validate_base_url(public_base_url)
        except ValueError as exc:
            raise ImproperlyConfigured(f"twilioguard: {exc}") from exc
    scheme = target = None
    scope = getattr(request, "scope", None)
    if isinstance(scope, dict):  # ASGI: take the raw bytes the server received
        scheme = scope.get("scheme")
        raw_path = scope.get("raw_path")
        if isinstance(raw_path, bytes) and raw_path.startswith(b"/"):
            target = raw_path.decode("utf-8", "replace")
            query = scope.get("query_string") or b""
            if query:
                target += "?" + bytes(query).decode("utf-8", "replace")
    return rebuild_url(
        request.META,
        public_base_url=public_base_url or config.public_base_url,
        trusted_proxies=config.trusted_proxies,
        proxy_headers=config.proxy_headers,
        scheme=scheme,
        target=target,
    )


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
    The verdict is also stored as ``request.twilio_verdict``.

    Raises the client's exceptions (:class:`twilioguard.UnavailableError`,
    :class:`twilioguard.InvalidArgumentError`, …) when there is no verdict.
    """
    return _verify(request, accounts, route, public_base_url)[0]


def _verify(
    request: HttpRequest,
    accounts: Optional[Iterable[str]],
    route: Optional[str],
    public_base_url: Optional[str],
) -> tuple[Verdict, str]:
    config = _config()
    url, proxy_hint = _webhook_url(request, public_base_url)
    body = request.body
    raw: dict[str, Any] = {}
    if body or (request.method or "GET").upper() not in _NO_BODY_METHODS:
        raw = {"body": body, "content_type": request.META.get("CONTENT_TYPE", "")}
    verdict = config.client.verify_webhook(
        url=url,
        signature=request.META.get("HTTP_X_TWILIO_SIGNATURE"),
        signature_settings=request.META.get("HTTP_X_TWILIO_WEBHOOKS_SIGNATURE_SETTINGS"),
        allowed_accounts=config.accounts if accounts is None else tuple(accounts),
        route=route,
        **raw,
    )
    request.twilio_verdict = verdict  # type: ignore[attr-defined,unused-ignore]
    return verdict, proxy_hint


def _guard(
    request: HttpRequest,
    accounts: Optional[Iterable[str]],
    route: Optional[str],
    public_base_url: Optional[str],
) -> Optional[HttpResponse]:
    """Return the response that refuses *request*, or None to let it through."""
    try:
        verdict, proxy_hint = _verify(request, accounts, route, public_base_url)
    except InvalidArgumentError as exc:
        logger.warning("twilioguard refused %s %s as malformed: %s", request.method, request.path, exc.message)
        return HttpResponseBadRequest("Bad Request\n", content_type="text/plain")
    except TwilioguardError as exc:
        logger.error("twilioguard could not verify %s %s: %s", request.method, request.path, exc)
        return HttpResponse("Service Unavailable\n", status=503, content_type="text/plain")
    if not verdict.valid:
        hints = "; ".join(h for h in (verdict.hint, proxy_hint) if h)
        logger.warning(
            "twilioguard rejected %s %s: %s%s%s",
            request.method,
            request.path,
            verdict.reason or "INVALID",
            f" (account {verdict.account_sid})" if verdict.account_sid else "",
            f": {hints}" if hints else "",
        )
        return HttpResponseForbidden()
    return None


@overload
def validate_twilio_request(view: _View) -> _View: ...


@overload
def validate_twilio_request(
    view: None = None,
    *,
    accounts: Optional[Iterable[str]] = None,
    route: Optional[str] = None,
    public_base_url: Optional[str] = None,
) -> Callable[[_View], _View]: ...


def validate_twilio_request(
    view: Optional[_View] = None,
    *,
    accounts: Optional[Iterable[str]] = None,
    route: Optional[str] = None,
    public_base_url: Optional[str] = None,
) -> Union[_View, Callable[[_View], _View]]:
    """Let a view run only for requests Twilio really sent.

    Use it bare (``@validate_twilio_request``) or with options
    (``@validate_twilio_request(accounts=["AC…"], route="sms",
    public_base_url="https://hooks.example.com")``); options override the
    ``TWILIOGUARD_*`` settings for this view. *route* labels the service's
    logs and metrics (default: the view's name).

    The decorated view answers 403 when the signature is not valid, 503 when
    the service cannot be reached, and 400 when the service finds the request
    malformed; ``DEBUG`` changes nothing. The view is marked CSRF-exempt,
    since Twilio cannot send a CSRF token and the signature proves the
    sender. Async views are supported. For class-based views use
    ``method_decorator(validate_twilio_request, name="dispatch")``.
    """
    account_list = None if accounts is None else tuple(accounts)

    def decorate(func: _View) -> _View:
        label = route or getattr(func, "__name__", None)
        wrapper: Any
        if iscoroutinefunction(func):
            guard = sync_to_async(_guard, thread_sensitive=False)

            @functools.wraps(func)
            async def async_wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
                denied = await guard(request, account_list, label, public_base_url)
                if denied is not None:
                    return denied
                return await func(request, *args, **kwargs)

            wrapper = async_wrapper
        else:

            @functools.wraps(func)
            def sync_wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
                denied = _guard(request, account_list, label, public_base_url)
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
    :func:`validate_twilio_request`. Other requests pass untouched.

    Add ``"twilioguard.django.ValidateTwilioRequestMiddleware"`` to
    ``MIDDLEWARE`` before ``CsrfViewMiddleware``; the webhook views still
    need ``csrf_exempt``. Django raises ImproperlyConfigured at start when
    ``TWILIOGUARD_PATHS`` is missing, so the middleware never silently
    protects nothing.
    """

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        patterns = getattr(settings, "TWILIOGUARD_PATHS", None)
        if not patterns:
            raise ImproperlyConfigured("ValidateTwilioRequestMiddleware needs TWILIOGUARD_PATHS, the webhook paths")
        if isinstance(patterns, str):
            patterns = [patterns]
        try:
            self._patterns = [(p, re.compile(p)) for p in patterns]
        except re.error as exc:
            raise ImproperlyConfigured(f"TWILIOGUARD_PATHS: {exc}") from exc
        _config()  # fail at start on bad settings
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> Any:
        for text, pattern in self._patterns:
            if pattern.match(request.path_info):
                denied = _guard(request, None, text, None)
                if denied is not None:
                    return denied
                break
        return self.get_response(request)
