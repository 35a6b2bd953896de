"""The container files (Dockerfile, docker-compose.yml, .env.example, .dockerignore) use only
what pushgate has: every command and flag is a `pushgate` command, every PUSHGATE_* variable
is a setting that takes effect (a renamed setting fails here), every port is the setting it
serves, every health path is served; and `docker compose config` accepts the compose file with
.env.example where the tool exists. The health checks themselves run against real processes in
tests/acceptance/test_container_healthchecks.py."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

import pytest
import typer.main
import yaml
from cryptography.fernet import Fernet

from pushgate import cli
from pushgate.api.app import create_app
from pushgate.settings import (
    ENV_PREFIX,
    LEGACY_ENV,
    WORKER_QUEUES,
    ServerSettings,
    Settings,
    load_settings,
)
from tests.container_files import (
    COMPOSE,
    DOCKERIGNORE,
    ENV_EXAMPLE,
    PUSHGATE_SERVICES,
    ROOT,
    MissingVariableError,
    interpolate,
    read_compose,
    read_dockerfile,
    read_env_file,
    service_environment,
    variables,
)

DOCKERFILE = read_dockerfile()
COMPOSE_FILE = read_compose()
ENV = read_env_file()
# What `docker compose` interpolates with: .env.example, plus the secrets key the operator must
# add (.env.example leaves it empty on purpose, and the compose file refuses to run without it).
SECRETS_KEY = Fernet.generate_key().decode()
VARIABLES = ENV.values | {"PUSHGATE_SECRETS__KEY": SECRETS_KEY}


def container_env(service: str) -> dict[str, str]:
    """The environment a pushgate container of `service` starts with: the image's ENV, then
    the compose file's `environment`."""
    return DOCKERFILE.env() | service_environment(COMPOSE_FILE, service, VARIABLES)


def settings_of(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name, value in env.items():
        if name.startswith(ENV_PREFIX):
            monkeypatch.setenv(name, value)
    return load_settings()


def setting_path(name: str) -> list[str]:
    return name.removeprefix(ENV_PREFIX).lower().split("__")


def explicitly_set(name: str, value: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The value the settings read from `name=value` alone, or KeyError when the variable
    names no setting (pydantic-settings ignores unknown PUSHGATE_* names: a renamed setting
    would silently stop working)."""
    with monkeypatch.context() as patch:
        patch.setenv(name, value)
        node: Any = Settings().model_dump(mode="json", exclude_unset=True)
        effective: Any = load_settings().model_dump(mode="json")
    for part in setting_path(name):
        node = node[part]
        effective = effective[part]
    assert node == effective
    return effective


def all_pushgate_variables() -> dict[str, str]:
    """Every PUSHGATE_* variable the container files set, with the value they give it."""
    found = {n: v for n, v in DOCKERFILE.env().items() if n.startswith(ENV_PREFIX)}
    found |= {n: v for n, v in ENV.values.items() if n.startswith(ENV_PREFIX)}
    for service in PUSHGATE_SERVICES:
        found |= service_environment(COMPOSE_FILE, service, VARIABLES)
    return found


# --- settings ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(all_pushgate_variables()))
def test_every_pushgate_variable_is_a_setting_that_takes_effect(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    value = all_pushgate_variables()[name]

    explicitly_set(name, value, monkeypatch)


def test_a_variable_that_names_no_setting_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(KeyError):
        explicitly_set("PUSHGATE_DATABASE__POOLSIZE", "5", monkeypatch)
    with pytest.raises(KeyError):
        explicitly_set("PUSHGATE_DATABASES__POOL_SIZE", "5", monkeypatch)


def test_the_services_pass_only_pushgate_settings_and_the_same_ones() -> None:
    passed = [set(service_environment(COMPOSE_FILE, s, VARIABLES)) for s in PUSHGATE_SERVICES]

    assert all(names == passed[0] for names in passed)
    assert all(n.startswith(ENV_PREFIX) for n in passed[0]), passed[0]


@pytest.mark.parametrize("service", PUSHGATE_SERVICES)
def test_each_container_starts_with_usable_settings(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_of(container_env(service), monkeypatch)

    assert settings.database_url.startswith("postgresql+asyncpg://")
    assert settings.broker.url.startswith("amqp://")
    assert settings.redis.url is not None
    assert settings.secrets.key is not None
    assert settings.secrets.key.get_secret_value() == SECRETS_KEY


def test_the_secrets_key_must_be_given() -> None:
    raw = COMPOSE_FILE["x-pushgate"]["environment"]["PUSHGATE_SECRETS__KEY"]

    with pytest.raises(MissingVariableError, match="PUSHGATE_SECRETS__KEY"):
        interpolate(raw, ENV.values)
    assert ENV.values["PUSHGATE_SECRETS__KEY"] == ""


DOCS = (ROOT / "docs" / "operations.md", ROOT / "README.md")


def sample_value(name: str) -> str:
    """The setting's default, written as an environment variable."""
    node: Any = Settings().model_dump(mode="json")
    for part in setting_path(name):
        # A key of a mapping the defaults do not fill (a provider's pace): its sibling's value.
        node = node[part] if part in node else next(iter(node.values()))
    if isinstance(node, bool):
        return str(node).lower()
    if isinstance(node, list | dict):
        return json.dumps(node)
    return "" if node is None else str(node)


def documented_settings() -> set[str]:
    return {
        name.rstrip("_")
        for doc in DOCS
        for name in re.findall(r"\bPUSHGATE_[A-Z0-9_]+", doc.read_text())
        if "__" in name and not name.startswith("PUSHGATE_TEST_")
    }


@pytest.mark.parametrize("name", sorted(documented_settings()))
def test_every_setting_the_docs_name_is_one(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    explicitly_set(name, sample_value(name), monkeypatch)


def test_every_dotted_setting_the_operations_guide_names_is_one() -> None:
    text = (ROOT / "docs" / "operations.md").read_text()
    sections = {
        name: field.annotation
        for name, field in Settings.model_fields.items()
        if isinstance(field.annotation, type) and hasattr(field.annotation, "model_fields")
    }
    named = set(re.findall(r"`([a-z_]+)\.([a-z_]+)`", text))

    assert len(named) > 5
    for section, field in named:
        if section in sections:
            assert field in sections[section].model_fields, f"{section}.{field}"


# --- .env.example ------------------------------------------------------------------------------


def compose_variables() -> set[str]:
    """Every variable the compose file interpolates."""
    return variables(COMPOSE.read_text())


def test_env_example_assigns_every_variable_the_compose_file_reads_with_a_comment() -> None:
    read = compose_variables()

    assert set(ENV.values) == read, (read - set(ENV.values), set(ENV.values) - read)
    for name in ENV.values:
        assert ENV.comments[name], f"{name} has no comment above it in .env.example"


def test_env_example_names_every_setting_the_compose_file_passes() -> None:
    passed = COMPOSE_FILE["x-pushgate"]["environment"]

    for name, value in passed.items():
        if name in variables(str(value)):
            assert name in ENV.values, name
        else:
            # Built from other variables (the URLs): .env.example says what it is made of.
            assert re.search(rf"^#\s+{name}\s", ENV.text, re.MULTILINE), name


def test_env_example_names_what_the_image_sets() -> None:
    for name in DOCKERFILE.env():
        if name.startswith(ENV_PREFIX):
            assert f"{name}=" in ENV.text, name


# --- commands ----------------------------------------------------------------------------------


def check_pushgate_command(argv: list[str]) -> None:
    """`argv` (after `pushgate`) parses as a pushgate command: the subcommands exist and click
    accepts its options and arguments (unknown flags, missing arguments and bad values fail)."""
    command: Any = typer.main.get_command(cli.app)
    args = list(argv)
    path = ["pushgate"]
    # typer's groups are not `click.Group`s: a group is what has subcommands.
    while args and hasattr(command, "commands") and not args[0].startswith("-"):
        name = args.pop(0)
        assert name in command.commands, f"`{' '.join(path)}` has no command {name!r}"
        command = command.commands[name]
        path.append(name)
    try:
        command.make_context(" ".join(path), args)
    except Exception as exc:
        # Typer's own click's UsageError (not the `click` package's): unknown option,
        # missing argument, bad value.
        if not hasattr(exc, "format_message"):
            raise
        raise AssertionError(f"`{' '.join(path + args)}`: {exc.format_message()}") from None


def image_command(service: str) -> list[str]:
    entrypoint = DOCKERFILE.exec_form("ENTRYPOINT")
    command = COMPOSE_FILE["services"][service].get("command") or DOCKERFILE.exec_form("CMD")
    assert isinstance(command, list), f"{service}: command in exec form, please"
    return [*entrypoint, *command]


def test_the_image_runs_pushgate_serve_by_default() -> None:
    argv = DOCKERFILE.exec_form("ENTRYPOINT") + DOCKERFILE.exec_form("CMD")

    assert argv == ["pushgate", "serve"]
    check_pushgate_command(argv[1:])


@pytest.mark.parametrize(
    ("service", "subcommand"),
    [("migrate", "migrate"), ("api", "api"), ("worker", "worker"), ("dispatcher", "worker")],
)
def test_each_service_runs_its_pushgate_command(service: str, subcommand: str) -> None:
    argv = image_command(service)

    assert argv[:2] == ["pushgate", subcommand]
    check_pushgate_command(argv[1:])


def test_the_build_runs_only_real_pushgate_commands() -> None:
    runs = [i.args for i in DOCKERFILE.instructions if i.keyword == "RUN"]
    called = [
        shlex.split(part.strip())
        for run in runs
        for part in re.split(r"&&|;", run)
        if re.match(r"\s*\S*pushgate$", part.strip().split(" ")[0] if part.strip() else "")
    ]

    assert called
    for argv in called:
        check_pushgate_command(argv[1:])


def readme_container_commands() -> list[list[str]]:
    """The pushgate commands README's "Running in containers" runs in a container."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Running in containers", 1)[1].split("\n## ", 1)[0]
    found = []
    for line in section.splitlines():
        words = shlex.split(line.split(" #", 1)[0]) if line.startswith("docker") else []
        if words[:3] in (["docker", "compose", "exec"], ["docker", "compose", "run"]):
            rest = [w for w in words[3:] if w not in ("--rm", "-T")]
            service, argv = rest[0], rest[1:]
            if words[2] == "exec":
                assert argv[0] == "pushgate", line
                argv = argv[1:]
            assert service in PUSHGATE_SERVICES, line
            # `run` without a command runs the service's own.
            found.append(argv or image_command(service)[1:])
    return found


def test_readme_runs_only_real_pushgate_commands_in_containers() -> None:
    commands = readme_container_commands()

    assert len(commands) >= 3
    for argv in commands:
        check_pushgate_command(argv)


def test_a_wrong_command_or_flag_is_caught() -> None:
    with pytest.raises(AssertionError, match="no command 'migrations'"):
        check_pushgate_command(["migrations"])
    with pytest.raises(AssertionError, match="--listen"):
        check_pushgate_command(["api", "--listen", "0.0.0.0"])
    with pytest.raises(AssertionError, match="scope"):
        check_pushgate_command(["keys", "create", "--app", "shop"])


# --- ports and health paths ---------------------------------------------------------------------


@dataclass
class HealthCheck:
    """What a `python -c` health check requests: the variables it reads the port from, first
    set first, its default port, and the path."""

    names: list[str]
    default: str | None
    path: str

    def port(self, env: dict[str, str]) -> int:
        value = next((env[n] for n in self.names if env.get(n)), self.default)
        assert value is not None, f"none of {self.names} is set"
        return int(value)


def read_healthcheck(command: list[str]) -> HealthCheck:
    argv = command[1:] if command[0] == "CMD" else command
    assert argv[:2] == ["python", "-c"], command
    (code,) = argv[2:]
    names = re.findall(r"os\.environ(?:\.get\(|\[)['\"](\w+)['\"]", code)
    default = re.search(r"\bor ['\"](\d+)['\"]", code)
    path = re.search(r"['\"](?:http://127\.0\.0\.1:%s)?(/[\w/]*)['\"]", code)
    assert names, code
    assert path, code
    assert "127.0.0.1" in code, code
    return HealthCheck(names, default.group(1) if default else None, path.group(1))


def test_the_api_listens_where_compose_publishes_and_checks_a_real_route(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = container_env("api")
    settings = settings_of(env, monkeypatch)
    api = COMPOSE_FILE["services"]["api"]
    (published,) = api["ports"]
    container_port = int(interpolate(str(published), VARIABLES).rsplit(":", 1)[1])
    # The routes as the API documents them (its OpenAPI document is part of the contract).
    routes = {
        (path, method.upper())
        for path, operations in create_app(settings).openapi()["paths"].items()
        for method in operations
    }
    # The settings' own order for the port: PUSHGATE_SERVER__PORT, then the legacy name.
    port_names = [ENV_PREFIX + "SERVER__PORT"] + [
        legacy for legacy, field in LEGACY_ENV.items() if field == ("server", "port")
    ]

    assert settings.server.host == "0.0.0.0"
    assert container_port == settings.server.port
    assert settings.server.port in DOCKERFILE.exposed()
    for command in (DOCKERFILE.healthcheck()[1], api["healthcheck"]["test"]):
        check = read_healthcheck(command)
        assert check.names == port_names
        assert check.default == str(ServerSettings().port)
        assert check.port(env) == settings.server.port
        assert ("/health", "GET") in routes
        assert check.path == "/health"


@pytest.mark.parametrize(
    "given", [{"PUSHGATE_SERVER__PORT": "9000"}, {"SERVICE_PORT": "9100"}], ids=str
)
def test_the_api_health_check_follows_the_port_setting(
    given: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = container_env("api") | given
    for name, value in given.items():
        monkeypatch.setenv(name, value)
    settings = settings_of(env, monkeypatch)

    for command in (
        DOCKERFILE.healthcheck()[1],
        COMPOSE_FILE["services"]["api"]["healthcheck"]["test"],
    ):
        assert read_healthcheck(command).port(env) == settings.server.port


def test_workers_scale_without_colliding(monkeypatch: pytest.MonkeyPatch) -> None:
    worker = COMPOSE_FILE["services"]["worker"]
    env = container_env("worker")
    settings = settings_of(env, monkeypatch)
    check = read_healthcheck(worker["healthcheck"]["test"])
    port, path = check.port(env), check.path

    assert "container_name" not in worker
    assert "ports" not in worker
    assert [int(interpolate(str(p), VARIABLES)) for p in worker["expose"]] == [port]
    assert port == settings.metrics.worker_port
    assert settings.metrics.worker_port in DOCKERFILE.exposed()
    assert settings.metrics.worker_host == "0.0.0.0"
    assert settings.metrics.enabled
    # The worker's page serves /metrics only (pushgate/metrics/page.py).
    assert path == "/metrics"
    grace = float(str(worker["stop_grace_period"]).removesuffix("s"))
    assert grace > settings.worker.shutdown_grace_seconds


def test_migrate_runs_once_before_api_and_worker() -> None:
    services = COMPOSE_FILE["services"]

    assert services["migrate"]["restart"] == "no"
    for name in ("api", "worker"):
        assert services[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }
    for name, service in services.items():
        for needed, how in (service.get("depends_on") or {}).items():
            if how["condition"] == "service_healthy":
                assert "test" in services[needed]["healthcheck"], (name, needed)
        if name != "migrate":
            assert service["healthcheck"]["test"], name
    assert {"api", "worker", "migrate", "postgres", "rabbitmq", "redis"} <= set(services)


def test_the_postgres_connection_budget_fits() -> None:
    pool = int(ENV.values["PUSHGATE_DATABASE__POOL_SIZE"])
    budget = int(ENV.values["POSTGRES_MAX_CONNECTIONS"])

    # An api and a few workers at twice their pool each (pool + overflow), and room to spare.
    assert (1 + 4) * 2 * pool < budget


# --- the image ----------------------------------------------------------------------------------


def test_the_image_installs_as_make_run_does_and_runs_unprivileged() -> None:
    runs = " ".join(i.args for i in DOCKERFILE.instructions if i.keyword == "RUN")
    makefile = (ROOT / "Makefile").read_text()
    (user,) = DOCKERFILE.final("USER")
    bases = [i.args.split()[0] for i in DOCKERFILE.instructions if i.keyword == "FROM"]

    assert "install --quiet -c constraints.txt -e ." in makefile
    assert "pip install -c constraints.txt ." in runs
    assert user.args.split(":")[0] not in ("0", "root")
    assert len(bases) >= 2, "a build stage and a final stage"
    options, _ = DOCKERFILE.healthcheck()
    assert {"interval", "timeout", "retries"} <= set(options)
    python_image = next(
        i.args.split("=", 1)[1] for i in DOCKERFILE.instructions if i.keyword == "ARG"
    )
    version = re.match(r"python:(\d+)\.(\d+)-slim", python_image)
    assert version, python_image
    assert (int(version[1]), int(version[2])) >= (3, 11), python_image


def test_the_build_context_keeps_what_the_image_copies() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied = [
        word
        for i in DOCKERFILE.instructions
        if i.keyword == "COPY" and "--from" not in i.args
        for word in i.args.split()[:-1]
    ]

    assert copied
    for source in copied:
        assert (ROOT / source).exists(), source
        ignored = [p for p in patterns if fnmatch.fnmatch(source, p.removeprefix("**/"))]
        assert not ignored, (source, ignored)
    for secret in (".env", ".venv", ".git"):
        assert secret in patterns


# --- docker compose config ----------------------------------------------------------------------


def compose_tool() -> list[str] | None:
    """`docker compose` (v2) or `docker-compose` (v1), whichever this machine has."""
    if shutil.which("docker"):
        probe = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, timeout=30, check=False
        )
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def run_compose_config(extra_env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    tool = compose_tool()
    if tool is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed here")
    # Only what compose needs from the environment: a variable in the developer's shell
    # would win over .env.example.
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    return subprocess.run(
        [
            *tool,
            "--project-directory",
            str(ROOT),
            "-f",
            str(COMPOSE),
            "--env-file",
            str(ENV_EXAMPLE),
            "config",
        ],
        env=env | extra_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_docker_compose_config_accepts_the_file_with_env_example() -> None:
    result = run_compose_config({"PUSHGATE_SECRETS__KEY": SECRETS_KEY})

    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    services = config["services"]
    assert {"api", "worker", "migrate", "postgres", "rabbitmq", "redis"} <= set(services)
    for name in PUSHGATE_SERVICES:
        assert services[name]["environment"] == service_environment(COMPOSE_FILE, name, VARIABLES)
    assert "ports" not in services["worker"]


def test_docker_compose_config_refuses_to_run_without_a_secrets_key() -> None:
    result = run_compose_config({})

    assert result.returncode != 0
    assert "PUSHGATE_SECRETS__KEY" in result.stderr


def test_compose_reads_the_same_file_as_these_tests() -> None:
    # Guard for the parsers above: the YAML anchors merged as compose merges them.
    migrate = COMPOSE_FILE["services"]["migrate"]

    assert migrate["environment"] == COMPOSE_FILE["x-pushgate"]["environment"]
    assert migrate["image"] == COMPOSE_FILE["x-pushgate"]["image"]
    assert migrate["restart"] != COMPOSE_FILE["x-pushgate"]["restart"]


def test_the_dispatcher_and_the_senders_share_every_queue_between_them() -> None:
    """Every queue has a consumer: the scalable senders take all but `dispatch`, which the
    dispatcher takes alone (a queue nobody consumes would hold its work forever)."""
    taken = {}
    for service in ("worker", "dispatcher"):
        settings = load_settings(None, worker={"queues": image_command(service)[3]})
        taken[service] = set(settings.worker.queues)

    assert taken["dispatcher"] == {"dispatch"}
    assert taken["worker"] | taken["dispatcher"] == set(WORKER_QUEUES)
    assert not taken["worker"] & taken["dispatcher"]
