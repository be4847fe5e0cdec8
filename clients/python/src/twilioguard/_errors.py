"""Exceptions raised when the twilioguard service cannot give a verdict."""

from __future__ import annotations

__all__ = ["InvalidArgumentError", "TwilioguardError", "UnavailableError"]


class TwilioguardError(Exception):
    """TwilioguardError is the base of every error the client raises.

    It means the service did not decide whether a request is genuine: a bad
    signature is never an error but a :class:`~twilioguard.Verdict` with
    ``valid=False``. ``code`` is the Connect error code (``"unavailable"``,
    ``"invalid_argument"``, ``"unauthenticated"``, ``"unknown"``, …) and
    ``message`` the service's explanation, which never contains a secret.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"twilioguard: {code}: {message}" if message else f"twilioguard: {code}")
        self.code = code
        self.message = message


class UnavailableError(TwilioguardError):
    """UnavailableError means the service could not be reached or could not
    answer in time: connection refused or reset, timeout, TLS failure, an HTTP
    5xx without a Connect error, or the Connect codes ``unavailable`` and
    ``deadline_exceeded``. The request may succeed if retried later; a webhook
    handler should fail closed (HTTP 503)."""


class InvalidArgumentError(TwilioguardError):
    """InvalidArgumentError means the service refused the request as
    malformed (Connect code ``invalid_argument``), for example a URL that is
    not absolute or both params and a body. ``message`` says what is wrong.
    Retrying the same request will not help."""


# Public classes show as twilioguard.X in reprs and tracebacks.
TwilioguardError.__module__ = "twilioguard"
UnavailableError.__module__ = "twilioguard"
InvalidArgumentError.__module__ = "twilioguard"
