"""The SSRF guard: which URLs Workstream will POST to (webhook subscriptions, work items' callback_url).

One guard, used twice: when the URL comes in (subscription create, work-item create over
REST, the bus and bulk: 400 naming the field) and at every delivery attempt, because what
a name resolves to may change between the two (the sender connects to the address checked
here, never to a second lookup).

A URL is refused when
- its scheme is not http or https, or it has no host;
- it carries userinfo (`http://user:pw@host/`, also `http://allowed.example@127.0.0.1/`):
  receivers authenticate a delivery by its signature, credentials in a URL end up in logs,
  audit data and delivery listings, and the `@` form is the classic way to make a URL read
  as one host and connect to another;
- its port is outside 1–65535 (port 0 included) or not a number;
- it contains whitespace or control characters, or its host is not a valid name;
- its host is IPv4 written in a form other than dotted decimal (`2130706433`, `0x7f.1`,
  `0177.0.0.1`, `127.1`): resolvers and parsers disagree about these forms;
- it is a literal IP, or a name resolving (any of its addresses) to an address that is
  not public, unless `webhooks.allowPrivateTargets` is on (see `address_refusal`);
- whatever the configuration, its address is unspecified (`0.0.0.0`, `::`) or multicast
  or broadcast: no TCP endpoint lives there.

A name that does not resolve is refused at subscription create (a subscription is set up
once; a typo should be found then) but accepted for a work item's callback_url, so that a
DNS hiccup does not stop items being created; it is resolved and checked at each delivery,
where not resolving is a retried failure and a refused address fails the delivery.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from config import wsconfig

SCHEMES = ("http", "https")
MAX_URL = 1000
_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_BAD_CHARS = re.compile(r"[\x00-\x20\x7f\\]")

# IPv6 ranges refused outright (whatever they embed), with the reason named in the refusal.
_V6_REFUSED: tuple[tuple[ipaddress.IPv6Network, str], ...] = tuple(
    (ipaddress.IPv6Network(net), why)
    for net, why in (
        ("64:ff9b:1::/48", "local-use NAT64 (RFC 8215)"),
        ("2001::/32", "Teredo"),
        ("fec0::/10", "site-local"),
        ("fc00::/7", "unique-local"),
        ("fe80::/10", "link-local"),
        ("100::/64", "discard-only"),
        ("2001:db8::/32", "documentation"),
    )
)
# IPv4 ranges that some Python versions count as global: IETF protocol assignments (RFC 6890).
_V4_REFUSED = (ipaddress.IPv4Network("192.0.0.0/24"),)
_V4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_V4_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_BROADCAST = ipaddress.IPv4Address("255.255.255.255")


class TargetRefused(Exception):
    """The URL is not an allowed target; the message says why."""


class TargetUnresolved(TargetRefused):
    """The URL's host name does not resolve (now): not proof of anything, so retried at delivery."""


@dataclass(frozen=True)
class Target:
    """A checked URL: connect to `addresses[0]`, send `Host: host`, request `path`."""

    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]
    path: str


def _embedded_v4(ip: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, str] | None:
    """The IPv4 address an IPv6 address stands for, and the form's name, if it is one of those."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped, "IPv4-mapped"
    if ip in _V4_TRANSLATED:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF), "IPv4-translated"
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF), "NAT64"
    if ip.sixtofour is not None:
        return ip.sixtofour, "6to4"
    if ip in _V4_COMPATIBLE and int(ip) > 1:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF), "IPv4-compatible"
    return None


def _never_a_host(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_multicast:
        return "multicast"
    if ip == _BROADCAST:
        return "broadcast"
    return None


def address_refusal(address: str, *, allow_private: bool) -> str | None:
    """What makes `address` (an IP literal) not an allowed target ("loopback …"), or None.

    With `allow_private` only the addresses that are never a TCP endpoint are refused.
    Otherwise an address must be global (Python's `is_global`: not private, loopback,
    link-local, CGNAT, reserved, documentation, benchmarking, …); an IPv6 form that
    embeds an IPv4 address (IPv4-mapped, -translated, NAT64 64:ff9b::/96, 6to4
    2002::/16) is judged by the IPv4 address it embeds; IPv4-compatible (::a.b.c.d,
    deprecated), Teredo, local-use NAT64, site-local, unique-local, link-local, discard
    and documentation ranges are refused by name; so is any address with a zone.
    """
    if "%" in address:
        return "an address with an IPv6 zone"
    ip = ipaddress.ip_address(address)
    what = _never_a_host(ip)
    if what is not None or not isinstance(ip, ipaddress.IPv6Address):
        pass
    elif (embedded := _embedded_v4(ip)) is not None:
        v4, form = embedded
        what = _never_a_host(v4)
        if what is None and form == "IPv4-compatible":
            return "IPv4-compatible (deprecated, ::a.b.c.d)"
        if what is None and not allow_private and not _is_public(v4):
            return f"{form}, embedding the {_not_public(v4)} {v4}"
        return what and f"{form}, embedding the {what} {v4}"
    elif not allow_private:
        what = next((why for net, why in _V6_REFUSED if ip in net), None)
    if what is None and not allow_private and not _is_public(ip):
        what = _not_public(ip)
    return what


def _is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return ip.is_global and not any(ip in net for net in _V4_REFUSED if ip.version == 4)


def _not_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    for attr in ("loopback", "link_local", "private"):
        if getattr(ip, f"is_{attr}"):
            return f"{attr.replace('_', '-')} (not public)"
    return "reserved (not public)"


def _literal(host: str) -> str | None:
    """The address `host` is when it is an IP literal; refuses IPv4 in other than dotted decimal."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if ":" in host:
        raise TargetRefused(f"{host!r} is not an IPv6 address")
    if host.replace(".", "").isalnum():
        try:
            socket.inet_aton(host)  # what the C resolver would read as an IPv4 address
        except OSError:
            return None
        raise TargetRefused(f"{host} is an IPv4 address in a non-standard form; write it as dotted decimal")
    return None


def _ascii_name(host: str) -> str:
    """`host` in its ASCII (IDNA) form, or TargetRefused when it is not a valid host name."""
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise TargetRefused(f"{host!r} is not a valid host name") from None
    labels = ascii_host.removesuffix(".").split(".")
    if len(ascii_host) > 253 or not all(_HOST_LABEL.match(label) for label in labels):
        raise TargetRefused(f"{host!r} is not a valid host name")
    return ascii_host


def parse(url) -> tuple[SplitResult, str, int]:
    """(parts, host, port) of `url` after the checks that need no lookup, or TargetRefused.

    `host` is an IP literal or the name in its ASCII (IDNA) form."""
    if not isinstance(url, str) or not url:
        raise TargetRefused("an http(s) URL is required")
    if len(url) > MAX_URL:
        raise TargetRefused(f"at most {MAX_URL} characters")
    if _BAD_CHARS.search(url):
        raise TargetRefused("whitespace, control characters and backslashes are not allowed in the URL")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise TargetRefused(f"not a URL: {exc}") from None
    if parts.scheme not in SCHEMES:
        raise TargetRefused("only http and https URLs are allowed")
    if "@" in parts.netloc:
        raise TargetRefused("userinfo (user:password@) is not allowed in the URL")
    if not parts.hostname:
        raise TargetRefused("the URL has no host")
    try:
        port = parts.port
    except ValueError:
        raise TargetRefused("the port must be a number from 1 to 65535") from None
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    if not 1 <= port <= 65535:
        raise TargetRefused("the port must be a number from 1 to 65535")
    host = parts.hostname if ":" in parts.hostname else _ascii_name(parts.hostname)
    return parts, host, port


def _allow_private(allow_private: bool | None) -> bool:
    return wsconfig.get().webhooks.allowPrivateTargets if allow_private is None else allow_private


def resolve(url, *, allow_private: bool | None = None) -> Target:
    """The checked target of `url`: every address its host resolves to is allowed.

    `allow_private` defaults to `webhooks.allowPrivateTargets`. Raises TargetRefused
    (TargetUnresolved when the name does not resolve).
    """
    allow = _allow_private(allow_private)
    parts, host, port = parse(url)
    literal = _literal(host)
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise TargetUnresolved(f"cannot resolve {host}: {exc.strerror}") from None
        addresses = list(dict.fromkeys(info[4][0] for info in infos))
        if not addresses:
            raise TargetUnresolved(f"{host} has no address")
    for address in addresses:
        what = address_refusal(address, allow_private=allow)
        if what:
            shown = address if literal is not None else f"{host} resolves to {address}, which"
            private_only = not allow and address_refusal(address, allow_private=True) is None
            hint = "; webhooks.allowPrivateTargets allows private targets" if private_only else ""
            raise TargetRefused(f"{shown} is {what}{hint}")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, host, port, tuple(addresses), path)


def check(url, *, allow_private: bool | None = None, require_resolvable: bool = True) -> None:
    """Refuse `url` (TargetRefused) as it comes in; a name that does not resolve passes
    unless `require_resolvable` (it is checked again at each delivery)."""
    try:
        resolve(url, allow_private=allow_private)
    except TargetUnresolved:
        if require_resolvable:
            raise
