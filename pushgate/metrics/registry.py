"""The metrics of one process: a registry of its own (several runtimes in one test process
never share counters) and the instruments the pipeline updates.

Hot paths update through the small methods here, which keep each labelled child in a dict:
`Counter.labels` takes a lock and builds a key per call, a dict look-up does not. Label values
are bounded by construction: app names, categories, provider names, push service origins,
outcome kinds and HTTP status classes; never a device, token, user or raw path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

# Push answers take tens of milliseconds when all is well and up to the request timeout when
# not; end to end, a retried delivery takes seconds to a minute.
PUSH_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

# pushgate_circuit_state values (docs/metrics.md).
CIRCUIT_VALUES = {"closed": 0, "half_open": 1, "open": 2, "rate_limited": 3}

# Categories are the callers' own words: past this many distinct ones in a process, the rest
# are counted as "other", so a caller cannot grow the page without end.
MAX_CATEGORIES = 200
OTHER = "other"


def status_class(code: int | None) -> str:
    """An HTTP status as a bounded label: `429` alone (it means slow down), else `2xx`..."""
    if code is None:
        return "no_answer"
    if code == 429:
        return "429"
    return f"{code // 100}xx"


class Metrics:
    """Every instrument of one process, in its own `registry`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.accepted = Counter(
            "pushgate_notifications_accepted",
            "Notifications accepted (stored), by app, category and where they came from.",
            ["app", "category", "source"],
            registry=r,
        )
        self.deliveries = Counter(
            "pushgate_deliveries",
            "Delivery attempts' results: the status each led to and the provider's answer.",
            ["provider", "outcome", "reason"],
            registry=r,
        )
        self.provider_seconds = Histogram(
            "pushgate_provider_request_seconds",
            "How long a provider took to answer one send.",
            ["provider"],
            buckets=PUSH_BUCKETS,
            registry=r,
        )
        self.delivery_latency = Histogram(
            "pushgate_delivery_latency_seconds",
            "From a notification's acceptance (or its send time) to the provider's answer.",
            ["provider"],
            buckets=PUSH_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "pushgate_sends_in_flight", "Sends waiting for a provider's answer.", registry=r
        )
        self.queue_depth = Gauge(
            "pushgate_queue_depth",
            "Messages ready in a queue (read periodically).",
            ["queue"],
            registry=r,
        )
        self.queue_consumers = Gauge(
            "pushgate_queue_consumers",
            "This process's consumers of a queue.",
            ["queue"],
            registry=r,
        )
        self.circuit = Gauge(
            "pushgate_circuit_state",
            "Circuit breaker per provider and origin, the worst of its apps: "
            "0 closed, 1 half-open, 2 open, 3 rate limited.",
            ["provider", "origin"],
            registry=r,
        )
        self.invalidations = Counter(
            "pushgate_token_invalidations",
            "Devices whose token or subscription the provider said is gone.",
            ["provider"],
            registry=r,
        )
        self.webhook_attempts = Counter(
            "pushgate_webhook_attempts",
            "Webhook event posts: sent (2xx), retry (tried again later) or failed (given up).",
            ["outcome"],
            registry=r,
        )
        self.rate_limit_refusals = Counter(
            "pushgate_rate_limit_refusals",
            "API requests refused by a rate limit (429), by route class.",
            ["route_class"],
            registry=r,
        )
        self.http_requests = Counter(
            "pushgate_http_requests",
            "API requests answered, by route template and status class.",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_seconds = Histogram(
            "pushgate_http_request_seconds",
            "How long the API took to answer, by route template.",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=r,
        )
        # App ids to names, for the `app` label: filled by sending/accept.py as it meets them.
        self.app_names: dict[Any, str] = {}
        self._children: dict[tuple[Any, ...], Any] = {}
        self._categories: set[str] = set()
        self._circuits: dict[tuple[str, str], dict[str, int]] = {}

    def render(self) -> bytes:
        """The page, in Prometheus' text format."""
        return generate_latest(self.registry)

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def count_accepted(self, app: str, counts: Mapping[str | None, int], source: str) -> None:
        """`counts`: notifications stored per category (None: none given)."""
        for category, n in counts.items():
            label = category or ""
            if label not in self._categories:
                if len(self._categories) >= MAX_CATEGORIES:
                    label = OTHER
                else:
                    self._categories.add(label)
            self._child(self.accepted, app, label, source).inc(n)

    def count_deliveries(self, counts: Mapping[tuple[str, str, str], int]) -> None:
        """`counts`: deliveries per (provider, outcome, reason)."""
        for labels, n in counts.items():
            self._child(self.deliveries, *labels).inc(n)

    def count_invalidations(self, counts: Mapping[str, int]) -> None:
        for provider, n in counts.items():
            self._child(self.invalidations, provider).inc(n)

    def provider_answered(self, provider: str, seconds: float) -> None:
        self._child(self.provider_seconds, provider).observe(seconds)

    def delivered_after(self, provider: str, seconds: float) -> None:
        self._child(self.delivery_latency, provider).observe(seconds)

    def webhook_attempt(self, outcome: str, n: int = 1) -> None:
        self._child(self.webhook_attempts, outcome).inc(n)

    def rate_limited(self, route_class: str) -> None:
        self._child(self.rate_limit_refusals, route_class).inc()

    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self._child(self.http_requests, method, route, status_class(status)).inc()
        self._child(self.http_seconds, route).observe(seconds)

    def circuit_state(self, app: str, provider: str, origin: str, state: str) -> None:
        """A breaker changed state: the gauge shows the worst state of the origin's apps."""
        states = self._circuits.setdefault((provider, origin), {})
        states[app] = CIRCUIT_VALUES.get(state, 2)
        self._child(self.circuit, provider, origin).set(max(states.values()))
