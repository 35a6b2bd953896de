"""The metrics of one process: a registry of its own (several runtimes in one test process
never share counters) and the instruments the pipeline updates.

The counters and histograms updated per request or per delivery are `families` (a dict update
each, on the event loop); the gauges that change rarely (queues, circuits) are
prometheus-client's. Label values are bounded by construction: app names, categories (the
first `MAX_CATEGORIES`), provider names, push service origins, outcome kinds, route templates
and HTTP status classes; never a device, token, user or raw path.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest

from pushgate.metrics import families

# Push answers take tens of milliseconds when all is well and up to the request timeout when
# not; end to end, a retried delivery takes seconds to a minute.
PUSH_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# pushgate_circuit_state values (docs/metrics.md).
CIRCUIT_VALUES = {"closed": 0, "half_open": 1, "open": 2, "rate_limited": 3}

# Categories are the callers' own words: past this many distinct ones in a process, the rest
# are counted as "other", so a caller cannot grow the page without end.
MAX_CATEGORIES = 200
OTHER = "other"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


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
        self.accepted = families.Counter(
            "pushgate_notifications_accepted",
            "Notifications accepted (stored), by app, category and where they came from.",
            ["app", "category", "source"],
        )
        self.deliveries = families.Counter(
            "pushgate_deliveries",
            "Delivery attempts' results: the status each led to and the provider's answer.",
            ["provider", "outcome", "reason"],
        )
        self.provider_seconds = families.Histogram(
            "pushgate_provider_request_seconds",
            "How long a provider took to answer one send.",
            ["provider"],
            PUSH_BUCKETS,
        )
        self.delivery_latency = families.Histogram(
            "pushgate_delivery_latency_seconds",
            "From a notification's acceptance (or its send time) to the provider's answer.",
            ["provider"],
            PUSH_BUCKETS,
        )
        self.invalidations = families.Counter(
            "pushgate_token_invalidations",
            "Devices whose token or subscription the provider said is gone.",
            ["provider"],
        )
        self.webhook_attempts = families.Counter(
            "pushgate_webhook_attempts",
            "Webhook event posts: sent (2xx), retry (tried again later) or failed (given up).",
            ["outcome"],
        )
        self.rate_limit_refusals = families.Counter(
            "pushgate_rate_limit_refusals",
            "API requests refused by a rate limit (429), by route class.",
            ["route_class"],
        )
        self.http_requests = families.Counter(
            "pushgate_http_requests",
            "API requests answered, by route template and status class.",
            ["method", "route", "status"],
        )
        self.http_seconds = families.Histogram(
            "pushgate_http_request_seconds",
            "How long the API took to answer, by route template.",
            ["route"],
            HTTP_BUCKETS,
        )
        # Sends waiting for a provider's answer (a plain number: changed twice per send).
        self.in_flight = 0
        self.registry.register(
            families.Collector(
                self.accepted,
                self.deliveries,
                self.provider_seconds,
                self.delivery_latency,
                self.invalidations,
                self.webhook_attempts,
                self.rate_limit_refusals,
                self.http_requests,
                self.http_seconds,
            )
        )
        self.registry.register(_InFlight(self))
        self.queue_depth = Gauge(
            "pushgate_queue_depth",
            "Messages ready in a queue (read periodically).",
            ["queue"],
            registry=self.registry,
        )
        self.queue_consumers = Gauge(
            "pushgate_queue_consumers",
            "This process's consumers of a queue.",
            ["queue"],
            registry=self.registry,
        )
        self.circuit = Gauge(
            "pushgate_circuit_state",
            "Circuit breaker per provider and origin, the worst of its apps: "
            "0 closed, 1 half-open, 2 open, 3 rate limited.",
            ["provider", "origin"],
            registry=self.registry,
        )
        # App ids to names, for the `app` label: filled by sending/accept.py as it meets them.
        self.app_names: dict[Any, str] = {}
        self._categories: set[str] = set()
        self._circuits: dict[tuple[str, str], dict[str, int]] = {}
        self._statuses: dict[int, str] = {}

    def render(self) -> bytes:
        """The page, in Prometheus' text format."""
        return generate_latest(self.registry)

    def count_accepted(self, app: str, counts: Mapping[str | None, int], source: str) -> None:
        """`counts`: notifications stored per category (None: none given)."""
        for category, n in counts.items():
            label = category or ""
            if label not in self._categories:
                if len(self._categories) >= MAX_CATEGORIES:
                    label = OTHER
                else:
                    self._categories.add(label)
            self.accepted.inc((app, label, source), n)

    def count_deliveries(self, counts: Mapping[tuple[str, str, str], int]) -> None:
        """`counts`: deliveries per (provider, outcome, reason)."""
        for labels, n in counts.items():
            self.deliveries.inc(labels, n)

    def count_invalidations(self, counts: Mapping[str, int]) -> None:
        for provider, n in counts.items():
            self.invalidations.inc((provider,), n)

    def provider_answered(self, provider: str, seconds: float) -> None:
        self.provider_seconds.observe((provider,), seconds)

    def delivered_after(self, provider: str, seconds: float) -> None:
        self.delivery_latency.observe((provider,), seconds)

    def webhook_attempt(self, outcome: str, n: int = 1) -> None:
        self.webhook_attempts.inc((outcome,), n)

    def rate_limited(self, route_class: str) -> None:
        self.rate_limit_refusals.inc((route_class,))

    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        status_label = self._statuses.get(status)
        if status_label is None:
            status_label = self._statuses[status] = status_class(status)
        self.http_requests.inc((method if method in METHODS else "other", route, status_label))
        self.http_seconds.observe((route,), seconds)

    def circuit_state(self, app: str, provider: str, origin: str, state: str) -> None:
        """A breaker changed state: the gauge shows the worst state of the origin's apps."""
        states = self._circuits.setdefault((provider, origin), {})
        states[app] = CIRCUIT_VALUES.get(state, 2)
        self.circuit.labels(provider, origin).set(max(states.values()))


class _InFlight:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "pushgate_sends_in_flight",
            "Sends waiting for a provider's answer.",
            value=self.metrics.in_flight,
        )

    def describe(self) -> Iterator[Metric]:
        return self.collect()
