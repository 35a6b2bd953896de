"""Shape 5, `flask_consumer`: the Flask + pika + pybreaker FCM consumer. Its messages on
`push.queue` (`message.py`), its `/health` fields (`shape.py`, which registers the shape:
imported by `compat.registry`), and the environment names it combines into pushgate's
settings (`env.py`).

Kept empty on purpose: `compat/env.py` imports `env.py` while `pushgate.settings` is still
being imported, so importing this package must not import the runtime or the API."""
