"""The verdict the twilioguard service returns for one webhook request."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Optional

__all__ = ["Verdict"]

# Enum numbers, for a server that writes enums as numbers.
_REASONS = {
    1: "MISSING_SIGNATURE",
    2: "MALFORMED_SIGNATURE",
    3: "SIGNATURE_MISMATCH",
    4: "UNKNOWN_ACCOUNT",
    5: "ACCOUNT_NOT_ALLOWED",
    6: "BODY_HASH_MISMATCH",
    7: "MISSING_BODY_HASH",
    8: "ALGORITHM_NOT_ALLOWED",
    9: "UNKNOWN_SHARED_KEY",
}
_ALGORITHMS = {1: "HMAC_SHA1", 2: "HMAC_SHA256"}


def _enum(value: Any, names: Mapping[int, str], unset: str) -> Optional[str]:
    if value is None or value == 0 or value == unset:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return names.get(value, str(value))
    return str(value)


@dataclass(frozen=True)
class Verdict:
    """Verdict is the service's answer for one webhook request.

    Attributes:
        valid: True when the signature is one Twilio sends for this request.
        account_sid: The account whose credential was tried (and matched, when
            valid); may be empty when no account was found.
        credential: Which secret matched: ``"auth_token"``,
            ``"previous_auth_token"`` or a SharedKey id; empty when not valid.
        matched_url: The URL variant whose signature matched; empty when not
            valid.
        reason: Why the request is not valid, e.g. ``"SIGNATURE_MISMATCH"``,
            ``"MISSING_SIGNATURE"``, ``"UNKNOWN_ACCOUNT"``,
            ``"ACCOUNT_NOT_ALLOWED"``, ``"BODY_HASH_MISMATCH"``; None when valid.
        hint: On a mismatch, a near-miss diagnosis when one is found (for
            example that the https:// form of the URL matches); never a secret.
        algorithm: ``"HMAC_SHA1"`` or ``"HMAC_SHA256"`` when valid, else None.
    """

    valid: bool
    account_sid: str = ""
    credential: str = ""
    matched_url: str = ""
    reason: Optional[str] = None
    hint: str = ""
    algorithm: Optional[str] = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Verdict:
        """Build a Verdict from the proto JSON of a VerifyWebhookResponse.

        Fields left out (proto JSON omits defaults) take their zero value;
        unknown fields are ignored.
        """
        return cls(
            valid=data.get("valid") is True,
            account_sid=str(data.get("accountSid") or ""),
            credential=str(data.get("credential") or ""),
            matched_url=str(data.get("matchedUrl") or ""),
            reason=_enum(data.get("reason"), _REASONS, "REASON_UNSPECIFIED"),
            hint=str(data.get("hint") or ""),
            algorithm=_enum(data.get("algorithm"), _ALGORITHMS, "ALGORITHM_UNSPECIFIED"),
        )


# Public classes show as twilioguard.X in reprs and tracebacks.
Verdict.__module__ = "twilioguard"
