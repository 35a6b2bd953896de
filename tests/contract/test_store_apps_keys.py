"""Apps and API keys in the store, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from pushgate.domain import apikeys, vapid
from pushgate.domain.apikeys import Scope
from pushgate.errors import ConflictError, InvalidInputError, NotFoundError
from pushgate.store import api_keys, apps
from pushgate.store.db import SessionMaker
from pushgate.store.tables import APIKey, App
from tests.conftest import TEST_BOX

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


async def make_app(sessions: SessionMaker, name: str = "acme") -> App:
    async with sessions() as session:
        app = await apps.create(session=session, box=TEST_BOX, name=name)
        await session.commit()
    return app


async def make_key(
    sessions: SessionMaker, app: App, scope: Scope = Scope.SEND
) -> api_keys.CreatedKey:
    async with sessions() as session:
        created = await api_keys.create(session=session, app_id=app.id, scope=scope, name="ci")
        await session.commit()
    return created


async def stored_key(sessions: SessionMaker, key_id: uuid.UUID) -> APIKey:
    async with sessions() as session:
        return (await session.execute(select(APIKey).where(APIKey.id == key_id))).scalar_one()


# --- apps ------------------------------------------------------------------------------------


async def test_created_app_has_its_own_vapid_key_pair(sessions: SessionMaker) -> None:
    # When
    first = await make_app(sessions, "acme")
    second = await make_app(sessions, "globex")

    # Then each app's private key derives its public key
    async with sessions() as session:
        for app in (first, second):
            stored = await apps.get(session=session, app_id=app.id)
            pair = apps.vapid_key_pair(app=stored, box=TEST_BOX)
            assert vapid.import_key_pair(pair.private_key).public_key == stored.vapid_public_key
    assert first.vapid_public_key != second.vapid_public_key


async def test_vapid_private_keys_are_stored_encrypted(sessions: SessionMaker) -> None:
    # Given
    app = await make_app(sessions)
    async with sessions() as session:
        pair = apps.vapid_key_pair(app=await apps.get(session=session, app_id=app.id), box=TEST_BOX)

    # When an app's key pair is created, then replaced
    async with sessions() as session:
        created = (await session.execute(text("SELECT vapid_private_key FROM apps"))).scalar_one()
        replacement = vapid.generate_key_pair()
        owner = await apps.get(session=session, app_id=app.id)
        await apps.set_vapid_keys(session=session, box=TEST_BOX, app=owner, pair=replacement)
        await session.commit()
        replaced = (await session.execute(text("SELECT vapid_private_key FROM apps"))).scalar_one()

    # Then the database never holds a private key in the clear
    assert pair.private_key not in created
    assert replacement.private_key not in replaced
    assert TEST_BOX.open(created) == pair.private_key
    assert TEST_BOX.open(replaced) == replacement.private_key


async def test_app_name_is_trimmed_and_subject_kept(sessions: SessionMaker) -> None:
    async with sessions() as session:
        app = await apps.create(
            session=session, box=TEST_BOX, name="  acme  ", vapid_subject="mailto:o@acme.io"
        )
        await session.commit()

    async with sessions() as session:
        stored = await apps.get_by_name(session=session, name="acme")
    assert stored.id == app.id
    assert stored.vapid_subject == "mailto:o@acme.io"


async def test_duplicate_app_name_is_a_conflict(sessions: SessionMaker) -> None:
    # Given
    await make_app(sessions, "acme")

    # When / Then
    async with sessions() as session:
        with pytest.raises(ConflictError) as caught:
            await apps.create(session=session, box=TEST_BOX, name="acme")
    assert caught.value.code == "app_exists"
    assert caught.value.status_code == 409


async def test_session_stays_usable_after_a_duplicate_name(sessions: SessionMaker) -> None:
    # Given an existing app
    await make_app(sessions, "acme")

    # When a session hits the duplicate, then goes on
    async with sessions() as session:
        with pytest.raises(ConflictError):
            await apps.create(session=session, box=TEST_BOX, name="acme")
        await apps.create(session=session, box=TEST_BOX, name="globex")
        await session.commit()

    # Then its later work is kept
    async with sessions() as session:
        names = [a.name for a in await apps.list_all(session=session)]
    assert sorted(names) == ["acme", "globex"]


async def test_duplicate_name_does_not_undo_the_sessions_earlier_work(
    sessions: SessionMaker,
) -> None:
    # Given an existing app, and a session that already created another one
    await make_app(sessions, "acme")
    async with sessions() as session:
        await apps.create(session=session, box=TEST_BOX, name="globex")

        # When the same session then hits the duplicate, and commits
        with pytest.raises(ConflictError):
            await apps.create(session=session, box=TEST_BOX, name="acme")
        await session.commit()

    # Then the earlier app was kept
    async with sessions() as session:
        names = [a.name for a in await apps.list_all(session=session)]
    assert sorted(names) == ["acme", "globex"]


@pytest.mark.parametrize("name", ["", "   ", "x" * 101])
async def test_unusable_app_name_is_refused(sessions: SessionMaker, name: str) -> None:
    async with sessions() as session:
        with pytest.raises(InvalidInputError) as caught:
            await apps.create(session=session, box=TEST_BOX, name=name)
    assert caught.value.field == "name"


async def test_unusable_vapid_subject_is_refused(sessions: SessionMaker) -> None:
    async with sessions() as session:
        with pytest.raises(InvalidInputError) as caught:
            await apps.create(
                session=session, box=TEST_BOX, name="acme", vapid_subject="mailto:me@localhost"
            )
    assert caught.value.field == "vapid_subject"


async def test_get_app_by_id_and_by_name(sessions: SessionMaker) -> None:
    app = await make_app(sessions, "acme")

    async with sessions() as session:
        by_id = await apps.get(session=session, app_id=app.id)
        by_name = await apps.get_by_name(session=session, name="acme")

    assert by_id.id == by_name.id == app.id
    assert by_id.created_at.tzinfo is not None


async def test_unknown_app_is_not_found(sessions: SessionMaker) -> None:
    await make_app(sessions, "acme")

    async with sessions() as session:
        with pytest.raises(NotFoundError):
            await apps.get(session=session, app_id=uuid.uuid4())
        with pytest.raises(NotFoundError) as caught:
            await apps.get_by_name(session=session, name="globex")
    assert caught.value.code == "app_not_found"


# --- keys ------------------------------------------------------------------------------------


@pytest.mark.parametrize("scope", list(Scope))
async def test_right_secret_authenticates_to_its_key(sessions: SessionMaker, scope: Scope) -> None:
    # Given
    app = await make_app(sessions)
    created = await make_key(sessions, app, scope)

    # When
    async with sessions() as session:
        row = await api_keys.authenticate(session=session, secret=created.secret)

    # Then
    assert row is not None
    assert (row.id, row.app_id, row.scope) == (created.row.id, app.id, scope.value)


async def test_secret_is_not_stored(sessions: SessionMaker) -> None:
    app = await make_app(sessions)
    created = await make_key(sessions, app)

    row = await stored_key(sessions, created.row.id)

    assert created.secret not in (row.key_hash, row.prefix)
    assert apikeys.matches(created.secret, row.key_hash)


async def test_wrong_secret_with_a_real_prefix_is_refused(sessions: SessionMaker) -> None:
    # Given a forgery that shares a real key's lookup prefix
    app = await make_app(sessions)
    created = await make_key(sessions, app)
    forged = created.secret[:-4] + ("AAAA" if not created.secret.endswith("AAAA") else "BBBB")

    # When
    async with sessions() as session:
        row = await api_keys.authenticate(session=session, secret=forged)

    # Then
    assert row is None


@pytest.mark.parametrize(
    "secret", ["", "garbage", "pgk_", "pgk_" + "x" * 40, "Bearer pgk_" + "y" * 40]
)
async def test_garbage_is_refused(sessions: SessionMaker, secret: str) -> None:
    app = await make_app(sessions)
    await make_key(sessions, app)

    async with sessions() as session:
        assert await api_keys.authenticate(session=session, secret=secret) is None


async def test_revoked_key_is_refused(sessions: SessionMaker) -> None:
    # Given a revoked key
    app = await make_app(sessions)
    created = await make_key(sessions, app)
    async with sessions() as session:
        await api_keys.revoke(session=session, key_id=created.row.id)
        await session.commit()

    # When
    async with sessions() as session:
        row = await api_keys.authenticate(session=session, secret=created.secret)

    # Then
    assert row is None


async def test_touch_records_use_at_most_once_a_minute(sessions: SessionMaker) -> None:
    # Given a key never used
    app = await make_app(sessions)
    created = await make_key(sessions, app)
    assert (await stored_key(sessions, created.row.id)).last_used_at is None

    async def use_at(now: datetime) -> bool:
        async with sessions() as session:
            row = await api_keys.authenticate(session=session, secret=created.secret)
            assert row is not None
            wrote = await api_keys.touch(session=session, key=row, now=now)
            await session.commit()
        return wrote

    # When it is used several times within a minute, then after it
    first = await use_at(T0)
    within = await use_at(T0 + timedelta(seconds=59))
    assert (await stored_key(sessions, created.row.id)).last_used_at == T0
    later = await use_at(T0 + timedelta(seconds=61))

    # Then only the first use and the use a minute later were written
    assert (first, within, later) == (True, False, True)
    assert (await stored_key(sessions, created.row.id)).last_used_at == T0 + timedelta(seconds=61)


async def test_revoke_by_id(sessions: SessionMaker) -> None:
    app = await make_app(sessions)
    created = await make_key(sessions, app)

    async with sessions() as session:
        revoked = await api_keys.revoke(session=session, key_id=created.row.id, app_id=app.id)
        await session.commit()

    assert revoked.id == created.row.id
    assert (await stored_key(sessions, created.row.id)).revoked_at is not None


@pytest.mark.parametrize("shown", ["prefix", "marked-prefix", "secret"])
async def test_revoke_by_what_the_user_has_at_hand(sessions: SessionMaker, shown: str) -> None:
    # Given a key, and what a user may paste: its prefix, its prefix with the pgk_ mark, or the
    # whole secret
    app = await make_app(sessions)
    created = await make_key(sessions, app)
    given = {
        "prefix": created.row.prefix,
        "marked-prefix": apikeys.KEY_MARK + created.row.prefix,
        "secret": created.secret,
    }[shown]

    # When
    async with sessions() as session:
        await api_keys.revoke(session=session, prefix=given, app_id=app.id)
        await session.commit()

    # Then
    async with sessions() as session:
        assert await api_keys.authenticate(session=session, secret=created.secret) is None


async def test_revoking_twice_keeps_the_first_time(sessions: SessionMaker) -> None:
    app = await make_app(sessions)
    created = await make_key(sessions, app)
    async with sessions() as session:
        first = (await api_keys.revoke(session=session, key_id=created.row.id)).revoked_at
        await session.commit()

    async with sessions() as session:
        second = (await api_keys.revoke(session=session, key_id=created.row.id)).revoked_at
        await session.commit()

    assert first is not None
    assert second == first


async def test_revoke_cannot_reach_another_apps_key(sessions: SessionMaker) -> None:
    # Given a key of app B
    app_a = await make_app(sessions, "acme")
    app_b = await make_app(sessions, "globex")
    key_b = await make_key(sessions, app_b)

    # When app A tries to revoke it, by id and by prefix
    async with sessions() as session:
        with pytest.raises(NotFoundError) as by_id:
            await api_keys.revoke(session=session, key_id=key_b.row.id, app_id=app_a.id)
        with pytest.raises(NotFoundError):
            await api_keys.revoke(session=session, prefix=key_b.row.prefix, app_id=app_a.id)
        await session.commit()

    # Then B's key still works
    assert by_id.value.code == "key_not_found"
    async with sessions() as session:
        assert await api_keys.authenticate(session=session, secret=key_b.secret) is not None


async def test_revoke_unknown_key_is_not_found(sessions: SessionMaker) -> None:
    async with sessions() as session:
        with pytest.raises(NotFoundError):
            await api_keys.revoke(session=session, key_id=uuid.uuid4())
        with pytest.raises(NotFoundError):
            await api_keys.revoke(session=session, prefix="nosuchprefix")


async def test_list_for_app_shows_only_that_apps_keys(sessions: SessionMaker) -> None:
    app_a = await make_app(sessions, "acme")
    app_b = await make_app(sessions, "globex")
    a1 = await make_key(sessions, app_a, Scope.ADMIN)
    a2 = await make_key(sessions, app_a, Scope.SUBSCRIBE)
    await make_key(sessions, app_b)

    async with sessions() as session:
        listed = await api_keys.list_for_app(session=session, app_id=app_a.id)

    assert [k.id for k in listed] == [a1.row.id, a2.row.id]
