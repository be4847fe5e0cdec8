"""Flask integration: the drop-in for the ``validate_twilio_request``
decorator of Twilio's Flask tutorial.

The tutorial's decorator keeps the auth token in the app and lets everything
through in debug mode::

    validator = RequestValidator(os.environ.get("TWILIO_AUTH_TOKEN"))
    request_valid = validator.validate(request.url, request.form, request.headers.get("X-TWILIO-SIGNATURE", ""))
    if request_valid or current_app.debug:
        ...

This one asks a twilioguard service instead, so the app holds no token and
``debug`` changes nothing::

    from twilioguard.flask import validate_twilio_request

    @app.route("/voice", methods=["POST"])
    @validate_twilio_request
    def incoming_call():
        ...

Settings come from ``app.config``, then from the environment, with the names
of the Django settings: ``TWILIOGUARD_URL`` (required),
``TWILIOGUARD_TIMEOUT``, ``TWILIOGUARD_ACCOUNTS``,
``TWILIOGUARD_PUBLIC_BASE_URL``, ``TWILIOGUARD_TRUSTED_PROXIES``,
``TWILIOGUARD_PROXY_HEADERS``, ``TWILIOGUARD_MODE`` (``enforce`` or
``shadow``), ``TWILIOGUARD_DUPLICATES`` (``allow`` or ``reject``) and
``TWILIOGUARD_MAX_BODY_BYTES`` (see :mod:`twilioguard.django`).

Answers (through ``abort``, so the app's error handlers apply): 403 not
valid, 400 malformed, 413 body too large, 409 duplicate (when rejected), 503
when the service cannot decide (fail closed). The verdict is
``flask.g.twilio_verdict``. Decisions are logged on the
``twilioguard.flask`` logger: refusals at INFO, "could not decide" at ERROR,
verified requests at DEBUG.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
from collections.abc import Iterable
from typing import Any, Callable, Optional, TypeVar, Union, overload

from flask import Flask, abort, current_app, g, request
from werkzeug.exceptions import ServiceUnavailable

from . import wsgi
from ._client import Client
from ._config import Config, Configured
from ._enforce import Refusal, RouteOptions, Webhook, is_reserved_header, judge
from ._verdict import Verdict

__all__ = ["validate_twilio_request"]

logger = logging.getLogger("twilioguard.flask")

_View = TypeVar("_View", bound=Callable[..., Any])


def _lookup(app: Flask) -> Callable[[str], Any]:
    def lookup(name: str) -> Any:
        value = app.config.get(name)
        return value if value is not None else os.environ.get(name)

    return lookup


def _configured(app: Flask) -> tuple[Config, Client]:
    """The app's checked settings and client, rebuilt when they change."""
    configured: Configured = app.extensions.setdefault("twilioguard", Configured())
    return configured.get(_lookup(app))


def _check(options: RouteOptions) -> tuple[Optional[Verdict], Optional[Refusal]]:
    config, client = _configured(current_app)
    guard = options.guard(config, logger)
    environ = request.environ
    for key in [k for k in environ if k.startswith("HTTP_") and is_reserved_header(k[5:])]:
        del environ[key]  # request.headers reads the environ live
    hook = Webhook.describe(wsgi.incoming(environ), guard.config, method=request.method, path=request.path)
    limit = guard.config.max_body_bytes
    size = hook.content_length
    if size is None or size <= limit:
        body = request.get_data(cache=True)
        size = len(body)
        if size <= limit:
            params = None
            if not body and "form" in request.__dict__ and request.form:
                # Something parsed the form before this decorator ran and
                # Werkzeug kept no bytes: verify the parsed fields, which
                # are what the view reads.
                params = list(request.form.items(multi=True))
            return judge(guard, hook, lambda: client.verify_webhook(**guard.arguments(hook, body, params)))
    return None, guard.too_large(hook, size)


def _guard(options: RouteOptions) -> None:
    verdict, refusal = _check(options)
    g.twilio_verdict = verdict
    if refusal is None:
        return
    if refusal.status == 503:
        raise ServiceUnavailable(retry_after=1)
    abort(refusal.status)


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

    Use it bare (``@validate_twilio_request``) or with options that override
    the settings for this view (``@validate_twilio_request(accounts=["AC…"],
    route="sms", public_base_url="https://hooks.example.com",
    mode="shadow", duplicates="reject")``). *route* labels the service's
    logs and metrics (default: the view's name). Put it below
    ``@app.route``. Async views are supported.

    The raw body is sent to the service with its Content-Type, so every
    value of a repeated key and JSON bodies (``bodySHA256``) are handled
    there; the view can still read ``request.form`` or ``request.get_data()``.
    Client-sent ``X-Twilioguard-*`` and ``X-Twilio-Account-Sid`` headers are
    removed before the view runs.
    """

    def decorate(func: _View) -> _View:
        options = RouteOptions(
            accounts=accounts,
            route=route or getattr(func, "__name__", None),
            public_base_url=public_base_url,
            mode=mode,
            duplicates=duplicates,
        )
        wrapper: Any
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                _guard(options)
                return await func(*args, **kwargs)

            wrapper = async_wrapper
        else:

            @functools.wraps(func)
            def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
                _guard(options)
                return func(*args, **kwargs)

            wrapper = sync_wrapper
        return wrapper  # type: ignore[no-any-return]

    if view is not None:
        return decorate(view)
    return decorate

