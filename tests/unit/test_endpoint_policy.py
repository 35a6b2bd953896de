"""The Web Push endpoint SSRF policy: known hosts, opened hosts, address classes, DNS answers.

No test here touches the network: name resolution is injected.
"""

from __future__ import annotations

import asyncio
import re
import socket

import pytest

from pushgate import netguard
from pushgate.domain import endpoint
from pushgate.errors import InvalidInputError, UnsafeEndpointError
from pushgate.provider_settings import WebPushSettings

DEFAULT = WebPushSettings()
OPEN = WebPushSettings(extra_hosts=["*"])
OPEN_PRIVATE = WebPushSettings(extra_hosts=["*"], allow_private_addresses=True)

PRIVATE_ADDRESSES = [
    "127.0.0.1",
    "127.8.9.10",
    "10.1.2.3",
    "172.16.0.1",
    "172.31.255.254",
    "192.168.1.1",
    "169.254.169.254",
    "169.254.1.1",
    "100.64.0.1",
    "100.127.255.254",
    "0.0.0.0",
    "0.1.2.3",
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "192.0.0.8",
    "192.0.2.10",
    "198.51.100.7",
    "203.0.113.9",
    "198.18.0.1",
    "::",
    "::1",
    "fd00:ec2::254",
    "fc00::1",
    "fe80::1",
    "fec0::1",
    "ff02::1",
    "2001:db8::1",
    "::ffff:127.0.0.1",
    "::ffff:169.254.169.254",
    "::ffff:10.0.0.1",
    "::127.0.0.1",
    "64:ff9b::a9fe:a9fe",
    "2002:7f00:1::1",
    "2002:a9fe:a9fe::1",
]
PUBLIC_ADDRESSES = [
    "8.8.8.8",
    "142.250.74.10",
    "17.188.128.1",
    "2606:4700:4700::1111",
    "2a00:1450:4001:80b::200a",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",
]


async def must_not_resolve(host: str, port: int) -> list[str]:
    raise AssertionError(f"resolved {host}:{port}, but the policy needs no DNS here")


def answers(*addresses: str) -> netguard.Resolver:
    async def resolve(host: str, port: int) -> list[str]:
        return list(addresses)

    return resolve


@pytest.mark.parametrize("address", PRIVATE_ADDRESSES)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert not endpoint.is_public_address(address)


@pytest.mark.parametrize("address", PUBLIC_ADDRESSES)
def test_public_addresses_are_allowed(address: str) -> None:
    assert endpoint.is_public_address(address)


@pytest.mark.parametrize("text", ["", "localhost", "999.1.1.1", "not an address"])
def test_unparsable_address_is_not_public(text: str) -> None:
    assert not endpoint.is_public_address(text)


@pytest.mark.parametrize(
    "url",
    [
        "https://fcm.googleapis.com/fcm/send/abc:def",
        "https://jmt17.google.com.googleapis.com/x",
        "https://updates.push.services.mozilla.com/wpush/v2/gAAAA",
        "https://push.services.mozilla.com.mozaws.net/x",
        "https://wns2-par02p.notify.windows.com/w/?token=AwYAAAB",
        "https://web.push.apple.com/QGuQyavXutnMH",
        "https://api.push.apple.com/x",
        "https://FCM.GoogleAPIs.com./fcm/send/abc",
    ],
)
async def test_known_push_services_pass_without_dns(url: str) -> None:
    # Given the default policy
    # When a known push service's endpoint is checked
    target = await netguard.check_endpoint(url, DEFAULT, resolve=must_not_resolve)
    # Then it passes by name alone
    assert target.known


@pytest.mark.parametrize(
    "url",
    [
        "https://push.example.net/x",
        "https://fcm.googleapis.com.evil.example/x",
        "https://evilgoogleapis.com/x",
        "https://googleapis.com/x",
        "https://apple.com/x",
        "https://127.0.0.1/x",
        "https://[::1]/x",
        "https://169.254.169.254/latest/meta-data/",
    ],
)
async def test_unknown_hosts_are_refused_by_default(url: str) -> None:
    with pytest.raises(UnsafeEndpointError) as caught:
        await netguard.check_endpoint(url, DEFAULT, resolve=must_not_resolve)
    assert caught.value.code == "unsafe_endpoint"
    assert caught.value.field == "subscription.endpoint"


@pytest.mark.parametrize(
    "url",
    [
        "http://fcm.googleapis.com/fcm/send/abc",
        "ftp://fcm.googleapis.com/x",
        "fcm.googleapis.com/fcm/send/abc",
        "https://fcm.googleapis.com/" + "a" * 2048,
        "https://fcm.googleapis.com/a\nb",
        "https://fcm.google\tapis.com/a",
        "https://fcm.googleapis.com/a b",
        "https://fcm.googleapis.com:99999/x",
        "https://fcm.googleapis.com:port/x",
    ],
)
def test_malformed_endpoints_are_invalid_subscriptions(url: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        endpoint.parse_endpoint(url)
    assert caught.value.code == "invalid_subscription"
    assert caught.value.field == "subscription.endpoint"


@pytest.mark.parametrize(
    "url",
    [
        "https://user@fcm.googleapis.com/fcm/send/abc",
        "https://user:secret@fcm.googleapis.com/fcm/send/abc",
        "https://fcm.googleapis.com@127.0.0.1/x",
        "https://evil.example\\@fcm.googleapis.com/x",
        "https:///fcm/send/abc",
        "https://:443/x",
        "https://fcm.googleapis.com:0/x",
        "https://fcm.googleapis.com\\.evil.example/x",
        "https://fcm.googleapis.cöm/x",
        "https://[fe80::1%25eth0]/x",
        "https://-bad-.example/x",
    ],
)
def test_odd_urls_are_refused_even_when_every_host_is_open(url: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        endpoint.parse_endpoint(url, extra_hosts=["*"])
    assert caught.value.code in {"unsafe_endpoint", "invalid_subscription"}


@pytest.mark.parametrize(
    "url",
    [
        "https://2130706433/x",
        "https://0x7f.1/x",
        "https://127.1/x",
        "https://0177.0.0.1/x",
    ],
)
async def test_numeric_hosts_that_resolvers_read_as_addresses_are_refused(url: str) -> None:
    # Given every host opened, private addresses still refused
    # When a host that getaddrinfo would read as 127.0.0.1 is checked
    # Then it is refused without asking DNS
    with pytest.raises(UnsafeEndpointError):
        await netguard.check_endpoint(url, OPEN, resolve=must_not_resolve)


@pytest.mark.parametrize(
    "address", ["127.0.0.1", "10.0.0.5", "169.254.169.254", "[::1]", "[fd00:ec2::254]"]
)
async def test_private_literals_are_refused_when_hosts_are_opened(address: str) -> None:
    url = f"https://{address}:8443/push/1"
    with pytest.raises(UnsafeEndpointError):
        await netguard.check_endpoint(url, OPEN, resolve=must_not_resolve)


async def test_private_literals_pass_when_private_addresses_are_allowed() -> None:
    target = await netguard.check_endpoint(
        "https://127.0.0.1:8443/push/1",
        OPEN_PRIVATE,
        resolve=must_not_resolve,
    )
    assert (target.host, target.port, target.known) == ("127.0.0.1", 8443, False)


async def test_public_literal_passes_an_opened_policy() -> None:
    target = await netguard.check_endpoint("https://8.8.8.8/x", OPEN, resolve=must_not_resolve)
    assert str(target.address) == "8.8.8.8"


async def test_opened_name_passes_when_every_answer_is_public() -> None:
    policy = WebPushSettings(extra_hosts=["push.example.net"])
    target = await netguard.check_endpoint(
        "https://push.example.net/x", policy, resolve=answers("93.184.215.14", "2606:2800::1")
    )
    assert target.host == "push.example.net"


async def test_opened_name_is_refused_when_any_answer_is_private() -> None:
    # Given a name whose DNS answer mixes a public and a metadata address (a rebinding set-up)
    policy = WebPushSettings(extra_hosts=["*.example.net"])
    resolve = answers("93.184.215.14", "169.254.169.254")
    # When it is checked, Then it is refused and the message names the bad address
    with pytest.raises(UnsafeEndpointError, match=re.escape("169.254.169.254")):
        await netguard.check_endpoint("https://push.example.net/x", policy, resolve=resolve)


async def test_name_that_does_not_resolve_is_refused() -> None:
    async def fail(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(UnsafeEndpointError, match="does not resolve"):
        await netguard.check_endpoint("https://push.example.net/x", OPEN, resolve=fail)


async def test_empty_dns_answer_is_refused() -> None:
    with pytest.raises(UnsafeEndpointError):
        await netguard.check_endpoint("https://push.example.net/x", OPEN, resolve=answers())


async def test_slow_dns_is_refused_after_the_timeout() -> None:
    async def hang(host: str, port: int) -> list[str]:
        await asyncio.sleep(30)
        return ["93.184.215.14"]

    with pytest.raises(UnsafeEndpointError, match="does not resolve"):
        await netguard.check_endpoint(
            "https://push.example.net/x", OPEN, resolve=hang, dns_timeout=0.01
        )


@pytest.mark.parametrize(
    ("host", "pattern", "matches"),
    [
        ("push.example.net", "push.example.net", True),
        ("push.example.net", "*.example.net", True),
        ("a.b.example.net", "*.example.net", True),
        ("example.net", "*.example.net", False),
        ("badexample.net", "*.example.net", False),
        ("push.example.net", "example.net", False),
        ("anything.test", "*", True),
        ("push.example.net", "PUSH.Example.NET.", True),
    ],
)
def test_extra_host_patterns(host: str, pattern: str, matches: bool) -> None:
    assert endpoint.host_matches(host, pattern) is matches


def test_extra_hosts_open_only_what_they_name() -> None:
    opened = ["push.example.net", "*.corp.example"]
    assert endpoint.parse_endpoint("https://a.corp.example/x", extra_hosts=opened)
    with pytest.raises(UnsafeEndpointError):
        endpoint.parse_endpoint("https://other.example.net/x", extra_hosts=opened)


def fixed(*addresses: str) -> netguard.Resolver:
    async def resolve(host: str, port: int) -> list[str]:
        return list(addresses)

    return resolve


async def test_send_time_resolution_refuses_a_host_rebound_to_a_private_address() -> None:
    # Given a host that now resolves to loopback
    # When the sender resolves it, Then the connection is refused
    with pytest.raises(netguard.RefusedAddressError, match=re.escape("127.0.0.1")):
        await netguard.resolve_allowed(
            "push.example.net", 443, endpoint.is_public_address, fixed("127.0.0.1")
        )


@pytest.mark.parametrize(
    "answers", [("93.184.215.14", "10.0.0.5"), ("169.254.169.254",), ()], ids=str
)
async def test_send_time_resolution_refuses_any_refused_or_no_address(
    answers: tuple[str, ...],
) -> None:
    with pytest.raises(netguard.RefusedAddressError):
        await netguard.resolve_allowed(
            "push.example.net", 443, endpoint.is_public_address, fixed(*answers)
        )


async def test_send_time_resolution_passes_public_answers_through() -> None:
    found = await netguard.resolve_allowed(
        "push.example.net", 443, endpoint.is_public_address, fixed("93.184.215.14")
    )
    assert found == ["93.184.215.14"]


async def test_send_time_resolution_checks_ip_literals_without_dns() -> None:
    async def no_dns(host: str, port: int) -> list[str]:
        raise AssertionError("an IP literal must not be looked up")

    with pytest.raises(netguard.RefusedAddressError):
        await netguard.resolve_allowed("10.1.2.3", 443, endpoint.is_public_address, no_dns)
    assert await netguard.resolve_allowed("10.1.2.3", 443, None, no_dns) == ["10.1.2.3"]


async def test_send_time_resolution_allows_private_answers_when_configured() -> None:
    found = await netguard.resolve_allowed("localhost", 8443, lambda _ip: True, fixed("127.0.0.1"))
    assert found == ["127.0.0.1"]


@pytest.mark.parametrize(
    "url",
    [
        "https://fcm.googleapis.com:8443/fcm/send/abc",
        "https://updates.push.services.mozilla.com:80/wpush/v2/x",
        "https://web.push.apple.com:444/x",
        "https://wns2-par02p.notify.windows.com:65535/w/",
    ],
)
async def test_known_push_services_are_refused_on_any_port_but_443(url: str) -> None:
    with pytest.raises(UnsafeEndpointError) as caught:
        await netguard.check_endpoint(url, DEFAULT, resolve=must_not_resolve)
    assert "port 443" in caught.value.message


async def test_known_push_services_pass_on_an_explicit_443() -> None:
    url = "https://fcm.googleapis.com:443/fcm/send/abc"
    target = await netguard.check_endpoint(url, DEFAULT, resolve=must_not_resolve)
    assert target.known
    assert target.port == 443


async def test_an_opened_known_name_on_another_port_is_an_extra_host_checked_by_dns() -> None:
    # An operator's explicit entry opens the port, but then the name is not trusted blindly.
    policy = WebPushSettings(extra_hosts=["fcm.googleapis.com"])
    url = "https://fcm.googleapis.com:8443/x"

    target = await netguard.check_endpoint(url, policy, resolve=answers("142.250.74.10"))

    assert not target.known
    with pytest.raises(UnsafeEndpointError):
        await netguard.check_endpoint(url, policy, resolve=answers("10.0.0.1"))


def test_the_send_time_host_policy_follows_the_current_extra_hosts() -> None:
    url = "https://push.example.net/p/1"
    opened = endpoint.HostPolicy(["*.example.net"])
    narrowed = endpoint.HostPolicy([])

    assert opened.refusal(url) is None
    refusal = narrowed.refusal(url)
    assert refusal is not None
    assert "PUSHGATE_WEBPUSH__EXTRA_HOSTS" in refusal
    assert narrowed.refusal("https://fcm.googleapis.com/fcm/send/abc") is None
    port_refusal = narrowed.refusal("https://fcm.googleapis.com:8443/fcm/send/abc")
    assert port_refusal is not None
    assert "port 443" in port_refusal


def test_the_send_time_host_policy_judges_each_authority_once() -> None:
    policy = endpoint.HostPolicy([])
    refused = [f"https://push.example.net/p/{i}" for i in range(3)]
    allowed = [f"https://fcm.googleapis.com/fcm/send/{i}" for i in range(3)]

    verdicts = [policy.refusal(url) for url in refused + allowed]

    assert verdicts[0] is not None
    assert verdicts[:3] == [verdicts[0]] * 3
    assert verdicts[3:] == [None] * 3
    assert len(policy._verdicts) == 2


def test_the_send_time_host_policy_cache_is_bounded() -> None:
    policy = endpoint.HostPolicy(["*"], max_entries=4)
    for i in range(10):
        assert policy.refusal(f"https://h{i}.example.net/x") is None
    assert len(policy._verdicts) <= 4
