"""Where webhooks may go: a URL is https:// to a public host, judged by the addresses its host
resolves to (an IPv6 address that carries an IPv4 one, by that), looked up within a deadline.
The API checks a URL when it is registered; the worker checks it again before each attempt and
connects to the address it checked."""

import ipaddress
import re
import socket
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

_HOSTNAME = re.compile(
    r"(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*"
)


# A host and its port: a name or IPv4 address, or an IPv6 address in brackets.
_AUTHORITY = re.compile(r"(\[[^\[\]]+\]|[^\[\]:]+)(:[0-9]{1,5})?")


class UnsafeDestination(ValueError):
    """A webhook URL the service must not (or cannot) call."""


@dataclass(frozen=True)
class Destination:
    """Where a webhook URL points: scheme, host, port, path, and the address checked."""

    scheme: str
    host: str
    port: int
    target: str
    address: str | None  # None when the host did not resolve (in time) at registration


def resolve(host: str, timeout: float) -> list:
    """The addresses a host name (or literal) stands for, looked up within `timeout` seconds:
    none when it does not resolve in time. The system resolver has no timeout of its own, so
    it runs in a thread of its own that is left behind when it overruns."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    found: list = []

    def look_up() -> None:
        try:
            infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
        except (OSError, UnicodeError):
            return
        found.extend(ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos)

    lookup = threading.Thread(target=look_up, name=f"resolve {host}", daemon=True)
    lookup.start()
    lookup.join(max(timeout, 0))
    return [] if lookup.is_alive() else list(found)


# IPv6 forms that carry an IPv4 address to a translator or a tunnel, and where it sits.
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # ::a.b.c.d (deprecated, RFC 4291)
_SIIT = ipaddress.ip_network("::ffff:0:0:0/96")  # ::ffff:0:a.b.c.d (RFC 2765)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # the well-known prefix (RFC 6052)
_LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")  # local use (RFC 8215)
# RFC 6052's places for the IPv4 bits after a prefix of 48, 56, 64 or 96 bits (bits 64-71,
# the "u" octet, are never part of it): what a local-use translator might take.
_RFC6052_SPANS = {
    48: ((48, 64), (72, 88)),
    56: ((56, 64), (72, 96)),
    64: ((72, 104),),
    96: ((96, 128),),
}


def _bits(value: int, start: int, end: int) -> tuple[int, int]:
    """Bits start..end (0 = the most significant of 128) of an IPv6 address, and how many."""
    return (value >> (128 - end)) & ((1 << (end - start)) - 1), end - start


def _rfc6052(value: int, prefix: int) -> ipaddress.IPv4Address:
    number = 0
    for start, end in _RFC6052_SPANS[prefix]:
        bits, width = _bits(value, start, end)
        number = (number << width) | bits
    return ipaddress.IPv4Address(number)


def carried_ipv4(address) -> list:
    """The IPv4 addresses an IPv6 address reaches through a translator or a tunnel, or []
    when it is a plain IPv6 address: IPv4-mapped and -compatible, SIIT, NAT64 (well-known and
    local-use, every RFC 6052 layout), 6to4, and Teredo (its server and its client)."""
    if address.version != 6:
        return []
    value = int(address)
    if address.ipv4_mapped is not None:
        return [address.ipv4_mapped]
    if address in _IPV4_COMPATIBLE or address in _SIIT or address in _NAT64:
        return [ipaddress.IPv4Address(value & 0xFFFF_FFFF)]
    if address in _LOCAL_NAT64:
        if not _bits(value, 48, 96)[0]:  # zeros between prefix and address: the /96 layout
            return [_rfc6052(value, 96)]
        return [_rfc6052(value, prefix) for prefix in _RFC6052_SPANS]
    if address.sixtofour is not None:
        return [address.sixtofour]
    if address.teredo is not None:
        return list(address.teredo)
    return []


def is_internal(address) -> bool:
    """Private, loopback, link-local or otherwise not on the public internet (100.64/10 too).
    An IPv6 address that carries an IPv4 one is judged by the IPv4 address it reaches (:: and
    ::1, which the IPv4-compatible form also covers, are judged as themselves)."""
    if address.is_loopback or address.is_unspecified:
        return True
    judged = carried_ipv4(address) or [address]
    return any(a.is_private or a.is_loopback or a.is_link_local or not a.is_global for a in judged)


def _unreachable(address) -> bool:
    """Addresses no webhook can be delivered to, wherever the service runs (an address whose
    carried IPv4 one is ambiguous, a local-use NAT64 layout, is left to is_internal)."""
    carried = carried_ipv4(address)
    judged = [address, *carried] if len(carried) == 1 else [address]
    return any(a.is_multicast or a.is_unspecified for a in judged)


def check_destination(url: str, allow_private: bool, timeout: float) -> Destination:
    """https to a public host; http, or an internal host (private, loopback, link-local,
    carrier-grade NAT...), only when allow_private (tests, on-premises). Anything else, or a
    URL that cannot be called or does not parse, raises UnsafeDestination. Returns the address
    to connect to, so the check and the connection see the same host (no DNS rebinding in
    between); the name is looked up within `timeout` seconds."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError as err:  # "[::1", "[abc]", "]", a port that is no number...
        message = "The port must be a number from 1 to 65535." if "Port" in str(err) else None
        raise UnsafeDestination(message or "The URL does not parse.") from None
    if port == 0:
        raise UnsafeDestination("The port must be a number from 1 to 65535.")
    if parts.scheme not in {"https", "http"} or not host:
        raise UnsafeDestination("Use an https:// URL with a host.")
    if "%" in host:
        raise UnsafeDestination("The URL does not parse.")  # a zone id: this host's own links
    if parts.username or parts.password:
        raise UnsafeDestination("Put no credentials in the URL; verify the signature instead.")
    authority = parts.netloc.rpartition("@")[2]
    if not _AUTHORITY.fullmatch(authority):
        raise UnsafeDestination("The URL does not parse.")  # stray brackets, an empty port
    literal = authority.startswith("[") or _is_address(host)
    if literal and not _is_address(host):
        raise UnsafeDestination("The URL does not parse.")  # brackets around no IPv6 address
    if not literal and not _HOSTNAME.fullmatch(host):
        raise UnsafeDestination("The host is not a valid host name.")
    if any(c in parts.path + parts.query for c in " \t\r\n"):
        raise UnsafeDestination("Encode spaces and control characters in the URL.")
    addresses = resolve(host, timeout)
    if any(_unreachable(a) for a in addresses):
        raise UnsafeDestination("This address cannot receive webhooks.")
    internal = [a for a in addresses if is_internal(a)]
    if internal and not allow_private:
        raise UnsafeDestination("Private, loopback and link-local hosts are not allowed.")
    if parts.scheme == "http" and not (
        allow_private and internal and len(internal) == len(addresses)
    ):
        raise UnsafeDestination("Use https:// (http only to a private host on-premises).")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    default = 443 if parts.scheme == "https" else 80
    return Destination(
        parts.scheme, host, port or default, target, str(addresses[0]) if addresses else None
    )


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
