"""`pushgate migrate`: create or upgrade the database schema."""

from __future__ import annotations

from pushgate import logs
from pushgate.cli.common import ConfigOption, run, say, settings_from
from pushgate.runtime import running
from pushgate.store import migrate


def migrate_command(config: ConfigOption = None) -> None:
    """Create or upgrade the database schema to the latest revision."""
    settings = settings_from(config)
    logs.configure(settings.log)

    async def work() -> str | None:
        # Not `with_runtime`: its schema check refuses exactly the database this command is
        # here to bring up to date (a fresh or older PostgreSQL database).
        async with running(settings, start_broker=False) as runtime:
            await migrate.upgrade(runtime.engine, secrets=runtime.credentials.box)
            return await migrate.current_revision(runtime.engine)

    revision = run(work())
    say(settings, f"database at revision {revision}", revision=revision)
