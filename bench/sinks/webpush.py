"""nginx answering as a Web Push service: `POST /push/<name>` gets `201 Created` with a
`Location` header, like a push service accepting a message; nothing is decrypted. A delivery is
a 201 line; its key is the endpoint's path."""

from __future__ import annotations

from typing import ClassVar

from bench import seed
from bench.sinks.nginx import Arrivals, NginxSink

LOCATIONS = """\
        location /push/ {{
            add_header Location "https://127.0.0.1:{port}/message/$request_id" always;
            return 201;
        }}"""


class WebPushSink(NginxSink):
    platform: ClassVar[str] = "webpush"
    FIELDS = ("msec", "status", "uri", "connection")

    def locations(self) -> str:
        return LOCATIONS.format(port=self.port)

    def endpoint(self, name: str) -> str:
        return f"{self.origin}/push/{name}"

    @staticmethod
    def path(name: str) -> str:
        return f"/push/{name}"

    def record(self, found: Arrivals, line: dict[str, str]) -> None:
        found.seen(line)
        if line["status"] == "201":
            found.add(line["uri"], float(line["msec"]))

    # --- what the e2e scenario needs (bench/e2e.py) --------------------------------------------

    def settings(self) -> dict[str, str]:
        return {}  # the deployment always trusts the bench CA for Web Push (bench/deploy.py)

    def addresses(self, tag: str, n: int) -> tuple[list[seed.Address], list[str]]:
        """N subscriptions with distinct endpoints, and the path each must arrive at."""
        names = [f"{tag}-{i:07d}" for i in range(n)]
        subs = seed.subscriptions([self.endpoint(x) for x in names])
        return [seed.Address.of(sub) for sub in subs], [self.path(x) for x in names]
