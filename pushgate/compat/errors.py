"""How legacy routes answer errors: in the style their clients parse (FastAPI's `detail`, a
string, or for a refused body the list of `{loc, msg, type}`), with pushgate's own error object
beside it (`error: {code, message, details}`), so a client can move to the stable codes first.

`LegacyRoute` is the route class of every legacy router: it catches what the handler raises
before the application's handlers (which answer pushgate's shape) would.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from pushgate.api import errors
from pushgate.errors import PushgateError


def legacy_answer(response: JSONResponse, detail: Any) -> JSONResponse:
    """`response` (pushgate's error answer) with the legacy `detail` added to its body."""
    body = orjson.loads(bytes(response.body))
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
    return JSONResponse(
        {"detail": detail, **body}, status_code=response.status_code, headers=headers
    )


def validation_answer(exc: RequestValidationError) -> JSONResponse:
    detail = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    return legacy_answer(errors.validation_error(exc), jsonable_encoder(detail))


def error_answer(exc: PushgateError) -> JSONResponse:
    return legacy_answer(errors.pushgate_error(exc), exc.message)


class LegacyRoute(APIRoute):
    """A route answering its refusals in the legacy style (see the module's docstring)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                return validation_answer(exc)
            except PushgateError as exc:
                return error_answer(exc)

        return handle
