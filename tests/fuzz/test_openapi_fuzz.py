"""Schemathesis over pushgate's OpenAPI document: every operation, with an admin key, on the
embedded profile, in-process over ASGI. Fails on any 5xx, any status the document does not
declare for the operation, any body, header or content type that does not match what it
declares, any error body not in pushgate's `{"error": {"code", "message", "details"}}` shape,
and any method a path lacks answered otherwise than 405 with every method in `Allow`.

The database is seeded first (a device, a template, a notification, a webhook, a dead letter)
and half of the valid cases aim their path ids at those rows, so the routes behind
`{device_id}` and the like answer for real, not 404 every time. No worker runs: the API is
under test, and the notifications it accepts wait in the embedded queue.

Nothing leaves the machine: the loopback guard (loopback.py) is armed while the app runs, so a
webhook URL, Web Push endpoint, JWKS URL or token URI the fuzzer makes up, or a send-immediate
to a device at a real push service, fails as an unreachable network would. pushgate's own SSRF
guard stays as shipped (private addresses refused): the seeded webhook on 127.0.0.1 is written
through the store, not the API, and is never called, since no worker sends webhook events.

Deterministic: Hypothesis is derandomized (the same cases every run) and keeps no example
database; the budget is `EXAMPLES_PER_OPERATION`.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis.python import asgi

from pushgate.api.app import create_app
from pushgate.compat import SHAPE_NAMES
from pushgate.domain.apikeys import Scope
from pushgate.runtime import open_runtime
from pushgate.settings import Settings, load_settings
from pushgate.store import api_keys, apps, dead_letters, webhooks
from tests.conftest import migrated_sqlite, run_in_thread
from tests.fuzz.loopback import loopback_only

# The budget: examples Hypothesis generates per operation, on top of schemathesis' coverage
# cases (each parameter's boundaries and wrong types, undeclared methods: 10 to 200 an
# operation). The whole directory takes 70 to 110 s under `pytest -n 2` on two shared cores
# (150 examples an operation: 7 minutes, and found nothing more).
EXAMPLES_PER_OPERATION = 25


def _settings(data_dir: Path, database_url: str | None = None) -> Settings:
    """The embedded profile's defaults, whatever the shell says (conftest's environment
    clean-up is per test; this runs at import and in a session fixture)."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("PUSHGATE_") and not name.startswith("PUSHGATE_TEST_"):
                patch.delenv(name)
        # Every legacy shape's routes too (pushgate/compat), acting for the seeded app.
        overrides: dict[str, Any] = {
            "data_dir": data_dir,
            "compat": {"enabled": list(SHAPE_NAMES), "static_key_app": "fuzz"},
        }
        if database_url is not None:
            overrides["database"] = {"url": database_url}
        return load_settings(**overrides)


# The document pushgate serves at /openapi.json (test_the_fuzzed_document_is_the_served_one),
# built at import so that each operation is a test of its own, which pytest-xdist spreads out.
# Building the app opens nothing: the database is opened by its lifespan.
DOCUMENT = create_app(_settings(Path("/nonexistent/pushgate-fuzz"))).openapi()

# Every check but the two that judge pushgate's input rules by the document's types: a cursor,
# a time zone or a locale that the document types as a string is a 422 when it is not one, by
# design, and the document does not spell out those rules (positive_data_acceptance); nor
# does pushgate refuse all the input the document would (negative_data_rejection: a number is
# read as a time, for instance). Every answer is still checked against the document.
CONFIG = schemathesis.Config.from_dict(
    {
        "checks": {
            "positive_data_acceptance": {"enabled": False},
            "negative_data_rejection": {"enabled": False},
        }
    }
)
SCHEMA = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG)


class _Fuzzed:
    """The ASGI app the schema's requests go to (the checks' own too: ignored_auth sends each
    case again without the key): this process's fuzzed app, once the `fuzzed` fixture made it."""

    app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


FUZZED = _Fuzzed()
SCHEMA.app = FUZZED

# Rows of this process's fuzzed app, by the path parameter that names them.
SEEDED: dict[str, list[str]] = {}


@dataclass
class FuzzedApp:
    app: Any
    admin: dict[str, str]


def _seed_store(settings: Settings) -> dict[str, str]:
    """The app, its admin key (as headers), a webhook and a dead letter, through the store.
    The webhook's loopback URL would not pass the API's SSRF guard, which stays closed."""
    admin: dict[str, str] = {}

    async def seed() -> None:
        runtime = await open_runtime(settings)
        try:
            async with runtime.sessions() as session:
                app = await apps.create(session=session, box=runtime.credentials.box(), name="fuzz")
                key = await api_keys.create(session=session, app_id=app.id, scope=Scope.ADMIN)
                hook = await webhooks.create(
                    session=session,
                    app_id=app.id,
                    url="https://127.0.0.1:9/hooks",
                    events=["device.invalidated"],
                    sealed_secret=runtime.credentials.box().seal("whsec_fuzz"),
                )
                letter = uuid.uuid4()
                await dead_letters.add(
                    session=session,
                    rows=[
                        {
                            "id": letter,
                            "app_id": app.id,
                            "message_id": f"fuzz-{letter}",
                            "queue": "deliver",
                            "reason": "retries exhausted",
                            "reason_code": "retry_later",
                            "provider": "fcm",
                            "attempts": 5,
                            "failed_at": datetime.now(UTC),
                            "body": b"{}",
                        }
                    ],
                )
                await session.commit()
        finally:
            await runtime.close()
        admin["Authorization"] = f"Bearer {key.secret}"
        SEEDED["webhook_id"] = [str(hook.id)]
        SEEDED["letter_id"] = [str(letter)]

    run_in_thread(seed)
    return admin


def _seed_api(app: Any, admin: dict[str, str]) -> None:
    """A device, a template and a notification, made through the API as a client would."""
    with asgi.get_client(app) as client:
        device = client.post(
            "/v1/devices",
            json={"platform": "fcm", "token": "fuzz-token-1", "user_id": "u1", "topics": ["news"]},
            headers=admin,
        )
        assert device.status_code == 201, device.text
        template = client.post(
            "/v1/templates",
            json={
                "code": "welcome",
                "default_locale": "en",
                "variants": {"en": {"title": "Hi {{ name }}"}},
            },
            headers=admin,
        )
        assert template.status_code == 201, template.text
        sent = client.post(
            "/v1/notifications",
            json={"user_ids": ["u1"], "title": "Hello"},
            headers={**admin, "Idempotency-Key": "fuzz-1"},
        )
        assert sent.status_code == 202, sent.text
    SEEDED.update(
        device_id=[device.json()["id"]],
        user_id=["u1"],
        topic=["news"],
        code=["welcome"],
        notification_id=[sent.json()["id"]],
        key=["fuzz-1"],
    )


@pytest.fixture(scope="session")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzedApp]:
    """pushgate on the embedded profile, one per pytest worker, seeded."""
    folder = tmp_path_factory.mktemp("fuzz")
    urls: list[str] = []

    async def migrate() -> None:
        urls.append(await migrated_sqlite(folder))

    run_in_thread(migrate)
    settings = _settings(folder / "data", urls[0])
    app = create_app(settings)
    with loopback_only():
        admin = _seed_store(settings)
        _seed_api(app, admin)
    FUZZED.app = app
    yield FuzzedApp(app=app, admin=admin)
    asgi.shutdown_lifespans()


@pytest.fixture(autouse=True)
def _loopback() -> Iterator[None]:
    with loopback_only():
        yield


@SCHEMA.hook
def flatmap_case(context: schemathesis.HookContext, case: schemathesis.Case[Any]) -> Any:
    """Half of the valid cases aim their path ids at the seeded rows."""
    del context
    known = {name: SEEDED[name] for name in case.path_parameters or {} if name in SEEDED}
    if not known or case.meta is None or not case.meta.generation.mode.is_positive:
        return st.just(case)

    def aimed(ids: dict[str, str]) -> schemathesis.Case[Any]:
        case.path_parameters = {**(case.path_parameters or {}), **ids}
        return case

    seeded = st.fixed_dictionaries({name: st.sampled_from(ids) for name, ids in known.items()})
    return st.one_of(st.just(case), seeded.map(aimed))


@schemathesis.check
def error_body_shape(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> bool | None:
    """Every failure answers pushgate's JSON error body, declared or not."""
    del ctx, case
    if response.status_code < 400:
        return None
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type.startswith("application/json"), (
        f"{response.status_code} answered {content_type!r}"
    )
    body = response.json()
    assert isinstance(body, dict), f"{response.status_code} answered {body!r}"
    error = body.get("error")
    assert isinstance(error, dict), f"{response.status_code} without an error object: {body!r}"
    assert set(error) == {"code", "message", "details"}, f"error fields {sorted(error)}"
    assert isinstance(error["code"], str), error
    assert re.fullmatch(r"[a-z][a-z0-9_]*", error["code"]), f"unstable code {error['code']!r}"
    assert isinstance(error["message"], str), error
    assert error["message"], error
    return True


@SCHEMA.parametrize()
@hypothesis.settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(hypothesis.HealthCheck),
)
def test_operation_answers_as_documented(case: schemathesis.Case[Any], fuzzed: FuzzedApp) -> None:
    case.call_and_validate(headers=fuzzed.admin, additional_checks=[error_body_shape])


def test_the_fuzzed_document_is_the_served_one(fuzzed: FuzzedApp) -> None:
    with asgi.get_client(fuzzed.app) as client:
        served = client.get("/openapi.json")
    assert served.status_code == 200
    assert served.json() == DOCUMENT
