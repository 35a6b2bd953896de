"""The SSRF guard's network half: resolve a Web Push endpoint's host and refuse non-public answers.

Registration calls `check_endpoint`. DNS can change between registration and delivery (rebinding),
so the sender must check again at connect time: `resolve_allowed` applies the same
`is_public_address` rule to the addresses the sender then connects to (providers/http1.py).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import urlsplit

from pushgate.domain import endpoint
from pushgate.errors import InvalidInputError, UnsafeEndpointError
from pushgate.provider_settings import WebPushSettings

DNS_TIMEOUT_SECONDS = 5.0

Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""Resolves (host, port) to the IP addresses a connection could go to, as text."""


class RefusedAddressError(OSError):
    """A host resolved to an address we refuse to connect to (an OSError, so aiohttp wraps it as a
    connection failure; the sender can tell it apart by this type in the exception chain)."""


async def system_resolve(host: str, port: int) -> list[str]:
    """Every address the loop's getaddrinfo gives for a TCP connection to host:port."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def refused_addresses(addresses: Sequence[str]) -> list[str]:
    """The addresses of a DNS answer that are not public (all of them must be, or none is used)."""
    return [a for a in addresses if not endpoint.is_public_address(a)]


async def check_endpoint(
    url: str,
    policy: WebPushSettings,
    *,
    resolve: Resolver = system_resolve,
    dns_timeout: float = DNS_TIMEOUT_SECONDS,
) -> endpoint.Endpoint:
    """Accept a subscription endpoint only if pushgate may POST to it.

    Known push services pass by name alone. A host opened by `policy.extra_hosts` must be an IP
    literal or a name whose every address is public, unless `policy.allow_private_addresses`.

    Raises:
        InvalidInputError: code `invalid_subscription`, the URL is not a usable https URL.
        UnsafeEndpointError: the host is not allowed, does not resolve, or is not public.
    """
    target = endpoint.parse_endpoint(url, extra_hosts=policy.extra_hosts)
    if target.known or policy.allow_private_addresses:
        return target
    if target.address is not None:
        addresses: Sequence[str] = [str(target.address)]
    else:
        try:
            async with asyncio.timeout(dns_timeout):
                addresses = await resolve(target.host, target.port)
        except (OSError, TimeoutError):
            raise UnsafeEndpointError(
                f"endpoint host {target.host!r} does not resolve, so it cannot be checked",
                field=endpoint.ENDPOINT_FIELD,
            ) from None
    refused = refused_addresses(addresses)
    if refused or not addresses:
        raise UnsafeEndpointError(
            f"endpoint host {target.host!r} resolves to a non-public address "
            f"({', '.join(refused) or 'none'})",
            field=endpoint.ENDPOINT_FIELD,
        )
    return target


async def check_url(
    url: str,
    *,
    allow_private_addresses: bool,
    field: str,
    resolve: Resolver = system_resolve,
    dns_timeout: float = DNS_TIMEOUT_SECONDS,
) -> list[str] | None:
    """Accept a URL pushgate fetches on a tenant's behalf (a JWKS document): https, no user
    name, and a host whose every address is public unless `allow_private_addresses`.

    Returns:
        The checked addresses, for the caller to connect to (so DNS cannot change the answer
        between the check and the connection); None when private addresses are allowed.

    Raises:
        InvalidInputError: not an https URL.
        UnsafeEndpointError: userinfo, or a host that does not resolve or is not public.
    """
    try:
        parts = urlsplit(url)
        port = parts.port or 443
    except ValueError as exc:
        raise InvalidInputError(f"not a URL: {exc}", field=field) from None
    if parts.scheme.lower() != "https" or not parts.hostname:
        raise InvalidInputError("must be an https:// URL", field=field)
    if "@" in parts.netloc:
        raise UnsafeEndpointError("must not carry a user name or password", field=field)
    if allow_private_addresses:
        return None
    try:
        async with asyncio.timeout(dns_timeout):
            return await resolve_allowed(parts.hostname, port, endpoint.is_public_address, resolve)
    except RefusedAddressError as exc:
        raise UnsafeEndpointError(f"{exc}", field=field) from None
    except (OSError, TimeoutError):
        raise UnsafeEndpointError(
            f"host {parts.hostname!r} does not resolve, so it cannot be checked", field=field
        ) from None


AddressCheck = Callable[[endpoint.IPAddress], bool]
"""True for an address a sender may connect to (normally `endpoint.is_public_address`)."""


async def resolve_allowed(
    host: str, port: int, allowed: AddressCheck | None, resolve: Resolver = system_resolve
) -> list[str]:
    """The addresses a sender may connect to for host:port: the host itself when it is an IP
    literal, otherwise its DNS answers; every one must pass `allowed` (None: no check), as at
    registration: a host mixing public and private addresses is not a push service.

    Raises:
        RefusedAddressError: an address fails the check, or there is none.
        OSError: the lookup failed.
    """
    try:
        addresses: list[str] = [str(ipaddress.ip_address(host))]
    except ValueError:
        addresses = list(await resolve(host, port))
    if allowed is None:
        return addresses
    refused = [a for a in addresses if not address_allowed(a, allowed)]
    if refused or not addresses:
        raise RefusedAddressError(
            f"{host} resolves to a refused address ({', '.join(refused) or 'none'})"
        )
    return addresses


def address_allowed(host: str, allowed: AddressCheck) -> bool:
    """Whether an address given as text passes `allowed` (anything unparsable does not)."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return allowed(address)


async def check_webhook_url(
    url: str,
    *,
    allow_private_addresses: bool,
    resolve: Resolver = system_resolve,
    dns_timeout: float = DNS_TIMEOUT_SECONDS,
) -> str:
    """Accept a webhook URL by the Web Push endpoints' rule, on any host: https, no user
    info, and (unless `allow_private_addresses`) every address it resolves to public.

    Raises:
        InvalidInputError: code `invalid_webhook_url`, not a usable https URL.
        UnsafeEndpointError: the host does not resolve or is not public (field `url`).
    """
    policy = WebPushSettings(extra_hosts=["*"], allow_private_addresses=allow_private_addresses)
    try:
        await check_endpoint(url, policy, resolve=resolve, dns_timeout=dns_timeout)
    except UnsafeEndpointError as exc:
        raise UnsafeEndpointError(_webhook_message(exc.message), field="url") from None
    except InvalidInputError as exc:
        raise InvalidInputError(
            _webhook_message(exc.message), field="url", code="invalid_webhook_url"
        ) from None
    return url


def _webhook_message(message: str) -> str:
    return message.replace("endpoint", "webhook URL", 1)
