"""Which methods a path has: the `Allow` header of every 405, and literal paths as resources of
their own.

Starlette answers a method a route lacks with the `Allow` of the first route whose path matched,
so `PUT /v1/devices/{id}` said `Allow: GET` though PATCH and DELETE are there too: `allowed`
gathers the methods of every route on the path. And it routes `GET /v1/notifications/bulk` to
`GET /v1/notifications/{notification_id}` (a 422 for the id "bulk"), though `/bulk` is a path of
its own that has POST only: `LiteralPaths` answers 405 there, as for any other path.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import orjson
from fastapi import routing
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

# The order `Allow` lists methods in (RFC 9110 names no order; this reads like the document).
ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
STATIC_METHODS = frozenset({"GET", "HEAD"})


def _routes(routes: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
    """Each route as served (included routers flattened): its path regex and the route."""
    for context in routing.iter_route_contexts(list(routes)):
        regex = getattr(context, "path_regex", None)
        if regex is not None:
            yield regex, context


def _methods(context: Any) -> frozenset[str]:
    methods = context.methods
    if methods is not None:
        return frozenset(methods)
    route = context.original_route
    if isinstance(route, Mount) and isinstance(route.app, StaticFiles):
        return STATIC_METHODS
    return frozenset()


def _is_literal(context: Any) -> bool:
    return isinstance(context.original_route, routing.APIRoute) and not context.param_convertors


def route_path(scope: Scope) -> str:
    """The path the routes match: the request's, less the prefix a proxy mounts pushgate at."""
    path: str = scope["path"]
    # A Mount (static files) rewrites `root_path` in the request's scope as it routes, and
    # keeps the one the server gave in `app_root_path`.
    root: str = scope.get("app_root_path", scope.get("root_path", ""))
    return path[len(root) :] if root and path.startswith(root) else path


def allowed(routes: Iterable[Any], path: str) -> list[str]:
    """The methods `path` answers, in `ORDER`: those of the routes whose path it is exactly,
    if any, else of every route whose path template it matches."""
    exact: set[str] = set()
    matched: set[str] = set()
    for regex, context in _routes(routes):
        if regex.match(path):
            (exact if _is_literal(context) else matched).update(_methods(context))
    found = exact or matched
    return sorted(found, key=lambda m: ORDER.index(m) if m in ORDER else len(ORDER))


def allow_header(methods: list[str]) -> str:
    return ", ".join(methods)


def not_allowed_message(method: str) -> str:
    return f"{method} is not a method of this path"


def not_allowed_body(method: str) -> bytes:
    return orjson.dumps(
        {
            "error": {
                "code": "method_not_allowed",
                "message": not_allowed_message(method),
                "details": None,
            }
        }
    )


class LiteralPaths:
    """Answers 405 (with `Allow`) to a method that a literal path (`/v1/notifications/bulk`)
    lacks, before the router takes it for a template's parameter. One dict lookup a request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._literal: dict[str, list[str]] | None = None

    def _literal_paths(self, routes: Iterable[Any]) -> dict[str, list[str]]:
        paths: dict[str, set[str]] = {}
        for _regex, context in _routes(routes):
            if _is_literal(context):
                paths.setdefault(context.path_format, set()).update(_methods(context))
        return {path: allowed(routes, path) for path in paths}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if self._literal is None:
                self._literal = self._literal_paths(scope["app"].routes)
            methods = self._literal.get(route_path(scope))
            if methods is not None and scope["method"] not in methods:
                await self._refuse(scope["method"], methods, send)
                return
        await self.app(scope, receive, send)

    async def _refuse(self, method: str, methods: list[str], send: Send) -> None:
        body = not_allowed_body(method)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"allow", allow_header(methods).encode()),
        ]
        await send({"type": "http.response.start", "status": 405, "headers": headers})
        await send({"type": "http.response.body", "body": body})
