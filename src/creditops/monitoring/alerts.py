r"""Alerts: what a monitoring check found, said plainly, and delivered where people look.

Every check (data drift, prediction drift, performance, estimated performance, fairness, serving)
yields :class:`Alert` objects: a level, the metric, its value, the threshold it crossed and a
human sentence. Monitoring checks do so through one function, :func:`alerts_from_flags`, from
the flags (:class:`~creditops.monitoring.base.Flag`) of their results. :class:`AlertDispatcher`
then delivers them through four channels, each independent of the others so that one failing
channel loses nothing:

1. **The database** (:class:`creditops.store.alerts.AlertStore`): table ``alerts`` beside the
   decision log (same URL, ``settings.resolved_database_url``), SQLite or PostgreSQL. This is
   the record of what was raised and when, read back with ``AlertStore.recent`` (newest first,
   filtered).
2. **The log**: one JSON object per alert on the ``creditops.alerts`` logger, for log shippers.
3. **Prometheus gauges** (:class:`MonitorGauges`): the monitored figures themselves (drift share,
   prediction PSI, AUCs, disparate impact) and one ``creditops_alert_level{check}`` per check, on
   which ``deploy/prometheus/alerts.yml`` alerts. ``creditops monitor`` is a short-lived job,
   so the gauges are published by :meth:`MonitorGauges.publish`: written to a file for
   node_exporter's textfile collector (``--collector.textfile.directory``; Debian's
   ``prometheus-node-exporter`` reads ``/var/lib/prometheus/node-exporter``) and/or pushed to a
   Pushgateway (scraped with ``honor_labels: true``). A long-running ``creditops monitor
   --every`` may instead serve them itself (:meth:`MonitorGauges.serve`). Either way the last
   values stay visible between runs, and ``creditops_monitor_last_run_timestamp_seconds`` tells
   Prometheus when the job stopped running.
4. **A webhook** (optional): ``POST {"alerts": [...]}`` as JSON. A webhook that is down or slow
   is logged and counted (``creditops_alert_webhook_failures_total``, and
   ``creditops_alert_webhook_up`` 0), never raised: the alert is already stored, and the next
   run raises it again while the condition lasts.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import BaseModel, ConfigDict, Field, field_validator

from creditops.exceptions import AlertStoreError
from creditops.monitoring.base import Flag
from creditops.store.alerts import LEVELS, Alert, AlertStore, Level
from creditops.store.database import dumps_json

__all__ = [
    "CHECKS",
    "AlertDispatcher",
    "AlertsConfig",
    "DispatchResult",
    "MonitorGauges",
    "alerts_from_flags",
    "threshold_alert",
]

logger = logging.getLogger(__name__)
#: Each alert is written here as one JSON line (the message is ``json.dumps(alert.to_dict())``).
alert_logger = logging.getLogger("creditops.alerts")

#: The checks creditops runs; ``Alert.check`` may name others (lower-case identifiers).
CHECKS = (
    "data_drift",
    "prediction_drift",
    "performance",
    "estimated_performance",
    "fairness",
    "serving",
)
_LOG_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.CRITICAL}


def threshold_alert(
    check: str,
    metric: str,
    value: float | None,
    *,
    warning: float | None = None,
    critical: float | None = None,
    higher_is_worse: bool = True,
    message: str | None = None,
    **fields: Any,
) -> Alert | None:
    """An alert when ``value`` crosses ``critical`` (checked first) or ``warning``, else None.

    "Crosses" means ``>=`` when ``higher_is_worse`` (drift share, PSI) and ``<`` otherwise (AUC,
    disparate impact ratio: the four-fifths rule presumes adverse impact *below* 0.8). A value
    of None or NaN raises nothing: no data is not a finding. ``message`` may use ``{metric}``,
    ``{value}``, ``{threshold}`` and ``{level}``; ``fields`` go to :class:`Alert` (model_name,
    model_version, run_id, details).
    """
    if value is None or not math.isfinite(float(value)):
        return None
    value = float(value)
    for level, threshold in (("critical", critical), ("warning", warning)):
        if threshold is None:
            continue
        if value >= threshold if higher_is_worse else value < threshold:
            side = "at or above" if higher_is_worse else "below"
            template = message or (
                "{metric} is {value:.4g}, " + side + " the {level} threshold {threshold:.4g}"
            )
            text = template.format(metric=metric, value=value, threshold=threshold, level=level)
            return Alert(
                check=check,
                level=level,
                metric=metric,
                value=value,
                threshold=threshold,
                message=text,
                **fields,
            )
    return None


def alerts_from_flags(flags: Iterable[Flag], **fields: Any) -> list[Alert]:
    """One alert per flag, whatever check raised it: the one path from findings to alerts.

    The metric names its subject when there is one (``"ks:Income"``, ``"disparate_impact_ratio:
    Age"``) so alerts on different features stay apart; the flag's kind, subject and window go
    to ``details``. ``fields`` go to every :class:`Alert` (model_name, model_version, run_id).
    """
    return [
        Alert(
            check=flag.check,
            level=flag.level,
            metric=flag.metric if flag.subject is None else f"{flag.metric}:{flag.subject}",
            value=flag.value,
            threshold=flag.threshold,
            message=flag.message,
            details={
                "kind": flag.kind,
                "subject": flag.subject,
                "window_start": flag.window_start,
                "window_end": flag.window_end,
            },
            **fields,
        )
        for flag in flags
    ]


# ---------------------------------------------------------------------------------------------
# Prometheus gauges
# ---------------------------------------------------------------------------------------------


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

    def set_prediction_drift(self, psi: float | None) -> None:
        """PSI of the score distribution (credit bands: 0.10 investigate, 0.25 shifted)."""
        self.prediction_psi.set(_number(psi))

    def set_performance(
        self,
        *,
        realised_auc: float | None = None,
        estimated_auc: float | None = None,
        reference_auc: float | None = None,
        labelled_rows: int | None = None,
    ) -> None:
        """AUCs of the window (None: not computed this run) and the model's test AUC."""
        self.realised_auc.set(_number(realised_auc))
        self.estimated_auc.set(_number(estimated_auc))
        self.reference_auc.set(_number(reference_auc))
        self.labelled_rows.set(_number(labelled_rows))

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
        from prometheus_client import write_to_textfile

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
        from prometheus_client import push_to_gateway

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
                errors.append(f"pushgateway {_safe_target(pushgateway)}: {exc}")
        for error in errors:
            logger.error("could not publish monitoring gauges: %s", error)
        return errors

    def serve(self, port: int, addr: str = "127.0.0.1") -> Any:
        """Serve the gauges on ``http://addr:port/metrics`` from a daemon thread, for a
        long-running ``creditops monitor --every``; returns the server (``.shutdown()``)."""
        from prometheus_client import start_http_server

        server, _thread = start_http_server(port, addr=addr, registry=self.registry)
        return server


# ---------------------------------------------------------------------------------------------
# Delivery
# ---------------------------------------------------------------------------------------------


def _safe_target(url: str) -> str:
    """Scheme, host and port only: webhook paths often carry secret tokens."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}"


class AlertsConfig(BaseModel):
    """Where alerts and gauges go (the lead wires these into Settings / the CLI)."""

    model_config = ConfigDict(extra="forbid", use_enum_values=True)

    webhook_url: str | None = Field(default=None, description="POST {'alerts': [...]} here")
    webhook_timeout_s: float = Field(default=2.0, gt=0.0, le=60.0)
    webhook_min_level: Level = Field(
        default="warning", description="alerts below this level are stored and logged only"
    )
    textfile_path: Path | None = Field(
        default=None,
        description="e.g. /var/lib/prometheus/node-exporter/creditops_monitor.prom",
    )
    pushgateway_url: str | None = Field(default=None, description="e.g. http://127.0.0.1:9091")
    pushgateway_job: str = Field(default="creditops_monitor", min_length=1)

    @field_validator("webhook_min_level")
    @classmethod
    def _an_alert_level(cls, value: Level) -> Level:
        if value == Level.OK:
            raise ValueError("must be 'info', 'warning' or 'critical'")
        return value

    @field_validator("webhook_url", "pushgateway_url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("http", "https"):
            raise ValueError("must be an http:// or https:// URL")
        return value


class DispatchResult(BaseModel):
    """What happened to one batch of alerts on each channel."""

    model_config = ConfigDict(frozen=True)

    alerts: int
    stored: int
    logged: int
    webhook: Literal["sent", "failed", "skipped", "disabled"]
    webhook_error: str | None = None
    store_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class AlertDispatcher:
    """Delivers alerts: store, JSON log, gauges, webhook; a failing channel blocks no other."""

    def __init__(
        self,
        store: AlertStore,
        webhook_url: str | None = None,
        timeout: float = 2.0,
        registry: CollectorRegistry | None = None,
        *,
        gauges: MonitorGauges | None = None,
        webhook_min_level: Level = "warning",
    ) -> None:
        """``gauges`` defaults to a new :class:`MonitorGauges` on ``registry`` (or its own)."""
        if webhook_url is not None:
            AlertsConfig(webhook_url=webhook_url)  # same validation as the config
        self.store = store
        self.webhook_url = webhook_url
        self.timeout = float(timeout)
        self.webhook_min_level: Level = webhook_min_level
        self.gauges = gauges or MonitorGauges(registry)

    @classmethod
    def from_config(
        cls,
        store: AlertStore,
        config: AlertsConfig,
        *,
        registry: CollectorRegistry | None = None,
        gauges: MonitorGauges | None = None,
    ) -> AlertDispatcher:
        return cls(
            store,
            webhook_url=config.webhook_url,
            timeout=config.webhook_timeout_s,
            registry=registry,
            gauges=gauges,
            webhook_min_level=config.webhook_min_level,
        )

    def dispatch(self, alerts: Sequence[Alert], *, checks: Iterable[str] = ()) -> DispatchResult:
        """Store, log, gauge and post ``alerts``; ``checks`` names every check that ran (those
        without an alert go back to level 0).

        Only a store failure raises (:class:`AlertStoreError`, so the job fails visibly), and
        only after the other channels delivered the alerts.
        """
        alerts = list(alerts)
        store_error: AlertStoreError | None = None
        stored = 0
        try:
            stored = self.store.save(alerts)
        except AlertStoreError as exc:
            store_error = exc
            logger.error("could not store %d alert(s): %s", len(alerts), exc)
        for alert in alerts:
            alert_logger.log(_LOG_LEVELS[alert.level], "%s", dumps_json(alert.to_dict()))
        self.gauges.set_alert_levels(alerts, checks)
        webhook, webhook_error = self._post(alerts)
        result = DispatchResult(
            alerts=len(alerts),
            stored=stored,
            logged=len(alerts),
            webhook=webhook,
            webhook_error=webhook_error,
            store_error=None if store_error is None else str(store_error),
        )
        if store_error is not None:
            raise store_error
        return result

    def _post(
        self, alerts: Sequence[Alert]
    ) -> tuple[Literal["sent", "failed", "skipped", "disabled"], str | None]:
        if self.webhook_url is None:
            return "disabled", None
        floor = LEVELS[self.webhook_min_level]
        payload = [alert.to_dict() for alert in alerts if alert.severity >= floor]
        if not payload:
            return "skipped", None
        import httpx

        target = _safe_target(self.webhook_url)
        try:
            response = httpx.post(
                self.webhook_url,
                content=dumps_json({"alerts": payload}),
                headers={"Content-Type": "application/json"},
                timeout=self.timeout,
            )
            response.raise_for_status()
        except httpx.HTTPStatusError as exc:
            error = f"{target} answered {exc.response.status_code}"
        except httpx.HTTPError as exc:
            error = f"{target}: {type(exc).__name__}: {exc}"
        else:
            self.gauges.webhook_up.set(1)
            return "sent", None
        self.gauges.webhook_failures.inc()
        self.gauges.webhook_up.set(0)
        logger.error(
            "alert webhook failed (%d alert(s) stored, not posted): %s", len(payload), error
        )
        return "failed", error
