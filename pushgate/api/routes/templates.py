"""An app's templates: create, edit (each edit is a new version), read, list, see the versions,
and preview a rendering. Admin keys write; send keys read and preview (they send with them).

There is no DELETE: a version number names one text for good (notifications record it), and
deleting then creating a code again would number a different text 1 again. An unused template
costs a row and nothing else."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from pushgate.api.deps import Admin, NotificationReader, SessionDep
from pushgate.api.responses import errors
from pushgate.api.schemas import templates as schemas
from pushgate.domain import locales
from pushgate.sending import templates as rendering
from pushgate.store import templates as stored

router = APIRouter(prefix="/v1/templates", tags=["templates"])

CodePath = Annotated[str, Path(max_length=100, description="The template's code.")]
NOT_FOUND = errors(described={404: "No template with that code in the app (`template_not_found`)"})
EXISTS = errors(described={409: "A template with that code exists (`template_exists`)"})


@router.post("", status_code=201, summary="Create a template (version 1)", responses=EXISTS)
async def create(
    body: schemas.TemplateCreate, caller: Admin, session: SessionDep, response: Response
) -> schemas.TemplatePublic:
    row = await stored.create(
        session=session,
        app_id=caller.app_id,
        code=body.code,
        default_locale=body.default_locale,
        variants=body.stored_variants(),
        description=body.description,
    )
    await session.commit()
    response.headers["Location"] = f"/v1/templates/{row.code}"
    return schemas.TemplatePublic.of(row)


@router.put(
    "/{code}",
    summary="Replace a template's content: a new version",
    responses=NOT_FOUND | errors(described={409: "Edited concurrently (`template_busy`)"}),
)
async def update(
    code: CodePath, body: schemas.TemplateUpdate, caller: Admin, session: SessionDep
) -> schemas.TemplatePublic:
    row = await stored.add_version(
        session=session,
        app_id=caller.app_id,
        code=code,
        default_locale=body.default_locale,
        variants=body.stored_variants(),
        description=body.description,
    )
    await session.commit()
    return schemas.TemplatePublic.of(row)


@router.get("", summary="The app's templates, each at its current version")
async def list_templates(
    caller: NotificationReader,
    session: SessionDep,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> schemas.TemplatesPublic:
    rows = await stored.list_current(
        session=session, app_id=caller.app_id, after=cursor, limit=limit + 1
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return schemas.TemplatesPublic(
        items=[schemas.TemplatePublic.of(r) for r in rows],
        next_cursor=rows[-1].code if more else None,
    )


@router.get("/{code}", summary="A template's current version", responses=NOT_FOUND)
async def get(
    code: CodePath, caller: NotificationReader, session: SessionDep
) -> schemas.TemplatePublic:
    row = await stored.current(session=session, app_id=caller.app_id, code=code)
    return schemas.TemplatePublic.of(row)


@router.get("/{code}/versions", summary="A template's versions, newest first", responses=NOT_FOUND)
async def versions(
    code: CodePath, caller: NotificationReader, session: SessionDep
) -> schemas.TemplateVersionsPublic:
    rows = await stored.versions(session=session, app_id=caller.app_id, code=code)
    return schemas.TemplateVersionsPublic(items=[schemas.TemplatePublic.of(r) for r in rows])


@router.post(
    "/{code}/preview",
    summary="Render a template with variables, as a notification would",
    responses=NOT_FOUND
    | errors(described={422: "A variable is missing or unusable; `details.field` names it"}),
)
async def preview(
    code: CodePath, body: schemas.PreviewRequest, caller: NotificationReader, session: SessionDep
) -> schemas.PreviewPublic:
    row = await stored.current(
        session=session, app_id=caller.app_id, code=code, version=body.version
    )
    wanted = (
        list(row.variants)
        if body.locale is None
        else [locales.resolve(body.locale, row.variants, row.default_locale)]
    )
    variants = {
        locale: schemas.RenderedVariant(**rendering.render_variant(row, locale, body.variables))
        for locale in wanted
    }
    return schemas.PreviewPublic(
        code=row.code, version=row.version, default_locale=row.default_locale, variants=variants
    )
