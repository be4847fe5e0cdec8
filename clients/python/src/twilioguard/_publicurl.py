"""The rules that rebuild the URL Twilio signed, for any server interface.

Twilio signs the public URL it requested. Behind a TLS-terminating proxy the
application sees another scheme or host, so the URL has to be rebuilt:

* with a configured *public base URL*: that base + the request-target, byte
  for byte as received;
* otherwise from the connection (its scheme and the ``Host`` header), where
  the proxy headers ``Forwarded`` (RFC 7239), ``X-Forwarded-Proto``/
  ``-Host``/``-Port`` and ``X-Original-Host`` are honoured **only** when the
  direct peer is in a trusted network. Headers from any other peer are
  ignored, so a client cannot make a request signed for one host or route
  pass on another.

The rules work on an :class:`Incoming` request; :mod:`twilioguard.wsgi` and
:mod:`twilioguard.asgi` turn a WSGI environ or an ASGI scope into one. The
cases every twilioguard implementation agrees on are in
``webhookreq/testdata/publicurl_cases.json``.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Callable, Optional, Union

__all__ = [
    "PROXY_HEADERS",
    "Incoming",
    "Network",
    "Rebuilt",
    "header_set",
    "origin_form",
    "parse_networks",
    "quote_path",
    "rebuild",
    "server_host",
    "validate_base_url",
]

#: Network is one trusted proxy network.
Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

#: PROXY_HEADERS are the forwarding headers read from trusted proxies, in
#: order of precedence.
PROXY_HEADERS = ("Forwarded", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-Port", "X-Original-Host")

_DEFAULT_PORTS = {"http": "80", "https": "443"}
_NAME_RE = re.compile(r"^[A-Za-z0-9._~%-]+$")
_PORT_RE = re.compile(r"^[0-9]{1,5}$")
# Characters RFC 3986 allows unescaped in a path.
_PATH_SAFE = "/:@!$&'()*+,;="


@dataclass(frozen=True)
class Incoming:
    """Incoming is one request as the URL rules see it.

    Attributes:
        scheme: The scheme of the connection to the application server
            (``"http"`` or ``"https"``).
        host: The ``Host`` header, or the server's name and port without one.
        peer: The direct peer's address (no port needed), or None.
        target: The raw request-target: path and query as received
            (origin-form), or an absolute-form URL.
        header: Returns the value of a request header by name (several
            header lines joined with ``", "``), or None.
    """

    scheme: str
    host: str
    peer: Optional[str]
    target: str
    header: Callable[[str], Optional[str]]


@dataclass(frozen=True)
class Rebuilt:
    """Rebuilt is the URL Twilio requested and how it was found.

    Attributes:
        url: The URL.
        source: Where scheme and host came from: ``"base_url"``,
            ``"forwarded"``, ``"x-forwarded"``, ``"x-original-host"`` or
            ``"connection"``.
        hint: Empty, or why the URL may not be the one Twilio signed (for
            example forwarding headers ignored from an untrusted peer); never
            a secret.
    """

    url: str
    source: str
    hint: str


def parse_networks(value: Union[str, Iterable[str], None]) -> tuple[Network, ...]:
    """Parse trusted proxy networks.

    *value* is a list of CIDRs or addresses (``"10.0.0.0/8"``, ``"::1"``), or
    one string of them separated by commas or spaces. Raises ValueError
    naming the entry that is not a network.
    """
    if value is None:
        return ()
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    networks = []
    for entry in value:
        text = str(entry).strip()
        if not text:
            continue
        try:
            network = ipaddress.ip_network(text.split("%", 1)[0], strict=False)
        except ValueError as exc:
            raise ValueError(f"trusted proxy {text!r} is not an IP address or CIDR network") from exc
        if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= 96:
            mapped = network.network_address.ipv4_mapped
            if mapped is not None:
                network = ipaddress.IPv4Network((mapped, network.prefixlen - 96))
        networks.append(network)
    return tuple(networks)


def validate_base_url(base_url: str) -> str:
    """Check a public base URL (``https://host[:port][/prefix]``) and return
    it without a trailing slash. Raises ValueError when it is not one."""
    parts = urllib.parse.urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"public base URL must be http:// or https:// with a host, got {base_url!r}")
    if parts.username is not None or parts.password is not None:
        raise ValueError("public base URL must not carry user info (Twilio signs the URL without it)")
    if parts.query or parts.fragment or "?" in base_url or "#" in base_url:
        raise ValueError(f"public base URL must not carry a query or fragment, got {base_url!r}")
    return base_url.rstrip("/")


def _ip(node: str) -> Optional[Union[ipaddress.IPv4Address, ipaddress.IPv6Address]]:
    """The IP address of a node as written in ``REMOTE_ADDR``, a Forwarded
    ``for=`` or an X-Forwarded-For entry (``192.0.2.43``,
    ``192.0.2.43:47011``, ``[2001:db8::17]:4711``, a bare IPv6 address).
    ``unknown``, obfuscated identifiers and anything else give None: such a
    hop is never a trusted proxy."""
    node = node.strip()
    if node.startswith("["):
        end = node.find("]")
        if end < 0:
            return None
        rest = node[end + 1 :]
        if rest and (rest[0] != ":" or not _valid_port(rest[1:])):
            return None
        node = node[1:end]
    elif node.count(":") == 1:
        node, port = node.split(":", 1)
        if not _valid_port(port):
            return None
    node = node.split("%", 1)[0]  # IPv6 zone
    try:
        address = ipaddress.ip_address(node)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(text: Optional[str], networks: Sequence[Network]) -> bool:
    if not text or not networks:
        return False
    address = _ip(text)
    return address is not None and any(address in network for network in networks)


_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _forwarded_elements(header: str) -> list[dict[str, str]]:
    """Parse an RFC 7239 Forwarded header into its elements, left (first
    proxy) to right (last proxy), with lowercase parameter names.

    Quoted strings may hold ``,`` and ``;`` and quoted pairs; as a leniency an
    unquoted value may hold any visible character but ``,``, ``;`` and ``"``.
    Raises ValueError on a malformed header (and on a parameter repeated in
    one element), which is then ignored as a whole.
    """
    elements: list[dict[str, str]] = []
    current: dict[str, str] = {}
    i, n = 0, len(header)

    def finish() -> None:
        nonlocal current
        if current:
            elements.append(current)
        current = {}

    while True:
        while i < n and header[i] in " \t":
            i += 1
        if i >= n:
            finish()
            return elements
        if header[i] == ",":
            finish()
            i += 1
            continue
        j = i
        while j < n and header[j] in _TCHAR:
            j += 1
        if j == i or j >= n or header[j] != "=":
            raise ValueError(f"malformed Forwarded header: expected a parameter name at offset {i}")
        name = header[i:j].lower()
        i = j + 1
        if i < n and header[i] == '"':
            chars = []
            i += 1
            closed = False
            while i < n:
                c = header[i]
                if c == "\\" and i + 1 < n:
                    chars.append(header[i + 1])
                    i += 2
                    continue
                if c == '"':
                    closed = True
                    i += 1
                    break
                chars.append(c)
                i += 1
            if not closed:
                raise ValueError("malformed Forwarded header: unterminated quoted string")
            value = "".join(chars)
        else:
            j = i
            while j < n and " " < header[j] < "\x7f" and header[j] not in ',;"':
                j += 1
            value = header[i:j]
            i = j
        if name in current:
            raise ValueError(f"malformed Forwarded header: parameter {name!r} repeated in one element")
        current[name] = value
        while i < n and header[i] in " \t":
            i += 1
        if i >= n:
            finish()
            return elements
        if header[i] == ";":
            i += 1
        elif header[i] == ",":
            finish()
            i += 1
        else:
            raise ValueError(f"malformed Forwarded header: unexpected {header[i]!r} at offset {i}")


def _valid_port(port: Optional[str]) -> bool:
    return bool(port) and _PORT_RE.match(port) is not None and 1 <= int(port) <= 65535  # type: ignore[arg-type]


def _valid_scheme(value: Optional[str]) -> Optional[str]:
    value = (value or "").strip().lower()
    return value if value in _DEFAULT_PORTS else None


def _valid_host(host: Optional[str]) -> bool:
    """A name or IPv4 address of unreserved characters, or a bracketed IPv6
    address, with an optional port."""
    if not host or len(host) > 300:
        return False
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            return False
        try:
            ipaddress.IPv6Address(host[1:end])
        except ValueError:
            return False
        rest = host[end + 1 :]
        return rest == "" or (rest[0] == ":" and _valid_port(rest[1:]))
    name = host
    if ":" in host:
        name, port = host.rsplit(":", 1)
        if not _valid_port(port):
            return False
    return bool(name) and _NAME_RE.match(name) is not None


def _with_port(host: str, port: str, scheme: str) -> str:
    """Replace the port of *host*, or drop it when it is the scheme's default."""
    if host.startswith("["):
        end = host.find("]")
        if end >= 0:
            host = host[: end + 1]
    elif ":" in host:
        host = host.rsplit(":", 1)[0]
    if _DEFAULT_PORTS.get(scheme) == port:
        return host
    return f"{host}:{port}"


def _list_values(header: Optional[str]) -> list[str]:
    if not header:
        return []
    return [v.strip() for v in header.split(",")]




def origin_form(target: str) -> str:
    """Return the path and query of a request-target: an absolute-form
    target (``http://host/path?q``) loses its scheme and authority; an
    origin-form one is returned as it is."""
    if target.startswith("/") or "://" not in target:
        return target
    rest = target.split("://", 1)[1]
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=-1)
    if cut < 0:
        return "/"
    return rest[cut:] if rest[cut] == "/" else "/" + rest[cut:]


def quote_path(raw: bytes) -> str:
    """Percent-encode a decoded path (as bytes) the way Twilio is normally
    given URLs: every byte RFC 3986 does not allow in a path is escaped."""
    return urllib.parse.quote(raw, safe=_PATH_SAFE) or "/"


def server_host(scheme: str, name: str, port: object) -> str:
    """The host of a server without a ``Host`` header: *name*, with *port*
    unless it is the scheme's default."""
    text = str(port or "")
    if text and text != _DEFAULT_PORTS.get(scheme):
        return f"{name}:{text}"
    return name


def _peer_text(peer: Optional[str]) -> str:
    address = _ip(peer) if peer else None
    return str(address) if address is not None else (peer or "(unknown)")


def rebuild(
    request: Incoming,
    *,
    public_base_url: Optional[str] = None,
    trusted_proxies: Sequence[Network] = (),
    proxy_headers: Optional[Iterable[str]] = None,
) -> Rebuilt:
    """Return the URL Twilio requested for *request*.

    With *public_base_url* (``"https://hooks.example.com"``, maybe with a
    path prefix) the URL is that base + the raw request-target; no header is
    read. Otherwise scheme and host come from the connection and, only when
    the peer is in *trusted_proxies*, from the forwarding headers in
    *proxy_headers* (default all of :data:`PROXY_HEADERS`), first source
    present wins:

    * scheme: ``Forwarded`` proto, ``X-Forwarded-Proto``, the connection;
    * host: ``Forwarded`` host, ``X-Forwarded-Host``, ``X-Original-Host``,
      the ``Host`` header;
    * port: ``X-Forwarded-Port`` replaces the port of a host not taken from
      ``Forwarded``.

    Through several proxies the values written about the right-most
    untrusted hop are used (``X-Forwarded-For`` tells which list entry is
    whose); invalid values are ignored.
    """
    target = origin_form(request.target)
    if public_base_url:
        return Rebuilt(validate_base_url(public_base_url) + target, "base_url", "")
    enabled = header_set(proxy_headers)
    proto = (request.scheme or "http").lower()
    host = request.host

    if not _trusted(request.peer, trusted_proxies):
        present = [name for name in PROXY_HEADERS if name in enabled and request.header(name)]
        hint = ""
        if present:
            hint = (
                f"ignored {', '.join(present)} from peer {_peer_text(request.peer)}, which is not a trusted proxy; "
                "if it is your proxy, add it to the trusted proxies, or configure the public base URL"
            )
        elif proto == "http":
            hint = (
                "URL rebuilt from a plain-HTTP connection with no forwarded headers; behind a "
                "TLS-terminating proxy configure the public base URL or trusted proxies"
            )
        return Rebuilt(f"{proto}://{host}{target}", "connection", hint)

    source = "connection"
    scheme_set = host_from_forwarded = False
    forwarded = request.header("Forwarded") if "Forwarded" in enabled else None
    if forwarded:
        try:
            elements = _forwarded_elements(forwarded)
        except ValueError:
            elements = []
        if elements:
            # The right-most element whose for= node is not a trusted proxy;
            # the left-most one when every node is trusted.
            chosen = elements[0]
            for element in reversed(elements):
                if not _trusted(element.get("for"), trusted_proxies):
                    chosen = element
                    break
            value = _valid_scheme(chosen.get("proto"))
            if value:
                proto, scheme_set, source = value, True, "forwarded"
            if _valid_host(chosen.get("host")):
                host, host_from_forwarded, source = chosen["host"], True, "forwarded"

    # Which X-Forwarded-* entry belongs to the right-most untrusted hop.
    xff = _list_values(request.header("X-Forwarded-For"))
    hop = len(xff) - 1
    while hop > 0 and _trusted(xff[hop], trusted_proxies):
        hop -= 1

    def values(name: str) -> list[str]:
        return _list_values(request.header(name)) if name in enabled else []

    def pick(name: str) -> str:
        found = values(name)
        if not found:
            return ""
        return found[hop] if len(found) == len(xff) else found[-1]

    if not scheme_set:
        value = _valid_scheme(pick("X-Forwarded-Proto"))
        if value:
            proto, source = value, "x-forwarded"
    if not host_from_forwarded:
        forwarded_host = pick("X-Forwarded-Host")
        original = values("X-Original-Host")
        if _valid_host(forwarded_host):
            host, source = forwarded_host, "x-forwarded"
        elif original and _valid_host(original[-1]):
            host = original[-1]
            if source == "connection":
                source = "x-original-host"
        port = pick("X-Forwarded-Port")
        if _valid_port(port):
            host = _with_port(host, port, proto)
            if source == "connection":
                source = "x-forwarded"
    return Rebuilt(f"{proto}://{host}{target}", source, "")


def header_set(names: Optional[Iterable[str]]) -> frozenset[str]:
    """Return the canonical names of the chosen proxy headers (all of
    :data:`PROXY_HEADERS` for None); raises ValueError on an unknown name."""
    if names is None:
        return frozenset(PROXY_HEADERS)
    if isinstance(names, str):
        names = names.replace(",", " ").split()
    canonical = {n.lower(): n for n in PROXY_HEADERS}
    chosen = set()
    for name in names:
        key = name.strip().lower()
        if key not in canonical:
            raise ValueError(f"unknown proxy header {name!r}; known: {', '.join(PROXY_HEADERS)}")
        chosen.add(canonical[key])
    return frozenset(chosen)
