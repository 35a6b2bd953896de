"""Queries on templates: create, add a version, read the current one or a given one, list, and
each version's history. Versions are never changed: an edit inserts the next one. Every query
is filtered on its app."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from pushgate.errors import ConflictError, NotFoundError
from pushgate.store.tables import Template

# Tries of an edit that lost the race for its version number to another edit: each of n
# concurrent edits may lose to the n - 1 others, once each (edits are people's, rarely many).
EDIT_TRIES = 10


def not_found(code: str) -> NotFoundError:
    return NotFoundError(f"no template {code!r} in this app", code="template_not_found")


async def create(
    *,
    session: AsyncSession,
    app_id: uuid.UUID,
    code: str,
    default_locale: str,
    variants: dict[str, Any],
    description: str | None,
) -> Template:
    """Version 1 of a new template.

    Raises:
        ConflictError: `template_exists`, the app has a template with that code.
    """
    if await _latest_version(session, app_id, code) is not None:
        raise _exists(code)
    row = Template(
        app_id=app_id,
        code=code,
        version=1,
        default_locale=default_locale,
        variants=variants,
        description=description,
    )
    try:
        # A savepoint, so a concurrent create undoes only this insert.
        async with session.begin_nested():
            session.add(row)
    except IntegrityError:
        raise _exists(code) from None
    return row


def _exists(code: str) -> ConflictError:
    return ConflictError(
        f"a template {code!r} exists: PUT /v1/templates/{code} adds a version",
        code="template_exists",
    )


async def add_version(
    *,
    session: AsyncSession,
    app_id: uuid.UUID,
    code: str,
    default_locale: str,
    variants: dict[str, Any],
    description: str | None,
) -> Template:
    """The next version of an existing template, with this content.

    Raises:
        NotFoundError: `template_not_found`.
        ConflictError: `template_busy`, other edits kept taking the next version number.
    """
    for _ in range(EDIT_TRIES):
        latest = await _latest_version(session, app_id, code)
        if latest is None:
            raise not_found(code)
        row = Template(
            app_id=app_id,
            code=code,
            version=latest + 1,
            default_locale=default_locale,
            variants=variants,
            description=description,
        )
        try:
            async with session.begin_nested():
                session.add(row)
        except IntegrityError:
            continue  # another edit took that number: number this one after it
        return row
    raise ConflictError(
        f"template {code!r} is being edited by others: try again",
        code="template_busy",
        headers={"Retry-After": "1"},
    )


async def _latest_version(session: AsyncSession, app_id: uuid.UUID, code: str) -> int | None:
    query = select(func.max(Template.version)).where(
        Template.app_id == app_id, Template.code == code
    )
    latest: int | None = (await session.execute(query)).scalar_one()
    return latest


async def current(
    *, session: AsyncSession, app_id: uuid.UUID, code: str, version: int | None = None
) -> Template:
    """The template's highest version, or the given one.

    Raises:
        NotFoundError: `template_not_found`, no such template (or version) in the app.
    """
    query = select(Template).where(Template.app_id == app_id, Template.code == code)
    if version is not None:
        query = query.where(Template.version == version)
    row = (await session.execute(query.order_by(Template.version.desc()).limit(1))).scalar()
    if row is None:
        if version is not None:
            raise NotFoundError(
                f"template {code!r} has no version {version}", code="template_not_found"
            )
        raise not_found(code)
    return row


async def versions(
    *, session: AsyncSession, app_id: uuid.UUID, code: str, limit: int = 100
) -> list[Template]:
    """The template's versions, newest first.

    Raises:
        NotFoundError: `template_not_found`.
    """
    query = (
        select(Template)
        .where(Template.app_id == app_id, Template.code == code)
        .order_by(Template.version.desc())
        .limit(limit)
    )
    rows = list((await session.execute(query)).scalars())
    if not rows:
        raise not_found(code)
    return rows


async def list_current(
    *, session: AsyncSession, app_id: uuid.UUID, after: str | None = None, limit: int = 100
) -> list[Template]:
    """Each template's current version, by code, keyset-paginated on the code."""
    latest = (
        select(Template.code, func.max(Template.version).label("version"))
        .where(Template.app_id == app_id)
        .group_by(Template.code)
        .subquery()
    )
    query = (
        select(Template)
        .join(latest, (Template.code == latest.c.code) & (Template.version == latest.c.version))
        .where(Template.app_id == app_id)
    )
    if after is not None:
        query = query.where(Template.code > after)
    query = query.order_by(Template.code).limit(limit)
    return list((await session.execute(query)).scalars())
