"""Alert delivery on real components: the store on SQLite files in tmp_path (and on PostgreSQL
when ``CREDITOPS_TEST_POSTGRES_URL`` names a server, each test in its own schema), the webhook
and the Pushgateway as real HTTP servers on 127.0.0.1, gauges read back from their registry.
The store itself is tested in tests/store/test_alerts.py."""

from __future__ import annotations

import json
import logging
import math
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from creditops.exceptions import AlertStoreError
from creditops.monitoring.alerts import AlertDispatcher, AlertsConfig
from creditops.monitoring.gauges import MonitorGauges
from creditops.store.alerts import AlertStore
from helpers import make_alert

T0 = datetime(2025, 6, 1, 9, 0, tzinfo=UTC)


# ---------------------------------------------------------------------------------------------
# Fixtures and helpers
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def store(db_url: str) -> Iterator[AlertStore]:
    with AlertStore(db_url) as opened:
        yield opened


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[AlertStore]:
    with AlertStore(f"sqlite:///{tmp_path / 'alerts.db'}") as opened:
        yield opened


class _Recorder(BaseHTTPRequestHandler):
    """Records every request; answers with the server's ``status`` after ``delay_s``."""

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        server: Any = self.server
        server.requests.append(
            {
                "method": self.command,
                "path": self.path,
                "headers": dict(self.headers),
                "body": body,
            }
        )
        time.sleep(server.delay_s)
        self.send_response(server.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[ThreadingHTTPServer]:
    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.requests = []
    server.status = 200
    server.delay_s = 0.0
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def server_url(server: ThreadingHTTPServer, path: str = "/hooks/creditops") -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}{path}"


def closed_port_url() -> str:
    """A local URL nobody listens on: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hooks/secret-token"


# ---------------------------------------------------------------------------------------------
# Delivery
# ---------------------------------------------------------------------------------------------


def test_dispatch_posts_to_webhook_stores_logs_and_sets_levels(
    store: AlertStore, http_server: ThreadingHTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    registry = CollectorRegistry()
    dispatcher = AlertDispatcher(store, webhook_url=server_url(http_server), registry=registry)
    critical = make_alert()
    info = make_alert(check="performance", level="info", metric="labelled_rows", value=12)
    warning = make_alert(check="fairness", level="warning", metric="disparate_impact_ratio")
    caplog.set_level(logging.INFO, logger="creditops.alerts")

    result = dispatcher.dispatch(
        [critical, info, warning], checks=["data_drift", "performance", "fairness", "serving"]
    )

    assert result.to_dict() == {
        "alerts": 3,
        "stored": 3,
        "logged": 3,
        "webhook": "sent",
        "webhook_error": None,
        "store_error": None,
    }
    # The webhook got one JSON body with the alerts at or above its minimum level (warning).
    assert len(http_server.requests) == 1
    request = http_server.requests[0]
    assert request["method"] == "POST"
    assert request["path"] == "/hooks/creditops"
    assert request["headers"]["Content-Type"] == "application/json"
    assert json.loads(request["body"]) == {"alerts": [critical.to_dict(), warning.to_dict()]}
    # Stored: all three, info included.
    assert {a.id for a in store.recent()} == {critical.id, info.id, warning.id}
    # Logged: one JSON object per alert, at the alert's level.
    records = [r for r in caplog.records if r.name == "creditops.alerts"]
    assert [json.loads(r.getMessage()) for r in records] == [
        critical.to_dict(),
        info.to_dict(),
        warning.to_dict(),
    ]
    assert [r.levelno for r in records] == [logging.CRITICAL, logging.INFO, logging.WARNING]
    # Gauges: the highest level per check; a check that ran without alerts is 0.
    level = {
        check: registry.get_sample_value("creditops_alert_level", {"check": check})
        for check in ("data_drift", "performance", "fairness", "serving")
    }
    assert level == {"data_drift": 2.0, "performance": 0.0, "fairness": 1.0, "serving": 0.0}
    assert registry.get_sample_value("creditops_alert_webhook_up") == 1.0
    assert registry.get_sample_value("creditops_alert_webhook_failures_total") == 0.0

    # The next run finds drift gone: its level drops back to 0, fairness is left as it was.
    dispatcher.dispatch([], checks=["data_drift"])
    assert registry.get_sample_value("creditops_alert_level", {"check": "data_drift"}) == 0.0
    assert registry.get_sample_value("creditops_alert_level", {"check": "fairness"}) == 1.0
    assert len(http_server.requests) == 1  # nothing to post: no request


def test_unreachable_webhook_loses_no_alert(
    store: AlertStore, caplog: pytest.LogCaptureFixture
) -> None:
    url = closed_port_url()
    dispatcher = AlertDispatcher(store, webhook_url=url, timeout=1.0)
    alert = make_alert()
    caplog.set_level(logging.ERROR, logger="creditops.monitoring.alerts")

    started = time.perf_counter()
    result = dispatcher.dispatch([alert])
    assert time.perf_counter() - started < 1.0

    assert result.webhook == "failed"
    assert result.stored == 1
    assert result.webhook_error is not None
    assert "ConnectError" in result.webhook_error
    assert [a.id for a in store.recent()] == [alert.id]
    registry = dispatcher.gauges.registry
    assert registry.get_sample_value("creditops_alert_webhook_failures_total") == 1.0
    assert registry.get_sample_value("creditops_alert_webhook_up") == 0.0
    errors = [r.getMessage() for r in caplog.records if r.name == "creditops.monitoring.alerts"]
    assert len(errors) == 1
    assert "alert webhook failed" in errors[0]
    assert "secret-token" not in errors[0]
    assert "secret-token" not in result.webhook_error

    dispatcher.dispatch([make_alert()])
    assert registry.get_sample_value("creditops_alert_webhook_failures_total") == 2.0
    assert store.count() == 2


def test_webhook_error_status_and_timeout_count_as_failures(
    sqlite_store: AlertStore, http_server: Any
) -> None:
    dispatcher = AlertDispatcher(sqlite_store, webhook_url=server_url(http_server), timeout=0.3)
    http_server.status = 500
    result = dispatcher.dispatch([make_alert()])
    assert (result.webhook, result.webhook_error) == (
        "failed",
        f"http://127.0.0.1:{http_server.server_address[1]} answered 500",
    )

    http_server.status, http_server.delay_s = 200, 1.0
    started = time.perf_counter()
    result = dispatcher.dispatch([make_alert()])
    assert time.perf_counter() - started < 0.9
    assert result.webhook == "failed"
    assert "Timeout" in (result.webhook_error or "")
    registry = dispatcher.gauges.registry
    assert registry.get_sample_value("creditops_alert_webhook_failures_total") == 2.0
    assert sqlite_store.count() == 2


def test_webhook_disabled_or_below_minimum_level(
    sqlite_store: AlertStore, http_server: Any
) -> None:
    assert AlertDispatcher(sqlite_store).dispatch([make_alert()]).webhook == "disabled"
    config = AlertsConfig(webhook_url=server_url(http_server), webhook_min_level="critical")
    dispatcher = AlertDispatcher.from_config(sqlite_store, config)
    result = dispatcher.dispatch([make_alert(level="warning")])
    assert result.webhook == "skipped"
    assert http_server.requests == []
    assert dispatcher.dispatch([make_alert()]).webhook == "sent"
    assert len(http_server.requests) == 1


def test_store_failure_still_notifies_then_raises(
    sqlite_store: AlertStore, http_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    dispatcher = AlertDispatcher(sqlite_store, webhook_url=server_url(http_server))
    sqlite_store.close()
    caplog.set_level(logging.INFO, logger="creditops.alerts")
    alert = make_alert()
    with pytest.raises(AlertStoreError):
        dispatcher.dispatch([alert])
    assert json.loads(http_server.requests[0]["body"]) == {"alerts": [alert.to_dict()]}
    logged = [r for r in caplog.records if r.name == "creditops.alerts"]
    assert [json.loads(r.getMessage())["id"] for r in logged] == [str(alert.id)]


@pytest.mark.parametrize("url", ["ftp://hooks.example/x", "hooks.example/x"])
def test_webhook_url_must_be_http(sqlite_store: AlertStore, url: str) -> None:
    with pytest.raises(ValidationError):
        AlertsConfig(webhook_url=url)
    with pytest.raises(ValidationError):
        AlertDispatcher(sqlite_store, webhook_url=url)


# ---------------------------------------------------------------------------------------------
# Gauges
# ---------------------------------------------------------------------------------------------


def test_gauges_hold_the_monitored_figures() -> None:
    gauges = MonitorGauges()
    value = gauges.registry.get_sample_value
    # Nothing computed yet: NaN, which no alert rule matches.
    assert math.isnan(value("creditops_drift_share"))
    assert math.isnan(value("creditops_realised_roc_auc"))

    gauges.set_drift(
        0.6,
        {"Income": True, "Debt": False, "Home": True},
        statistics={"Income": 0.31, "Home": 0.02},
        methods={"Income": "psi", "Home": "chi2"},
    )
    gauges.set_prediction_drift(0.27)
    gauges.set_realised_performance(realised_auc=0.71, reference_auc=0.80, labelled_rows=812)
    gauges.set_estimated_performance(0.74)
    gauges.set_fairness({"Age": 0.72, "Marital": 0.93})
    gauges.set_model("credit-default", "3")
    gauges.mark_run(datetime(2025, 6, 1, 9, 0, tzinfo=UTC), duration_s=4.5)

    assert value("creditops_drift_share") == 0.6
    assert value("creditops_feature_drift", {"feature": "Income"}) == 1.0
    assert value("creditops_feature_drift", {"feature": "Debt"}) == 0.0
    assert value("creditops_feature_drift_statistic", {"feature": "Home", "method": "chi2"}) == 0.02
    assert value("creditops_prediction_psi") == 0.27
    assert value("creditops_realised_roc_auc") == 0.71
    assert value("creditops_estimated_roc_auc") == 0.74
    assert value("creditops_reference_roc_auc") == 0.80
    assert value("creditops_labelled_rows") == 812
    assert value("creditops_disparate_impact_ratio", {"attribute": "Age"}) == 0.72
    labels = {"model_name": "credit-default", "model_version": "3"}
    assert value("creditops_monitored_model_info", labels) == 1.0
    assert value("creditops_monitor_last_run_timestamp_seconds") == 1748768400.0
    assert value("creditops_monitor_last_run_duration_seconds") == 4.5

    # The next run: a feature and an attribute gone, no outcomes yet, a new version.
    gauges.set_drift(0.0, {"Income": False})
    gauges.set_realised_performance(realised_auc=None, reference_auc=0.80, labelled_rows=0)
    gauges.set_estimated_performance(0.78)
    gauges.set_fairness({"Marital": 0.95})
    gauges.set_model("credit-default", "4")
    assert value("creditops_feature_drift", {"feature": "Debt"}) is None
    assert value("creditops_feature_drift_statistic", {"feature": "Home", "method": "chi2"}) is None
    assert math.isnan(value("creditops_realised_roc_auc"))
    assert value("creditops_disparate_impact_ratio", {"attribute": "Age"}) is None
    assert value("creditops_monitored_model_info", labels) is None


def test_gauges_written_for_the_textfile_collector(tmp_path: Path) -> None:
    gauges = MonitorGauges()
    gauges.set_drift(0.75, {"Income": True})
    gauges.set_prediction_drift(None)
    gauges.mark_run(datetime(2025, 6, 1, 9, 0, tzinfo=UTC))
    path = tmp_path / "textfile" / "creditops_monitor.prom"

    assert gauges.publish(textfile=path) == []

    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(path.read_text())
        for sample in family.samples
    }
    assert samples[("creditops_drift_share", ())] == 0.75
    assert samples[("creditops_feature_drift", (("feature", "Income"),))] == 1.0
    assert math.isnan(samples[("creditops_prediction_psi", ())])
    assert samples[("creditops_monitor_last_run_timestamp_seconds", ())] == 1748768400.0
    assert [p.name for p in path.parent.iterdir()] == ["creditops_monitor.prom"]  # no temp file


def test_gauges_pushed_to_a_pushgateway(http_server: Any) -> None:
    gauges = MonitorGauges()
    gauges.set_drift(0.4, {"Income": False})
    host, port = http_server.server_address[:2]

    assert gauges.publish(pushgateway=f"http://{host}:{port}", job="creditops_monitor") == []

    request = http_server.requests[0]
    assert (request["method"], request["path"]) == ("PUT", "/metrics/job/creditops_monitor")
    samples = {
        sample.name: sample.value
        for family in text_string_to_metric_families(request["body"].decode())
        for sample in family.samples
        if not sample.labels
    }
    assert samples["creditops_drift_share"] == 0.4


def test_publish_failures_are_reported_not_raised(tmp_path: Path) -> None:
    gauges = MonitorGauges()
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    errors = gauges.publish(
        textfile=blocker / "creditops_monitor.prom",
        pushgateway=closed_port_url().rsplit("/hooks", 1)[0],
        timeout_s=1.0,
    )
    assert len(errors) == 2
    assert errors[0].startswith("textfile ")
    assert errors[1].startswith("pushgateway ")


def test_gauges_served_over_http_for_a_long_running_monitor() -> None:
    import httpx

    gauges = MonitorGauges()
    gauges.set_prediction_drift(0.12)
    server = gauges.serve(0)
    try:
        response = httpx.get(f"http://127.0.0.1:{server.server_port}/metrics", timeout=5.0)
    finally:
        server.shutdown()
        server.server_close()
    assert response.status_code == 200
    samples = {
        sample.name: sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }
    assert samples["creditops_prediction_psi"] == 0.12
