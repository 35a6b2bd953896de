"""The error answers each operation declares in the OpenAPI document, every one with the error
body (`ErrorBody`).

Two sources, so that the document lists every status a route can answer and no other:

- What follows from the route's shape is derived when the document is built (`install`): a
  request body may be unreadable (400), too large (413) or invalid (422); parameters may be
  invalid (422); and a dependency says what it answers with `answers` (the API key checks: 401,
  403, 429, and 503 when the database or the cache is out of reach).
- What follows from the route's meaning (404 for an unknown id, 409 for a conflict, 400 for a
  bulk action without a filter) is declared at the route with `errors`, in its own words.

Any request may also answer 405 (a method the path does not have, with `Allow`) and any
request with a body over `server.max_body_bytes` 413; 405 is said once in the document's
description rather than on operations that, by definition, are not it.

An operation that answers 401 takes an API key: it also declares the two ways to send one
(`security`), so clients, the docs' "Authorize" button and fuzzers know.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from fastapi import FastAPI, routing
from fastapi.dependencies.models import Dependant

from pushgate.api.schemas.common import ErrorBody

STANDARD: dict[int, str] = {
    400: "The request body could not be read (not UTF-8, or not the declared media type)",
    401: "Missing, unknown or revoked API key",
    403: "The key's scope does not allow this",
    404: "No such resource in the caller's app",
    409: "Conflicts with the resource's state",
    413: "Request body too large (`server.max_body_bytes`)",
    422: "Invalid input; `details` names the field",
    429: "Over the API key's or the app's rate limit; retry after `Retry-After`",
    503: "The database or the cache is unavailable or too slow; retry after `Retry-After`",
}

Responses = dict[int | str, dict[str, Any]]

_ATTRIBUTE = "pushgate_answers"
_ERROR = {"$ref": "#/components/schemas/ErrorBody"}
_VALIDATION_REF = "#/components/schemas/HTTPValidationError"
# deps.key_of: `Authorization: Bearer <key>`, else `X-API-Key: <key>`.
SECURITY_SCHEMES: dict[str, Any] = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key (or, on the device routes, an end user's JWT)",
    },
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}
_KEYED: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}]

F = TypeVar("F", bound=Callable[..., Any])


def errors(*statuses: int, described: Mapping[int, str] | None = None) -> Responses:
    """`responses=` for a route: each status with the error body and its description (the
    standard one unless `described` gives the route's own)."""
    own = dict(described or {})
    return {
        status: {"model": ErrorBody, "description": own.get(status) or STANDARD[status]}
        for status in sorted({*statuses, *own})
    }


def answers(*statuses: int) -> Callable[[F], F]:
    """Mark a dependency with the error statuses it may answer: every route that depends on
    it declares them."""

    def mark(call: F) -> F:
        setattr(call, _ATTRIBUTE, (*getattr(call, _ATTRIBUTE, ()), *statuses))
        return call

    return mark


def _dependants(dependant: Dependant) -> Iterator[Dependant]:
    yield dependant
    for child in dependant.dependencies:
        yield from _dependants(child)


def derived(route: Any) -> set[int]:
    """The error statuses a route (as served: an APIRoute or FastAPI's context of an included
    one) may answer because of its shape and its dependencies."""
    found: set[int] = set()
    for dependant in _dependants(route.dependant):
        if dependant.body_params:
            found |= {400, 413, 422}
        if (
            dependant.path_params
            or dependant.query_params
            or dependant.header_params
            or dependant.cookie_params
        ):
            found.add(422)
        found.update(getattr(dependant.call, _ATTRIBUTE, ()))
    return found


def _error_answer(status: int) -> dict[str, Any]:
    return {"description": STANDARD[status], "content": {"application/json": {"schema": _ERROR}}}


def _error_schemas() -> dict[str, Any]:
    """ErrorBody and the models it refers to, as the document's components."""
    schema = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    return {**schema.pop("$defs", {}), "ErrorBody": schema}


def complete(document: dict[str, Any], routes: list[Any]) -> dict[str, Any]:
    """Add each route's derived error statuses to its operation in `document` (in place; a
    status the route declares itself keeps the route's words), and the key it takes."""
    for route in routing.iter_route_contexts(routes):
        if not isinstance(route.original_route, routing.APIRoute) or not route.include_in_schema:
            continue
        operations = document["paths"].get(route.path_format, {})
        statuses = derived(route)
        for method in route.methods or ():
            operation = operations.get(method.lower())
            if operation is None:
                continue
            answers = operation.setdefault("responses", {})
            if _VALIDATION_REF in str(answers.get("422")):
                # FastAPI's own 422, in a shape pushgate never answers (errors.py turns
                # validation errors into the error body).
                del answers["422"]
            for status in sorted(statuses):
                answers.setdefault(str(status), _error_answer(status))
            if 401 in statuses:
                operation.setdefault("security", [dict(way) for way in _KEYED])
    components = document.setdefault("components", {})
    components.setdefault("securitySchemes", SECURITY_SCHEMES)
    schemas = components.setdefault("schemas", {})
    for name, schema in _error_schemas().items():
        schemas.setdefault(name, schema)
    if _VALIDATION_REF not in str(document["paths"]):
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
    return document


def install(app: FastAPI) -> None:
    """Build the app's OpenAPI document with every route's error statuses."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        return complete(generate(), app.routes)

    app.openapi = openapi  # type: ignore[method-assign]
