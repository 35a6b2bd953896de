"""The provider registry: built-ins by name, plugins by entry point, and a clear stop at start
for a duplicate name or a broken entry point."""

from __future__ import annotations

import re
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest

from pushgate.domain import platforms
from pushgate.domain.request import NotificationCreate
from pushgate.errors import ConfigError
from pushgate.providers import registry
from pushgate.providers.base import DeliveryProvider
from pushgate.runtime import open_runtime
from pushgate.settings import Settings
from tests.plugins import PLUGINS_DIR

GROUP = platforms.ENTRY_POINT_GROUP


def entry(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group=GROUP)


def install(directory: Path, name: str, value: str) -> None:
    """A distribution whose only content is one provider entry point, on the path."""
    info = directory / f"pushgate_{name}_plugin-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: pushgate-{name}-plugin\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text(f"[{GROUP}]\n{name} = {value}\n")


class Misnamed(DeliveryProvider[None]):
    name = "other"

    async def send(self, target: Any, message: Any, credentials: None) -> Any:
        raise NotImplementedError

    def address(self, token: str) -> str:
        return token

    async def close(self) -> None:
        pass


def misnamed(settings: Settings) -> DeliveryProvider[Any]:
    return Misnamed()


NOT_CALLABLE = 42


def test_the_built_in_providers_are_registered_by_name(make_settings: Any) -> None:
    built = registry.build(make_settings(), entry_points=())

    assert list(built) == ["fcm", "apns", "webpush"]
    assert all(provider.name == name for name, provider in built.items())


def test_an_installed_entry_point_adds_its_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the test plugin's distribution on the path
    monkeypatch.syspath_prepend(str(PLUGINS_DIR))

    # Then its entry point is found, its platform is known, and requests may name it
    assert [e.name for e in platforms.entry_points()] == ["webhook"]
    assert platforms.names() == ("fcm", "apns", "webpush", "webhook")
    request = NotificationCreate.model_validate(
        {"tokens": [{"platform": "webhook", "token": "http://127.0.0.1/x"}], "title": "Hi"}
    )
    assert [t.platform for t in request.tokens or []] == ["webhook"]
    assert "webhook" in registry.factories()


def test_without_the_plugin_its_platform_is_refused() -> None:
    assert platforms.names() == ("fcm", "apns", "webpush")
    with pytest.raises(ValueError, match="'fcm', 'apns' or 'webpush'"):
        NotificationCreate.model_validate(
            {"tokens": [{"platform": "webhook", "token": "http://x"}], "title": "Hi"}
        )


def test_a_plugin_named_like_a_built_in_stops_the_start() -> None:
    with pytest.raises(ConfigError, match="two delivery providers are named 'fcm'"):
        registry.factories((entry("fcm", f"{__name__}:misnamed"),))


def test_two_plugins_of_one_name_stop_the_start() -> None:
    twice = (entry("sms", f"{__name__}:misnamed"), entry("sms", f"{__name__}:misnamed"))

    with pytest.raises(ConfigError, match="two delivery providers are named 'sms'") as caught:
        registry.factories(twice)

    assert f"{__name__}:misnamed" in caught.value.message


def test_an_entry_point_that_cannot_be_imported_stops_the_start() -> None:
    with pytest.raises(ConfigError, match="'sms' = 'no_such_module:build'") as caught:
        registry.factories((entry("sms", "no_such_module:build"),))

    assert "cannot be loaded: ModuleNotFoundError" in caught.value.message


def test_an_entry_point_that_is_not_a_factory_stops_the_start() -> None:
    with pytest.raises(ConfigError, match="not a callable factory"):
        registry.factories((entry("sms", f"{__name__}:NOT_CALLABLE"),))


def test_a_provider_that_calls_itself_by_another_name_stops_the_start(
    make_settings: Any,
) -> None:
    with pytest.raises(ConfigError, match="registered as 'sms' calls itself 'other'"):
        registry.build(make_settings(), (entry("sms", f"{__name__}:misnamed"),))


async def test_a_broken_installed_plugin_stops_the_runtime_before_it_opens(
    make_settings: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given an installed distribution whose entry point names a missing module
    install(tmp_path / "site", "sms", "pushgate_sms_gone:build")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))

    # Then pushgate does not start, and says which plugin
    with pytest.raises(ConfigError, match=re.escape("(from pushgate-sms-plugin 1.0)")):
        await open_runtime(make_settings())
