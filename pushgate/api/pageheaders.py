"""Security headers on the pages pushgate serves to people (the dashboard and the Web Push test
page) and on every file they load: a Content-Security-Policy that allows only this origin's own
scripts, styles and API (no inline script or style, so an injected string cannot run), no
framing, no referrer, no MIME sniffing."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# `default-src 'none'` first: whatever is not named here (fonts, media, frames) is refused.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "img-src 'self'",
        "manifest-src 'self'",
        # The Web Push test page registers its service worker from /web/sw.js.
        "worker-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "object-src 'none'",
    )
)

HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def is_page(path: str) -> bool:
    return path == "/dashboard" or path == "/web" or path.startswith(("/dashboard/", "/web/"))


class PageSecurityHeaders:
    """Adds `HEADERS` to every answer under /dashboard and /web, errors included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_page(scope["path"]):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
