"""Queries on API keys: create (secret returned once), authenticate (with an in-process cache
for the API's hot path), revoke, list."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import event, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from pushgate.domain import apikeys, rates
from pushgate.domain.apikeys import Scope
from pushgate.domain.rates import Rate
from pushgate.errors import NotFoundError
from pushgate.store import key_cache
from pushgate.store.db import SessionMaker
from pushgate.store.key_cache import CachedKey, KeyCache
from pushgate.store.tables import APIKey, App, utcnow

# last_used_at is advisory; writing it on every request would cost a row update per call.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class CreatedKey:
    row: APIKey
    secret: str


async def create(
    *,
    session: AsyncSession,
    app_id: uuid.UUID,
    scope: Scope,
    name: str | None = None,
    rate_limit: Rate | None = None,
) -> CreatedKey:
    """A new key; `rate_limit` is its own limit, in place of the settings' per-key defaults."""
    new = apikeys.generate()
    row = APIKey(
        app_id=app_id,
        scope=scope.value,
        name=name,
        prefix=new.prefix,
        key_hash=new.hash,
        rate_limit=None if rate_limit is None else str(rate_limit),
    )
    session.add(row)
    await session.flush()
    return CreatedKey(row=row, secret=new.secret)


async def authenticate(*, session: AsyncSession, secret: str) -> APIKey | None:
    """The live key row for a presented secret, or None (unknown, wrong or revoked)."""
    found = await _live(session, secret)
    return None if found is None else found[0]


async def _live(session: AsyncSession, secret: str) -> tuple[APIKey, dict[str, Any] | None] | None:
    """The live key row for a presented secret, with its app's own rate limits."""
    prefix = apikeys.prefix_of(secret)
    if prefix is None:
        return None
    query = (
        select(APIKey, App.rate_limits)
        .join(App, App.id == APIKey.app_id)
        .where(APIKey.prefix == prefix)
    )
    found = (await session.execute(query)).one_or_none()
    if found is None:
        return None
    row, app_limits = found
    if row.revoked_at is not None or not apikeys.matches(secret, row.key_hash):
        return None
    return row, app_limits


async def authenticate_cached(
    *, sessions: SessionMaker, cache: KeyCache, secret: str
) -> CachedKey | None:
    """`authenticate` through `cache`: the database is read (in a session of its own, closed
    before returning) only for a key not seen within the cache's ttl."""
    if apikeys.prefix_of(secret) is None:
        return None
    key_hash = apikeys.hash_key(secret)
    entry = cache.get(key_hash)
    if entry is not None:
        return entry
    async with sessions() as session:
        found = await _live(session, secret)
    if found is None:
        return None
    row, app_limits = found
    return cache.put(
        key_hash,
        key_id=row.id,
        app_id=row.app_id,
        scope=row.scope,
        last_used_at=row.last_used_at,
        limits=rates.own_limits(row.rate_limit, app_limits),
    )


async def touch_cached(
    *, sessions: SessionMaker, key: CachedKey, now: datetime | None = None
) -> bool:
    """`touch` for a cached key, in a session of its own. The entry records the use before the
    write, so the requests that see it meanwhile do not write it again."""
    now = now or utcnow()
    if key.last_used_at is not None and now - key.last_used_at < LAST_USED_RESOLUTION:
        return False
    key.last_used_at = now
    async with sessions() as session:
        await session.execute(
            update(APIKey).where(APIKey.id == key.key_id).values(last_used_at=now)
        )
        await session.commit()
    return True


async def touch(*, session: AsyncSession, key: APIKey, now: datetime | None = None) -> bool:
    """Record use, at most once per LAST_USED_RESOLUTION. Returns whether a write happened."""
    now = now or utcnow()
    if key.last_used_at is not None and now - key.last_used_at < LAST_USED_RESOLUTION:
        return False
    await session.execute(update(APIKey).where(APIKey.id == key.id).values(last_used_at=now))
    return True


async def revoke(
    *,
    session: AsyncSession,
    key_id: uuid.UUID | None = None,
    prefix: str | None = None,
    app_id: uuid.UUID | None = None,
) -> APIKey:
    """Revoke a key by id or by its prefix (what `pushgate keys list` shows). Once the
    session commits, this process's API key caches forget the key; other processes' caches
    within their ttl (see `key_cache`).

    Raises:
        NotFoundError: no such key (in `app_id`, when given).
    """
    query = select(APIKey)
    if key_id is not None:
        query = query.where(APIKey.id == key_id)
    elif prefix is not None:
        # Accept what people paste: the prefix `keys list` shows, the same with the pgk_ mark
        # (the start of their secret), or the whole secret.
        given = prefix.strip()
        candidates = {apikeys.prefix_of(given) or given, given.removeprefix(apikeys.KEY_MARK)}
        query = query.where(APIKey.prefix.in_(candidates))
    else:
        raise ValueError("revoke needs key_id or prefix")
    if app_id is not None:
        query = query.where(APIKey.app_id == app_id)
    row = (await session.execute(query)).scalar_one_or_none()
    if row is None:
        raise NotFoundError("no such API key", code="key_not_found")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        await session.flush()
    _forget_on_commit(session, row.key_hash)
    return row


def _forget_on_commit(session: AsyncSession, key_hash: str) -> None:
    """Drop the key from this process's caches once the revocation commits (not before: a
    request that read the key meanwhile, still live for it, would cache it again)."""

    def forget(_session: Session) -> None:
        key_cache.forget_everywhere(key_hash)

    event.listen(session.sync_session, "after_commit", forget, once=True)


async def list_for_app(*, session: AsyncSession, app_id: uuid.UUID) -> list[APIKey]:
    query = select(APIKey).where(APIKey.app_id == app_id).order_by(APIKey.created_at)
    return list((await session.execute(query)).scalars())
