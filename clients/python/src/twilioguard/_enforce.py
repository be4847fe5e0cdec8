"""What every integration does with a webhook request: the same request to
the service, the same answers, the same log lines.

An integration (Django, Flask, FastAPI, ASGI) turns its request into a
:class:`Webhook`, sends :meth:`Guard.arguments` to the service, and asks the
:class:`Guard` what to answer: nothing (let the request through) or a
:class:`Refusal`. The rules:

* not valid → 403; malformed (the service answers ``invalid_argument``) →
  400; body over the limit → 413; a duplicate on a route that rejects
  duplicates → 409; any other service error, or the service unreachable →
  503 (fail closed). Nothing depends on ``DEBUG``.
* shadow mode lets everything through and logs what would have been refused.
* a refusal is logged at INFO, "could not decide" at ERROR, a verified
  request at DEBUG; every field is capped and escaped; never a secret or a
  body.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, replace
from typing import Any, Callable, Optional

from ._config import Config, parse_option
from ._errors import InvalidArgumentError, TwilioguardError
from ._logline import LABEL, TEXT, bounded, logfmt
from ._publicurl import Incoming, Rebuilt, rebuild
from ._verdict import Verdict

__all__ = ["Guard", "Refusal", "RouteOptions", "Webhook", "is_reserved_header", "judge", "judge_async"]

_SIGNATURE = "X-Twilio-Signature"
_SIGNATURE_SETTINGS = "X-Twilio-Webhooks-Signature-Settings"
_IDEMPOTENCY_TOKEN = "I-Twilio-Idempotency-Token"
_NO_BODY_METHODS = frozenset({"GET", "HEAD"})


def is_reserved_header(name: str) -> bool:
    """Whether *name* is a header only twilioguard may set
    (``X-Twilioguard-*``, ``X-Twilio-Account-Sid``), in any case and with
    ``_`` for ``-``. Integrations remove such headers sent by clients before
    the application sees the request."""
    name = name.lower().replace("_", "-")
    return name.startswith("x-twilioguard-") or name == "x-twilio-account-sid"


@dataclass(frozen=True)
class Refusal:
    """Refusal is the answer to a request that is not let through.

    Attributes:
        status: The HTTP status.
        text: A short plain-text body, with no diagnosis.
        headers: Extra response headers.
    """

    status: int
    text: str
    headers: tuple[tuple[str, str], ...] = ()


FORBIDDEN = Refusal(403, "Forbidden\n")
BAD_REQUEST = Refusal(400, "Bad Request\n")
CONFLICT = Refusal(409, "Conflict\n")
TOO_LARGE = Refusal(413, "Payload Too Large\n", (("Connection", "close"),))
UNAVAILABLE = Refusal(503, "Service Unavailable\n", (("Retry-After", "1"),))


@dataclass(frozen=True)
class Webhook:
    """Webhook is one incoming request as the integrations describe it.

    Attributes:
        method: The HTTP method.
        path: The request path, for log lines.
        rebuilt: The URL Twilio signed (see :mod:`twilioguard.wsgi`,
            :mod:`twilioguard.asgi`).
        peer: The direct peer's address, for log lines.
        header: Returns a request header by name, or None.
    """

    method: str
    path: str
    rebuilt: Rebuilt
    peer: Optional[str]
    header: Callable[[str], Optional[str]]

    @classmethod
    def describe(cls, request: Incoming, config: Config, *, method: str, path: str) -> Webhook:
        """Describe *request* (see :mod:`twilioguard.wsgi`,
        :mod:`twilioguard.asgi`), its URL rebuilt under *config*."""
        rebuilt = rebuild(
            request,
            public_base_url=config.public_base_url,
            trusted_proxies=config.trusted_proxies,
            proxy_headers=config.proxy_headers,
        )
        return cls(method=method, path=path, rebuilt=rebuilt, peer=request.peer, header=request.header)

    @property
    def content_length(self) -> Optional[int]:
        """The Content-Length header, or None when absent or not a number."""
        value = (self.header("Content-Length") or "").strip()
        return int(value) if value.isdigit() else None


class RouteOptions:
    """RouteOptions are one route's overrides of the settings: *accounts*,
    a *route* label, and any of ``public_base_url``, ``mode`` and
    ``duplicates``. Raises ValueError on a bad value, naming its setting."""

    def __init__(self, *, accounts: Optional[Iterable[str]] = None, route: Optional[str] = None, **overrides: Any) -> None:
        self.accounts = None if accounts is None else tuple(accounts)
        self.route = route
        self.overrides = {k: parse_option(k, v) for k, v in overrides.items() if v is not None}

    def guard(self, config: Config, logger: logging.Logger) -> Guard:
        """The Guard of this route under *config*."""
        return Guard(replace(config, **self.overrides), logger, accounts=self.accounts, route=self.route)


class Guard:
    """Guard decides, for one route, what to answer a webhook request.

    *config* holds the settings; *accounts* and *route* override the
    configured accounts and label this route; *logger* receives the
    decision lines.
    """

    def __init__(
        self,
        config: Config,
        logger: logging.Logger,
        *,
        accounts: Optional[Iterable[str]] = None,
        route: Optional[str] = None,
    ) -> None:
        self.config = config
        self.logger = logger
        self.accounts = config.accounts if accounts is None else tuple(accounts)
        self.route = route

    def arguments(
        self, webhook: Webhook, body: Optional[bytes], params: Optional[Iterable[tuple[str, str]]] = None
    ) -> dict[str, Any]:
        """Return the keyword arguments of ``verify_webhook`` for *webhook*:
        its raw *body* with its content type (for a GET or HEAD only when
        there is one), or, when the framework already parsed the body and
        kept no bytes, the decoded form *params*."""
        args: dict[str, Any] = {
            "url": webhook.rebuilt.url,
            "signature": webhook.header(_SIGNATURE),
            "signature_settings": webhook.header(_SIGNATURE_SETTINGS),
            "idempotency_token": webhook.header(_IDEMPOTENCY_TOKEN),
            "allowed_accounts": self.accounts,
            "route": self.route,
        }
        content_type = webhook.header("Content-Type") or ""
        if params is not None:
            args["params"] = list(params)
        elif body or (content_type and webhook.method.upper() not in _NO_BODY_METHODS):
            args["body"] = body or b""
            args["content_type"] = content_type
        return args

    def too_large(self, webhook: Webhook, size: Optional[int]) -> Optional[Refusal]:
        """Return 413 when *size* (a Content-Length or the bytes read) is
        over the limit, None otherwise or in shadow mode (the request then
        goes through unverified)."""
        limit = self.config.max_body_bytes
        if size is None or size <= limit:
            return None
        return self._refuse(TOO_LARGE, logging.INFO, "request body too large", webhook, {"max_body_bytes": str(limit)})

    def decide(
        self, webhook: Webhook, verdict: Optional[Verdict], error: Optional[TwilioguardError] = None
    ) -> Optional[Refusal]:
        """Return the refusal for the service's *verdict* or *error*, or
        None to let the request through (always None in shadow mode)."""
        if verdict is None:
            assert error is not None
            fields: dict[str, Optional[str]] = {"code": bounded(error.code, LABEL), "error": bounded(error.message)}
            if isinstance(error, InvalidArgumentError):
                return self._refuse(BAD_REQUEST, logging.INFO, "malformed request", webhook, fields)
            return self._refuse(UNAVAILABLE, logging.ERROR, "the service could not decide", webhook, fields)
        rejecting = self.config.duplicates == "reject" and verdict.duplicate is True
        if verdict.valid and not rejecting:
            unknown = self.config.duplicates == "reject" and verdict.duplicate is None
            if unknown or self.logger.isEnabledFor(logging.DEBUG):
                fields = {
                    "account_sid": bounded(verdict.account_sid, LABEL),
                    "credential": bounded(verdict.credential, LABEL),
                    "duplicate": None if verdict.duplicate is None else str(verdict.duplicate).lower(),
                }
                if unknown:
                    # The route rejects duplicates but the service could not
                    # tell (its duplicate store is unreachable, or it does not
                    # check): the signature is genuine, so the webhook goes
                    # through, as in every twilioguard adapter, and the log
                    # says so.
                    fields["replay_check"] = bounded(verdict.replay_check or "NOT_CHECKED", LABEL)
                    self._log(logging.WARNING, "twilio webhook verified; whether it is a duplicate is unknown", webhook, fields)
                else:
                    self._log(logging.DEBUG, "twilio webhook verified", webhook, fields)
            return None
        fields = {"account_sid": bounded(verdict.account_sid, LABEL)}
        if verdict.valid:
            fields["first_seen_time"] = verdict.first_seen_time.isoformat() if verdict.first_seen_time else None
            return self._refuse(CONFLICT, logging.INFO, "duplicate", webhook, fields)
        fields.update(
            reason=bounded(verdict.reason or "INVALID", LABEL),
            hint=bounded(verdict.hint) if verdict.hint else None,
            proxy_hint=bounded(webhook.rebuilt.hint) if webhook.rebuilt.hint else None,
            peer=bounded(webhook.peer or "", LABEL) if webhook.rebuilt.hint else None,
        )
        return self._refuse(FORBIDDEN, logging.INFO, "", webhook, fields)

    def _refuse(
        self, refusal: Refusal, level: int, why: str, webhook: Webhook, fields: dict[str, Optional[str]]
    ) -> Optional[Refusal]:
        """Log the refusal (in shadow mode: that it would have been one) and
        return it (None in shadow mode)."""
        what = "would be refused (shadow mode)" if self.config.shadow else "refused"
        self._log(level, f"twilio webhook {what}{': ' + why if why else ''}", webhook, fields)
        return None if self.config.shadow else refusal

    def _log(self, level: int, message: str, webhook: Webhook, fields: dict[str, Optional[str]]) -> None:
        if not self.logger.isEnabledFor(level):
            return
        line = {
            "route": bounded(self.route, LABEL) if self.route else None,
            "method": bounded(webhook.method, LABEL),
            "path": bounded(webhook.path, TEXT),
            **fields,
            "url": bounded(webhook.rebuilt.url, TEXT),
            "url_from": webhook.rebuilt.source,
        }
        self.logger.log(level, "%s: %s", message, logfmt(line), extra={"twilioguard": line})



def judge(guard: Guard, webhook: Webhook, call: Callable[[], Verdict]) -> tuple[Optional[Verdict], Optional[Refusal]]:
    """Call the service with *call* and return its verdict (None when it
    could not decide) and the refusal to answer (None: let through)."""
    try:
        verdict = call()
    except TwilioguardError as exc:
        return None, guard.decide(webhook, None, exc)
    return verdict, guard.decide(webhook, verdict)


async def judge_async(
    guard: Guard, webhook: Webhook, call: Callable[[], Awaitable[Verdict]]
) -> tuple[Optional[Verdict], Optional[Refusal]]:
    """:func:`judge` for an async *call*."""
    try:
        verdict = await call()
    except TwilioguardError as exc:
        return None, guard.decide(webhook, None, exc)
    return verdict, guard.decide(webhook, verdict)
