"""Twilio's X-Twilio-Signature algorithm, for signing test requests."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from typing import Union

__all__ = ["Params", "body_sha256", "iter_params", "sign"]

#: Params is what the signing and verifying functions accept as form fields:
#: a mapping of key to value or to a list of values (a Django ``QueryDict`` or
#: a Flask/Werkzeug ``MultiDict`` keeps every value of a repeated key), or an
#: iterable of ``(key, value)`` pairs in any order.
Params = Union[Mapping[str, Union[str, Iterable[str]]], Iterable[tuple[str, str]]]

_HASHES = {"HMAC_SHA1": hashlib.sha1, "HMAC_SHA256": hashlib.sha256}


def iter_params(params: Params | None) -> Iterable[tuple[str, str]]:
    """Yield every ``(key, value)`` pair of *params*, repeated keys included.

    Multi-value mappings are read through ``lists()`` (Django ``QueryDict``),
    ``getall()`` or ``getlist()`` (Werkzeug ``MultiDict``) so that no value of a
    repeated key is lost; a plain mapping may hold a string or a list of
    strings per key.
    """
    if params is None:
        return
    if isinstance(params, Mapping):
        lists = getattr(params, "lists", None)
        if callable(lists):
            for key, values in lists():
                for value in values:
                    yield key, value
            return
        getall = getattr(params, "getall", None) or getattr(params, "getlist", None)
        for key in params:
            if callable(getall):
                values = getall(key)
            else:
                values = params[key]
            if isinstance(values, str):
                yield key, values
            else:
                for value in values:
                    yield key, value
        return
    for pair in params:
        key, value = pair
        yield key, value


def sign(token: str, url: str, params: Params | None = None, *, algorithm: str = "HMAC_SHA1") -> str:
    """Return the ``X-Twilio-Signature`` Twilio sends for a request.

    The signed string is *url* exactly as given, followed by, for each key in
    code-point order and for each distinct value of that key in code-point
    order, the key and the value. It is signed with HMAC-SHA1 (or HMAC-SHA256
    for a SharedKey that allows it) keyed by *token* and encoded as standard
    base64.

    Pass the decoded form fields of a form POST as *params*; pass nothing for a
    GET or for a JSON body (whose hash goes into the URL's ``bodySHA256``
    query parameter, see :func:`body_sha256`).

    This is meant for tests: production code never needs the token, since the
    twilioguard service holds it.
    """
    digest = _HASHES.get(algorithm.upper())
    if digest is None:
        raise ValueError(f"unsupported signature algorithm {algorithm!r} (want HMAC_SHA1 or HMAC_SHA256)")
    grouped: dict[str, set[str]] = {}
    for key, value in iter_params(params):
        grouped.setdefault(key, set()).add(value)
    parts = [url]
    for key in sorted(grouped):
        for value in sorted(grouped[key]):
            parts.append(key)
            parts.append(value)
    mac = hmac.new(token.encode("utf-8"), "".join(parts).encode("utf-8"), digest)
    return base64.b64encode(mac.digest()).decode("ascii")


def body_sha256(body: bytes | str) -> str:
    """Return the lowercase hex SHA-256 of *body*, the ``bodySHA256`` value
    Twilio puts in the URL of a webhook with a JSON body."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    return hashlib.sha256(body).hexdigest()
