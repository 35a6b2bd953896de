"""Prometheus metrics: the instruments of one process (`registry`) and the page that shows them
(`page`). docs/metrics.md lists every metric."""
