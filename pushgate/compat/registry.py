"""Importing the shapes registers them (`shapes.register`). One line per shape; imported when
the API is built or a process starts, never at import time of pushgate itself, so a shape's
routes may use anything of the API without an import cycle."""

from __future__ import annotations

import importlib

MODULES: tuple[str, ...] = (
    "pushgate.compat.fcm_gateway.shape",
    "pushgate.compat.template_consumer.shape",
    "pushgate.compat.webpush_gateway.shape",
    "pushgate.compat.subscription_service.shape",
    "pushgate.compat.flask_consumer.shape",
)


def load() -> None:
    for module in MODULES:
        importlib.import_module(module)
