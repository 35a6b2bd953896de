"""A Python client for pushgate's HTTP API, for backends: it needs httpx and pydantic, never
the server's runtime (nothing here imports settings, the store, sending or FastAPI).

    from pushgate.client import PushgateClient

    with PushgateClient("http://127.0.0.1:8000", "pgk_...") as pushgate:
        accepted = pushgate.notifications.send({"user_id": "alice", "title": "Hi"})
"""

from pushgate.client import models
from pushgate.client.calls import Retries
from pushgate.client.client import AsyncPushgateClient, PushgateClient
from pushgate.client.errors import (
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    PushgateConnectionError,
    PushgateError,
    RateLimitedError,
    ValidationError,
)

__all__ = [
    "AsyncPushgateClient",
    "AuthenticationError",
    "ConflictError",
    "NotFoundError",
    "PermissionDeniedError",
    "PushgateClient",
    "PushgateConnectionError",
    "PushgateError",
    "RateLimitedError",
    "Retries",
    "ValidationError",
    "models",
]
