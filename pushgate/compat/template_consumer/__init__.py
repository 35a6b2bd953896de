"""Shape 2, `template_consumer`: the aio-pika queue consumer with templates and a provider per
platform. Its messages on `push.queue` (`message.py`), its `GET /api/v1/health` and `/health`
fields (`shape.py`, which registers the shape: imported by `compat.registry`), and the one
environment name it refuses (`env.py`).

Kept empty on purpose: `compat/env.py` imports `env.py` while `pushgate.settings` is still
being imported, so importing this package must not import the runtime or the API."""
