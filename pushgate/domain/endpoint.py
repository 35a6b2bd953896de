"""The Web Push endpoint SSRF policy without I/O: which hosts we call, which addresses are public.

A subscription endpoint is a URL a client gave us, and pushgate will POST to it. By default only
the known push services are accepted, by name and on port 443, so no DNS answer can steer us
anywhere else. Operators can open other hosts (`extra_hosts`); those must then resolve only to
public addresses, checked here as pure functions so the same check runs at registration and in
the sender's resolver. The host policy is checked again at every send (`HostPolicy`), so narrowing
`extra_hosts` also stops endpoints registered while they were allowed.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from pushgate.errors import InvalidInputError, UnsafeEndpointError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_ENDPOINT_LENGTH = 2048
ENDPOINT_FIELD = "subscription.endpoint"

# Exact names, or `*.suffix` for any name below the suffix (not the suffix itself).
KNOWN_PUSH_HOSTS: tuple[str, ...] = (
    "fcm.googleapis.com",
    "*.googleapis.com",
    "updates.push.services.mozilla.com",
    "*.push.services.mozilla.com",
    "*.mozilla.com",
    "*.mozaws.net",
    "*.notify.windows.com",
    "*.windows.com",
    "web.push.apple.com",
    "*.push.apple.com",
)
# Every known push service listens on the https default; another port on their names is not them.
KNOWN_PUSH_PORT = 443

# IANA special-purpose registries (RFC 6890 and successors): nothing here is a push service.
_BLOCKED_V4 = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8",  # "this network", including the unspecified address
        "10.0.0.0/8",
        "100.64.0.0/10",  # carrier-grade NAT
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, including cloud metadata 169.254.169.254
        "172.16.0.0/12",
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation
        "192.88.99.0/24",  # 6to4 relay anycast
        "192.168.0.0/16",
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation
        "203.0.113.0/24",  # documentation
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, including broadcast
    )
)
_BLOCKED_V6 = tuple(
    ipaddress.IPv6Network(n)
    for n in (
        "::/128",
        "::1/128",
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",  # discard-only
        "2001::/23",  # IETF protocol assignments, including Teredo
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation (RFC 9637)
        "5f00::/16",  # SRv6 SIDs
        "fc00::/7",  # unique local, including AWS metadata fd00:ec2::254
        "fe80::/10",  # link-local
        "fec0::/10",  # deprecated site-local
        "ff00::/8",  # multicast
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")
_V4_COMPATIBLE = ipaddress.IPv6Network("::/96")

_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
# getaddrinfo reads "127.1", "0x7f.1" and "2130706433" as IPv4 addresses; Python's parser does not.
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")
_FORBIDDEN_CHARS = re.compile(r"[\x00-\x20\x7f\\]")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A structurally acceptable endpoint and what the policy already knows about its host.

    `known` is True for a known push service (no DNS check needed); `address` is set when the host
    is an IP literal; otherwise the host is a name opened by `extra_hosts` that must be resolved and
    every answer checked with `is_public_address`.
    """

    url: str
    host: str
    port: int
    known: bool
    address: IPAddress | None


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, compatible, NAT64, 6to4), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64 or (ip in _V4_COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)
    if ip in _SIX_TO_FOUR:
        return ip.sixtofour
    return None


def is_public_address(ip: IPAddress | str) -> bool:
    """Whether an address is a globally routable unicast address we may connect to.

    IPv6 forms that carry an IPv4 address are judged by that address, so `::ffff:127.0.0.1` is
    as private as `127.0.0.1`. Unparsable text is not public.
    """
    if isinstance(ip, str):
        try:
            ip = ipaddress.ip_address(ip.split("%", 1)[0])
        except ValueError:
            return False
    if isinstance(ip, ipaddress.IPv6Address):
        inner = embedded_ipv4(ip)
        if inner is not None:
            return is_public_address(inner)
        blocked: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network] = _BLOCKED_V6
    else:
        blocked = _BLOCKED_V4
    if any(ip in net for net in blocked):
        return False
    # The stdlib's flags as a second opinion: either list refusing an address is enough.
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


def host_matches(host: str, pattern: str) -> bool:
    """Whether a lowercase host matches an exact name, a `*.suffix` pattern, or `*` (anything)."""
    pattern = pattern.strip().lower().rstrip(".")
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return host == pattern


def is_known_push_host(host: str) -> bool:
    return any(host_matches(host, p) for p in KNOWN_PUSH_HOSTS)


def parse_endpoint(url: str, *, extra_hosts: Sequence[str] = ()) -> Endpoint:
    """Check an endpoint's shape and host against the policy, without resolving anything.

    Raises:
        InvalidInputError: code `invalid_subscription`: not an https URL, too long, unparsable.
        UnsafeEndpointError: userinfo, an empty or odd host, or a host outside the allowlist.
    """
    if len(url) > MAX_ENDPOINT_LENGTH:
        raise _invalid(f"endpoint is longer than {MAX_ENDPOINT_LENGTH} characters")
    # urlsplit silently drops tabs and newlines, so a URL with them would be checked as another.
    if _FORBIDDEN_CHARS.search(url):
        raise _invalid("endpoint contains whitespace, control characters or backslashes")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise _invalid(f"endpoint is not a URL: {exc}") from None
    if parts.scheme.lower() != "https":
        raise _invalid("endpoint must be an https:// URL")
    if "@" in parts.netloc:
        raise _unsafe("endpoint must not carry a user name or password")
    host = _host_of(parts)
    address = _literal_address(host)
    port = KNOWN_PUSH_PORT if port is None else port
    named = address is None and is_known_push_host(host)
    known = named and port == KNOWN_PUSH_PORT
    # A known name on another port is not the push service: only an operator's explicit
    # `extra_hosts` entry (with its public-address check) can open it.
    if not known and not any(host_matches(host, p) for p in extra_hosts):
        if named:
            raise _unsafe(
                f"{host!r} is a known push service only on port {KNOWN_PUSH_PORT}, not {port}"
            )
        raise _unsafe(
            f"{host!r} is not a known push service; an operator can allow it with "
            "PUSHGATE_WEBPUSH__EXTRA_HOSTS"
        )
    if port == 0:
        raise _unsafe("endpoint port 0 is not usable")
    return Endpoint(url=url, host=host, port=port, known=known, address=address)


class HostPolicy:
    """The host half of the policy as the sender applies it at every send, compiled once per
    settings: the host must still be a known push service on port 443 or match `extra_hosts`.

    Verdicts are cached per endpoint authority (host and port), so the hot path costs a dict
    lookup; the address half runs where the sender connects (`netguard.resolve_allowed`).
    """

    def __init__(self, extra_hosts: Sequence[str] = (), *, max_entries: int = 10_000) -> None:
        self._extra_hosts = tuple(p.strip().lower().rstrip(".") for p in extra_hosts)
        self._max_entries = max_entries
        self._verdicts: dict[str, str | None] = {}

    def refusal(self, url: str) -> str | None:
        """Why pushgate may not send to `url` under this policy, or None when it may."""
        authority = urlsplit(url).netloc
        try:
            return self._verdicts[authority]
        except KeyError:
            pass
        try:
            # Only the authority is judged: the verdict is shared by every URL that has it.
            parse_endpoint(f"https://{authority}/", extra_hosts=self._extra_hosts)
            verdict = None
        except InvalidInputError as exc:
            verdict = exc.message
        if len(self._verdicts) >= self._max_entries:
            self._verdicts.clear()
        self._verdicts[authority] = verdict
        return verdict


def _host_of(parts: SplitResult) -> str:
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise _unsafe("endpoint has no host")
    if not host.isascii():
        raise _unsafe("endpoint host must be ASCII (use its punycode form)")
    return host.lower()


def _literal_address(host: str) -> IPAddress | None:
    if ":" in host:  # only an IPv6 literal has colons once the port is split off
        try:
            ip = ipaddress.IPv6Address(host)
        except ValueError:
            raise _unsafe(f"endpoint host {host!r} is not a valid IPv6 address") from None
        if ip.scope_id is not None:
            raise _unsafe("endpoint host must not name a network interface")
        return ip
    try:
        return ipaddress.IPv4Address(host)
    except ValueError:
        pass
    labels = host.split(".")
    if len(host) > 253 or not all(_LABEL.match(label) for label in labels):
        raise _unsafe(f"endpoint host {host!r} is not a valid host name")
    if _NUMERIC_LABEL.match(labels[-1]):
        raise _unsafe(f"endpoint host {host!r} is an ambiguous numeric address")
    return None


def _invalid(message: str) -> InvalidInputError:
    return InvalidInputError(message, field=ENDPOINT_FIELD, code="invalid_subscription")


def _unsafe(message: str) -> UnsafeEndpointError:
    return UnsafeEndpointError(message, field=ENDPOINT_FIELD)
