"""The one registry of delivery providers: the built-in ones by name, plus the plugins found as
entry points in the `pushgate.providers` group. An entry point names a factory that takes the
`Settings` and returns a `DeliveryProvider`; its name is the platform devices give, e.g. in a
plugin's pyproject.toml:

    [project.entry-points."pushgate.providers"]
    webhook = "pushgate_webhook:build"

A duplicate name or a broken entry point stops the process at start, saying which.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import metadata
from typing import Any

from pushgate.domain import endpoint, platforms
from pushgate.domain.subscription import Platform
from pushgate.errors import ConfigError
from pushgate.providers.base import DeliveryProvider
from pushgate.settings import Settings

Factory = Callable[[Settings], DeliveryProvider[Any]]


def build_fcm(settings: Settings) -> DeliveryProvider[Any]:
    # Imported when built: google-auth and the HTTP client cost start-up time that commands
    # which build no provider should not pay.
    from pushgate.providers import fcm, fcm_credentials

    return fcm.FCMProvider(
        base_url=settings.fcm.base_url,
        cafile=settings.fcm.ca_bundle,
        timeout=settings.delivery.request_timeout_seconds,
        concurrency=settings.worker.concurrency,
        token_uris=fcm_credentials.allowed_token_uris(settings),
        credentials=fcm_credentials.FCMStoredCredentials(settings.fcm),
    )


def build_apns(settings: Settings) -> DeliveryProvider[Any]:
    from pushgate.providers import apns, apns_credentials

    config = settings.apns
    return apns.APNSProvider(
        production_url=config.production_url,
        sandbox_url=config.sandbox_url,
        ca_file=str(config.ca_bundle) if config.ca_bundle else None,
        timeout=settings.delivery.request_timeout_seconds,
        max_connections=config.max_connections,
        max_streams=config.max_streams,
        credentials=apns_credentials.APNSStoredCredentials(config),
    )


def build_webpush(settings: Settings) -> DeliveryProvider[Any]:
    from pushgate.providers import webpush

    guard = None if settings.webpush.allow_private_addresses else endpoint.is_public_address
    return webpush.WebPushProvider(
        settings=settings.webpush,
        delivery=settings.delivery,
        limit=settings.webpush.connection_limit,
        limit_per_host=settings.webpush.connections_per_host,
        address_allowed=guard,
    )


BUILT_IN: Mapping[Platform, Factory] = {
    Platform.FCM: build_fcm,
    Platform.APNS: build_apns,
    Platform.WEBPUSH: build_webpush,
}


def factories(
    entry_points: tuple[metadata.EntryPoint, ...] | None = None,
) -> dict[str, Factory]:
    """Every provider factory by platform name: the built-in ones, then the plugins'.

    Args:
        entry_points: the plugins' entry points; those installed by default.

    Raises:
        ConfigError: two providers share a name, or an entry point cannot be loaded or does
            not name a callable.
    """
    found: dict[str, Factory] = {str(name): factory for name, factory in BUILT_IN.items()}
    origin = dict.fromkeys(found, "built in")
    for entry in platforms.entry_points() if entry_points is None else entry_points:
        where = _where(entry)
        if entry.name in found:
            raise ConfigError(
                f"two delivery providers are named {entry.name!r}: {origin[entry.name]} and"
                f" {where}; uninstall one of them"
            )
        try:
            factory = entry.load()
        except Exception as exc:  # any import failure: say which plugin, then stop
            raise ConfigError(
                f"the delivery provider {where} cannot be loaded: {type(exc).__name__}: {exc}"
            ) from exc
        if not callable(factory):
            raise ConfigError(f"the delivery provider {where} is not a callable factory")
        found[entry.name] = factory
        origin[entry.name] = where
    return found


def build(
    settings: Settings, entry_points: tuple[metadata.EntryPoint, ...] | None = None
) -> dict[str, DeliveryProvider[Any]]:
    """One provider per platform, shared by every app (per-app secrets come with each send).
    They open connections lazily, so building them costs nothing until a send.

    Raises:
        ConfigError: see `factories`; or a factory fails, or returns something that is not
            a provider of the name it is registered under.
    """
    built: dict[str, DeliveryProvider[Any]] = {}
    for name, factory in factories(entry_points).items():
        try:
            provider = factory(settings)
        except ConfigError:
            raise
        except Exception as exc:
            raise ConfigError(
                f"the delivery provider {name!r} cannot be built: {type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(provider, DeliveryProvider):
            raise ConfigError(
                f"the delivery provider {name!r} factory returned {type(provider).__name__},"
                " not a DeliveryProvider"
            )
        if provider.name != name:
            raise ConfigError(
                f"the delivery provider registered as {name!r} calls itself {provider.name!r}"
            )
        if provider.capabilities.vapid and provider.credentials is not None:
            raise ConfigError(
                f"the delivery provider {name!r} takes both VAPID and stored credentials"
            )
        built[name] = provider
    return built


def _where(entry: metadata.EntryPoint) -> str:
    dist = entry.dist
    package = f" (from {dist.name} {dist.version})" if dist is not None else ""
    return f"{entry.name!r} = {entry.value!r}{package}"
