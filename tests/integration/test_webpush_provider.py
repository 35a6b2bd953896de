"""WebPushProvider against the fake push service over real TLS: delivery, every failure the
pipeline must survive, redirects, connection reuse, certificate checks and the SSRF hook."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from pushgate.domain.message import Message, Priority
from pushgate.domain.outcome import OutcomeKind
from pushgate.domain.vapid import VapidKeyPair, generate_key_pair
from pushgate.provider_settings import WebPushSettings
from pushgate.providers.base import Target
from pushgate.providers.webpush import VapidCredentials, WebPushProvider
from pushgate.settings import DeliverySettings
from tests.fakes.webpush_server import FakeWebPushService

MakeProvider = Callable[..., WebPushProvider]
# The hosts these tests reach the fake by, opened as an operator opens a self-hosted service.
OPENED_HOSTS = ("127.0.0.1", "localhost", "push.example.com")


@pytest.fixture
async def fake() -> AsyncIterator[FakeWebPushService]:
    async with FakeWebPushService() as service:
        yield service


@pytest.fixture
async def make_provider(fake: FakeWebPushService) -> AsyncIterator[MakeProvider]:
    providers: list[WebPushProvider] = []

    def make(
        *,
        timeout: float = 5.0,
        trust_fake: bool = True,
        extra_hosts: tuple[str, ...] = OPENED_HOSTS,
        **kwargs,
    ) -> WebPushProvider:
        provider = WebPushProvider(
            settings=WebPushSettings(
                ca_bundle=fake.ca_pem_path if trust_fake else None, extra_hosts=list(extra_hosts)
            ),
            delivery=DeliverySettings(request_timeout_seconds=timeout),
            **kwargs,
        )
        providers.append(provider)
        return provider

    yield make
    for provider in providers:
        await provider.close()


@pytest.fixture
def credentials() -> VapidCredentials:
    return VapidCredentials(generate_key_pair(), "mailto:ops@shop.example.com")


def target_of(subscription: dict[str, Any]) -> Target:
    keys = subscription["keys"]
    return Target(subscription["endpoint"], keys["p256dh"], keys["auth"])


async def test_messages_arrive_decrypted_and_intact(fake, make_provider, credentials):
    # Given
    provider = make_provider()
    subscriptions = [fake.new_subscription() for _ in range(20)]
    messages = [
        Message(title=f"Order {i}", body="Shipped ✓", data={"order": str(i)}, ttl=600)
        for i in range(20)
    ]

    # When
    outcomes = await asyncio.gather(
        *(
            provider.send(target_of(s), m, credentials)
            for s, m in zip(subscriptions, messages, strict=True)
        )
    )

    # Then
    assert [o.kind for o in outcomes] == [OutcomeKind.SENT] * 20
    assert all(o.message_id and o.message_id.startswith(fake.origin) for o in outcomes)
    assert len({o.message_id for o in outcomes}) == 20
    for i, subscription in enumerate(subscriptions):
        (arrived,) = fake.received_for(subscription)
        assert arrived.payload == {
            "title": f"Order {i}",
            "body": "Shipped ✓",
            "data": {"order": str(i)},
        }
        assert arrived.headers["ttl"] == "600"
        assert arrived.claims["sub"] == "mailto:ops@shop.example.com"


async def test_high_priority_and_collapse_key_reach_the_service(fake, make_provider, credentials):
    provider = make_provider()
    subscription = fake.new_subscription()
    message = Message(body="x", priority=Priority.HIGH, collapse_key="inbox")

    outcome = await provider.send(target_of(subscription), message, credentials)

    assert outcome.kind is OutcomeKind.SENT
    (arrived,) = fake.received
    assert arrived.headers["urgency"] == "high"
    assert arrived.headers["topic"] == "inbox"


@pytest.mark.parametrize("status", [404, 410])
async def test_a_gone_subscription_is_token_invalid(fake, make_provider, credentials, status):
    subscription = fake.new_subscription()
    fake.script(status, subscription=subscription, body=b'{"reason": "unsubscribed"}')

    outcome = await make_provider().send(target_of(subscription), Message(body="x"), credentials)

    assert outcome.kind is OutcomeKind.TOKEN_INVALID
    assert outcome.status_code == status
    assert fake.received == []


async def test_429_retries_after_what_the_service_asked(fake, make_provider, credentials):
    subscription = fake.new_subscription()
    fake.script(429, retry_after=30)
    provider = make_provider()

    throttled = await provider.send(target_of(subscription), Message(body="x"), credentials)
    later = await provider.send(target_of(subscription), Message(body="x"), credentials)

    assert throttled.kind is OutcomeKind.RETRY_LATER
    assert throttled.retry_after == 30.0
    assert later.kind is OutcomeKind.SENT


async def test_a_server_error_is_retried_later(fake, make_provider, credentials):
    subscription = fake.new_subscription()
    fake.script(500, times=None)

    outcome = await make_provider().send(target_of(subscription), Message(body="x"), credentials)

    assert outcome.kind is OutcomeKind.RETRY_LATER
    assert outcome.status_code == 500


async def test_an_answer_slower_than_the_timeout_is_retried_later(fake, make_provider, credentials):
    subscription = fake.new_subscription()
    fake.script(None, delay=2.0)
    provider = make_provider(timeout=0.3)

    outcome = await provider.send(target_of(subscription), Message(body="x"), credentials)

    assert outcome.kind is OutcomeKind.RETRY_LATER
    assert outcome.status_code is None
    assert "no answer within 0.3 s" in outcome.error
    assert (await provider.send(target_of(subscription), Message(body="x"), credentials)).kind is (
        OutcomeKind.SENT
    )


async def test_a_redirect_is_not_followed(fake, make_provider, credentials):
    subscription, elsewhere = fake.new_subscription(), fake.new_subscription()
    fake.script(307, subscription=subscription, headers={"Location": elsewhere["endpoint"]})

    outcome = await make_provider().send(target_of(subscription), Message(body="x"), credentials)

    assert outcome.kind is OutcomeKind.REJECTED
    assert outcome.status_code == 307
    assert fake.requests == 1
    assert fake.received_for(elsewhere) == []


async def test_a_wrong_vapid_key_raises_a_credential_alarm(fake, make_provider, credentials):
    subscription = fake.new_subscription()
    # The public key sent as `k` does not match the key that signed the JWT.
    mismatched = VapidCredentials(
        VapidKeyPair(
            private_key=credentials.key_pair.private_key,
            public_key=generate_key_pair().public_key,
        ),
        credentials.subject,
    )

    outcome = await make_provider().send(target_of(subscription), Message(body="x"), mismatched)

    assert outcome.kind is OutcomeKind.CREDENTIAL_ALARM
    assert outcome.status_code == 401
    assert fake.received == []


async def test_many_sends_reuse_a_few_tls_connections(fake, make_provider, credentials):
    provider = make_provider(limit_per_host=4)
    subscriptions = [fake.new_subscription() for _ in range(10)]

    for _ in range(10):
        outcomes = await asyncio.gather(
            *(provider.send(target_of(s), Message(body="x"), credentials) for s in subscriptions)
        )
        assert {o.kind for o in outcomes} == {OutcomeKind.SENT}

    assert fake.requests == 100
    assert 1 <= fake.tls_handshakes <= 4


async def test_an_untrusted_certificate_is_an_outcome_not_an_exception(
    fake, make_provider, credentials
):
    subscription = fake.new_subscription()
    provider = make_provider(trust_fake=False)

    outcome = await provider.send(target_of(subscription), Message(body="x"), credentials)

    assert outcome.kind is OutcomeKind.RETRY_LATER
    assert "certificate" in outcome.error.lower()
    assert fake.requests == 0


async def test_the_address_check_refuses_a_loopback_endpoint(fake, make_provider, credentials):
    subscription = fake.new_subscription()
    provider = make_provider(address_allowed=lambda ip: not ip.is_loopback)
    by_name = target_of(subscription)
    by_name = Target(by_name.token.replace("127.0.0.1", "localhost"), by_name.p256dh, by_name.auth)

    literal = await provider.send(target_of(subscription), Message(body="x"), credentials)
    resolved = await provider.send(by_name, Message(body="x"), credentials)

    assert literal.kind is OutcomeKind.REJECTED
    assert "SSRF" in literal.error
    assert resolved.kind is OutcomeKind.REJECTED
    assert "localhost" in resolved.error
    assert fake.requests == 0


async def test_an_endpoint_whose_addresses_pass_the_check_is_delivered(
    fake, make_provider, credentials
):
    # By name, so the connection goes through the guarded resolver.
    subscription = fake.new_subscription()
    seen: list[str] = []

    def allowed(ip) -> bool:
        seen.append(str(ip))
        return True

    provider = make_provider(address_allowed=allowed)
    target = target_of(subscription)
    target = Target(target.token.replace("127.0.0.1", "localhost"), target.p256dh, target.auth)

    outcome = await provider.send(target, Message(body="x"), credentials)

    assert outcome.kind is OutcomeKind.SENT
    assert "127.0.0.1" in seen
    assert fake.received[0].claims["aud"] == f"https://localhost:{fake.port}"


async def test_an_unusable_subscription_is_token_invalid_without_a_request(
    fake, make_provider, credentials
):
    subscription = fake.new_subscription()
    broken = Target(subscription["endpoint"], "B" + "A" * 86, subscription["keys"]["auth"])

    outcome = await make_provider().send(broken, Message(body="x"), credentials)

    assert outcome.kind is OutcomeKind.TOKEN_INVALID
    assert fake.requests == 0


async def test_a_closed_provider_asks_for_a_retry(fake, make_provider, credentials):
    provider = make_provider()
    await provider.close()

    outcome = await provider.send(
        target_of(fake.new_subscription()), Message(body="x"), credentials
    )

    assert outcome.kind is OutcomeKind.RETRY_LATER


async def test_the_fake_speaks_http2_and_refuses_requests_without_vapid(fake):
    subscription = fake.new_subscription()
    async with httpx.AsyncClient(http2=True, verify=fake.client_ssl_context()) as client:
        response = await client.post(
            subscription["endpoint"],
            content=b"\x00" * 100,
            headers={"TTL": "60", "Content-Encoding": "aes128gcm"},
        )

    assert response.http_version == "HTTP/2"
    assert response.status_code == 401
    assert fake.http_versions["2"] == 1


def static_resolve(*addresses: str) -> Callable[[str, int], Any]:
    """A DNS answer an attacker controls: every lookup gets these addresses."""

    async def resolve(host: str, port: int) -> list[str]:
        return list(addresses)

    return resolve


@pytest.mark.parametrize(
    "answers",
    [("93.184.215.14", "10.0.0.5"), ("169.254.169.254",), ()],
    ids=["mixed", "metadata", "empty"],
)
async def test_a_host_with_any_refused_address_is_refused(make_provider, credentials, answers):
    provider = make_provider(
        address_allowed=lambda ip: ip.is_global, resolve=static_resolve(*answers)
    )
    target = Target("https://push.example.com/p/1", _KEYS["p256dh"], _KEYS["auth"])

    outcome = await provider.send(target, Message(body="x"), credentials)

    assert outcome.kind is OutcomeKind.REJECTED
    assert "SSRF" in outcome.error
    assert provider.connections_made == 0


async def test_a_host_rebound_after_registration_is_refused_at_send_time(
    fake, make_provider, credentials
):
    # Registered while the name was public; DNS now answers loopback (rebinding).
    subscription = fake.new_subscription()
    target = target_of(subscription)
    by_name = Target(
        target.token.replace("127.0.0.1", "push.example.com"), target.p256dh, target.auth
    )
    provider = make_provider(
        address_allowed=lambda ip: ip.is_global, resolve=static_resolve("127.0.0.1")
    )

    outcome = await provider.send(by_name, Message(body="x"), credentials)

    assert outcome.kind is OutcomeKind.REJECTED
    assert "127.0.0.1" in outcome.error
    assert fake.requests == 0


async def test_an_endpoint_outside_the_host_policy_is_rejected_at_send(
    fake, make_provider, credentials
):
    # Registered while an operator allowed its host; the worker now runs without that host.
    subscription = fake.new_subscription()
    provider = make_provider(extra_hosts=("localhost",))

    first = await provider.send(target_of(subscription), Message(body="x"), credentials)
    again = await provider.send(target_of(subscription), Message(body="y"), credentials)

    for outcome in (first, again):
        assert outcome.kind is OutcomeKind.REJECTED
        assert "endpoint policy" in outcome.error
        assert "PUSHGATE_WEBPUSH__EXTRA_HOSTS" in outcome.error
    assert fake.requests == 0
    assert provider.connections_made == 0


async def test_a_known_push_service_on_another_port_is_rejected_at_send(make_provider, credentials):
    async def must_not_resolve(host: str, port: int) -> list[str]:
        raise AssertionError(f"resolved {host}:{port}")

    provider = make_provider(address_allowed=lambda ip: ip.is_global, resolve=must_not_resolve)
    target = Target("https://fcm.googleapis.com:8443/fcm/send/x", _KEYS["p256dh"], _KEYS["auth"])

    outcome = await provider.send(target, Message(body="x"), credentials)

    assert outcome.kind is OutcomeKind.REJECTED
    assert "port 443" in outcome.error
    assert provider.connections_made == 0


# RFC 8291 Appendix A's subscription keys: a valid P-256 point and auth secret.
_KEYS = {
    "p256dh": (
        "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
    ),
    "auth": "BTBZMqHH6r4Tts7J_aSIgg",
}
