r"""Alerts: what a monitoring check found, said plainly, and delivered where people look.

Every monitoring check (a calculator registered in :mod:`creditops.monitoring.base`; the names
its flags use are :func:`~creditops.monitoring.base.alert_checks`) yields :class:`Alert` objects
through one function, :func:`alerts_from_flags`, from the flags
(:class:`~creditops.monitoring.base.Flag`) of its result: a level, the metric, its value, the
threshold it crossed and a human sentence. :class:`AlertDispatcher` then delivers them through
four channels, each independent of the others so that one failing channel loses nothing:

1. **The database** (:class:`creditops.store.alerts.AlertStore`): table ``alerts`` beside the
   decision log (same URL, ``settings.resolved_database_url``), SQLite or PostgreSQL. This is
   the record of what was raised and when, read back with ``AlertStore.recent`` (newest first,
   filtered).
2. **The log**: one JSON object per alert on the ``creditops.alerts`` logger, for log shippers.
3. **Prometheus gauges** (:class:`~creditops.monitoring.gauges.MonitorGauges`): one
   ``creditops_alert_level{check}`` per check, beside the monitored figures each check sets
   itself; ``deploy/prometheus/alerts.yml`` alerts on them.
4. **A webhook** (optional): ``POST {"alerts": [...]}`` as JSON. A webhook that is down or slow
   is logged and counted (``creditops_alert_webhook_failures_total``, and
   ``creditops_alert_webhook_up`` 0), never raised: the alert is already stored, and the next
   run raises it again while the condition lasts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, ConfigDict, Field, field_validator

from creditops.config import Settings
from creditops.exceptions import AlertStoreError
from creditops.monitoring.base import Flag
from creditops.monitoring.gauges import MonitorGauges, safe_target
from creditops.store.alerts import LEVELS, Alert, AlertStore, Level
from creditops.store.audit import AuditEntry, AuditLog
from creditops.store.database import dumps_json

__all__ = [
    "AlertDispatcher",
    "AlertsConfig",
    "DispatchResult",
    "acknowledge_alert",
    "alerts_from_flags",
]

logger = logging.getLogger(__name__)
#: Each alert is written here as one JSON line (the message is ``json.dumps(alert.to_dict())``).
alert_logger = logging.getLogger("creditops.alerts")

_LOG_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.CRITICAL}


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
# Delivery
# ---------------------------------------------------------------------------------------------


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
        target = safe_target(self.webhook_url)
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


def acknowledge_alert(settings: Settings, alert_id: str, *, by: str, note: str) -> Alert:
    """Record that ``by`` has seen the alert, with their note: on the alert (shown with it) and
    in the audit trail (who acknowledged what, when, and what they said)."""
    started = datetime.now(UTC)
    with AlertStore.from_settings(settings) as store:
        alert = store.acknowledge(alert_id, by=by, note=note)
    with AuditLog.from_settings(settings) as audit:
        audit.record(
            AuditEntry(
                started_at=started,
                action="acknowledge",
                outcome="acknowledged",
                reasons=[alert.message],
                message=f"{by} acknowledged the {alert.level} {alert.check} alert "
                f"({alert.metric}): {alert.acknowledgement}",
                details={
                    "alert_id": str(alert.id),
                    "run_id": alert.run_id,
                    "model_version": alert.model_version,
                    "via": by,
                },
            )
        )
    return alert
