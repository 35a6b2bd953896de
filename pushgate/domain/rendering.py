"""Rendering a template variant's strings with variables: Jinja2's immutable sandbox, strict
undefined variables, no autoescape (push text is not HTML), bounded output. Pure (no I/O).

Each distinct source is compiled once per process (`_compiled`, an LRU cache keyed by the
source text, which a template version never changes). A string without `{` has no Jinja syntax
and is its own rendering, without Jinja at all.

What can go wrong is a `RenderError` naming the variable when there is one: a variable missing
(`{{ name }}` without `name`), one of the wrong type (`{{ price | round }}` given a string),
the sandbox refusing (`{{ ''.__class__ }}`), or a rendering too long. The sandbox blocks
attributes of Python internals and calls that change values; on top of it, operations that
could allocate without bound (`'x' * n`, `n ** m`, `%` and padding widths) are bounded here.
"""

from __future__ import annotations

import functools
import re
import traceback
from collections.abc import Iterator, Mapping
from typing import Any

import orjson
from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import missing
from pydantic_core import PydanticCustomError

from pushgate.domain import storable

# Characters one rendered string may have: the request's own bound for free text (title,
# body, data values; see domain.request), and for URLs its URL bound.
MAX_TEXT = 4096
MAX_URL = 2048
# The largest string or number an operation inside a template may make: more than any push
# field holds, far less than would hurt the process.
MAX_MADE = 100_000
MAX_EXPONENT = 64
# A width or precision of a million or more, or one taken from the arguments, in a `%` format
# and in a `str.format` field.
_PERCENT_WIDE = re.compile(r"%[-+ #0]*(?:\*|\d{6,}|\d*\.(?:\*|\d{6,}))")
_FORMAT_WIDE = re.compile(r"\{[^{}]*:[^{}]*(?:\d{6,}|\{)")
# str methods whose integer arguments are the width they pad to.
_PADDING = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})
_TEMPLATE_FILE = "<template>"


class RenderError(Exception):
    """A string could not be rendered with the variables given.

    Attributes:
        kind: `missing_variable`, `invalid_variable`, `template_unsafe` or `render_too_long`.
        variable: the variable's path (`name`, `user.name`) when one is to blame, else None.
    """

    def __init__(self, message: str, *, kind: str, variable: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.variable = variable


class _MissingVariableError(UndefinedError):
    def __init__(self, message: str | None = None, *, name: str | None, owner: Any) -> None:
        super().__init__(message)
        self.name = name
        self.owner = owner


class _Strict(StrictUndefined):
    """StrictUndefined whose error says what was missing, and in what (the sandbox's refusals
    keep their SecurityError)."""

    __slots__ = ()

    def __init__(
        self,
        hint: str | None = None,
        obj: Any = missing,
        name: str | None = None,
        exc: type[Exception] = UndefinedError,
    ) -> None:
        if exc is UndefinedError:
            exc = functools.partial(_MissingVariableError, name=name, owner=obj)  # type: ignore[assignment]
        super().__init__(hint, obj, name, exc)  # type: ignore[arg-type]


class _Environment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "%"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for value, times in ((left, right), (right, left)):
                if isinstance(value, str | list | tuple) and isinstance(times, int):
                    _bounded(len(value) * times)
        elif operator == "**":
            if isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
                raise SecurityError(f"exponents above {MAX_EXPONENT} are not allowed")
            if isinstance(left, int) and isinstance(right, int):
                _bounded(abs(left).bit_length() * right // 3)  # about its decimal digits
        elif isinstance(left, str):
            _narrow(left, _PERCENT_WIDE)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 (Jinja's own signature)
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str) and getattr(__obj, "__name__", None) in _PADDING:
            for value in (*args, *kwargs.values()):
                if isinstance(value, int):
                    _bounded(value)
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Any:
        # `'...'.format` is wrapped when it is read, not when it is called (Jinja's own hook).
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:
            _narrow(value.__self__, _FORMAT_WIDE)
        return wrapped


def _narrow(format_string: str, wide: re.Pattern[str]) -> None:
    if wide.search(format_string):
        raise SecurityError(
            "format widths of a million or more, or taken from the arguments, are not allowed"
        )


def _bounded(size: int) -> None:
    if size > MAX_MADE:
        raise SecurityError(f"a value of more than {MAX_MADE} characters is not allowed")


def _bounded_filter(name: str, env: _Environment) -> Any:
    original = env.filters[name]

    def bounded(value: Any, width: Any = 80, *args: Any, **kwargs: Any) -> Any:
        if isinstance(width, int):
            _bounded(width)
        return original(value, width, *args, **kwargs)

    return bounded


def _as_text(value: Any) -> Any:
    """What `{{ value }}` prints: variables are JSON, so JSON's spelling (`true`, `null` as
    nothing, objects as JSON) rather than Python's (`True`, `None`, `{'a': 1}`)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        try:
            return orjson.dumps(value).decode()
        except TypeError:
            return value
    return value


def _make_environment() -> _Environment:
    env = _Environment(
        undefined=_Strict, autoescape=False, keep_trailing_newline=True, finalize=_as_text
    )
    for name in ("center", "indent"):
        env.filters[name] = _bounded_filter(name, env)
    original_format = env.filters["format"]

    def bounded_format(value: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(value, str):
            _narrow(value, _PERCENT_WIDE)
        return original_format(value, *args, **kwargs)

    env.filters["format"] = bounded_format
    return env


_ENV = _make_environment()


@functools.lru_cache(maxsize=4096)
def _compiled(source: str) -> Any:
    return _ENV.from_string(source)


@functools.lru_cache(maxsize=4096)
def _names_by_line(source: str) -> dict[int, list[str]]:
    """The variables each line of a source reads, to name the one an error is about."""
    found: dict[int, list[str]] = {}
    for node in _ENV.parse(source).find_all(nodes.Name):
        if node.ctx == "load" and node.name not in found.setdefault(node.lineno, []):
            found[node.lineno].append(node.name)
    return found


def check_source(source: str) -> None:
    """That a source compiles and reads no underscore attribute (Python's internals, which the
    sandbox would refuse at every send anyway).

    Raises:
        PydanticCustomError: `template_syntax` or `template_unsafe`, saying where.
    """
    if "{" not in source:
        return
    try:
        tree = _ENV.parse(source)
        _compiled(source)
    except TemplateSyntaxError as exc:
        raise PydanticCustomError(
            "template_syntax",
            "template syntax error on line {line}: {error}",
            {"line": exc.lineno, "error": exc.message or str(exc)},
        ) from None
    for node in tree.find_all(nodes.Getattr):
        if node.attr.startswith("_"):
            raise PydanticCustomError(
                "template_unsafe",
                "attribute '{attr}' (line {line}) is not allowed: templates may not read"
                " underscore attributes",
                {"attr": node.attr, "line": node.lineno},
            )


def strings_of(value: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """Every string inside a JSON value, with its path (`android.notification.title`)."""
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from strings_of(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from strings_of(item, f"{where}.{index}" if where else str(index))


def render_text(source: str, variables: Mapping[str, Any], *, limit: int = MAX_TEXT) -> str:
    """`source` rendered with `variables`, at most `limit` characters.

    Raises:
        RenderError: see the module's docstring.
    """
    if "{" not in source:
        return source
    template = _compiled(source)
    chunks: list[str] = []
    size = 0
    try:
        for chunk in template.generate(variables):
            size += len(chunk)
            if size > limit:
                raise RenderError(f"renders longer than {limit} characters", kind="render_too_long")
            chunks.append(chunk)
    except RenderError:
        raise
    except SecurityError as exc:
        raise RenderError(f"refused by the sandbox: {exc}", kind="template_unsafe") from None
    except _MissingVariableError as exc:
        raise _missing(exc, variables) from None
    except Exception as exc:  # a filter or an operation failing on a value's type, or worse
        raise _invalid(exc, source, variables) from None
    text = "".join(chunks)
    problem = storable.text_problem(text)
    if problem is not None:
        raise RenderError(f"renders {problem}", kind="invalid_variable")
    return text


def render_json(value: Any, variables: Mapping[str, Any]) -> Any:
    """A JSON value with every string in it rendered (keys are left as they are)."""
    if isinstance(value, str):
        return render_text(value, variables)
    if isinstance(value, Mapping):
        return {key: render_json(item, variables) for key, item in value.items()}
    if isinstance(value, list):
        return [render_json(item, variables) for item in value]
    return value


def _missing(exc: _MissingVariableError, variables: Mapping[str, Any]) -> RenderError:
    if exc.owner is missing:
        return RenderError(
            f"variable {exc.name!r} is missing", kind="missing_variable", variable=exc.name
        )
    parent = _path_to(variables, exc.owner)
    path = f"{parent}.{exc.name}" if parent and exc.name is not None else None
    what = repr(path) if path else f"{exc.name!r} (in a value made by the template)"
    return RenderError(f"variable {what} is missing", kind="missing_variable", variable=path)


def _path_to(variables: Mapping[str, Any], target: Any) -> str | None:
    """Where `target` (by identity) sits inside the variables, as a dotted path."""
    stack: list[tuple[str, Any]] = [(str(k), v) for k, v in variables.items()]
    seen = 0
    while stack and seen < 10_000:
        path, value = stack.pop()
        seen += 1
        if value is target:
            return path
        if isinstance(value, Mapping):
            stack.extend((f"{path}.{k}", v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((f"{path}.{i}", v) for i, v in enumerate(value))
    return None


def _invalid(exc: Exception, source: str, variables: Mapping[str, Any]) -> RenderError:
    """An error while rendering, blamed on the variables read on the line it happened on."""
    lines = [
        f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == _TEMPLATE_FILE
    ]
    names = _names_by_line(source).get(lines[-1], []) if lines and lines[-1] else []
    given = [n for n in names if n in variables]
    detail = str(exc) or type(exc).__name__
    if given:
        listed = ", ".join(repr(n) for n in given)
        return RenderError(
            f"variable {listed} cannot be used this way: {detail}",
            kind="invalid_variable",
            variable=given[0],
        )
    return RenderError(f"cannot render: {detail}", kind="invalid_variable")
