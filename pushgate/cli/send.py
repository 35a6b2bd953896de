"""`pushgate send`: accept a notification from the command line, through the same accept use
case as the API (not over HTTP), and with --wait follow it to its end and show each device's
outcome. With the embedded profile the delivery is done by a running `pushgate serve` (or
`worker`): this process stores the notification and publishes its job, and --wait polls the
database."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Annotated, Any

import orjson
import pydantic
import typer

from pushgate.cli.common import (
    AppOption,
    ConfigOption,
    JsonOption,
    fail,
    out,
    run,
    settings_from,
    show,
    with_runtime,
)
from pushgate.domain.notification import FINAL_NOTIFICATION
from pushgate.domain.request import NotificationCreate
from pushgate.errors import PushgateError
from pushgate.runtime import Runtime
from pushgate.sending import accept
from pushgate.store import apps, deliveries, notifications
from pushgate.store.tables import Delivery

POLL_SECONDS = 0.2
PAGE = 500
# The request's fields as this command's options, to name them in a refusal.
OPTIONS = {
    "user_ids": "--user",
    "topics": "--topic",
    "device_ids": "--device",
    "template_code": "--template",
    "variables": "--var",
    "data": "--data",
    **{name: f"--{name.replace('_', '-')}" for name in ("title", "body", "url", "category", "ttl")},
    "idempotency_key": "--idempotency-key",
}


def send(
    app_name: AppOption,
    user: Annotated[
        list[str] | None, typer.Option(metavar="USER_ID", help="A user id (repeat for several).")
    ] = None,
    topic: Annotated[
        list[str] | None, typer.Option(metavar="TOPIC", help="A topic (repeat for several).")
    ] = None,
    device: Annotated[
        list[str] | None, typer.Option(metavar="DEVICE_ID", help="A device id (repeatable).")
    ] = None,
    broadcast: Annotated[
        bool, typer.Option("--broadcast", help="Every active device of the app.")
    ] = False,
    title: Annotated[str | None, typer.Option()] = None,
    body: Annotated[str | None, typer.Option()] = None,
    url: Annotated[str | None, typer.Option(help="Opened on a tap.")] = None,
    template: Annotated[str | None, typer.Option(help="A template's code.")] = None,
    var: Annotated[
        list[str] | None,
        typer.Option(metavar="KEY=VALUE", help="A template variable; VALUE as JSON if it parses."),
    ] = None,
    data: Annotated[
        list[str] | None, typer.Option(metavar="KEY=VALUE", help="A data field (a string).")
    ] = None,
    category: Annotated[str | None, typer.Option()] = None,
    ttl: Annotated[int | None, typer.Option(help="Seconds the push services keep it.")] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="Send at most once per key.")] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait until it is final; print each device's outcome.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds --wait waits.", min=0)] = 60.0,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Send a notification to users, topics, devices or everyone of an app."""
    settings = settings_from(config)
    fields: dict[str, Any] = {
        "user_ids": user,
        "topics": topic,
        "device_ids": device,
        "broadcast": broadcast or None,
        "title": title,
        "body": body,
        "url": url,
        "template_code": template,
        "variables": _pairs(var, "--var", as_json_value=True),
        "data": _pairs(data, "--data", as_json_value=False),
        "category": category,
        "ttl": ttl,
        "idempotency_key": idempotency_key,
    }
    request = _request({k: v for k, v in fields.items() if v is not None})

    async def work(runtime: Runtime) -> dict[str, Any]:
        # Started here, after `with_runtime` brought the embedded schema up: its queue is a
        # table the first start creates.
        await runtime.broker.start()
        async with runtime.sessions() as session:
            owner = await apps.get_by_name(session=session, name=app_name)
        [result] = await accept.accept_many(runtime, app_id=owner.id, requests=[request])
        if isinstance(result, PushgateError):
            return {"refused": result}
        row = result.notification
        sent = {
            "id": str(row.id),
            "status": row.status,
            "idempotency_key": row.idempotency_key,
            "replayed": result.replayed,
        }
        if wait:
            sent |= await _outcome(runtime, owner.id, row.id, time.monotonic() + timeout)
        return sent

    sent = run(with_runtime(settings, work))
    refused = sent.get("refused")
    if isinstance(refused, PushgateError):
        raise fail(f"{refused.message} ({refused.code})", 2)
    _show(sent, as_json)
    if wait and sent["status"] not in FINAL_NOTIFICATION:
        raise fail(f"notification {sent['id']} not final after {timeout:g}s: {sent['status']}")


def _pairs(given: list[str] | None, option: str, *, as_json_value: bool) -> dict[str, Any] | None:
    if not given:
        return None
    pairs: dict[str, Any] = {}
    for item in given:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise fail(f"{option} takes KEY=VALUE, not {item!r}", 2)
        pairs[key] = _json_or_text(value) if as_json_value else value
    return pairs


def _json_or_text(value: str) -> Any:
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return value


def _request(fields: dict[str, Any]) -> NotificationCreate:
    try:
        return NotificationCreate.model_validate(fields)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        option = OPTIONS.get(where.split(".")[0])
        raise fail(
            f"{option}: {first.get('msg')}" if option else str(first.get("msg")), 2
        ) from None


async def _outcome(
    runtime: Runtime, app_id: uuid.UUID, notification_id: uuid.UUID, deadline: float
) -> dict[str, Any]:
    """Poll until the notification is final (or the monotonic `deadline`); its status, counts
    and each device's outcome. A fresh session per look: each must see the worker's commits."""
    while True:
        async with runtime.sessions() as session:
            row = await notifications.get(
                session=session, app_id=app_id, notification_id=notification_id
            )
            status = row.status
            if status in FINAL_NOTIFICATION or time.monotonic() >= deadline:
                by_platform = await notifications.delivery_counts(
                    session=session, notification_id=notification_id
                )
                rows = await _deliveries(session, app_id, notification_id)
                return {
                    "status": status,
                    "counts": notifications.counts_summary(by_platform),
                    "deliveries": [_delivery(d) for d in rows],
                }
        await asyncio.sleep(POLL_SECONDS)


async def _deliveries(
    session: Any, app_id: uuid.UUID, notification_id: uuid.UUID
) -> list[Delivery]:
    rows: list[Delivery] = []
    after: int | None = None
    while True:
        page = await deliveries.page_for_notification(
            session=session, app_id=app_id, notification_id=notification_id, after=after, limit=PAGE
        )
        rows += page
        if len(page) < PAGE:
            return rows
        after = page[-1].id


def _delivery(row: Delivery) -> dict[str, Any]:
    return {
        "device_id": None if row.device_id is None else str(row.device_id),
        "platform": row.platform,
        "status": row.status,
        "error": row.error,
        "response_code": row.response_code,
    }


def _show(sent: dict[str, Any], as_json: bool) -> None:
    if as_json:
        show(sent, True)
        return
    replay = " (already sent with this idempotency key)" if sent["replayed"] else ""
    out.print(f"notification {sent['id']}: {sent['status']}{replay}", highlight=False)
    if "deliveries" not in sent:
        return
    counts = ", ".join(f"{n} {k}" for k, n in sent["counts"].items() if k != "total" and n)
    out.print(f"{sent['counts'].get('total', 0)} deliveries: {counts or 'none'}", highlight=False)
    # One plain line per device (not a table, which would cut the ids to the terminal's width).
    for d in sent["deliveries"]:
        error = f"  {d['error']}" if d["error"] else ""
        line = f"{d['device_id'] or '-'}  {d['platform']}  {d['status']}{error}"
        out.print(line, highlight=False, markup=False, soft_wrap=True)
