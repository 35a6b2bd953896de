"""Upstream sinks the bench points pushgate at: nginx as a fast Web Push service, and the test
suite's Python fake with added latency."""
