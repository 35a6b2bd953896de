"""Readers for the container files at the repository's root (Dockerfile, docker-compose.yml,
.env.example), for the tests that hold them to what pushgate has: Dockerfile instructions,
the compose file as YAML, the env file's assignments with their comments, and compose's
variable interpolation (`${VAR}`, `${VAR:-default}`, `${VAR:?error}`, `$$`)."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERIGNORE = ROOT / ".dockerignore"
# The services that run the pushgate image.
PUSHGATE_SERVICES = ("migrate", "api", "worker")


@dataclass
class Instruction:
    keyword: str
    args: str
    stage: int


@dataclass
class Dockerfile:
    instructions: list[Instruction]

    def final(self, keyword: str) -> list[Instruction]:
        """The final stage's instructions of one kind."""
        last = max(i.stage for i in self.instructions)
        return [i for i in self.instructions if i.stage == last and i.keyword == keyword]

    def env(self) -> dict[str, str]:
        """The final stage's ENV, as a container of the image starts with it."""
        values: dict[str, str] = {}
        for instruction in self.final("ENV"):
            for word in shlex.split(instruction.args):
                name, _, value = word.partition("=")
                values[name] = value
        return values

    def exec_form(self, keyword: str) -> list[str]:
        """The final stage's last ENTRYPOINT or CMD, which must be in exec (JSON) form."""
        args = self.final(keyword)[-1].args
        parsed = json.loads(args)
        assert isinstance(parsed, list), f"{keyword} is not in exec form: {args}"
        return [str(a) for a in parsed]

    def healthcheck(self) -> tuple[dict[str, str], list[str]]:
        """The final stage's HEALTHCHECK: its options and its CMD (exec form)."""
        (instruction,) = self.final("HEALTHCHECK")
        options, _, command = instruction.args.partition(" CMD ")
        flags = dict(word.removeprefix("--").split("=", 1) for word in options.split())
        return flags, json.loads(command)

    def exposed(self) -> set[int]:
        return {int(p.split("/")[0]) for i in self.final("EXPOSE") for p in i.args.split()}


def read_dockerfile(path: Path = DOCKERFILE) -> Dockerfile:
    lines: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    stage = -1
    instructions = []
    for line in lines:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        instructions.append(Instruction(keyword, args.strip(), stage))
    return Dockerfile(instructions)


def read_compose(path: Path = COMPOSE) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


@dataclass
class EnvFile:
    values: dict[str, str] = field(default_factory=dict)
    # The comment lines right above each assignment (or its group of assignments).
    comments: dict[str, list[str]] = field(default_factory=dict)
    text: str = ""


def read_env_file(path: Path = ENV_EXAMPLE) -> EnvFile:
    """`NAME=value` lines; a comment block applies to the assignments right after it."""
    result = EnvFile(text=path.read_text())
    block: list[str] = []
    for raw in result.text.splitlines():
        line = raw.strip()
        if not line:
            block = []
        elif line.startswith("#"):
            block.append(line)
        else:
            name, equals, value = line.partition("=")
            assert equals, f".env.example: not NAME=value: {raw!r}"
            result.values[name.strip()] = value.strip()
            result.comments[name.strip()] = list(block)
    return result


_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)"
    r"(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))"
)


class MissingVariableError(Exception):
    """A `${VAR:?message}` whose variable is unset (or empty, with the colon)."""


def variables(text: str) -> set[str]:
    """The names a compose value interpolates."""
    return {
        m.group("braced") or m.group("plain")
        for m in _VARIABLE.finditer(text)
        if not m.group("escaped")
    }


def interpolate(text: str, env: dict[str, str]) -> str:
    """What compose makes of `text` with the variables `env` (the .env file and the shell)."""

    def one(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        name = match.group("braced") or match.group("plain")
        op, arg = match.group("op"), match.group("arg") or ""
        value = env.get(name)
        missing = value is None or (value == "" and op is not None and op.startswith(":"))
        if op in ("-", ":-"):
            return arg if missing else str(value)
        if op in ("?", ":?"):
            if missing:
                raise MissingVariableError(f"{name}: {arg}")
            return str(value)
        return value or ""

    return _VARIABLE.sub(one, text)


def service_environment(
    compose: dict[str, Any], service: str, variables_env: dict[str, str]
) -> dict[str, str]:
    """A service's `environment`, interpolated."""
    raw = compose["services"][service].get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {name: interpolate(str(value), variables_env) for name, value in raw.items()}
