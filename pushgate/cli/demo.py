"""`pushgate demo`: a first notification to a local Web Push receiver, printed decrypted."""

from __future__ import annotations

from pushgate import logs
from pushgate.cli.common import out, run
from pushgate.settings import load_settings


def demo() -> None:
    """Send a first notification to a local Web Push receiver and print it decrypted.

    Needs nothing else: a throwaway pushgate and receiver run in this process and are gone
    when it ends."""
    from pushgate import demo as demo_module

    logs.configure(load_settings(log={"level": "WARNING"}).log)
    run(demo_module.run(lambda line: out.print(line, highlight=False, markup=False)))
