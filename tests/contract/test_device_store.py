"""The device store on SQLite and PostgreSQL: registration, pages, topics, soft and hard delete."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from pushgate.domain.subscription import Platform, PushAddress
from pushgate.errors import InvalidInputError, NotFoundError, PermissionDeniedError
from pushgate.store import apps, audience, db, devices
from pushgate.store.tables import DeviceTopic
from tests.conftest import TEST_BOX

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def fcm(token: str) -> PushAddress:
    return PushAddress(platform=Platform.FCM, token=token)


async def new_app(sessions: db.SessionMaker, name: str = "acme") -> uuid.UUID:
    async with sessions() as session:
        app = await apps.create(session=session, box=TEST_BOX, name=name)
        await session.commit()
        return app.id


async def register(
    sessions: db.SessionMaker,
    app_id: uuid.UUID,
    address: PushAddress,
    *,
    profile: dict[str, object] | None = None,
    topics: list[str] | None = None,
    keep_user: bool = False,
    now: datetime | None = None,
) -> devices.Registration:
    async with sessions() as session:
        registration = await devices.upsert(
            session=session,
            app_id=app_id,
            address=address,
            profile=profile,
            topics=topics,
            keep_user=keep_user,
            now=now,
        )
        await session.commit()
        return registration


async def test_registering_a_new_token_creates_an_active_device(
    sessions: db.SessionMaker,
) -> None:
    # Given an app
    app_id = await new_app(sessions)
    # When a token is registered with a profile and topics
    registration = await register(
        sessions,
        app_id,
        fcm("tok-1"),
        profile={"user_id": "u1", "locale": "de-DE", "meta": {"model": "Pixel 8"}},
        topics=["news", "alerts", "news"],
        now=T0,
    )
    # Then a device exists with those values, active, seen now
    assert registration.created
    async with sessions() as session:
        record = await devices.get(
            session=session, app_id=app_id, device_id=registration.record.device.id
        )
    device = record.device
    assert (device.platform, device.token, device.user_id, device.locale) == (
        "fcm",
        "tok-1",
        "u1",
        "de-DE",
    )
    assert device.meta == {"model": "Pixel 8"}
    assert record.topics == ("alerts", "news")
    assert devices.status_of(device) is devices.Status.ACTIVE
    assert device.created_at == device.updated_at == device.last_seen_at == T0


async def test_reregistering_updates_only_the_given_fields(sessions: db.SessionMaker) -> None:
    # Given a registered device with a user, locale and topics
    app_id = await new_app(sessions)
    first = await register(
        sessions,
        app_id,
        fcm("tok-1"),
        profile={"user_id": "u1", "locale": "de-DE"},
        topics=["news"],
        now=T0,
    )
    # When the same token registers again later with only a new app version
    later = T0 + timedelta(days=3)
    again = await register(
        sessions, app_id, fcm("tok-1"), profile={"app_version": "2.0"}, now=later
    )
    # Then it is the same device, with the old fields and topics kept and the times refreshed
    assert not again.created
    device = again.record.device
    assert device.id == first.record.device.id
    assert (device.user_id, device.locale, device.app_version) == ("u1", "de-DE", "2.0")
    assert again.record.topics == ("news",)
    assert device.created_at == T0
    assert device.updated_at == device.last_seen_at == later


async def test_topics_given_on_reregistration_replace_the_set(sessions: db.SessionMaker) -> None:
    app_id = await new_app(sessions)
    await register(sessions, app_id, fcm("tok-1"), topics=["a", "b"])
    again = await register(sessions, app_id, fcm("tok-1"), topics=["b", "c"])
    assert again.record.topics == ("b", "c")
    cleared = await register(sessions, app_id, fcm("tok-1"), topics=[])
    assert cleared.record.topics == ()


async def test_reregistering_revives_deleted_device(sessions: db.SessionMaker) -> None:
    # Given a device that was deleted (soft)
    app_id = await new_app(sessions)
    first = await register(sessions, app_id, fcm("tok-1"))
    async with sessions() as session:
        await devices.deactivate(session=session, app_id=app_id, device_id=first.record.device.id)
        await session.commit()
    # When its token registers again
    again = await register(sessions, app_id, fcm("tok-1"))
    # Then the same device is active again, with no invalidation left on it
    device = again.record.device
    assert not again.created
    assert device.id == first.record.device.id
    assert (device.invalidated_at, device.invalidation_reason) == (None, None)
    assert devices.status_of(device) is devices.Status.ACTIVE


async def test_reregistering_keeps_a_client_disabled_device_disabled(
    sessions: db.SessionMaker,
) -> None:
    app_id = await new_app(sessions)
    first = await register(sessions, app_id, fcm("tok-1"))
    async with sessions() as session:
        await devices.update(
            session=session,
            app_id=app_id,
            device_id=first.record.device.id,
            profile={"enabled": False},
        )
        await session.commit()
    again = await register(sessions, app_id, fcm("tok-1"))
    assert devices.status_of(again.record.device) is devices.Status.DISABLED


async def test_webpush_keys_are_refreshed_on_reregistration(sessions: db.SessionMaker) -> None:
    app_id = await new_app(sessions)
    url = "https://fcm.googleapis.com/fcm/send/abc"
    await register(sessions, app_id, PushAddress(Platform.WEBPUSH, url, "key-1", "auth-1"))
    again = await register(sessions, app_id, PushAddress(Platform.WEBPUSH, url, "key-2", "auth-2"))
    assert (again.record.device.p256dh, again.record.device.auth) == ("key-2", "auth-2")


async def test_same_token_in_two_apps_gives_two_devices(sessions: db.SessionMaker) -> None:
    acme, globex = await new_app(sessions, "acme"), await new_app(sessions, "globex")
    a = await register(sessions, acme, fcm("shared"), profile={"user_id": "a"})
    b = await register(sessions, globex, fcm("shared"), profile={"user_id": "b"})
    assert a.created
    assert b.created
    assert a.record.device.id != b.record.device.id
    async with sessions() as session:
        still = await devices.get(session=session, app_id=acme, device_id=a.record.device.id)
    assert still.device.user_id == "a"


async def test_same_token_on_two_platforms_gives_two_devices(sessions: db.SessionMaker) -> None:
    app_id = await new_app(sessions)
    token = "ab" * 32
    a = await register(sessions, app_id, fcm(token))
    b = await register(sessions, app_id, PushAddress(Platform.APNS, token))
    assert a.record.device.id != b.record.device.id


async def test_concurrent_registrations_of_one_token_make_one_device(
    sessions: db.SessionMaker,
) -> None:
    # Given an app
    app_id = await new_app(sessions)
    # When the same token registers several times at once, on separate connections
    results = await asyncio.gather(
        *(register(sessions, app_id, fcm("racy"), topics=["t"]) for _ in range(4))
    )
    # Then none failed, exactly one created the device, and they all name it
    assert sum(r.created for r in results) == 1
    assert len({r.record.device.id for r in results}) == 1
    async with sessions() as session:
        page = await devices.list_page(session=session, app_id=app_id)
    assert [r.topics for r in page.items] == [("t",)]


async def test_concurrent_registrations_keeping_the_user_give_the_device_one_user(
    sessions: db.SessionMaker,
) -> None:
    # Given an app
    app_id = await new_app(sessions)
    # When one token registers for four users at once, each keeping a user the device has
    results = await asyncio.gather(
        *(
            register(sessions, app_id, fcm("racy"), profile={"user_id": f"u{i}"}, keep_user=True)
            for i in range(4)
        ),
        return_exceptions=True,
    )
    # Then one registration won, the others were refused, and the device has the winner's user
    [won] = [r for r in results if isinstance(r, devices.Registration)]
    refused = [r for r in results if isinstance(r, PermissionDeniedError)]
    assert [e.code for e in refused] == ["device_user_locked"] * 3
    async with sessions() as session:
        [device] = (await devices.list_page(session=session, app_id=app_id)).items
    assert device.device.user_id == won.record.device.user_id


async def test_update_keeping_the_user_gives_one_only_to_a_device_without_one(
    sessions: db.SessionMaker,
) -> None:
    # Given a device without a user
    app_id = await new_app(sessions)
    device_id = (await register(sessions, app_id, fcm("tok"))).record.device.id

    async def give(user_id: str | None) -> devices.DeviceRecord:
        async with sessions() as session:
            record = await devices.update(
                session=session,
                app_id=app_id,
                device_id=device_id,
                profile={"user_id": user_id},
                held_token="tok",
                keep_user=True,
            )
            await session.commit()
            return record

    # When it is given one, Then it has it, and may be given the same again
    assert (await give("u1")).device.user_id == "u1"
    assert (await give("u1")).device.user_id == "u1"
    # But never another, nor none
    for other in ("u2", None):
        with pytest.raises(PermissionDeniedError):
            await give(other)
    async with sessions() as session:
        assert (
            await devices.get(session=session, app_id=app_id, device_id=device_id)
        ).device.user_id == "u1"


async def test_list_pages_through_all_devices_in_registration_order(
    sessions: db.SessionMaker,
) -> None:
    # Given five devices
    app_id = await new_app(sessions)
    made = [(await register(sessions, app_id, fcm(f"tok-{i}"))).record.device.id for i in range(5)]
    # When they are read two at a time
    seen: list[uuid.UUID] = []
    after = None
    async with sessions() as session:
        for _ in range(5):
            page = await devices.list_page(session=session, app_id=app_id, after=after, limit=2)
            seen += [r.device.id for r in page.items]
            after = page.next_after
            if after is None:
                break
    # Then every device comes exactly once, oldest first, and the last page says so
    assert seen == made
    assert after is None


async def test_list_by_topic_pages_through_the_topic_audience(sessions: db.SessionMaker) -> None:
    # Given devices of which every other one follows "news"
    app_id = await new_app(sessions)
    news = []
    for i in range(6):
        topics = ["news", "x"] if i % 2 == 0 else ["sports"]
        registration = await register(sessions, app_id, fcm(f"tok-{i}"), topics=topics)
        if i % 2 == 0:
            news.append(registration.record.device.id)
    # When the "news" audience is read a page of two at a time
    async with sessions() as session:
        first = await devices.list_page(session=session, app_id=app_id, topic="news", limit=2)
        assert first.next_after is not None
        second = await devices.list_page(
            session=session, app_id=app_id, topic="news", limit=2, after=first.next_after
        )
    # Then exactly the followers come, with all their topics
    assert [r.device.id for r in first.items + second.items] == news
    assert second.next_after is None
    assert all(r.topics == ("news", "x") for r in first.items + second.items)


async def test_list_filters_by_user_platform_and_enabled(sessions: db.SessionMaker) -> None:
    app_id = await new_app(sessions)
    phone = await register(sessions, app_id, fcm("phone"), profile={"user_id": "u1"})
    tablet = await register(
        sessions, app_id, PushAddress(Platform.APNS, "ab" * 32), profile={"user_id": "u1"}
    )
    await register(sessions, app_id, fcm("other"), profile={"user_id": "u2"})
    async with sessions() as session:
        await devices.update(
            session=session,
            app_id=app_id,
            device_id=tablet.record.device.id,
            profile={"enabled": False},
        )
        await session.commit()

        async def ids(**filters: object) -> list[uuid.UUID]:
            page = await devices.list_page(session=session, app_id=app_id, **filters)  # type: ignore[arg-type]
            return [r.device.id for r in page.items]

        assert await ids(user_id="u1") == [phone.record.device.id, tablet.record.device.id]
        assert await ids(user_id="u1", platform=Platform.APNS) == [tablet.record.device.id]
        assert await ids(user_id="u1", enabled=True) == [phone.record.device.id]
        assert await ids(user_id="nobody") == []


async def test_default_list_hides_deactivated_devices(sessions: db.SessionMaker) -> None:
    # Given an active, a disabled and a deleted device
    app_id = await new_app(sessions)
    active, disabled, deleted = [
        (await register(sessions, app_id, fcm(name))).record.device.id
        for name in ("active", "disabled", "deleted")
    ]
    async with sessions() as session:
        await devices.update(
            session=session, app_id=app_id, device_id=disabled, profile={"enabled": False}
        )
        await devices.deactivate(session=session, app_id=app_id, device_id=deleted)
        await session.commit()

        async def ids(statuses: frozenset[devices.Status]) -> list[uuid.UUID]:
            page = await devices.list_page(session=session, app_id=app_id, statuses=statuses)
            return [r.device.id for r in page.items]

        # Then each status filter shows exactly its devices
        assert await ids(devices.VISIBLE) == [active, disabled]
        assert await ids(frozenset({devices.Status.ACTIVE})) == [active]
        assert await ids(frozenset({devices.Status.DISABLED})) == [disabled]
        assert await ids(frozenset({devices.Status.DEACTIVATED})) == [deleted]
        assert await ids(frozenset(devices.Status)) == [active, disabled, deleted]


async def test_deleting_keeps_the_row_and_the_first_reason(sessions: db.SessionMaker) -> None:
    # Given a device a provider invalidated
    app_id = await new_app(sessions)
    device_id = (await register(sessions, app_id, fcm("tok"))).record.device.id
    async with sessions() as session:
        await devices.deactivate(
            session=session, app_id=app_id, device_id=device_id, reason="unregistered", now=T0
        )
        await session.commit()
        # When the client deletes it afterwards
        await devices.deactivate(
            session=session, app_id=app_id, device_id=device_id, now=T0 + timedelta(hours=1)
        )
        await session.commit()
        # Then the row is still there with the provider's reason and time, still enabled
        record = await devices.get(session=session, app_id=app_id, device_id=device_id)
    assert (record.device.invalidated_at, record.device.invalidation_reason) == (
        T0,
        "unregistered",
    )
    assert record.device.enabled


async def test_purge_removes_the_device_and_its_topics(sessions: db.SessionMaker) -> None:
    app_id = await new_app(sessions)
    device_id = (await register(sessions, app_id, fcm("tok"), topics=["a", "b"])).record.device.id
    async with sessions() as session:
        await devices.purge(session=session, app_id=app_id, device_id=device_id)
        await session.commit()
        with pytest.raises(NotFoundError):
            await devices.get(session=session, app_id=app_id, device_id=device_id)
        left = await session.execute(
            select(func.count()).select_from(DeviceTopic).where(DeviceTopic.device_id == device_id)
        )
        assert left.scalar_one() == 0


async def test_adding_topics_is_idempotent(sessions: db.SessionMaker) -> None:
    app_id = await new_app(sessions)
    device_id = (await register(sessions, app_id, fcm("tok"), topics=["a"])).record.device.id
    async with sessions() as session:
        await devices.add_topics(
            session=session, app_id=app_id, device_id=device_id, topics=["b", "a"]
        )
        record = await devices.add_topics(
            session=session, app_id=app_id, device_id=device_id, topics=["b"]
        )
        await session.commit()
    assert record.topics == ("a", "b")
    async with sessions() as session:
        assert (await devices.get(session=session, app_id=app_id, device_id=device_id)).topics == (
            "a",
            "b",
        )


async def test_a_device_holds_at_most_the_topic_limit(sessions: db.SessionMaker) -> None:
    app_id = await new_app(sessions)
    full = [f"t{i}" for i in range(devices.MAX_TOPICS)]
    device_id = (await register(sessions, app_id, fcm("tok"), topics=full)).record.device.id
    async with sessions() as session:
        # Adding a topic it already has is fine; a new one is over the limit
        await devices.add_topics(session=session, app_id=app_id, device_id=device_id, topics=["t0"])
        with pytest.raises(InvalidInputError) as caught:
            await devices.add_topics(
                session=session, app_id=app_id, device_id=device_id, topics=["one-more"]
            )
    assert caught.value.code == "too_many_topics"


async def test_removing_a_topic_leaves_the_others(sessions: db.SessionMaker) -> None:
    app_id = await new_app(sessions)
    device_id = (await register(sessions, app_id, fcm("tok"), topics=["a", "b"])).record.device.id
    async with sessions() as session:
        record = await devices.remove_topic(
            session=session, app_id=app_id, device_id=device_id, topic="a"
        )
        again = await devices.remove_topic(
            session=session, app_id=app_id, device_id=device_id, topic="a"
        )
        await session.commit()
    assert record.topics == again.topics == ("b",)


async def test_update_changes_fields_and_can_clear_them(sessions: db.SessionMaker) -> None:
    app_id = await new_app(sessions)
    device_id = (
        await register(sessions, app_id, fcm("tok"), profile={"user_id": "u1", "locale": "fr"})
    ).record.device.id
    async with sessions() as session:
        record = await devices.update(
            session=session,
            app_id=app_id,
            device_id=device_id,
            profile={"user_id": None, "timezone": "Europe/Paris"},
            topics=["z"],
            now=T0 + timedelta(days=400),
        )
        await session.commit()
    assert (record.device.user_id, record.device.locale, record.device.timezone) == (
        None,
        "fr",
        "Europe/Paris",
    )
    assert record.topics == ("z",)
    assert record.device.updated_at == T0 + timedelta(days=400)


async def test_every_operation_on_another_apps_device_is_not_found(
    sessions: db.SessionMaker,
) -> None:
    # Given a device of globex with a topic
    acme, globex = await new_app(sessions, "acme"), await new_app(sessions, "globex")
    theirs = (await register(sessions, globex, fcm("tok"), topics=["t"])).record.device.id
    # When acme addresses it by id, Then every operation says it does not exist
    async with sessions() as session:
        operations = [
            devices.get(session=session, app_id=acme, device_id=theirs),
            devices.update(session=session, app_id=acme, device_id=theirs, profile={"locale": "x"}),
            devices.add_topics(session=session, app_id=acme, device_id=theirs, topics=["u"]),
            devices.remove_topic(session=session, app_id=acme, device_id=theirs, topic="t"),
            devices.deactivate(session=session, app_id=acme, device_id=theirs),
            devices.purge(session=session, app_id=acme, device_id=theirs),
        ]
        for operation in operations:
            with pytest.raises(NotFoundError) as caught:
                await operation
            assert caught.value.code == "device_not_found"
        await session.commit()
        # And globex's device is untouched
        record = await devices.get(session=session, app_id=globex, device_id=theirs)
        assert record.topics == ("t",)
        assert devices.status_of(record.device) is devices.Status.ACTIVE
        assert (await devices.list_page(session=session, app_id=acme)).items == []
        assert (await devices.list_page(session=session, app_id=acme, topic="t")).items == []


async def test_a_device_ids_audience_pages_over_the_named_devices_of_the_app(
    sessions: db.SessionMaker,
) -> None:
    # Given seven named ids: five active devices of the app, one disabled, one of another app
    app_id = await new_app(sessions)
    other_app = await new_app(sessions, name="other")
    named = [(await register(sessions, app_id, fcm(f"tok-{i}"))).record.device.id for i in range(5)]
    disabled = await register(sessions, app_id, fcm("tok-off"), profile={"enabled": False})
    foreign = await register(sessions, other_app, fcm("tok-foreign"))
    target: dict[str, object] = {
        "kind": "device_ids",
        "value": [str(i) for i in [*named, disabled.record.device.id, foreign.record.device.id]],
    }

    # When the audience is read two ids at a time
    seen: list[uuid.UUID] = []
    after = None
    async with sessions() as session:
        for _ in range(10):
            page, after = await audience.page(
                session=session, app_id=app_id, target=target, after=after, limit=2
            )
            seen += [r.device_id for r in page]
            if after is None:
                break

    # Then exactly the app's active named devices come, once each, in id order
    assert seen == sorted(named)
