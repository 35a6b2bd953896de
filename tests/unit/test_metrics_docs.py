"""docs/metrics.md and docs/grafana-dashboard.json name only metrics pushgate exports, and the
page documents each of them."""

from __future__ import annotations

import json
import re
from pathlib import Path

from pushgate.metrics.registry import Metrics

DOCS = Path(__file__).resolve().parents[2] / "docs"
METRIC = re.compile(r"\bpushgate_[a-z_]+\b")


def exported() -> tuple[set[str], set[str]]:
    """The metric families, and every sample name a scrape may show."""
    families: set[str] = set()
    samples: set[str] = set()
    for family in Metrics().registry.collect():
        name = family.name + ("_total" if family.type == "counter" else "")
        families.add(name)
        suffixes = {
            "counter": ("_total",),
            "histogram": ("_bucket", "_count", "_sum"),
        }.get(family.type, ("",))
        samples.update(family.name + suffix for suffix in suffixes)
    return families, samples


def test_every_dashboard_query_names_only_exported_metrics() -> None:
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
    _, samples = exported()
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]

    assert dashboard["title"]
    assert dashboard["panels"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    for expr in exprs:
        names = set(METRIC.findall(expr))
        assert names, expr
        assert names <= samples, f"{expr}: {names - samples} not exported"


def test_the_metrics_page_documents_every_metric() -> None:
    text = (DOCS / "metrics.md").read_text()
    families, samples = exported()

    documented = set(METRIC.findall(text))
    assert families <= documented, families - documented
    assert documented <= samples | families, documented - samples - families
