"""Shape 1, `fcm_gateway`: the FastAPI gateway in front of FCM (RabbitMQ, Redis, PostgreSQL)
whose clients call `/api/notifications/...` and `/api/device-tokens...`.

- `translate.py`: its bodies, priorities, platforms and statuses, as pushgate's (pure).
- `schemas.py`: the bodies its routes take and answer.
- `sends.py`, `tokens.py`: its routes, on the same use cases as `/v1`.
- `health.py`: its `GET /health` fields.
- `env.py`: its environment names that are not a plain rename (`RATE_LIMIT_PER_*`).
- `shape.py`: the registration (`pushgate.compat.registry` imports it).

This module imports nothing: `env.py` is read while the settings module loads.
"""
