"""The platform names a device or a raw-token send may give: the built-in providers' and those
of the installed provider plugins (entry points in the `pushgate.providers` group).

The names come from the installed distributions' metadata, not from settings: a plugin is
there for every process of an installation, like any other installed module. Only the names
are read here (no plugin is imported); `providers.registry` loads and builds the providers
and refuses to start on a duplicate or a broken entry point.
"""

from __future__ import annotations

import functools
import sys
from importlib import metadata
from typing import Annotated, Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

from pushgate.domain.subscription import Platform

ENTRY_POINT_GROUP = "pushgate.providers"
BUILT_IN: tuple[str, ...] = tuple(p.value for p in Platform)


def entry_points() -> tuple[metadata.EntryPoint, ...]:
    """The installed provider plugins' entry points, as the environment has them now."""
    return tuple(metadata.entry_points(group=ENTRY_POINT_GROUP))


def names() -> tuple[str, ...]:
    """Every platform name: the built-in ones first, then the plugins' in install order."""
    # Keyed on sys.path: a path added later (a test's plugin directory) is seen, and the
    # metadata is scanned once per path, not per request.
    return _names(tuple(sys.path))


@functools.lru_cache(maxsize=8)
def _names(_path: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys((*BUILT_IN, *(e.name for e in entry_points()))))


def _choices(found: tuple[str, ...]) -> str:
    # Pydantic's own wording for a Literal, so an unknown platform reads as it always has.
    quoted = [repr(n) for n in found]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"


def _known(value: Any) -> str:
    found = names()
    if isinstance(value, str) and value in found:
        return value
    raise PydanticCustomError(
        "literal_error", "Input should be {expected}", {"expected": _choices(found)}
    )


class _Choices:
    """The OpenAPI schema of a platform field: a string, one of the names known when the
    document is generated (so a plugin's platform is listed beside the built-in ones)."""

    def __init__(self, *, check: bool) -> None:
        self.check = check

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        if self.check:
            return core_schema.no_info_plain_validator_function(
                _known, json_schema_input_schema=core_schema.str_schema()
            )
        return core_schema.str_schema()

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "string", "enum": list(names())}


# A platform a request names: refused (422, `invalid_input` on the field) unless registered.
PlatformName = Annotated[str, _Choices(check=True)]
# A platform as stored, in a response: any name (a plugin may have been removed since).
PlatformLabel = Annotated[str, _Choices(check=False)]
