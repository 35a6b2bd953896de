"""The legacy subscription service's reports: `/analytics/subscriptions/` and
`/analytics/deliveries/` (Web Push only, from pushgate's analytics rollups, per UTC day),
`/health/` (status, version, dependencies) and `/metrics/` (pushgate's `/metrics`)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse

from pushgate import __version__
from pushgate.api.deps import Caller, RuntimeDep, SessionDep
from pushgate.api.routes import metrics as metrics_route
from pushgate.compat.auth import legacy_caller
from pushgate.compat.errors import LegacyRoute
from pushgate.compat.shapes import Backends, HealthReport, backends, tag
from pushgate.compat.subscription_service import SHAPE, schemas, translate
from pushgate.domain import storable
from pushgate.domain.analytics import Interval, Stats, Window
from pushgate.domain.apikeys import Permission
from pushgate.domain.rates import RouteClass
from pushgate.domain.subscription import Platform
from pushgate.errors import InvalidInputError
from pushgate.runtime import Runtime
from pushgate.store import analytics, rollups
from pushgate.store.tables import utcnow

router = APIRouter(route_class=LegacyRoute, tags=[tag(SHAPE)], deprecated=True)

Analyst = Annotated[
    Caller, Depends(legacy_caller(SHAPE, Permission.NOTIFICATIONS_READ, RouteClass.READ))
]
DateFrom = Annotated[
    date | None, Query(description="First UTC day, YYYY-MM-DD. Default: 30 days before date_to.")
]
DateTo = Annotated[date | None, Query(description="Last UTC day (included). Default: today.")]
WEBPUSH = Platform.WEBPUSH.value


def window(date_from: date | None, date_to: date | None, *, now: datetime) -> Window:
    """The whole UTC days from `date_from` to `date_to`, both included.

    Raises: InvalidInputError (`invalid_range`, `range_too_long`) naming the legacy fields.
    """
    if date_from is not None and date_to is not None and date_from > date_to:
        # Whole days: a window from a day to the day before is empty, not reversed, to Window.
        raise InvalidInputError(
            "date_from must not be after date_to", field="date_from", code="invalid_range"
        )
    try:
        until = datetime.combine(date_to + timedelta(days=1), time(), UTC) if date_to else now
        since = datetime.combine(date_from, time(), UTC) if date_from else None
        return Window.of(Interval.DAY, since, until, now=now)
    except OverflowError:
        raise InvalidInputError(
            "date_to is the last day of the calendar", field="date_to", code="invalid_range"
        ) from None
    except InvalidInputError as exc:
        # The same refusal, in the legacy names of the window's ends.
        legacy = {"since": "date_from", "until": "date_to"}
        message = " ".join(legacy.get(word, word) for word in exc.message.split(" "))
        field = legacy.get(str((exc.details or {}).get("field")), "date_from")
        raise InvalidInputError(message, field=field, code=exc.code) from None


def _days(span: Window) -> tuple[date, date]:
    return span.since.date(), (span.end - timedelta(days=1)).date()


@router.get("/analytics/subscriptions/", summary="Web Push subscriptions: live, new and gone")
async def subscription_analytics(
    caller: Analyst, session: SessionDep, date_from: DateFrom = None, date_to: DateTo = None
) -> schemas.SubscriptionReport:
    span = window(date_from, date_to, now=utcnow())
    counts = await analytics.device_days(
        session=session, app_id=caller.app_id, since=span.since, until=span.end, platform=WEBPUSH
    )
    active = await analytics.active_devices(session=session, app_id=caller.app_id, platform=WEBPUSH)
    zero = dict.fromkeys(rollups.DEVICE_COUNTS, 0)
    daily = [
        schemas.SubscriptionDay(date=day.date(), **counts.get((day, WEBPUSH), zero))
        for day in span.starts()
    ]
    first, last = _days(span)
    return schemas.SubscriptionReport(
        date_from=first,
        date_to=last,
        active=active.get(WEBPUSH, 0),
        **{name: sum(getattr(d, name) for d in daily) for name in rollups.DEVICE_COUNTS},
        daily=daily,
    )


@router.get("/analytics/deliveries/", summary="Web Push deliveries per day")
async def delivery_analytics(
    caller: Analyst,
    session: SessionDep,
    date_from: DateFrom = None,
    date_to: DateTo = None,
    category: Annotated[
        Annotated[str, storable.TEXT] | None,
        Query(alias="type", min_length=1, max_length=100, description="pushgate's category."),
    ] = None,
) -> schemas.DeliveryReport:
    span = window(date_from, date_to, now=utcnow())
    by_day = await analytics.delivery_stats(
        session=session,
        app_id=caller.app_id,
        since=span.since,
        until=span.end,
        group="time",
        interval=Interval.DAY,
        provider=WEBPUSH,
        category=category,
    )
    totals = Stats()
    for stats in by_day.values():
        totals.merge(stats)
    daily = []
    for day in span.starts():
        found = translate.statistics(by_day.get(day, Stats()).by_outcome)
        daily.append(
            schemas.DeliveryDay(
                date=day.date(), total=found.total, sent=found.sent, failed=found.failed
            )
        )
    summed = translate.statistics(totals.by_outcome)
    first, last = _days(span)
    return schemas.DeliveryReport(
        date_from=first,
        date_to=last,
        type=category,
        total=summed.total,
        sent=summed.sent,
        failed=summed.failed,
        success_rate=totals.success_rate,
        by_outcome=totals.by_outcome,
        daily=daily,
    )


def health_report(_runtime: Runtime, backends: Backends) -> HealthReport:
    """This shape's health: each dependency's state (`/health/`, and `/health` when the
    shape is enabled: the old service's clients reached `/health/` from `/health` by
    FastAPI's redirect)."""
    return HealthReport(backends.answer, {"dependencies": backends.checks})


@router.get(
    "/health/",
    summary="Status, version and each dependency's state",
    responses={503: {"description": "A dependency is unreachable (`status` unhealthy)"}},
)
async def health(runtime: RuntimeDep) -> JSONResponse:
    report = health_report(runtime, await backends(runtime))
    body = {
        "status": "healthy" if report.healthy else "unhealthy",
        "version": __version__,
        **report.fields,
    }
    return JSONResponse(body, status_code=200 if report.healthy else 503)


@router.get(
    "/metrics/",
    summary="Prometheus metrics: pushgate's `/metrics` (its `metrics.*` settings apply)",
    response_class=Response,
)
async def metrics(request: Request, runtime: RuntimeDep) -> Response:
    return await metrics_route.metrics(request, runtime)
