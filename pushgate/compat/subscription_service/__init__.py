"""Shape 4, `subscription_service`: the Web Push subscription service (FastAPI, JWT + API key)
pushgate replaces. Its routes (`/subscriptions/`, `/notifications/...`, `/analytics/...`,
`/health/`, `/metrics/`) become the same device, accept and read use cases as `/v1`.

Kept import-light (settings.py and env.py are read while pushgate's settings load): the shape
is registered by `shape.py`, which `compat.registry` imports.

- `settings.py`, `env.py`: its settings section and the legacy `JWT_SECRET_KEY`.
- `translate.py`: pure translation of legacy bodies into `/v1` requests and back.
- `schemas.py`: the legacy bodies and answers.
- `subscriptions.py`, `notifications.py`, `reports.py`: the routes.
- `start.py`: end-user sign-in from `JWT_SECRET_KEY`, at process start.
"""

from __future__ import annotations

from pushgate.compat import ShapeName

SHAPE: ShapeName = "subscription_service"
