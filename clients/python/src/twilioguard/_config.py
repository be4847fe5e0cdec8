"""The TWILIOGUARD_* settings every integration reads, checked once."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

from ._client import DEFAULT_TIMEOUT, Client
from ._publicurl import Network, header_set, parse_networks, validate_base_url

__all__ = ["DEFAULT_MAX_BODY_BYTES", "SETTINGS", "Config", "Configured", "load_config", "parse_option", "raw_settings"]

#: DEFAULT_MAX_BODY_BYTES is the default limit on a webhook body (1 MiB);
#: Twilio's webhooks are far smaller.
DEFAULT_MAX_BODY_BYTES = 1 << 20

#: SETTINGS maps each option to the name of its setting (Django setting,
#: Flask config key or environment variable).
SETTINGS = {
    "url": "TWILIOGUARD_URL",
    "timeout": "TWILIOGUARD_TIMEOUT",
    "accounts": "TWILIOGUARD_ACCOUNTS",
    "public_base_url": "TWILIOGUARD_PUBLIC_BASE_URL",
    "trusted_proxies": "TWILIOGUARD_TRUSTED_PROXIES",
    "proxy_headers": "TWILIOGUARD_PROXY_HEADERS",
    "mode": "TWILIOGUARD_MODE",
    "duplicates": "TWILIOGUARD_DUPLICATES",
    "max_body_bytes": "TWILIOGUARD_MAX_BODY_BYTES",
}

_MODES = ("enforce", "shadow")
_DUPLICATES = ("allow", "reject")


@dataclass(frozen=True)
class Config:
    """Config is one integration's checked settings.

    Attributes:
        url: The twilioguard service.
        timeout: Seconds per network operation.
        accounts: Accounts (SIDs or aliases) allowed to sign; empty for any.
        public_base_url: The public base URL Twilio calls, or None.
        trusted_proxies: Peers whose forwarding headers are believed.
        proxy_headers: The forwarding headers read from them (None: all).
        mode: ``"enforce"`` (refuse) or ``"shadow"`` (let everything
            through, log what would have been refused).
        duplicates: ``"allow"`` or ``"reject"`` (409 for a webhook verified
            before).
        max_body_bytes: The largest body read; a larger one gets 413.
    """

    url: str
    timeout: float = DEFAULT_TIMEOUT
    accounts: tuple[str, ...] = ()
    public_base_url: Optional[str] = None
    trusted_proxies: tuple[Network, ...] = ()
    proxy_headers: Optional[tuple[str, ...]] = None
    mode: str = "enforce"
    duplicates: str = "allow"
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES

    @property
    def shadow(self) -> bool:
        """Whether every request is let through (shadow mode)."""
        return self.mode == "shadow"


def _words(value: Union[str, Iterable[str]]) -> tuple[str, ...]:
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    return tuple(str(v).strip() for v in value if v and str(v).strip())


def _choice(value: Any, choices: tuple[str, ...]) -> str:
    text = str(value).strip().lower()
    if text not in choices:
        raise ValueError(f"{value!r} is not one of {', '.join(choices)}")
    return text


def _positive(value: Any, kind: Callable[[Any], Any]) -> Any:
    number = kind(value)
    if number <= 0:
        raise ValueError(f"{value!r} must be positive")
    return number


_PARSERS: dict[str, Callable[[Any], Any]] = {
    "url": str,
    "timeout": lambda v: _positive(v, float),
    "accounts": _words,
    "public_base_url": lambda v: validate_base_url(str(v)) if v else None,
    "trusted_proxies": parse_networks,
    "proxy_headers": lambda v: tuple(sorted(header_set(_words(v)))),
    "mode": lambda v: _choice(v, _MODES),
    "duplicates": lambda v: _choice(v, _DUPLICATES),
    "max_body_bytes": lambda v: _positive(v, int),
}


def raw_settings(lookup: Callable[[str], Any], given: dict[str, Any]) -> dict[str, Any]:
    """Return each option's raw value: from *given* when not None, else
    ``lookup(setting name)``; options found nowhere are left out."""
    found = {}
    for option, name in SETTINGS.items():
        value = given.get(option)
        if value is None:
            value = lookup(name)
        if value is not None and value != "":
            found[option] = value
    return found


def load_config(lookup: Callable[[str], Any], **given: Any) -> Config:
    """Build a Config from *given* options, falling back to
    ``lookup(setting name)`` for each one that is None (a Django setting,
    a Flask config key, an environment variable).

    Raises ValueError naming the setting that is missing or wrong.
    """
    unknown = set(given) - set(SETTINGS)
    if unknown:
        raise TypeError(f"unknown twilioguard options: {', '.join(sorted(unknown))}")
    raw = raw_settings(lookup, given)
    if "url" not in raw:
        raise ValueError(f"{SETTINGS['url']} must name the twilioguard service, e.g. 'http://twilioguard:8080'")
    return Config(**{option: parse_option(option, value) for option, value in raw.items()})


def parse_option(option: str, value: Any) -> Any:
    """Check one option's raw value and return it parsed; raises ValueError
    naming its setting."""
    try:
        return _PARSERS[option](value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{SETTINGS[option]}: {exc}") from exc


def _frozen(value: Any) -> Any:
    return tuple(value) if isinstance(value, (list, tuple, set, frozenset)) else value


class Configured:
    """Configured keeps the Config and the Client built from one source of
    settings (Django's settings, a Flask app's config), and builds them
    again when the settings change (as tests that override settings do)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cached: Optional[tuple[Any, Config, Client]] = None

    def get(self, lookup: Callable[[str], Any]) -> tuple[Config, Client]:
        """Return the Config and Client for the settings *lookup* finds now;
        raises ValueError when they are wrong."""
        key = tuple((k, _frozen(v)) for k, v in raw_settings(lookup, {}).items())
        cached = self._cached
        if cached is not None and cached[0] == key:
            return cached[1], cached[2]
        with self._lock:
            cached = self._cached
            if cached is not None and cached[0] == key:
                return cached[1], cached[2]
            config = load_config(lookup)
            client = Client(config.url, timeout=config.timeout)
            if cached is not None:
                cached[2].close()
            self._cached = (key, config, client)
            return config, client
