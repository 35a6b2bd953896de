"""Fixtures shared by the acceptance tests: `server`, a `pushgate serve` subprocess on embedded
defaults (defined beside the tests of the CLI it starts)."""

from tests.acceptance.test_serve_cli import server

__all__ = ["server"]
