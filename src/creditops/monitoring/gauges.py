"""Prometheus gauges of the monitored figures: what the last monitor run measured, per check.

``creditops monitor`` is a short-lived job, so the gauges are published by
:meth:`MonitorGauges.publish`: written to a file for node_exporter's textfile collector
(``--collector.textfile.directory``; Debian's ``prometheus-node-exporter`` reads
``/var/lib/prometheus/node-exporter``) and/or pushed to a Pushgateway (scraped with
``honor_labels: true``). A long-running ``creditops monitor --every`` may instead serve them
itself (:meth:`MonitorGauges.serve`). Either way the last values stay visible between runs, and
``creditops_monitor_last_run_timestamp_seconds`` tells Prometheus when the job stopped running.
``deploy/prometheus/alerts.yml`` alerts on these series.

Each check sets its own figures (:meth:`creditops.monitoring.base.Calculator.export`), so this
module sits below the calculators and imports none of them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    push_to_gateway,
    start_http_server,
    write_to_textfile,
)

from creditops.store.alerts import Alert

__all__ = ["MonitorGauges", "safe_target"]

logger = logging.getLogger(__name__)


def safe_target(url: str) -> str:
    """Scheme, host and port only: webhook and gateway paths often carry secret tokens."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}"


def _number(value: float | None) -> float:
    """NaN for "no figure": comparisons with NaN are false, so no rule fires on missing data."""
    return math.nan if value is None else float(value)


class MonitorGauges:
    """The monitored figures as Prometheus gauges, on their own registry.

    The monitor job sets them from plain values (``set_*``), marks the run (:meth:`mark_run`)
    and publishes them (:meth:`publish`). Figures a run could not compute (no outcomes yet) are
    NaN, which no alert rule matches. Per-feature and per-attribute gauges are cleared before
    each update, so a feature dropped from the model does not linger.

    ``creditops_feature_drift{feature}`` is the verdict, 1 drifted / 0 not: each feature's
    statistic has its own scale (a p-value, a PSI, a normed distance), so the comparable figure is
    the verdict; the statistic itself is ``creditops_feature_drift_statistic{feature,method}``.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.drift_share = Gauge(
            "creditops_drift_share",
            "Share of features drifted in the last window (dataset drift score, 0..1).",
            registry=r,
        )
        self.feature_drift = Gauge(
            "creditops_feature_drift",
            "1 when the feature drifted in the last window, else 0.",
            ["feature"],
            registry=r,
        )
        self.out_of_range_share = Gauge(
            "creditops_out_of_range_share",
            "Share of the last run's decisions with the feature outside the model's experience.",
            ["feature"],
            registry=r,
        )
        self.feature_drift_statistic = Gauge(
            "creditops_feature_drift_statistic",
            "The feature's drift statistic (scale depends on the method).",
            ["feature", "method"],
            registry=r,
        )
        self.prediction_psi = Gauge(
            "creditops_prediction_psi",
            "PSI of the predicted probability of default against the reference (deciles).",
            registry=r,
        )
        self.realised_auc = Gauge(
            "creditops_realised_roc_auc",
            "ROC AUC on the decisions of the last window whose outcomes are known.",
            registry=r,
        )
        self.estimated_auc = Gauge(
            "creditops_estimated_roc_auc",
            "ROC AUC expected from the calibrated probabilities of the last window (CBPE).",
            registry=r,
        )
        self.reference_auc = Gauge(
            "creditops_reference_roc_auc",
            "ROC AUC of the monitored model on its own test split.",
            registry=r,
        )
        self.labelled_rows = Gauge(
            "creditops_labelled_rows",
            "Decisions of the last window with a known outcome (behind the realised AUC).",
            registry=r,
        )
        self.disparate_impact = Gauge(
            "creditops_disparate_impact_ratio",
            "Lowest group approval rate over the highest, per protected attribute.",
            ["attribute"],
            registry=r,
        )
        self.alert_level = Gauge(
            "creditops_alert_level",
            "Highest alert level of the check's last run: 0 ok/info, 1 warning, 2 critical.",
            ["check"],
            registry=r,
        )
        self.model_info = Gauge(
            "creditops_monitored_model_info",
            "The model version the last monitor run checked (value 1).",
            ["model_name", "model_version"],
            registry=r,
        )
        self.last_run = Gauge(
            "creditops_monitor_last_run_timestamp_seconds",
            "Unix time the last monitor run finished.",
            registry=r,
        )
        self.last_run_duration = Gauge(
            "creditops_monitor_last_run_duration_seconds",
            "How long the last monitor run took.",
            registry=r,
        )
        self.webhook_failures = Counter(
            "creditops_alert_webhook_failures_total",
            "Alert webhook deliveries that failed (unreachable, timeout, non-2xx answer).",
            registry=r,
        )
        # A cron job's counter restarts at 0 every run, so steady failures would show as a flat
        # line; this gauge says how the last delivery went, whatever the process's age.
        self.webhook_up = Gauge(
            "creditops_alert_webhook_up",
            "1 when the last alert webhook delivery succeeded, 0 when it failed.",
            registry=r,
        )
        for gauge in (
            self.drift_share,
            self.prediction_psi,
            self.realised_auc,
            self.estimated_auc,
            self.reference_auc,
            self.labelled_rows,
            self.last_run,
            self.last_run_duration,
            self.webhook_up,
        ):
            gauge.set(math.nan)

    # -- setting figures ----------------------------------------------------------------------

    def set_drift(
        self,
        share: float | None,
        per_feature: Mapping[str, bool],
        *,
        statistics: Mapping[str, float] | None = None,
        methods: Mapping[str, str] | None = None,
    ) -> None:
        """Dataset drift share and each feature's verdict (and statistic, with its method)."""
        self.drift_share.set(_number(share))
        self.feature_drift.clear()
        for feature, drifted in per_feature.items():
            self.feature_drift.labels(feature=feature).set(1.0 if drifted else 0.0)
        self.feature_drift_statistic.clear()
        for feature, value in (statistics or {}).items():
            method = (methods or {}).get(feature, "")
            self.feature_drift_statistic.labels(feature=feature, method=method).set(_number(value))

    def set_out_of_range(self, shares: Mapping[str, float]) -> None:
        """Per feature, the share of decisions outside the model's experience."""
        self.out_of_range_share.clear()
        for feature, share in shares.items():
            self.out_of_range_share.labels(feature=feature).set(_number(share))

    def set_prediction_drift(self, psi: float | None) -> None:
        """PSI of the score distribution (credit bands: 0.10 investigate, 0.25 shifted)."""
        self.prediction_psi.set(_number(psi))

    def set_realised_performance(
        self,
        *,
        realised_auc: float | None,
        reference_auc: float | None,
        labelled_rows: int | None,
    ) -> None:
        """The realised AUC of the last window that has one (None: no outcomes to judge yet),
        the labelled decisions behind it, and the model's test AUC it is compared with."""
        self.realised_auc.set(_number(realised_auc))
        self.reference_auc.set(_number(reference_auc))
        self.labelled_rows.set(_number(labelled_rows))

    def set_estimated_performance(self, estimated_auc: float | None) -> None:
        """The AUC expected from the probabilities of the last window (None: too few rows)."""
        self.estimated_auc.set(_number(estimated_auc))

    def set_fairness(self, disparate_impact: Mapping[str, float | None]) -> None:
        """Disparate impact ratio per protected attribute (four-fifths rule: < 0.8 adverse)."""
        self.disparate_impact.clear()
        for attribute, ratio in disparate_impact.items():
            self.disparate_impact.labels(attribute=attribute).set(_number(ratio))

    def set_model(self, name: str, version: str) -> None:
        """The model version this run monitored (and no other)."""
        self.model_info.clear()
        self.model_info.labels(model_name=name, model_version=version).set(1)

    def set_alert_levels(self, alerts: Iterable[Alert], checks: Iterable[str] = ()) -> None:
        """Each check's highest level among ``alerts``; ``checks`` that ran without an alert
        go back to 0. Checks not named keep their last level."""
        levels = dict.fromkeys(checks, 0)
        for alert in alerts:
            levels[alert.check] = max(levels.get(alert.check, 0), alert.severity)
        for check, level in levels.items():
            self.alert_level.labels(check=check).set(level)

    def mark_run(
        self, finished_at: datetime | None = None, duration_s: float | None = None
    ) -> None:
        """Record that a monitor run finished (the staleness rule watches this)."""
        self.last_run.set((finished_at or datetime.now(UTC)).timestamp())
        self.last_run_duration.set(_number(duration_s))

    # -- publishing ---------------------------------------------------------------------------

    def write_textfile(self, path: Path | str) -> None:
        """Write the gauges for node_exporter's textfile collector (``*.prom``), atomically
        (written beside it, then renamed), so the collector never reads half a file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_to_textfile(str(path), self.registry)

    def push(
        self,
        gateway: str,
        *,
        job: str = "creditops_monitor",
        grouping_key: Mapping[str, str] | None = None,
        timeout_s: float = 5.0,
    ) -> None:
        """Replace this job's group on a Pushgateway with the current gauges (HTTP PUT)."""
        push_to_gateway(
            gateway,
            job=job,
            registry=self.registry,
            grouping_key=dict(grouping_key or {}),
            timeout=timeout_s,
        )

    def publish(
        self,
        *,
        textfile: Path | str | None = None,
        pushgateway: str | None = None,
        job: str = "creditops_monitor",
        timeout_s: float = 5.0,
    ) -> list[str]:
        """Write and/or push the gauges; returns the failures (logged, not raised: the run's
        alerts are already stored, and a stale timestamp alerts on its own)."""
        errors: list[str] = []
        if textfile is not None:
            try:
                self.write_textfile(textfile)
            except OSError as exc:
                errors.append(f"textfile {textfile}: {exc}")
        if pushgateway is not None:
            try:
                self.push(pushgateway, job=job, timeout_s=timeout_s)
            except OSError as exc:  # URLError, HTTPError, timeouts are all OSErrors
                errors.append(f"pushgateway {safe_target(pushgateway)}: {exc}")
        for error in errors:
            logger.error("could not publish monitoring gauges: %s", error)
        return errors

    def serve(self, port: int, addr: str = "127.0.0.1") -> Any:
        """Serve the gauges on ``http://addr:port/metrics`` from a daemon thread, for a
        long-running ``creditops monitor --every``; returns the server (``.shutdown()``)."""
        server, _thread = start_http_server(port, addr=addr, registry=self.registry)
        return server
