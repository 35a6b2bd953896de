"""The notification request: one validated shape for `POST /v1/notifications` and for messages
other services publish on `push.queue` (which add `request_id`, `user_id`, `template_code`...).

Validation here is pure (no DNS, no database); the accept use case adds what needs I/O.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from pushgate.domain import condition as conditions
from pushgate.domain import storable
from pushgate.domain.locales import Locale
from pushgate.domain.message import (
    DEFAULT_TTL_SECONDS,
    MAX_TTL_SECONDS,
    Action,
    Message,
    Priority,
)
from pushgate.domain.notification import FCM_TOPIC_KEY, TargetKind
from pushgate.domain.preferences import Category
from pushgate.domain.request_parts import ActionIn, TokenIn, TopicName, URLText
from pushgate.errors import InvalidInputError

MAX_DEVICE_IDS = 10_000
MAX_TOKENS = 1_000
MAX_USER_IDS = 10_000
MAX_TOPICS = 100
MAX_DATA_KEYS = 100
# FCM: "You can include up to five topics in your conditional expression."
# https://firebase.google.com/docs/cloud-messaging/send-message#send-messages-to-topics
MAX_FCM_CONDITION_TOPICS = 5

# Our own deadline is never shorter than this, even with `ttl: 0` ("now or never" for the push
# service): the first attempt must get the chance to reach the provider, which then applies
# the TTL itself. Without it a ttl-0 notification expired before dispatch even started.
MIN_DELIVERY_WINDOW_SECONDS = 60

# Send times further ahead are refused: such a time is a mistake (a year typed wrong, a
# placeholder like 9999-12-31) far more often than a plan, and its expiry must stay inside the
# calendar.
MAX_SCHEDULE_AHEAD = timedelta(days=100 * 365)

# A wall-clock time (`send_at_local`) happens first where clocks are furthest ahead and last
# where they are furthest behind: UTC+14 (Kiribati's Line Islands) and UTC-12 (Baker Island).
# No zone's offset, daylight saving included, falls outside these.
EARLIEST_ZONE = timezone(timedelta(hours=14))
LATEST_ZONE = timezone(timedelta(hours=-12))

# Every free text is `storable.TEXT` (no NUL, no lone surrogate) and every free JSON value
# `storable.JSONObject`: the same refusal on SQLite and PostgreSQL, naming the field.
Text = Annotated[str, StringConstraints(max_length=4096), storable.TEXT]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=255), storable.TEXT]


def _data_value(value: Any) -> Any:
    # FCM requires string values: numbers and booleans convert, nested values cannot. Checked
    # per value so the error names the key (`data.order`), not just `data`.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise PydanticCustomError("data_value", "data values must be finite numbers")
        return str(value)
    if isinstance(value, str):
        return value
    raise PydanticCustomError(
        "data_value", "data values must be strings, numbers or booleans, not nested values"
    )


DataValue = Annotated[
    str,
    BeforeValidator(_data_value),
    storable.TEXT,
    WithJsonSchema({"type": ["string", "number", "boolean"]}),
]


# Options added after idempotency hashes were first stored (see `request_hash`).
_LATER_OPTIONS = (
    "fcm_topic",
    "transactional",
    "ignore_quiet_hours",
    "send_at_local",
    "past_local_time",
    "throttle_per_minute",
    "locale",
)

# What a template renders: a request with `template_code` gives none of them.
TEMPLATE_FIELDS = ("title", "body", "url", "image", "data", "webpush", "fcm", "apns")


def _refuse(field: str, kind: str, message: str) -> ValidationError:
    """A validation error on `field`, for rules checked across fields (a model validator's own
    errors have no location, and the API names the offending field)."""
    error = InitErrorDetails(type=PydanticCustomError(kind, message), loc=(field,), input=None)
    return ValidationError.from_exception_data("NotificationCreate", [error])


class NotificationCreate(BaseModel):
    """A notification: exactly one target, a payload, and options."""

    model_config = ConfigDict(extra="forbid")

    # Target: exactly one of these.
    # An empty list is refused: it reaches nobody, which is always a caller's mistake.
    device_ids: (
        Annotated[list[uuid.UUID], Field(min_length=1, max_length=MAX_DEVICE_IDS)] | None
    ) = None
    tokens: Annotated[list[TokenIn], Field(min_length=1, max_length=MAX_TOKENS)] | None = None
    user_ids: Annotated[list[ShortText], Field(min_length=1, max_length=MAX_USER_IDS)] | None = None
    user_id: ShortText | None = Field(
        default=None, description="One user (as existing systems send it): same as user_ids."
    )
    topics: Annotated[list[TopicName], Field(min_length=1, max_length=MAX_TOPICS)] | None = None
    condition: (
        Annotated[str, StringConstraints(max_length=conditions.MAX_LENGTH), storable.TEXT] | None
    ) = None
    broadcast: bool = False
    fcm_topic: bool = Field(
        default=False,
        description="With a `topics` or `condition` target only: send ONE message through FCM"
        " to its topic (one topic) or condition (several topics as `'a' in topics || 'b' in"
        f" topics`, at most {MAX_FCM_CONDITION_TOPICS} topics) instead of one message per"
        " registered device. FCM then reaches the devices subscribed to those FCM topics (the"
        " app subscribes them with the Firebase SDK), not pushgate's registered devices; APNs"
        " and Web Push devices get nothing from pushgate. The notification has one delivery,"
        " platform `fcm`, with no device.",
    )

    # Payload.
    title: Text | None = None
    body: Text | None = None
    icon: URLText | None = None
    image: URLText | None = None
    badge: URLText | None = None
    url: URLText | None = None
    tag: ShortText | None = None
    sound: ShortText | None = None
    actions: Annotated[list[ActionIn], Field(max_length=10)] = Field(default_factory=list)
    data: dict[Annotated[str, storable.TEXT], DataValue] = Field(default_factory=dict)

    # Options.
    priority: Literal["high", "normal"] = "normal"
    ttl: int = Field(default=DEFAULT_TTL_SECONDS, ge=0, le=MAX_TTL_SECONDS)
    collapse_key: ShortText | None = None
    category: Category | None = Field(
        default=None,
        description="Users may opt out of a category (their preferences), unless the"
        " notification is `transactional`.",
    )
    send_at: storable.Instant | None = Field(
        default=None,
        description="When to send (at most 100 years ahead); without an offset, UTC.",
    )
    webpush: storable.JSONObject = Field(default_factory=dict)
    fcm: storable.JSONObject = Field(default_factory=dict)
    apns: storable.JSONObject = Field(default_factory=dict)
    dry_run: bool = Field(
        default=False,
        description="Check without showing anything: FCM validates each message at Google"
        " (`validate_only`); APNs and Web Push have no such mode, so pushgate builds and checks"
        " each request and contacts no one. Deliveries that pass are `sent` (APNs and Web Push"
        " with provider message id `dry-run`).",
    )
    idempotency_key: ShortText | None = Field(
        default=None, validation_alias=AliasChoices("idempotency_key", "request_id")
    )
    metadata: storable.JSONObject = Field(default_factory=dict)
    template_code: ShortText | None = Field(
        default=None,
        description="Send this template's current version (see `/v1/templates`) instead of"
        f" {', '.join(TEMPLATE_FIELDS)}, which it renders with `variables`: give none of those.",
    )
    variables: storable.JSONObject = Field(
        default_factory=dict, description="With template_code: the values its templates read."
    )
    locale: Locale | None = Field(
        default=None,
        description="With template_code: send every device this variant (with fallback,"
        " `fr-CA` -> `fr` -> the default), instead of each device's own.",
    )

    # When and to whom, per delivery (see `options`).
    transactional: bool = Field(
        default=False,
        description="A message the user must get whatever categories they opted out of (a"
        " security code, a receipt): category opt-outs are ignored, a global mute is not.",
    )
    ignore_quiet_hours: bool = Field(
        default=False, description="Deliver inside the users' quiet hours instead of after them."
    )
    send_at_local: datetime | None = Field(
        default=None,
        description="A wall-clock time without offset (`2026-12-24T09:00`): each device gets"
        " it at that time in its own time zone (else its user's, else the app's default, else"
        " UTC). Not with send_at; at most 100 years ahead.",
    )
    past_local_time: Literal["send", "skip"] = Field(
        default="send",
        description="With send_at_local: for devices whose local time has already passed,"
        " send at once (`send`) or not at all (`skip`).",
    )
    throttle_per_minute: int | None = Field(
        default=None,
        ge=1,
        le=10_000_000,
        description="Spread the deliveries over time, at most this many a minute.",
    )

    @field_validator("data")
    @classmethod
    def _few_keys(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > MAX_DATA_KEYS:
            raise PydanticCustomError("data_keys", f"at most {MAX_DATA_KEYS} data keys")
        return value

    @field_validator("send_at")
    @classmethod
    def _not_too_far(cls, value: datetime | None) -> datetime | None:
        if value is not None and value - datetime.now(UTC) > MAX_SCHEDULE_AHEAD:
            raise PydanticCustomError(
                "send_at_range",
                "send_at must be at most {years} years ahead",
                {"years": MAX_SCHEDULE_AHEAD.days // 365},
            )
        return value

    @field_validator("send_at_local")
    @classmethod
    def _wall_clock(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            raise PydanticCustomError(
                "send_at_local_offset",
                "send_at_local is a wall-clock time without offset or Z (`2026-12-24T09:00`):"
                " each device gets it in its own time zone. For one instant, use send_at",
            )
        # Bounded like send_at, and far enough inside the calendar that the instants it names
        # in every zone (UTC+14 to UTC-12) exist too.
        now = datetime.now(UTC).replace(tzinfo=None)
        if abs(value - now) > MAX_SCHEDULE_AHEAD:
            raise PydanticCustomError(
                "send_at_range",
                "send_at_local must be within {years} years of now",
                {"years": MAX_SCHEDULE_AHEAD.days // 365},
            )
        return value

    @field_validator("condition")
    @classmethod
    def _parses(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                conditions.parse(value)
            except InvalidInputError as exc:
                raise PydanticCustomError("condition", exc.message) from None
        return value

    @model_validator(mode="after")
    def _one_target(self) -> NotificationCreate:
        if self.user_id is not None:
            if self.user_ids is not None:
                raise _refuse("user_id", "target", "give user_id or user_ids, not both")
            self.user_ids = [self.user_id]
            self.user_id = None
        given = [kind for kind in self.target_kinds() if kind is not None]
        if len(given) != 1:
            raise _refuse(
                "target",
                "target",
                "give exactly one target: device_ids, tokens, user_ids, topics, condition "
                f"or broadcast (got {', '.join(given) or 'none'})",
            )
        if self.fcm_topic:
            self._check_fcm_topic()
        if self.send_at_local is not None and self.send_at is not None:
            raise _refuse(
                "send_at_local",
                "send_at_local",
                "give send_at (one instant) or send_at_local (a wall-clock time in each"
                " device's time zone), not both",
            )
        if self.template_code is not None or self.variables or self.locale is not None:
            self._check_template()
        elif not (self.title or self.body or self.data or self.webpush or self.fcm or self.apns):
            raise _refuse(
                "title",
                "nothing_to_send",
                "nothing to send: give a title, body, data or a platform override",
            )
        return self

    def _check_template(self) -> None:
        if self.template_code is None:
            field = "variables" if self.variables else "locale"
            raise _refuse(field, "template", f"{field} is for a template: give template_code")
        for name in TEMPLATE_FIELDS:
            if getattr(self, name):
                raise _refuse(
                    name,
                    "template",
                    f"{name} comes from the template: a request with template_code gives none"
                    f" of {', '.join(TEMPLATE_FIELDS)}",
                )

    def _check_fcm_topic(self) -> None:
        for per_device in ("send_at_local", "throttle_per_minute"):
            if getattr(self, per_device) is not None:
                raise _refuse(
                    per_device,
                    "fcm_topic",
                    f"{per_device} times each device's delivery, and with fcm_topic FCM sends"
                    " one message to all of them: use send_at",
                )
        if self.topics is not None:
            count = len(set(self.topics))
            if count > MAX_FCM_CONDITION_TOPICS:
                raise _refuse(
                    "topics",
                    "fcm_topic",
                    f"with fcm_topic, at most {MAX_FCM_CONDITION_TOPICS} topics (FCM's limit"
                    f" for a condition): got {count}",
                )
        elif self.condition is not None:
            count = len(conditions.topics_of(conditions.parse(self.condition)))
            if count > MAX_FCM_CONDITION_TOPICS:
                raise _refuse(
                    "condition",
                    "fcm_topic",
                    f"with fcm_topic, a condition names at most {MAX_FCM_CONDITION_TOPICS}"
                    f" topics (FCM's limit): got {count}",
                )
        else:
            raise _refuse(
                "fcm_topic",
                "fcm_topic",
                "fcm_topic needs a `topics` or `condition` target",
            )

    def target_kinds(self) -> list[str | None]:
        return [
            TargetKind.DEVICE_IDS if self.device_ids is not None else None,
            TargetKind.TOKENS if self.tokens is not None else None,
            TargetKind.USER_IDS if self.user_ids is not None else None,
            TargetKind.TOPICS if self.topics is not None else None,
            TargetKind.CONDITION if self.condition is not None else None,
            TargetKind.BROADCAST if self.broadcast else None,
        ]

    def target(self) -> dict[str, Any]:
        """The audience as stored: `{"kind": ..., "value": ...}`."""
        kind = next(k for k in self.target_kinds() if k is not None)
        values: dict[str, Any] = {
            TargetKind.DEVICE_IDS: [str(i) for i in self.device_ids or ()],
            TargetKind.TOKENS: [t.model_dump() for t in self.tokens or []],
            TargetKind.USER_IDS: self.user_ids,
            TargetKind.TOPICS: self.topics,
            TargetKind.CONDITION: self.condition,
            TargetKind.BROADCAST: True,
        }
        target = {"kind": kind, "value": values[kind]}
        if self.fcm_topic:
            target[FCM_TOPIC_KEY] = True
        return target

    def message(self) -> Message:
        return Message(
            title=self.title,
            body=self.body,
            icon=self.icon,
            image=self.image,
            badge=self.badge,
            url=self.url,
            tag=self.tag,
            sound=self.sound,
            actions=tuple(Action(a.action, a.title, a.icon) for a in self.actions),
            data=dict(self.data),
            priority=Priority(self.priority),
            ttl=self.ttl,
            collapse_key=self.collapse_key,
            webpush=self.webpush,
            fcm=self.fcm,
            apns=self.apns,
            dry_run=self.dry_run,
        )

    def options(self) -> dict[str, Any] | None:
        """What dispatch needs, besides the target and the message, to decide whether, when
        and in which words each delivery goes: stored with the notification. None for a
        plain notification (every option at its default), which dispatch expands without
        looking further."""
        options: dict[str, Any] = {}
        if self.transactional:
            options["transactional"] = True
        if self.ignore_quiet_hours:
            options["ignore_quiet_hours"] = True
        if self.send_at_local is not None:
            options["send_at_local"] = self.send_at_local.isoformat()
            options["past_local_time"] = self.past_local_time
        if self.throttle_per_minute is not None:
            options["throttle_per_minute"] = self.throttle_per_minute
        return options or None

    def request_hash(self) -> str:
        """Identifies the request's content for idempotency: same key + same hash = replay."""
        body = self.model_dump(mode="json", exclude={"idempotency_key"})
        # Options left out when at their default, so requests stored before they existed
        # keep their hash.
        for name in _LATER_OPTIONS:
            if body[name] == NotificationCreate.model_fields[name].default:
                del body[name]
        return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()

    def scheduled_at(self, now: datetime) -> datetime | None:
        """When the notification is due for dispatch, if later than `now`: `send_at`, or for
        `send_at_local` the first instant its wall-clock time happens anywhere (UTC+14)."""
        if self.send_at_local is not None:
            first = self.send_at_local.replace(tzinfo=EARLIEST_ZONE).astimezone(UTC)
            return first if first > now else None
        return self.send_at

    def expires_at(self, now: datetime) -> datetime:
        """When undelivered deliveries give up: the send time plus the TTL (at least
        `MIN_DELIVERY_WINDOW_SECONDS`). For `send_at_local` the send time is the last instant
        its wall-clock time happens anywhere (UTC-12), so no device's delivery expires before
        its own local time plus the TTL (the deliverer bounds each delivery by its own: see
        `sending.deliver`'s `_Cached.own`)."""
        start = self.send_at if self.send_at and self.send_at > now else now
        if self.send_at_local is not None:
            start = max(now, self.send_at_local.replace(tzinfo=LATEST_ZONE).astimezone(UTC))
        return start + timedelta(seconds=max(self.ttl, MIN_DELIVERY_WINDOW_SECONDS))
