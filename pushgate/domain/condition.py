"""Topic conditions in FCM's syntax, e.g. `'news' in topics && !('quiet' in topics)`.

Parsed once at accept time (a bad condition is a 422 then, not a failure later), evaluated per
device during fan-out against that device's topics.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pushgate.errors import InvalidInputError

MAX_TOPICS = 32
MAX_LENGTH = 2048

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<topic>'[A-Za-z0-9\-_.~%]{1,255}'|"[A-Za-z0-9\-_.~%]{1,255}")\s+in\s+topics\b
      | (?P<op>&&|\|\||!|\(|\))
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class Topic:
    name: str


@dataclass(frozen=True, slots=True)
class Not:
    operand: Expr


@dataclass(frozen=True, slots=True)
class And:
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Or:
    left: Expr
    right: Expr


Expr = Topic | Not | And | Or


def parse(text: str) -> Expr:
    """Parse a condition; `&&` binds tighter than `||`, `!` tighter than both.

    Raises:
        InvalidInputError: with field `condition` and the position of the problem.
    """
    if len(text) > MAX_LENGTH:
        raise InvalidInputError(f"condition over {MAX_LENGTH} characters", field="condition")
    tokens = _tokenize(text)
    parser = _Parser(tokens)
    expr = parser.expression()
    if parser.position != len(tokens):
        raise InvalidInputError(
            "condition: unexpected text after the expression", field="condition"
        )
    if len(topics_of(expr)) > MAX_TOPICS:
        raise InvalidInputError(f"condition names over {MAX_TOPICS} topics", field="condition")
    return expr


def _tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    position = 0
    stripped = text.rstrip()
    while position < len(stripped):
        match = _TOKEN.match(stripped, position)
        if match is None:
            raise InvalidInputError(
                f"condition: cannot read {stripped[position : position + 20]!r} at {position}",
                field="condition",
            )
        if match.group("topic"):
            tokens.append("T:" + match.group("topic")[1:-1])
        else:
            tokens.append(match.group("op"))
        position = match.end()
    if not tokens:
        raise InvalidInputError("condition is empty", field="condition")
    return tokens


class _Parser:
    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.position = 0

    def _peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def _take(self) -> str:
        token = self._peek()
        if token is None:
            raise InvalidInputError("condition ends too early", field="condition")
        self.position += 1
        return token

    def expression(self) -> Expr:
        left = self.conjunction()
        while self._peek() == "||":
            self._take()
            left = Or(left, self.conjunction())
        return left

    def conjunction(self) -> Expr:
        left = self.unary()
        while self._peek() == "&&":
            self._take()
            left = And(left, self.unary())
        return left

    def unary(self) -> Expr:
        lexeme = self._take()
        if lexeme == "!":
            return Not(self.unary())
        if lexeme == "(":
            inner = self.expression()
            if self._take() != ")":
                raise InvalidInputError("condition: missing ')'", field="condition")
            return inner
        if lexeme.startswith("T:"):
            return Topic(lexeme[2:])
        raise InvalidInputError(f"condition: unexpected {lexeme!r}", field="condition")


def evaluate(expr: Expr, topics: frozenset[str] | set[str]) -> bool:
    match expr:
        case Topic(name):
            return name in topics
        case Not(operand):
            return not evaluate(operand, topics)
        case And(left, right):
            return evaluate(left, topics) and evaluate(right, topics)
        case Or(left, right):
            return evaluate(left, topics) or evaluate(right, topics)
    raise TypeError(expr)  # pragma: no cover - Expr is closed


def topics_of(expr: Expr) -> set[str]:
    match expr:
        case Topic(name):
            return {name}
        case Not(operand):
            return topics_of(operand)
        case And(left, right) | Or(left, right):
            return topics_of(left) | topics_of(right)
    raise TypeError(expr)  # pragma: no cover


def needs_every_device(expr: Expr) -> bool:
    """True when a device with none of the named topics can match (e.g. `!('a' in topics)`), so
    fan-out must consider every device, not only the named topics' subscribers."""
    return evaluate(expr, frozenset())
