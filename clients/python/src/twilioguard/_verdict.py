"""The verdict the twilioguard service returns for one webhook request."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
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
    10: "ACCOUNT_MISMATCH",
    11: "BODY_NOT_FORWARDED",
}
_ALGORITHMS = {1: "HMAC_SHA1", 2: "HMAC_SHA256"}
_REPLAY_CHECKS = {1: "CHECKED", 2: "UNAVAILABLE"}
# A google.protobuf.Timestamp in proto JSON (RFC 3339, up to nanoseconds).
_TIMESTAMP = re.compile(
    r"^(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d\d):(\d\d))$"
)


def _enum(value: Any, names: Mapping[int, str], unset: str) -> Optional[str]:
    if value is None or value == 0 or value == unset:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return names.get(value, str(value))
    return str(value)


def _timestamp(value: Any) -> Optional[datetime]:
    """Parse a proto JSON Timestamp into an aware datetime (microseconds);
    None when absent or not a timestamp."""
    match = _TIMESTAMP.match(value) if isinstance(value, str) else None
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    offset = timedelta(0)
    if not zulu:
        offset = timedelta(hours=int(off_h), minutes=int(off_m)) * (1 if sign == "+" else -1)
    try:
        return datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second),
            int((fraction or "0").ljust(6, "0")[:6]), tzinfo=timezone(offset),
        ).astimezone(timezone.utc)
    except ValueError:
        return None


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
        duplicate: Whether this exact webhook (same account and
            ``I-Twilio-Idempotency-Token``, or same account, signature and
            URL) was verified before within the service's replay window. A
            duplicate is still valid: the signature is genuine. None when
            unknown (the request is not valid, or the service could not
            check, see *replay_check*).
        first_seen_time: When the first copy of a duplicate was verified
            (UTC), else None.
        replay_check: ``"CHECKED"`` when the service checked for a
            duplicate, ``"UNAVAILABLE"`` when its duplicate store could not
            be reached; None when it did not check.
    """

    valid: bool
    account_sid: str = ""
    credential: str = ""
    matched_url: str = ""
    reason: Optional[str] = None
    hint: str = ""
    algorithm: Optional[str] = None
    duplicate: Optional[bool] = None
    first_seen_time: Optional[datetime] = None
    replay_check: Optional[str] = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Verdict:
        """Build a Verdict from the proto JSON of a VerifyWebhookResponse.

        Fields left out (proto JSON omits defaults) take their zero value;
        unknown fields are ignored.
        """
        duplicate = data.get("duplicate")
        return cls(
            valid=data.get("valid") is True,
            account_sid=str(data.get("accountSid") or ""),
            credential=str(data.get("credential") or ""),
            matched_url=str(data.get("matchedUrl") or ""),
            reason=_enum(data.get("reason"), _REASONS, "REASON_UNSPECIFIED"),
            hint=str(data.get("hint") or ""),
            algorithm=_enum(data.get("algorithm"), _ALGORITHMS, "ALGORITHM_UNSPECIFIED"),
            duplicate=duplicate if isinstance(duplicate, bool) else None,
            first_seen_time=_timestamp(data.get("firstSeenTime")),
            replay_check=_enum(data.get("replayCheck"), _REPLAY_CHECKS, "REPLAY_CHECK_UNSPECIFIED"),
        )


# Public classes show as twilioguard.X in reprs and tracebacks.
Verdict.__module__ = "twilioguard"
