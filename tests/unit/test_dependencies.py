"""Every third-party module pushgate's code imports is installed by `pip install pushgate`
alone, without the test extras: `make run` builds its environment from the run dependencies
only, while the suite runs with the test extras installed, so a module only the tests bring
(httpx was one) would pass every test and break `make run` on a fresh machine."""

from __future__ import annotations

import ast
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

PACKAGE = Path(__file__).resolve().parents[2] / "pushgate"


def run_dependency_closure() -> set[str]:
    """Normalized names of the distributions `pushgate` needs at run time, transitively, with
    the extras its requirements ask for (`google-auth[requests]` brings requests)."""
    seen: set[tuple[str, str]] = set()
    names: set[str] = set()
    pending: list[tuple[str, str]] = [("pushgate", "")]
    while pending:
        name, extra = pending.pop()
        key = name.lower().replace("_", "-")
        if (key, extra) in seen:
            continue
        seen.add((key, extra))
        names.add(key)
        try:
            requirements = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue  # a dependency for another platform (uvloop on Windows, say)
        for text in requirements:
            requirement = Requirement(text)
            marker = requirement.marker
            if marker is None or marker.evaluate({"extra": extra}):
                pending.append((requirement.name, ""))
                pending.extend((requirement.name, e) for e in requirement.extras)
    return names


def imported_top_level_modules() -> dict[str, Path]:
    """Each absolute import's top-level module in pushgate's code, with one file using it."""
    found: dict[str, Path] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.partition(".")[0], path)
    return found


def test_every_imported_module_comes_with_the_run_dependencies() -> None:
    closure = run_dependency_closure()
    providers = metadata.packages_distributions()
    missing = {}
    for module, path in imported_top_level_modules().items():
        if module == "pushgate" or module in sys.stdlib_module_names:
            continue
        distributions = {d.lower().replace("_", "-") for d in providers.get(module, [])}
        if not distributions & closure:
            missing[module] = str(path.relative_to(PACKAGE.parent))
    assert not missing, f"imported but not a run dependency (pyproject.toml): {missing}"


def test_the_closure_is_read_from_the_installed_metadata() -> None:
    # The check above would pass vacuously if the metadata could not be read.
    closure = run_dependency_closure()
    assert {"fastapi", "sqlalchemy", "httpx", "starlette"} <= closure
    assert "pytest" not in closure
