"""The hot-path counters and histograms (metrics/families.py) read as prometheus-client's own
would: cumulative `le` buckets, a value on a bound counted in that bucket, counters summed."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from pushgate.metrics.registry import Metrics


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for s in family.samples
    }


def test_histogram_buckets_are_cumulative_and_include_their_bound() -> None:
    metrics = Metrics()
    for seconds in (0.005, 0.01, 0.2, 0.2, 75.0):
        metrics.provider_answered("fcm", seconds)

    found = samples(metrics)

    def bucket(le: str) -> float:
        return found["pushgate_provider_request_seconds_bucket", (("le", le), ("provider", "fcm"))]

    assert bucket("0.01") == 2
    assert bucket("0.1") == 2
    assert bucket("0.25") == 4
    assert bucket("60.0") == 4
    assert bucket("+Inf") == 5
    assert found["pushgate_provider_request_seconds_count", (("provider", "fcm"),)] == 5
    assert found["pushgate_provider_request_seconds_sum", (("provider", "fcm"),)] == 75.415


def test_counters_add_up_per_label_set_and_categories_are_bounded() -> None:
    metrics = Metrics()
    metrics.count_deliveries({("fcm", "sent", "2xx"): 3})
    metrics.count_deliveries({("fcm", "sent", "2xx"): 2, ("apns", "invalid", "4xx"): 1})
    for n in range(205):
        metrics.count_accepted("shop", {f"c{n}": 1}, "api")
    metrics.in_flight = 7

    found = samples(metrics)

    sent = (("outcome", "sent"), ("provider", "fcm"), ("reason", "2xx"))
    assert found["pushgate_deliveries_total", sent] == 5
    categories = {
        dict(labels)["category"]
        for name, labels in found
        if name == "pushgate_notifications_accepted_total"
    }
    assert len(categories) == 201
    other = (("app", "shop"), ("category", "other"), ("source", "api"))
    assert found["pushgate_notifications_accepted_total", other] == 5
    assert found["pushgate_sends_in_flight", ()] == 7
