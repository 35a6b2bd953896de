"""Drop-in compatibility with the home-grown push services pushgate replaces.

One adapter per legacy shape (`fcm_gateway`, `template_consumer`, `webpush_gateway`,
`subscription_service`, `flask_consumer`): each translates its old HTTP routes, queue messages
and environment names into the same accept, device and read use cases as `/v1`. No second
pipeline and no second validation: a legacy request becomes a `/v1` request, and what `/v1`
refuses, the legacy route refuses with the same error code (in the legacy route's style).

- `settings.py`: the `compat` settings section (`PUSHGATE_COMPAT__ENABLED`, the static key).
- `shapes.py`: the registry of shapes and what each one provides.
- `auth.py`, `errors.py`: how legacy routes authenticate and how they answer errors.
- `install.py`: mounting the enabled shapes' routes and the `/health` they answer.
- `messages.py`: recognising a legacy message on the ingress queue (no setting needed).
"""

from __future__ import annotations

from typing import Literal

ShapeName = Literal[
    "fcm_gateway", "template_consumer", "webpush_gateway", "subscription_service", "flask_consumer"
]
SHAPE_NAMES: tuple[ShapeName, ...] = (
    "fcm_gateway",
    "template_consumer",
    "webpush_gateway",
    "subscription_service",
    "flask_consumer",
)
