"""FCMProvider against the fake FCM service over real TLS: messages arrive as built, every error
row gives its outcome, access tokens are fetched once and refreshed once on a 401, connections
are reused, dry runs reach FCM, and timeouts, refused connections and untrusted certificates
become retries."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import jwt
import pytest

from pushgate.domain.message import Message, Priority
from pushgate.domain.outcome import OutcomeKind
from pushgate.providers.base import Target
from pushgate.providers.fcm import FCMProvider
from pushgate.providers.fcm_credentials import GOOGLE_TOKEN_URIS, FCMCredentials
from pushgate.providers.fcm_tokens import SCOPE
from tests.fakes.fcm_server import FakeFCMService

MakeProvider = Callable[..., FCMProvider]


class Clock:
    """Wall-clock seconds that a test moves forward."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def fake() -> AsyncIterator[FakeFCMService]:
    async with FakeFCMService() as service:
        yield service


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def make_provider(fake: FakeFCMService, clock: Clock) -> AsyncIterator[MakeProvider]:
    providers: list[FCMProvider] = []

    def make(**kwargs: Any) -> FCMProvider:
        kwargs.setdefault("base_url", fake.origin)
        kwargs.setdefault("cafile", fake.ca_pem_path)
        kwargs.setdefault("clock", clock)
        kwargs.setdefault("token_uris", (fake.token_uri,))
        provider = FCMProvider(**kwargs)
        providers.append(provider)
        return provider

    yield make
    for provider in providers:
        await provider.close()


@pytest.fixture
def account(fake: FakeFCMService) -> dict[str, Any]:
    return fake.service_account("shop-prod")


@pytest.fixture
def credentials(account: dict[str, Any]) -> FCMCredentials:
    return FCMCredentials.from_service_account(account)


async def test_messages_arrive_as_built(fake, make_provider, credentials, clock):
    # Given
    provider = make_provider()
    tokens = [fake.new_token() for _ in range(20)]

    # When
    outcomes = await asyncio.gather(
        *(
            provider.send(
                Target(token),
                Message(
                    title=f"Order {i}",
                    body="Shipped ✓",
                    data={"order": str(i)},
                    priority=Priority.HIGH,
                    ttl=600,
                ),
                credentials,
            )
            for i, token in enumerate(tokens)
        )
    )

    # Then
    assert [o.kind for o in outcomes] == [OutcomeKind.SENT] * 20
    assert all(
        o.message_id and o.message_id.startswith("projects/shop-prod/messages/") for o in outcomes
    )
    assert len({o.message_id for o in outcomes}) == 20
    for i, token in enumerate(tokens):
        (arrived,) = fake.received_for(token)
        assert arrived.project_id == "shop-prod"
        assert arrived.validate_only is False
        assert arrived.message == {
            "token": token,
            "notification": {"title": f"Order {i}", "body": "Shipped ✓"},
            "data": {"order": str(i)},
            "android": {"priority": "high", "ttl": "600s"},
            "apns": {
                "headers": {
                    "apns-priority": "10",
                    "apns-expiration": str(int(clock.now) + 600),
                    "apns-push-type": "alert",
                },
                "payload": {"aps": {"alert": {"title": f"Order {i}", "body": "Shipped ✓"}}},
            },
            "webpush": {"headers": {"TTL": "600", "Urgency": "high"}},
        }
        assert arrived.headers["authorization"].startswith("Bearer ya29.fake-")
        assert arrived.headers["content-type"].startswith("application/json")


async def test_topic_sends_reach_the_topic(fake, make_provider, credentials):
    outcome = await make_provider().send_to_topic("/topics/news", Message(body="x"), credentials)

    assert outcome.kind is OutcomeKind.SENT
    (arrived,) = fake.received
    assert arrived.message["topic"] == "news"
    assert "token" not in arrived.message


async def test_validate_only_is_a_dry_run_at_fcm(fake, make_provider, credentials):
    outcome = await make_provider().send(
        Target(fake.new_token()), Message(body="x"), credentials, validate_only=True
    )

    assert outcome.kind is OutcomeKind.SENT
    assert outcome.message_id == "projects/shop-prod/messages/fake_message_id"
    assert [r.validate_only for r in fake.received] == [True]


@pytest.mark.parametrize(
    ("error", "retry_after", "kind", "expected_retry_after"),
    [
        ("UNREGISTERED", None, OutcomeKind.TOKEN_INVALID, None),
        ("SENDER_ID_MISMATCH", None, OutcomeKind.TOKEN_INVALID, None),
        ("INVALID_TOKEN", None, OutcomeKind.TOKEN_INVALID, None),
        ("INVALID_PAYLOAD", None, OutcomeKind.REJECTED, None),
        ("QUOTA_EXCEEDED", 30, OutcomeKind.RETRY_LATER, 30.0),
        ("QUOTA_EXCEEDED", None, OutcomeKind.RETRY_LATER, 60.0),
        ("UNAVAILABLE", None, OutcomeKind.RETRY_LATER, 10.0),
        ("INTERNAL", 2, OutcomeKind.RETRY_LATER, 2.0),
        ("THIRD_PARTY_AUTH_ERROR", None, OutcomeKind.CREDENTIAL_ALARM, None),
        ("LEGACY_404", None, OutcomeKind.REJECTED, None),
    ],
)
async def test_each_fcm_error_gives_its_outcome(
    fake, make_provider, credentials, error, retry_after, kind, expected_retry_after
):
    token = fake.new_token()
    fake.script(error, token=token, retry_after=retry_after)

    outcome = await make_provider().send(Target(token), Message(body="x"), credentials)

    assert outcome.kind is kind
    assert outcome.retry_after == expected_retry_after
    assert fake.received == []
    # None of these is about our access token: no refresh, no second attempt.
    assert fake.token_requests == 1
    assert fake.requests == 1


async def test_an_uninstalled_app_and_a_malformed_token_are_token_invalid(
    fake, make_provider, credentials
):
    provider = make_provider()
    gone = fake.new_token()
    fake.unregister(gone)

    outcomes = [
        await provider.send(Target(gone), Message(body="x"), credentials),
        await provider.send(Target("not-a-token"), Message(body="x"), credentials),
    ]

    assert [o.kind for o in outcomes] == [OutcomeKind.TOKEN_INVALID] * 2
    assert [o.status_code for o in outcomes] == [404, 400]


async def test_concurrent_sends_share_one_token_request(fake, make_provider, credentials):
    # Every send asks for the token at once; only the HTTP requests queue for connections.
    provider = make_provider(concurrency=10)

    outcomes = await asyncio.gather(
        *(
            provider.send(Target(fake.new_token()), Message(body="x"), credentials)
            for _ in range(100)
        )
    )

    assert {o.kind for o in outcomes} == {OutcomeKind.SENT}
    assert fake.token_requests == 1
    assert provider.token_requests(credentials) == 1
    assert len(set(fake.bearer_tokens_seen)) == 1


async def test_the_token_is_renewed_shortly_before_it_expires(
    fake, make_provider, credentials, clock
):
    provider = make_provider(renew_before=300)
    await provider.send(Target(fake.new_token()), Message(body="x"), credentials)

    clock.now += 3599 - 301
    await provider.send(Target(fake.new_token()), Message(body="x"), credentials)
    assert fake.token_requests == 1

    clock.now += 2
    await provider.send(Target(fake.new_token()), Message(body="x"), credentials)
    assert fake.token_requests == 2
    assert len(set(fake.bearer_tokens_seen)) == 2


async def test_each_service_account_has_its_own_token(fake, make_provider, credentials):
    provider = make_provider()
    other = FCMCredentials.from_service_account(fake.service_account("blog-prod"))

    outcomes = [
        await provider.send(Target(fake.new_token()), Message(body="x"), c)
        for c in (credentials, other, credentials, other)
    ]

    assert {o.kind for o in outcomes} == {OutcomeKind.SENT}
    assert [r.project_id for r in fake.received] == ["shop-prod", "blog-prod"] * 2
    assert fake.token_requests == 2


async def test_a_401_refreshes_the_token_once_and_retries(fake, make_provider, credentials):
    # Given a cached token that FCM no longer accepts
    provider = make_provider()
    await provider.send(Target(fake.new_token()), Message(body="x"), credentials)
    fake.expire_tokens()

    # When
    token = fake.new_token()
    outcome = await provider.send(Target(token), Message(body="x"), credentials)

    # Then
    assert outcome.kind is OutcomeKind.SENT
    assert fake.token_requests == 2
    assert fake.requests == 3
    assert fake.status_counts[401] == 1
    assert len(fake.received_for(token)) == 1


async def test_many_401s_at_once_make_one_refresh(fake, make_provider, credentials):
    provider = make_provider()
    await provider.send(Target(fake.new_token()), Message(body="x"), credentials)
    fake.expire_tokens()

    outcomes = await asyncio.gather(
        *(
            provider.send(Target(fake.new_token()), Message(body="x"), credentials)
            for _ in range(50)
        )
    )

    assert {o.kind for o in outcomes} == {OutcomeKind.SENT}
    assert fake.token_requests == 2


async def test_a_401_after_the_refresh_is_a_credential_alarm(fake, make_provider, credentials):
    fake.script("EXPIRED_TOKEN", times=2)

    outcome = await make_provider().send(Target(fake.new_token()), Message(body="x"), credentials)

    assert outcome.kind is OutcomeKind.CREDENTIAL_ALARM
    assert outcome.status_code == 401
    assert fake.token_requests == 2
    assert fake.requests == 2


async def test_a_project_the_account_cannot_send_for_is_a_credential_alarm(
    fake, make_provider, account
):
    wrong = FCMCredentials.from_service_account(account | {"project_id": "someone-else"})

    outcome = await make_provider().send(Target(fake.new_token()), Message(body="x"), wrong)

    assert outcome.kind is OutcomeKind.CREDENTIAL_ALARM
    assert outcome.status_code == 403
    assert fake.token_requests == 2  # docs/protocols.md#fcm-auth: refresh once before giving up


async def test_a_refused_grant_is_a_credential_alarm_and_is_not_asked_again_at_once(
    fake, make_provider, account, credentials
):
    fake.disable_account(account)
    provider = make_provider()

    first = await provider.send(Target(fake.new_token()), Message(body="x"), credentials)
    second = await provider.send(Target(fake.new_token()), Message(body="x"), credentials)

    assert first.kind is OutcomeKind.CREDENTIAL_ALARM
    assert "invalid_grant" in first.error
    assert second.kind is OutcomeKind.CREDENTIAL_ALARM
    assert fake.token_requests == 1
    assert fake.requests == 0


async def test_a_failing_token_endpoint_is_a_retry(fake, make_provider, credentials):
    fake.script_token_endpoint(503, {"error": "temporarily_unavailable"}, times=None)

    outcome = await make_provider().send(Target(fake.new_token()), Message(body="x"), credentials)

    assert outcome.kind is OutcomeKind.RETRY_LATER
    assert fake.requests == 0


async def test_many_sends_reuse_few_tls_connections(fake, make_provider, credentials):
    provider = make_provider(concurrency=8)

    outcomes = await asyncio.gather(
        *(
            provider.send(Target(fake.new_token()), Message(body="x"), credentials)
            for _ in range(300)
        )
    )

    assert {o.kind for o in outcomes} == {OutcomeKind.SENT}
    assert fake.connections <= 8
    # One more for the token request, which google-auth makes on its own connection.
    assert fake.tls_handshakes <= 8 + 1
    assert fake.http_versions["1.1"] == 300


async def test_a_slow_answer_is_a_retry(fake, make_provider, credentials):
    fake.script(None, delay=2.0)

    outcome = await make_provider(timeout=0.3).send(
        Target(fake.new_token()), Message(body="x"), credentials
    )

    assert outcome.kind is OutcomeKind.RETRY_LATER
    assert outcome.status_code is None


async def test_a_refused_connection_is_a_retry(fake, make_provider, credentials):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]

    outcome = await make_provider(base_url=f"https://127.0.0.1:{closed_port}").send(
        Target(fake.new_token()), Message(body="x"), credentials
    )

    assert outcome.kind is OutcomeKind.RETRY_LATER
    assert fake.token_requests == 1


async def test_an_untrusted_certificate_is_never_accepted(fake, make_provider, credentials):
    # The system trust store does not know the fake's CA: neither the token endpoint nor FCM
    # may be used.
    provider = make_provider(cafile=None)

    outcome = await provider.send(Target(fake.new_token()), Message(body="x"), credentials)

    assert outcome.kind is OutcomeKind.RETRY_LATER
    assert fake.token_requests == 0
    assert fake.requests == 0


async def test_an_ssl_context_may_be_given_instead_of_a_ca_file(fake, make_provider, credentials):
    provider = make_provider(cafile=None, ssl_context=fake.client_ssl_context())

    outcome = await provider.send(Target(fake.new_token()), Message(body="x"), credentials)

    assert outcome.kind is OutcomeKind.SENT


async def test_bad_input_is_rejected_without_a_request(fake, make_provider, credentials):
    provider = make_provider()
    bad_data = Message(body="x", data={"n": 1})  # type: ignore[dict-item]

    outcomes = [
        await provider.send(Target(fake.new_token()), bad_data, credentials),
        await provider.send_to_topic("two words", Message(body="x"), credentials),
        await provider.send(Target(""), Message(body="x"), credentials),
    ]

    assert [o.kind for o in outcomes] == [
        OutcomeKind.REJECTED,
        OutcomeKind.REJECTED,
        OutcomeKind.TOKEN_INVALID,
    ]
    assert fake.requests == 0


async def test_a_token_uri_that_is_not_allowed_is_never_called(fake, make_provider, credentials):
    # The service account names the fake's token endpoint; the default allows only Google's.
    provider = make_provider(token_uris=GOOGLE_TOKEN_URIS)

    outcome = await provider.send(Target(fake.new_token()), Message(body="x"), credentials)

    assert outcome.kind is OutcomeKind.CREDENTIAL_ALARM
    assert "token_uri" in outcome.error
    assert fake.token_requests == 0
    assert fake.requests == 0


async def test_a_closed_provider_asks_for_a_retry(fake, make_provider, credentials):
    provider = make_provider()
    await provider.close()

    outcome = await provider.send(Target(fake.new_token()), Message(body="x"), credentials)

    assert outcome.kind is OutcomeKind.RETRY_LATER


# --- the fake itself: it must refuse what Google refuses, or the tests above prove little ----


async def grant(fake: FakeFCMService, account: dict[str, Any], client: httpx.AsyncClient) -> str:
    now = int(time.time())
    claims = {"iss": account["client_email"], "scope": SCOPE, "aud": fake.token_uri}
    assertion = jwt.encode(
        claims | {"iat": now, "exp": now + 3600},
        account["private_key"],
        algorithm="RS256",
        headers={"kid": account["private_key_id"]},
    )
    response = await client.post(
        fake.token_uri,
        data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion},
    )
    assert response.status_code == 200, response.text
    assert response.json()["expires_in"] == 3599
    return str(response.json()["access_token"])


async def test_the_fake_speaks_http2_and_checks_the_bearer_token(fake, account):
    url = f"{fake.origin}/v1/projects/shop-prod/messages:send"
    body = {"message": {"token": fake.new_token(), "notification": {"title": "x"}}}
    async with httpx.AsyncClient(http2=True, verify=fake.client_ssl_context()) as client:
        anonymous = await client.post(url, json=body)
        forged = await client.post(url, json=body, headers={"Authorization": "Bearer ya29.x"})
        token = await grant(fake, account, client)
        accepted = await client.post(url, json=body, headers={"Authorization": f"Bearer {token}"})

    assert anonymous.http_version == "HTTP/2"
    assert anonymous.status_code == forged.status_code == 401
    assert anonymous.json()["error"]["status"] == "UNAUTHENTICATED"
    assert accepted.status_code == 200
    assert fake.http_versions["2"] == 3


async def test_the_fake_refuses_a_grant_signed_by_another_key(fake, account):
    impostor = fake.service_account("shop-prod")
    forged = account | {"private_key": impostor["private_key"], "private_key_id": None}
    now = int(time.time())
    assertion = jwt.encode(
        {"iss": forged["client_email"], "scope": SCOPE, "aud": fake.token_uri}
        | {"iat": now, "exp": now + 3600},
        forged["private_key"],
        algorithm="RS256",
    )
    async with httpx.AsyncClient(verify=fake.client_ssl_context()) as client:
        response = await client.post(
            fake.token_uri,
            data={
                "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "assertion": assertion,
            },
        )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    "message",
    [
        {"token": "t" * 30, "topic": "news"},
        {"notification": {"title": "no target"}},
        {"token": "t" * 30, "data": {"n": 1}},
        {"token": "t" * 30, "android": {"ttl": 60}},
        {"token": "t" * 30, "priority": "high"},
        {"token": "t" * 30, "webpush": {"fcm_options": {"link": "http://x.example"}}},
    ],
    ids=["two-targets", "no-target", "number-data", "numeric-ttl", "unknown-field", "http-link"],
)
async def test_the_fake_refuses_malformed_messages(fake, account, message):
    async with httpx.AsyncClient(verify=fake.client_ssl_context()) as client:
        token = await grant(fake, account, client)
        response = await client.post(
            f"{fake.origin}/v1/projects/shop-prod/messages:send",
            json={"message": message},
            headers={"Authorization": f"Bearer {token}"},
        )

    assert response.status_code == 400
    assert response.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert fake.received == []


async def test_a_ca_bundle_from_the_environment_does_not_widen_whom_fcm_trusts(
    fake, make_provider, credentials, monkeypatch
):
    # requests loads its CA bundle (certifi, or REQUESTS_CA_BUNDLE) into the context it is
    # given, which FCM's sends share: only the configured CA may be trusted.
    import certifi

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    provider = make_provider()

    outcome = await provider.send(Target(fake.new_token()), Message(body="x"), credentials)

    assert outcome.kind is OutcomeKind.SENT
    assert provider._tls.get().cert_store_stats()["x509_ca"] == 1
