"""Log fields made safe: length-capped, control characters escaped."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Optional

__all__ = ["LABEL", "TEXT", "bounded", "logfmt"]

#: TEXT is the cap, in bytes, of free text (URLs, paths, hints, messages).
TEXT = 256
#: LABEL is the cap, in bytes, of labels (route, account, reason, method).
LABEL = 64

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\", '"': '\\"'}


def _escape_table() -> dict[int, str]:
    table = {ord(c): e for c, e in _NAMED.items()}
    for code in [*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029]:
        table.setdefault(code, f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
    return table


_ESCAPES = _escape_table()


def bounded(value: object, limit: int = TEXT) -> str:
    """Return *value* as text fit for one log line: backslash, double quote
    and control characters (C0, DEL, C1, U+2028/U+2029) escaped, then cut to
    at most *limit* bytes of UTF-8 (ending in ``…`` when cut; never inside
    an escape)."""
    text = str(value)
    escaped = text.translate(_ESCAPES)
    if len(escaped.encode("utf-8")) <= limit:
        return escaped
    pieces, size = [], 0
    for char in text:
        piece = _ESCAPES.get(ord(char), char)
        size += len(piece.encode("utf-8"))
        if size > limit - 3:
            break
        pieces.append(piece)
    return "".join(pieces) + "…"


def logfmt(fields: Mapping[str, Optional[str]]) -> str:
    """Format already bounded *fields* as ``key=value`` pairs, quoting values
    that are empty or hold a space, ``=`` or an escape; None values are left
    out."""
    parts = []
    for key, value in fields.items():
        if value is None:
            continue
        if not value or any(c in value for c in ' ="\\'):
            value = f'"{value}"'
        parts.append(f"{key}={value}")
    return " ".join(parts)
