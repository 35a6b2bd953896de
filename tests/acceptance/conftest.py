"""Fixtures shared by the acceptance tests: `server`, a `pushgate serve` subprocess on embedded
defaults (defined beside the tests of the CLI it starts); `fake_webpush`, the fake push service
in a subprocess, and `live`, a serve that delivers Web Push to it (beside the client's tests)."""

from tests.acceptance.test_client import fake_webpush, live
from tests.acceptance.test_serve_cli import server

__all__ = ["fake_webpush", "live", "server"]
