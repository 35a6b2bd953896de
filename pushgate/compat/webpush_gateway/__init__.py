"""Shape 3, `webpush_gateway`: the FastAPI + RabbitMQ + Redis Web Push gateway with VAPID.

- `routes.py`: `GET /vapid_public_key`, `POST /subscribe`, the test page at
  `/web_push_test/web_push_test.html`; `welcome.py`: the welcome notification of `/subscribe`.
- `messages.py`: its `push.queue` messages (`devices`: PushSubscriptions as raw targets).
- `start.py`: the VAPID key pair and subject, and the `USER_SERVICE_URL` webhook, on start.
- `settings.py`, `env.py`: `compat.webpush_gateway` and the legacy environment names.
- `shape.py`: registers the shape (imported by pushgate/compat/registry.py, never here: the
  settings import this package, so it stays import-light).
"""
