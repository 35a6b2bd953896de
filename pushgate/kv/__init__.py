"""The key-value store port (cache, rate limits, fast idempotency) and its implementations."""
