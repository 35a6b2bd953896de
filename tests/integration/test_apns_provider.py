"""APNSProvider against the fake APNs over real TLS + HTTP/2: headers and payloads, every scripted
reason, provider-token refresh under the 20-minute floor, connection and token reuse, one stream
until the token is accepted, GOAWAY mid-batch, PING health checks, flow control, timeouts."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Callable

import jwt
import pytest
import uvloop

from pushgate.domain.message import Message, Priority
from pushgate.domain.outcome import OutcomeKind
from pushgate.providers.apns import APNSProvider
from pushgate.providers.apns_credentials import APNSCredentials
from pushgate.providers.base import Target
from tests.fakes.apns_server import FakeAPNs

MakeProvider = Callable[..., APNSProvider]


class Clock:
    def __init__(self) -> None:
        import time

        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, minutes: float) -> None:
        self.now += minutes * 60


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def fake(clock) -> AsyncIterator[FakeAPNs]:
    async with FakeAPNs(clock=clock) as service:
        yield service


@pytest.fixture
async def make_provider(fake, clock) -> AsyncIterator[MakeProvider]:
    providers: list[APNSProvider] = []

    def make(*, trust_fake: bool = True, **kwargs) -> APNSProvider:
        options = {
            "production_url": fake.url,
            "sandbox_url": fake.url,
            "ca_file": str(fake.ca_pem_path) if trust_fake else None,
            "timeout": 5.0,
            "clock": clock,
        } | kwargs
        provider = APNSProvider(**options)
        providers.append(provider)
        return provider

    yield make
    for provider in providers:
        await provider.close()


@pytest.fixture
def credentials(fake) -> APNSCredentials:
    return APNSCredentials(fake.key_pem, fake.key_id, fake.team_id, fake.topic, "sandbox")


def token(i: int) -> str:
    return f"{i:064x}"


async def test_a_batch_arrives_with_correct_headers_and_payloads(fake, make_provider, credentials):
    # Given
    provider = make_provider()
    messages = [
        Message(title=f"Order {i}", body="Shipped ✓", data={"order": str(i)}, ttl=600)
        for i in range(20)
    ]

    # When
    outcomes = await asyncio.gather(
        *(provider.send(Target(token(i)), m, credentials) for i, m in enumerate(messages))
    )

    # Then
    assert [o.kind for o in outcomes] == [OutcomeKind.SENT] * 20
    for i, outcome in enumerate(outcomes):
        (arrived,) = fake.received_for(token(i))
        assert arrived.payload == {
            "order": str(i),
            "aps": {"alert": {"title": f"Order {i}", "body": "Shipped ✓"}},
        }
        assert arrived.headers["apns-topic"] == "com.example.shop"
        assert arrived.headers["apns-push-type"] == "alert"
        assert arrived.headers["apns-priority"] == "5"
        assert int(arrived.headers["apns-expiration"]) == pytest.approx(fake.clock() + 600, abs=2)
        assert outcome.message_id == arrived.headers["apns-id"]
        assert uuid.UUID(outcome.message_id or "")
        assert arrived.claims["iss"] == fake.team_id


async def test_background_and_voip_pushes_pass_apns_checks(fake, make_provider, credentials):
    provider = make_provider()
    background = Message(priority=Priority.HIGH, apns={"aps": {"content-available": 1}})

    sent = [
        await provider.send(Target(token(1)), background, credentials),
        await provider.send(Target(token(2)), Message(body="ring"), credentials, push_type="voip"),
    ]

    assert [o.kind for o in sent] == [OutcomeKind.SENT] * 2
    assert fake.received[0].headers["apns-push-type"] == "background"
    assert fake.received[0].headers["apns-priority"] == "5"
    assert fake.received[1].headers["apns-topic"] == "com.example.shop.voip"


@pytest.mark.parametrize(
    ("reason", "kind"),
    [
        ("BadDeviceToken", OutcomeKind.TOKEN_INVALID),
        ("DeviceTokenNotForTopic", OutcomeKind.TOKEN_INVALID),
        ("Unregistered", OutcomeKind.TOKEN_INVALID),
        ("BadTopic", OutcomeKind.REJECTED),
        ("PayloadTooLarge", OutcomeKind.REJECTED),
        ("InvalidProviderToken", OutcomeKind.CREDENTIAL_ALARM),
        ("Forbidden", OutcomeKind.CREDENTIAL_ALARM),
        ("TooManyRequests", OutcomeKind.RETRY_LATER),
        ("TooManyProviderTokenUpdates", OutcomeKind.RETRY_LATER),
        ("InternalServerError", OutcomeKind.RETRY_LATER),
        ("ServiceUnavailable", OutcomeKind.RETRY_LATER),
        ("Shutdown", OutcomeKind.RETRY_LATER),
    ],
)
async def test_each_scripted_reason_gives_its_outcome(
    fake, make_provider, credentials, reason, kind
):
    fake.script(reason, token=token(7), timestamp=1_700_000_000_000)

    outcome = await make_provider().send(Target(token(7)), Message(body="x"), credentials)

    assert outcome.kind is kind
    assert reason in outcome.error
    assert fake.received == []


async def test_410_after_the_device_re_registered_does_not_invalidate_it(
    fake, make_provider, credentials
):
    fake.script("Unregistered", timestamp=1_700_000_000_000)

    outcome = await make_provider().send(
        Target(token(1)), Message(body="x"), credentials, device_registered_at=1_700_000_100.0
    )

    assert outcome.kind is OutcomeKind.REJECTED


async def test_shutdown_moves_later_sends_to_a_new_connection(fake, make_provider, credentials):
    provider = make_provider()
    assert (await provider.send(Target(token(1)), Message(body="x"), credentials)).kind == "sent"
    fake.script("Shutdown")

    assert (await provider.send(Target(token(2)), Message(body="x"), credentials)).kind == (
        "retry_later"
    )
    assert (await provider.send(Target(token(3)), Message(body="x"), credentials)).kind == "sent"

    assert fake.tls_handshakes == 2
    assert fake.received[-1].connection == 1


async def test_expired_provider_token_is_refreshed_and_retried_once_after_the_floor(
    fake, make_provider, credentials, clock
):
    # Given: a token minted 25 minutes ago (past the 20-minute floor)
    provider = make_provider()
    await provider.send(Target(token(1)), Message(body="x"), credentials)
    clock.advance(25)
    fake.script("ExpiredProviderToken")

    # When
    outcome = await provider.send(Target(token(2)), Message(body="x"), credentials)

    # Then: one refusal, one fresh token, one retry that succeeded
    assert outcome.kind is OutcomeKind.SENT
    assert [a[2] for a in fake.answers] == ["", "ExpiredProviderToken", ""]
    assert len(fake.jwts) == 2
    assert fake.received[-1].claims["iat"] == int(clock())


async def test_expired_provider_token_within_the_floor_is_not_refreshed(
    fake, make_provider, credentials, clock
):
    provider = make_provider()
    await provider.send(Target(token(1)), Message(body="x"), credentials)
    clock.advance(10)
    fake.script("ExpiredProviderToken")

    outcome = await provider.send(Target(token(2)), Message(body="x"), credentials)

    assert outcome.kind is OutcomeKind.RETRY_LATER
    assert "20 minutes" in outcome.error
    assert len(fake.answers) == 2  # no retry
    assert len(fake.jwts) == 1


async def test_a_retry_refused_again_is_not_retried_a_second_time(
    fake, make_provider, credentials, clock
):
    provider = make_provider()
    await provider.send(Target(token(1)), Message(body="x"), credentials)
    clock.advance(30)
    fake.script("ExpiredProviderToken", times=2)

    outcome = await provider.send(Target(token(2)), Message(body="x"), credentials)

    assert outcome.kind is OutcomeKind.RETRY_LATER
    assert len(fake.answers) == 3
    assert len(fake.jwts) == 2


async def test_tokens_older_than_50_minutes_are_renewed_before_apns_refuses_them(
    fake, make_provider, credentials, clock
):
    provider = make_provider()
    await provider.send(Target(token(1)), Message(body="x"), credentials)
    clock.advance(55)

    outcome = await provider.send(Target(token(2)), Message(body="x"), credentials)

    assert outcome.kind is OutcomeKind.SENT
    assert len(fake.jwts) == 2
    assert [a[2] for a in fake.answers] == ["", ""]


async def test_many_sends_share_one_connection_and_one_token(fake, make_provider, credentials):
    provider = make_provider(max_streams=1000)

    outcomes = await asyncio.gather(
        *(provider.send(Target(token(i)), Message(body="x"), credentials) for i in range(200))
    )

    assert {o.kind for o in outcomes} == {OutcomeKind.SENT}
    assert fake.tls_handshakes == 1
    assert len(fake.jwts) == 1
    (connection,) = fake.connections
    # One stream until the token was accepted, as Apple requires; then multiplexed.
    assert connection.max_open_before_success == 1
    assert connection.max_open_streams > 1


async def test_a_full_connection_opens_a_second_one_with_the_same_token(
    fake, make_provider, credentials
):
    provider = make_provider(max_streams=50)
    await provider.send(Target(token(999)), Message(body="warm"), credentials)
    fake.script(None, delay=0.2, times=None)  # keep streams open so they pile up

    outcomes = await asyncio.gather(
        *(provider.send(Target(token(i)), Message(body="x"), credentials) for i in range(80))
    )

    assert {o.kind for o in outcomes} == {OutcomeKind.SENT}
    assert fake.tls_handshakes == 2
    assert len(fake.jwts) == 1
    assert max(c.max_open_streams for c in fake.connections) == 50


async def test_a_refused_token_keeps_the_connection_at_one_stream(fake, make_provider):
    other_key = fake.add_key("OTHERKEY01")
    wrong_team = APNSCredentials(other_key, "OTHERKEY01", "WRONGTEAM1", fake.topic, "sandbox")
    provider = make_provider()

    outcomes = await asyncio.gather(
        *(provider.send(Target(token(i)), Message(body="x"), wrong_team) for i in range(10))
    )

    assert {o.kind for o in outcomes} == {OutcomeKind.CREDENTIAL_ALARM}
    assert len(fake.answers) == 10
    assert fake.tls_handshakes == 1
    assert fake.connections[0].max_open_streams == 1


async def test_goaway_mid_batch_loses_nothing(fake, make_provider, credentials):
    # Given: a warm connection, and APNs going away after 30 more streams
    provider = make_provider()
    await provider.send(Target(token(999)), Message(body="warm"), credentials)
    fake.goaway_after(30)

    # When
    outcomes = await asyncio.gather(
        *(provider.send(Target(token(i)), Message(body=str(i)), credentials) for i in range(100))
    )

    # Then: all 100 sent, each exactly once, some on a second connection
    assert [o.kind for o in outcomes] == [OutcomeKind.SENT] * 100
    tokens = [r.token for r in fake.received if r.token != token(999)]
    assert sorted(tokens) == sorted(token(i) for i in range(100))
    assert fake.connections[0].goaway_sent
    assert fake.tls_handshakes == 2
    assert {r.connection for r in fake.received} == {0, 1}


async def test_an_idle_connection_that_stopped_answering_is_replaced(
    fake, make_provider, credentials
):
    provider = make_provider(idle_ping_after=0.0, timeout=3.0)
    await provider.send(Target(token(1)), Message(body="x"), credentials)
    fake.freeze()  # a half-open link: no FIN, no answers

    outcome = await provider.send(Target(token(2)), Message(body="x"), credentials)

    assert outcome.kind is OutcomeKind.SENT
    assert fake.tls_handshakes == 2
    assert fake.received[-1].connection == 1


async def test_an_idle_healthy_connection_is_pinged_and_kept(fake, make_provider, credentials):
    provider = make_provider(idle_ping_after=0.0)
    await provider.send(Target(token(1)), Message(body="x"), credentials)

    await provider.send(Target(token(2)), Message(body="x"), credentials)

    assert fake.pings >= 1
    assert fake.tls_handshakes == 1


async def test_payloads_larger_than_the_stream_window_wait_for_window_updates(clock, credentials):
    async with FakeAPNs(clock=clock, initial_window_size=1000) as small_window:
        creds = APNSCredentials(
            small_window.key_pem, small_window.key_id, small_window.team_id, small_window.topic
        )
        provider = APNSProvider(
            production_url=small_window.url, ca_file=str(small_window.ca_pem_path), clock=clock
        )
        try:
            # Warm up first: h2 (the fake's library) fails a stream whose window a late
            # SETTINGS shrinks below zero, which RFC 9113 section 6.9.2 allows.
            await provider.send(Target(token(99)), Message(body="warm"), creds)
            outcomes = await asyncio.gather(
                *(
                    provider.send(Target(token(i)), Message(body="x" * 4000), creds)
                    for i in range(5)
                )
            )
        finally:
            await provider.close()

    assert {o.kind for o in outcomes} == {OutcomeKind.SENT}
    assert [r.payload["aps"]["alert"]["body"] for r in small_window.received[1:]] == [
        "x" * 4000
    ] * 5


async def test_a_slow_answer_times_out_as_retry_later(fake, make_provider, credentials):
    fake.script(None, delay=3.0)

    outcome = await make_provider(timeout=0.3).send(
        Target(token(1)), Message(body="x"), credentials
    )

    assert outcome.kind is OutcomeKind.RETRY_LATER
    assert "within 0.3 s" in outcome.error


async def test_an_untrusted_certificate_is_retry_later(fake, make_provider, credentials):
    outcome = await make_provider(trust_fake=False).send(
        Target(token(1)), Message(body="x"), credentials
    )

    assert outcome.kind is OutcomeKind.RETRY_LATER
    assert "certificate" in outcome.error
    assert fake.received == []


async def test_a_refused_connection_is_retry_later(make_provider, credentials):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = make_provider(sandbox_url=f"https://127.0.0.1:{port}")

    outcome = await provider.send(Target(token(1)), Message(body="x"), credentials)

    assert outcome.kind is OutcomeKind.RETRY_LATER


async def test_a_non_hex_token_is_invalid_without_a_request(fake, make_provider, credentials):
    outcome = await make_provider().send(Target("not-a-token"), Message(body="x"), credentials)

    assert outcome.kind is OutcomeKind.TOKEN_INVALID
    assert fake.answers == []


async def test_an_oversized_payload_is_rejected_without_a_request(fake, make_provider, credentials):
    outcome = await make_provider().send(Target(token(1)), Message(body="x" * 5000), credentials)

    assert outcome.kind is OutcomeKind.REJECTED
    assert fake.answers == []


async def test_the_token_the_fake_saw_is_signed_by_the_app_key(fake, make_provider, credentials):
    await make_provider().send(Target(token(1)), Message(body="x"), credentials)

    (seen,) = fake.jwts
    assert jwt.get_unverified_header(seen) == {"alg": "ES256", "kid": fake.key_id}


async def test_sends_work_on_uvloop_as_in_the_worker(fake, credentials):
    # `pushgate worker` and `serve` run on uvloop, whose TLS transport is not an
    # asyncio.Transport; the client side runs on a uvloop loop in a thread here.
    async def send() -> OutcomeKind:
        provider = APNSProvider(
            production_url=fake.url,
            sandbox_url=fake.url,
            ca_file=str(fake.ca_pem_path),
            timeout=5.0,
            clock=fake.clock,
        )
        try:
            outcome = await provider.send(Target(token(7)), Message(body="x"), credentials)
        finally:
            await provider.close()
        return outcome.kind

    assert await asyncio.to_thread(uvloop.run, send()) is OutcomeKind.SENT
    assert len(fake.received_for(token(7))) == 1
