"""The Grafana dashboards ask only for what creditops exposes: every metric in a panel's query
is one the service's ``/metrics`` or the monitor's gauges define (or one Prometheus makes
itself), every label a query groups or filters by is one that metric has, every panel has a
datasource and an id unique in its dashboard, and the provisioning points where compose
mounts the dashboards."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import Counter, Histogram, MetricWrapperBase

from creditops.monitoring.gauges import MonitorGauges
from creditops.serving.prometheus import ServiceMetrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
# Series Prometheus itself records for every scrape target.
PROMETHEUS_OWN = {"up": {"job", "instance"}, "scrape_duration_seconds": {"job", "instance"}}
_SCRAPE_LABELS = {"job", "instance"}


def _exposed() -> dict[str, set[str]]:
    """Every series name creditops exposes, with its labels."""
    series: dict[str, set[str]] = {}
    for owner in (ServiceMetrics(CollectorRegistry()), MonitorGauges(CollectorRegistry())):
        for metric in vars(owner).values():
            if not isinstance(metric, MetricWrapperBase):
                continue
            name, labels = metric._name, set(metric._labelnames)
            if isinstance(metric, Counter):
                series[f"{name}_total"] = labels
            elif isinstance(metric, Histogram):
                for suffix in ("_bucket", "_sum", "_count"):
                    series[name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
            else:
                series[name] = labels
    return {**series, **PROMETHEUS_OWN}


def _panels() -> list[tuple[str, dict]]:
    return [(path.name, p) for path in DASHBOARDS for p in json.loads(path.read_text())["panels"]]


def test_there_are_dashboards_for_serving_monitoring_and_health() -> None:
    assert [p.stem for p in DASHBOARDS] == ["health", "monitoring", "serving"]
    uids = [json.loads(p.read_text())["uid"] for p in DASHBOARDS]
    assert len(set(uids)) == len(uids)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_every_panel_has_a_datasource_and_a_unique_id(path: Path) -> None:
    panels = json.loads(path.read_text())["panels"]
    ids = [p["id"] for p in panels]
    assert len(set(ids)) == len(ids)
    for p in panels:
        assert p["datasource"]["uid"] == "prometheus", p["title"]
        assert p["targets"], p["title"]
        assert all(t["datasource"]["uid"] == "prometheus" for t in p["targets"])


def test_every_query_asks_for_metrics_and_labels_creditops_has() -> None:
    exposed = _exposed()
    for dashboard, panel in _panels():
        for target in panel["targets"]:
            expr = target["expr"]
            names = set(re.findall(r"\b(creditops_[a-z_]+|up|scrape_duration_seconds)\b", expr))
            assert names, (dashboard, panel["title"], expr)
            unknown = names - set(exposed)
            assert not unknown, (dashboard, panel["title"], unknown)
            labels = set().union(*(exposed[n] for n in names)) | _SCRAPE_LABELS
            grouped = {
                label.strip()
                for group in re.findall(r"\bby \(([^)]*)\)", expr)
                for label in group.split(",")
            }
            matched = set(re.findall(r"[{,]\s*([a-z_]+)\s*=~?", expr))
            legend = set(re.findall(r"\{\{(\w+)\}\}", target.get("legendFormat", "")))
            assert grouped | matched | legend <= labels, (
                dashboard, panel["title"], (grouped | matched | legend) - labels,
            )  # fmt: skip


def test_the_check_catches_a_metric_creditops_does_not_have() -> None:
    exposed = _exposed()
    assert "creditops_predictions_total" in exposed
    assert "creditops_prediction_total" not in exposed  # a typo a dashboard could carry
    assert exposed["creditops_http_request_duration_seconds_bucket"] == {"endpoint", "le"}


def test_the_provisioning_loads_the_dashboards_where_compose_mounts_them() -> None:
    provisioning = ROOT / "deploy" / "grafana" / "provisioning"
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert source["uid"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "creditops.yml").read_text())[
        "providers"
    ]
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./deploy/grafana/dashboards:{provider['options']['path']}:ro" in mounts
