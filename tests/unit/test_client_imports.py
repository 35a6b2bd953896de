"""`pushgate.client` must work in a backend that has only httpx and pydantic: importing it loads
nothing of the server's runtime."""

from __future__ import annotations

import json
import subprocess
import sys

SERVER_ONLY = (
    "pushgate.settings",
    "pushgate.store",
    "pushgate.sending",
    "pushgate.api",
    "pushgate.domain",
    "pushgate.runtime",
    "fastapi",
    "starlette",
    "sqlalchemy",
)

PROBE = """
import json, sys
import pushgate.client
from pushgate.client import AsyncPushgateClient, PushgateClient
PushgateClient("http://127.0.0.1:1", "pgk_x").close()
print(json.dumps(sorted(sys.modules)))
"""


def test_client_imports_nothing_of_the_server() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = json.loads(result.stdout)
    assert "pushgate.client" in loaded
    leaked = [m for m in loaded if m.split(".")[0] in {"fastapi", "starlette", "sqlalchemy"}]
    leaked += [m for m in loaded if any(m == s or m.startswith(f"{s}.") for s in SERVER_ONLY)]
    assert leaked == []
