"""The API's resources as methods: each builds a `Call` (pure), and the `Op` descriptor hands it
to the client's runner, which sends it (sync) or returns the coroutine that does (async). So a
resource is written once for both clients, and typed for each: on `PushgateClient` a method
returns its model, on `AsyncPushgateClient` an awaitable of it."""

from __future__ import annotations

import functools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload
from urllib.parse import quote

from pushgate.client import models as m
from pushgate.client.calls import Call, body, call, keyed

if TYPE_CHECKING:
    from pushgate.client.runners import AsyncRunner, Runner, SyncRunner

P = ParamSpec("P")
T = TypeVar("T")
R = TypeVar("R", bound="Runner")

Id = uuid.UUID | str


class Resource(Generic[R]):
    def __init__(self, runner: R) -> None:
        self._runner = runner


class Op(Generic[P, T]):
    """A method that sends the call its builder makes."""

    def __init__(self, build: Callable[P, Call[T]]) -> None:
        self.build = build
        self.__doc__ = build.__doc__

    @overload
    def __get__(self, obj: Resource[SyncRunner], owner: Any) -> Callable[P, T]: ...
    @overload
    def __get__(self, obj: Resource[AsyncRunner], owner: Any) -> Callable[P, Awaitable[T]]: ...
    def __get__(self, obj: Resource[Any] | None, owner: Any) -> Any:
        if obj is None:  # on the class (help(), inspect): the descriptor itself
            return self
        build, runner = self.build, obj._runner

        def bound(*args: P.args, **kwargs: P.kwargs) -> Any:
            return runner.run(build(*args, **kwargs))

        return functools.update_wrapper(bound, build)  # help() shows the builder's signature


class Paged(Generic[P, T]):
    """A method that walks every page of the list its builder asks for, item by item."""

    def __init__(self, build: Callable[P, Call[m.Page[T]]]) -> None:
        self.build = build

    @overload
    def __get__(self, obj: Resource[SyncRunner], owner: Any) -> Callable[P, Iterator[T]]: ...
    @overload
    def __get__(self, obj: Resource[AsyncRunner], owner: Any) -> Callable[P, AsyncIterator[T]]: ...
    def __get__(self, obj: Resource[Any] | None, owner: Any) -> Any:
        if obj is None:
            return self
        build, runner = self.build, obj._runner

        def bound(*args: P.args, **kwargs: P.kwargs) -> Any:
            return runner.iterate(build(*args, **kwargs))

        return functools.update_wrapper(bound, build)


def _seg(value: object) -> str:
    return quote(str(value), safe="")


# Devices


def _register(device: m.DeviceCreate | Mapping[str, Any]) -> Call[m.Device]:
    """Register a device, or refresh the one with the same platform and token."""
    return call("POST", "/v1/devices", m.Device, json=body(device, m.DeviceCreate))


def _get_device(device_id: Id) -> Call[m.Device]:
    return call("GET", f"/v1/devices/{_seg(device_id)}", m.Device)


def _list_devices(
    *,
    user_id: str | None = None,
    platform: str | None = None,
    topic: str | None = None,
    enabled: bool | None = None,
    status: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Call[m.Page[m.Device]]:
    """A page of the app's devices (`user_id`: one user's), in registration order."""
    params = {"platform": platform, "topic": topic, "enabled": enabled, "status": status}
    path = "/v1/devices" if user_id is None else f"/v1/users/{_seg(user_id)}/devices"
    return call("GET", path, m.Page[m.Device], params={**params, "limit": limit, "cursor": cursor})


def _update_device(device_id: Id, changes: m.DeviceUpdate | Mapping[str, Any]) -> Call[m.Device]:
    """Change the fields given; `None` clears a field."""
    json = body(changes, m.DeviceUpdate)
    return call("PATCH", f"/v1/devices/{_seg(device_id)}", m.Device, json=json)


def _delete_device(device_id: Id, *, purge: bool = False) -> Call[None]:
    params = {"purge": True} if purge else {}
    return call("DELETE", f"/v1/devices/{_seg(device_id)}", None, params=params)


def _add_topics(device_id: Id, topics: Sequence[str]) -> Call[m.Device]:
    path = f"/v1/devices/{_seg(device_id)}/topics"
    return call("POST", path, m.Device, json={"topics": list(topics)})


def _remove_topic(device_id: Id, topic: str) -> Call[m.Device]:
    return call("DELETE", f"/v1/devices/{_seg(device_id)}/topics/{_seg(topic)}", m.Device)


class Devices(Resource[R]):
    register = Op(_register)
    get = Op(_get_device)
    list = Op(_list_devices)
    iterate = Paged(_list_devices)
    update = Op(_update_device)
    delete = Op(_delete_device)
    add_topics = Op(_add_topics)
    remove_topic = Op(_remove_topic)


# Notifications


def _sent(
    path: str,
    notification: m.NotificationCreate | Mapping[str, Any],
    idempotency_key: str | None,
    kind: type[m.Model],
) -> Call[Any]:
    json = body(notification, m.NotificationCreate)
    # Keyed, a resend after a lost answer is answered with the first one: safe to retry.
    return call("POST", path, kind, json=json, headers=keyed(json, idempotency_key))


def _send(
    notification: m.NotificationCreate | Mapping[str, Any], *, idempotency_key: str | None = None
) -> Call[m.NotificationAccepted]:
    """Accept a notification for delivery (202); a uuid4 idempotency key unless given."""
    return _sent("/v1/notifications", notification, idempotency_key, m.NotificationAccepted)


def _send_immediate(
    notification: m.NotificationCreate | Mapping[str, Any], *, idempotency_key: str | None = None
) -> Call[m.ImmediateResult]:
    """Deliver now to a small audience and answer each device's outcome."""
    path = "/v1/notifications/send-immediate"
    return _sent(path, notification, idempotency_key, m.ImmediateResult)


def _send_bulk(
    notifications: Sequence[m.NotificationCreate | Mapping[str, Any]],
) -> Call[m.BulkResult]:
    """Accept up to 1000 notifications, each on its own; each gets a key unless it has one."""
    items = []
    for notification in notifications:
        json = body(notification, m.NotificationCreate)
        json["idempotency_key"] = keyed(json, None)["Idempotency-Key"]
        items.append(json)
    return call("POST", "/v1/notifications/bulk", m.BulkResult, json={"notifications": items})


def _get_notification(notification_id: Id) -> Call[m.Notification]:
    """Status and counters."""
    return call("GET", f"/v1/notifications/{_seg(notification_id)}", m.Notification)


def _by_key(idempotency_key: str) -> Call[m.Notification]:
    path = f"/v1/notifications/by-idempotency-key/{_seg(idempotency_key)}"
    return call("GET", path, m.Notification)


def _deliveries(
    notification_id: Id,
    *,
    status: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Call[m.Page[m.Delivery]]:
    """A page of each device's outcome."""
    path = f"/v1/notifications/{_seg(notification_id)}/deliveries"
    params = {"status": status, "limit": limit, "cursor": cursor}
    return call("GET", path, m.Page[m.Delivery], params=params)


def _cancel(notification_id: Id) -> Call[m.NotificationAccepted]:
    path = f"/v1/notifications/{_seg(notification_id)}/cancel"
    return call("POST", path, m.NotificationAccepted, idempotent=False)


def _history(
    *,
    status: str | None = None,
    category: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Call[m.Page[m.NotificationSummary]]:
    """A page of the app's notifications, newest first."""
    params: dict[str, Any] = {"status": status, "category": category, "limit": limit}
    params |= {"cursor": cursor}
    params |= {"since": since and since.isoformat(), "until": until and until.isoformat()}
    return call("GET", "/v1/notifications", m.Page[m.NotificationSummary], params=params)


class Notifications(Resource[R]):
    send = Op(_send)
    send_bulk = Op(_send_bulk)
    send_immediate = Op(_send_immediate)
    get = Op(_get_notification)
    status = Op(_get_notification)
    get_by_idempotency_key = Op(_by_key)
    deliveries = Op(_deliveries)
    iterate_deliveries = Paged(_deliveries)
    cancel = Op(_cancel)
    list = Op(_history)
    history = Paged(_history)


# Templates


def _create_template(template: m.TemplateCreate | Mapping[str, Any]) -> Call[m.Template]:
    """Create a template (version 1)."""
    json = body(template, m.TemplateCreate)
    return call("POST", "/v1/templates", m.Template, json=json, idempotent=False)


def _replace_template(
    code: str, content: m.TemplateContent | Mapping[str, Any]
) -> Call[m.Template]:
    """Replace a template's content: a new version (so not resent on a lost answer)."""
    json = body(content, m.TemplateContent)
    return call("PUT", f"/v1/templates/{_seg(code)}", m.Template, json=json, idempotent=False)


def _get_template(code: str) -> Call[m.Template]:
    return call("GET", f"/v1/templates/{_seg(code)}", m.Template)


def _versions(code: str) -> Call[m.TemplateVersions]:
    return call("GET", f"/v1/templates/{_seg(code)}/versions", m.TemplateVersions)


def _preview(
    code: str,
    variables: Mapping[str, Any] | None = None,
    *,
    locale: str | None = None,
    version: int | None = None,
) -> Call[m.Preview]:
    json: dict[str, Any] = {"variables": dict(variables or {})}
    json |= {k: v for k, v in {"locale": locale, "version": version}.items() if v is not None}
    return call("POST", f"/v1/templates/{_seg(code)}/preview", m.Preview, json=json)


def _list_templates(
    *, limit: int | None = None, cursor: str | None = None
) -> Call[m.Page[m.Template]]:
    params = {"limit": limit, "cursor": cursor}
    return call("GET", "/v1/templates", m.Page[m.Template], params=params)


class Templates(Resource[R]):
    create = Op(_create_template)
    replace = Op(_replace_template)
    get = Op(_get_template)
    versions = Op(_versions)
    preview = Op(_preview)
    list = Op(_list_templates)
    iterate = Paged(_list_templates)


# Preferences


def _prefs_path(user_id: str) -> str:
    return f"/v1/users/{_seg(user_id)}/preferences"


def _get_prefs(user_id: str) -> Call[m.Preferences]:
    """A user's preferences (the defaults when none are set)."""
    return call("GET", _prefs_path(user_id), m.Preferences)


def _put_prefs(
    user_id: str, preferences: m.PreferencesUpdate | Mapping[str, Any]
) -> Call[m.Preferences]:
    """Replace a user's preferences whole: what is left out takes its default."""
    json = body(preferences, m.PreferencesUpdate)
    return call("PUT", _prefs_path(user_id), m.Preferences, json=json)


def _delete_prefs(user_id: str) -> Call[None]:
    return call("DELETE", _prefs_path(user_id), None)


class PreferencesResource(Resource[R]):
    get = Op(_get_prefs)
    put = Op(_put_prefs)
    delete = Op(_delete_prefs)


# Webhooks (admin keys)


def _webhook_path(webhook_id: Id, *rest: str) -> str:
    return "/".join(("/v1/webhooks", _seg(webhook_id), *rest))


def _create_webhook(webhook: m.WebhookCreate | Mapping[str, Any]) -> Call[m.WebhookWithSecret]:
    """Add a webhook; the answer's `secret` is shown this once (so not resent on a lost
    answer: a second webhook would be made)."""
    json = body(webhook, m.WebhookCreate)
    return call("POST", "/v1/webhooks", m.WebhookWithSecret, json=json, idempotent=False)


def _list_webhooks() -> Call[m.Webhooks]:
    return call("GET", "/v1/webhooks", m.Webhooks)


def _get_webhook(webhook_id: Id) -> Call[m.Webhook]:
    return call("GET", _webhook_path(webhook_id), m.Webhook)


def _update_webhook(
    webhook_id: Id, changes: m.WebhookUpdate | Mapping[str, Any]
) -> Call[m.Webhook]:
    """Change the fields given (`url`, `events`, `enabled`)."""
    json = body(changes, m.WebhookUpdate)
    return call("PATCH", _webhook_path(webhook_id), m.Webhook, json=json)


def _delete_webhook(webhook_id: Id) -> Call[None]:
    """Remove a webhook and its events."""
    return call("DELETE", _webhook_path(webhook_id), None)


def _rotate_secret(webhook_id: Id) -> Call[m.WebhookWithSecret]:
    """A new secret, shown this once; the old one keeps signing for an overlap. Not resent on
    a lost answer: a second rotation would drop the secret the first one made."""
    path = _webhook_path(webhook_id, "rotate-secret")
    return call("POST", path, m.WebhookWithSecret, idempotent=False)


def _webhook_deliveries(webhook_id: Id, *, limit: int | None = None) -> Call[m.WebhookDeliveries]:
    """The webhook's recent events, newest first, with their last answers."""
    path = _webhook_path(webhook_id, "deliveries")
    return call("GET", path, m.WebhookDeliveries, params={"limit": limit})


class WebhooksResource(Resource[R]):
    create = Op(_create_webhook)
    list = Op(_list_webhooks)
    get = Op(_get_webhook)
    update = Op(_update_webhook)
    delete = Op(_delete_webhook)
    rotate_secret = Op(_rotate_secret)
    deliveries = Op(_webhook_deliveries)
