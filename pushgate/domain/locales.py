"""Locale tags, pure: their canonical spelling and the fallback that picks a template variant.

Tags are BCP 47-ish (`en`, `fr-CA`, `zh-Hant-TW`; Android's `en_US` too) and compared in one
canonical spelling (`fr-ca` is `fr-CA`). A wanted locale falls back by dropping its last subtag
until a variant matches (`fr-CA` -> `fr`), else to the template's default locale.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from typing import Annotated

from pydantic import AfterValidator, StringConstraints
from pydantic_core import PydanticCustomError

MAX_LENGTH = 35

_TAG = re.compile(r"^[A-Za-z]{2,8}([-_][A-Za-z0-9]{1,8})*$")


def normalise(tag: str) -> str | None:
    """The canonical spelling of a locale tag (language lower case, a 4-letter script in title
    case, a 2-letter region upper case: `zh-hant-tw` -> `zh-Hant-TW`), or None when `tag` is
    not one."""
    if len(tag) > MAX_LENGTH or not _TAG.match(tag):
        return None
    first, *rest = tag.replace("_", "-").split("-")
    parts = [first.lower()]
    for part in rest:
        if len(part) == 4 and part.isalpha():
            parts.append(part.title())
        elif len(part) == 2 and part.isalpha():
            parts.append(part.upper())
        else:
            parts.append(part.lower())
    return "-".join(parts)


def locale_of(value: str) -> str:
    """`value` in its canonical spelling.

    Raises:
        PydanticCustomError: `locale`, when it is not a locale tag.
    """
    canonical = normalise(value)
    if canonical is None:
        # Pydantic fills `{name}` in a message, no more: the repr is made here.
        raise PydanticCustomError(
            "locale",
            "{value} is not a locale tag like en, fr-CA or zh-Hant-TW",
            {"value": repr(value)},
        )
    return canonical


Locale = Annotated[str, StringConstraints(max_length=MAX_LENGTH), AfterValidator(locale_of)]


def fallbacks(locale: str) -> Iterator[str]:
    """`locale` and its parents, most specific first: `zh-Hant-TW`, `zh-Hant`, `zh`."""
    parts = locale.split("-")
    for end in range(len(parts), 0, -1):
        yield "-".join(parts[:end])


def resolve(wanted: str | None, variants: Collection[str], default: str) -> str:
    """The variant for a wanted locale (canonical spelling): itself or its nearest parent among
    `variants`, else `default`."""
    if wanted is not None:
        for candidate in fallbacks(wanted):
            if candidate in variants:
                return candidate
    return default
