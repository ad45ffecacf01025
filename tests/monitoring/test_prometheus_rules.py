"""The Prometheus rules and config in deploy/prometheus: accepted by promtool, their alerts fire
on the series they are meant for (``promtool test rules``), and every metric and label they use
is one creditops actually exports (the service's ServiceMetrics, the monitor's MonitorGauges).

promtool comes from Debian's ``prometheus`` package. On CI (``CI=true``) a missing promtool is a
failure; elsewhere those tests are skipped with the command that installs it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from creditops.monitoring.gauges import MonitorGauges
from creditops.serving.prometheus import ServiceMetrics
from helpers import tool

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RULES = DEPLOY / "alerts.yml"
RULES_TEST = DEPLOY / "alerts_test.yml"
CONFIG = DEPLOY / "prometheus.yml"
INSTALL = "apt-get install -y prometheus"

METRIC = re.compile(r"\b(creditops_[a-zA-Z0-9_]+)\b")
SELECTOR = re.compile(r"\b(creditops_[a-zA-Z0-9_]+|up)\s*\{([^}]*)\}")
MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")


@pytest.fixture(scope="module")
def promtool() -> str:
    # `make test` installs it (scripts/system-packages.sh): missing, the test fails, never skips.
    return tool("promtool", f"`make test` installs it (Debian: `{INSTALL}`)")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def exported() -> dict[str, set[str]]:
    """Every sample name creditops exports, with the label names it may carry."""
    service = ServiceMetrics(CollectorRegistry())
    monitor = MonitorGauges(CollectorRegistry())
    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "summary": ("_count", "_sum", "_created"),
        "info": ("_info",),
    }
    labels: dict[str, tuple[str, ...]] = {}
    for owner in (service, monitor):
        for metric in vars(owner).values():
            if isinstance(metric, MetricWrapperBase):
                labels[metric._name] = tuple(metric._labelnames)
    names: dict[str, set[str]] = {}
    for registry in (service.registry, monitor.registry):
        for family in registry.collect():
            for suffix in suffixes[family.type]:
                extra = {"le"} if suffix == "_bucket" else set()
                names[family.name + suffix] = set(labels[family.name]) | extra
    return names


# ---------------------------------------------------------------------------------------------
# promtool
# ---------------------------------------------------------------------------------------------


def test_promtool_accepts_the_rules(promtool: str) -> None:
    result = run(promtool, "check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def test_promtool_accepts_the_config(promtool: str) -> None:
    result = run(promtool, "check", "config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is valid prometheus config file syntax" in result.stdout
    assert "alerts.yml" in result.stdout  # the config loads the rules it ships with


def test_rule_unit_tests_pass(promtool: str) -> None:
    result = run(promtool, "test", "rules", str(RULES_TEST))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    tested = yaml.safe_load(RULES_TEST.read_text())["tests"]
    firing = {
        case["alertname"]
        for test in tested
        for case in test["alert_rule_test"]
        if case.get("exp_alerts")
    }
    # The unit tests see these fire, each at the time and with the labels they state.
    assert {
        "CreditopsDataDriftCritical",
        "CreditopsDataDriftWarning",
        "CreditopsHighErrorRate",
        "CreditopsHighPredictLatency",
        "CreditopsNoPredictTraffic",
        "CreditopsDecisionLogFailures",
        "CreditopsNoModelServed",
        "CreditopsOutOfRangeDecisions",
        "CreditopsOutOfRangeShare",
        "CreditopsRegistryUnreachable",
        "CreditopsPredictionDriftCritical",
        "CreditopsRealisedAUCDrop",
        "CreditopsDisparateImpact",
        "CreditopsMonitorStale",
        "CreditopsAlertWebhookFailing",
    } <= firing


def test_rule_unit_tests_catch_a_broken_threshold(promtool: str, tmp_path: Path) -> None:
    """The unit tests can fail: with the critical drift threshold raised to 0.9, they do."""
    broken = RULES.read_text().replace(
        "expr: creditops_drift_share >= 0.7", "expr: creditops_drift_share >= 0.9"
    )
    assert broken != RULES.read_text()
    (tmp_path / "alerts.yml").write_text(broken)
    shutil.copy(RULES_TEST, tmp_path / "alerts_test.yml")
    result = run(promtool, "test", "rules", str(tmp_path / "alerts_test.yml"))
    assert result.returncode != 0
    assert "CreditopsDataDriftCritical" in result.stdout + result.stderr


# ---------------------------------------------------------------------------------------------
# The rules against the code (no promtool needed)
# ---------------------------------------------------------------------------------------------


def test_rules_use_only_metrics_and_labels_creditops_exports() -> None:
    names = exported()
    used: set[str] = set()
    for rule in rules():
        expr = rule["expr"]
        for name in METRIC.findall(expr):
            assert name in names, f"{rule['alert']}: {name} is not exported by creditops"
            used.add(name)
        for name, matchers in SELECTOR.findall(expr):
            allowed = {"job", "instance"} | names.get(name, set())
            for label in MATCHER.findall(matchers):
                assert label in allowed, f"{rule['alert']}: {name} has no label {label!r}"
    # The figures the monitor and the service export are all watched by some rule.
    assert {
        "creditops_http_requests_total",
        "creditops_http_request_duration_seconds_bucket",
        "creditops_prediction_log_failures_total",
        "creditops_model_info",
        "creditops_drift_share",
        "creditops_prediction_psi",
        "creditops_realised_roc_auc",
        "creditops_estimated_roc_auc",
        "creditops_reference_roc_auc",
        "creditops_disparate_impact_ratio",
        "creditops_alert_level",
        "creditops_monitor_last_run_timestamp_seconds",
        "creditops_alert_webhook_failures_total",
        "creditops_alert_webhook_up",
    } <= used


def test_the_name_check_would_catch_a_typo() -> None:
    names = exported()
    assert "creditops_http_requests_total" in names
    assert "creditops_http_request_total" not in names
    assert names["creditops_http_requests_total"] == {"method", "endpoint", "status"}
    assert names["creditops_disparate_impact_ratio"] == {"attribute"}


def test_every_rule_has_a_severity_and_readable_annotations() -> None:
    seen: set[str] = set()
    for rule in rules():
        name = rule["alert"]
        assert name not in seen, f"duplicate alert {name}"
        seen.add(name)
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        annotations = rule["annotations"]
        assert set(annotations) >= {"summary", "description"}, name
        text = annotations["summary"] + annotations["description"]
        assert "$value" in text or "$labels" in text or "absent" in rule["expr"], name


def test_promtool_lints_the_monitor_exposition(promtool: str) -> None:
    """Names, types and help texts of the monitor's gauges follow Prometheus conventions."""
    from prometheus_client import generate_latest

    gauges = MonitorGauges(CollectorRegistry())
    gauges.set_drift(0.5, {"Income": True}, statistics={"Income": 0.2}, methods={"Income": "psi"})
    gauges.set_fairness({"Age": 0.9})
    gauges.set_model("credit-default", "3")
    gauges.set_alert_levels([], checks=["data_drift"])
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=generate_latest(gauges.registry).decode(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
