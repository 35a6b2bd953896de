"""The backends' settings sections that are plain URLs and names: the broker (RabbitMQ or
the embedded queue) and Redis (or process memory)."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator


class BrokerSettings(BaseModel):
    """Transport for jobs: `embedded` (a table in the database) or an amqp:// RabbitMQ URL."""

    url: str = "embedded"
    prefix: str = ""
    quorum_queues: bool = False
    # RabbitMQ retry delay queues, seconds; a retry waits for the next level up.
    delay_levels: list[float] = Field(
        default_factory=lambda: [1.0, 5.0, 30.0, 120.0, 600.0, 3600.0]
    )
    # The ingress queue's name (behind `prefix`) instead of `push.queue`, for producers that
    # publish to another name (`RABBITMQ_QUEUE_NAME` of the Web Push gateway pushgate replaces).
    ingress_queue: str | None = Field(default=None, max_length=200)

    @field_validator("ingress_queue")
    @classmethod
    def _own_queue_name(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        if value.startswith("amq."):
            raise ValueError("queue names starting with amq. are RabbitMQ's own")
        taken = {f"{name}.queue" for name in ("dispatch", "deliver", "failed")}
        if value in taken or ".retry." in value:
            raise ValueError(f"{value!r} is the name of another pushgate queue")
        return value

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if value != "embedded" and not value.startswith(("amqp://", "amqps://")):
            raise ValueError("must be 'embedded' or an amqp:// URL")
        return value


class RedisSettings(BaseModel):
    """The key-value store: Redis when a URL is set, else in process memory."""

    url: str | None = None
    prefix: str = "pushgate:"

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str | None) -> str | None:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis:// URL")
        return value or None
