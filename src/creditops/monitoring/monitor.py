"""The monitor job (``creditops monitor``): every check once, on the champion and a window of
its decision log, with the alerts stored, logged, exported to Prometheus and posted.

One run:

1. The champion, with the data it was trained on (stored with its run): training rows are the
   drift reference; its scores on the test split are the prediction-drift reference and, with
   the test labels, the performance reference (sampling bands, calibration).
2. The current window: the champion's decisions of the last ``window_hours`` (or the last
   ``last_n``) from the decision log, or any file of applications (scored with the champion).
3. Data drift and prediction drift (:mod:`.drift`), realised and estimated performance and
   approval-rate fairness by time window (:mod:`.performance`, :mod:`.estimated`,
   :mod:`.fairness_watch`).
4. Their flags become :class:`~creditops.store.alerts.Alert`\\ s through one function
   (:func:`~.alerts.alerts_from_flags`), dispatched (store, JSON log, gauges, webhook); the run
   itself is recorded (:class:`~creditops.store.alerts.MonitorRun`) so retraining triggers can
   read how long drift has lasted.

Thresholds and drift methods come from a YAML file named by ``CREDITOPS_MONITORING_CONFIG``
(sections ``drift``, ``performance``, ``alerts``, ``retrain``), each optional.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from creditops.config import Settings
from creditops.data.io import read_table
from creditops.data.spec import ResolvedSpec
from creditops.evaluation.policy import DecisionPolicy
from creditops.exceptions import ConfigurationError, DataValidationError
from creditops.monitoring.alerts import (
    AlertDispatcher,
    AlertsConfig,
    MonitorGauges,
    alerts_from_flags,
)
from creditops.monitoring.drift import DataDriftCalculator, DataDriftResult, DriftConfig
from creditops.monitoring.performance import (
    PerformanceCalculator,
    PerformanceConfig,
    PerformanceResult,
    reference_metrics_from_tags,
)
from creditops.registry import (
    CHAMPION,
    LoadedModel,
    get_version,
    load_model,
    load_version_data,
    version_policy,
)
from creditops.store.alerts import LEVELS, Alert, AlertStore, MonitorRun
from creditops.store.predlog import PredictionLog

logger = logging.getLogger(__name__)

_MONITOR_CHECKS = (
    "data_drift",
    "prediction_drift",
    "performance",
    "estimated_performance",
    "fairness",
)


class MonitorConfig(BaseModel):
    """What one run looks at, and the thresholds of every check."""

    model_config = ConfigDict(extra="forbid")

    window_hours: float = Field(default=168.0, gt=0, description="the current window: 7 days")
    last_n: int | None = Field(default=None, ge=1, description="instead: the last n decisions")
    min_rows: int = Field(default=100, ge=1, description="fewer decisions: drift not judged")
    drift: DriftConfig = Field(default_factory=DriftConfig)
    performance: PerformanceConfig = Field(default_factory=PerformanceConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)


def read_sections(path: Path | None) -> dict[str, Any]:
    """The monitoring YAML as a mapping of sections (empty without a file)."""
    if path is None:
        return {}
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigurationError(f"monitoring config not found: {path}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ConfigurationError(f"monitoring config {path} is not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise ConfigurationError(f"monitoring config {path} must be a mapping of sections")
    unknown = set(raw) - {"monitor", "drift", "performance", "alerts", "retrain"}
    if unknown:
        raise ConfigurationError(
            f"monitoring config {path}: unknown section(s) {sorted(unknown)}; "
            "use monitor, drift, performance, alerts, retrain"
        )
    return raw


def monitor_config(settings: Settings) -> MonitorConfig:
    """The settings' monitoring configuration: YAML sections over the environment defaults."""
    sections = read_sections(settings.monitoring_config)
    alerts = {
        "webhook_url": settings.alert_webhook_url,
        "textfile_path": settings.alert_textfile,
        "pushgateway_url": settings.alert_pushgateway_url,
        **(sections.get("alerts") or {}),
    }
    try:
        return MonitorConfig.model_validate(
            {
                **(sections.get("monitor") or {}),
                "drift": sections.get("drift") or {},
                "performance": sections.get("performance") or {},
                "alerts": {k: v for k, v in alerts.items() if v is not None},
            }
        )
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        raise ConfigurationError(f"monitoring config is invalid: {problems}") from None


class MonitorReport(BaseModel):
    """Everything one run found."""

    model_config = ConfigDict(protected_namespaces=())

    schema_version: int = 1
    run_id: str
    started_at: datetime
    finished_at: datetime
    model_name: str
    model_version: str
    source: str
    rows: int
    level: str
    drift: dict[str, Any] | None
    performance: dict[str, Any] | None
    alerts: list[dict[str, Any]]
    dispatch: dict[str, Any]
    notes: list[str]

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class _Reference:
    """What a champion is compared with, and the calculators fitted on it: built once per
    version and process, so ``monitor --every`` does not reload and refit every period."""

    def __init__(self, settings: Settings, loaded: LoadedModel) -> None:
        spec = loaded.spec
        data = load_version_data(settings, loaded)
        train, _ = data.part("train", spec)
        self.features = train[spec.features].reset_index(drop=True)
        test, self.test_labels = data.part("test", spec)
        self.test_scores = loaded.model.predict_proba(test[spec.features])[:, 1]
        self.metrics = reference_metrics_from_tags(loaded.tags)
        # The version's decision policy, read once per version.
        self.policy = version_policy(settings, loaded)
        self.decline_threshold = self.policy.decline_at_or_above
        self._fitted: dict[str, Any] = {}

    def drift_calculator(self, config: DriftConfig, spec: ResolvedSpec) -> DataDriftCalculator:
        key = f"drift:{config.model_dump_json()}"
        if key not in self._fitted:
            self._fitted[key] = DataDriftCalculator(config).fit(
                self.features, spec.numeric, spec.categorical, reference_scores=self.test_scores
            )
        return self._fitted[key]

    def performance_calculator(self, config: PerformanceConfig) -> PerformanceCalculator:
        key = f"performance:{config.model_dump_json()}"
        if key not in self._fitted:
            self._fitted[key] = PerformanceCalculator(config).fit(
                self.test_labels, self.test_scores, reference_metrics=self.metrics
            )
        return self._fitted[key]


# The champion last prepared in this process, by (tracking store, model name, version).
_prepared: dict[tuple[str, str, str], tuple[LoadedModel, _Reference]] = {}


def _champion_reference(settings: Settings) -> tuple[LoadedModel, _Reference]:
    """The champion and its reference, reused while the champion alias names the same
    version (a registry lookup per run instead of a model download and refit)."""
    version = get_version(settings, CHAMPION)
    key = (
        settings.resolved_tracking_uri,
        settings.registered_model_name,
        "" if version is None else str(version.version),
    )
    if key not in _prepared:
        loaded = load_model(settings, CHAMPION if version is None else key[2])
        _prepared.clear()
        _prepared[key] = (loaded, _Reference(settings, loaded))
    return _prepared[key]


def _current_from_file(path: Path, loaded: LoadedModel, policy: DecisionPolicy) -> pd.DataFrame:

    frame = read_table(path)
    spec = loaded.spec
    missing = [c for c in spec.features if c not in frame.columns]
    if missing:
        raise DataValidationError(
            f"{path.name}: missing feature column(s) {', '.join(missing)}", column=missing[0]
        )
    current = frame.copy()
    probability = loaded.model.predict_proba(frame[spec.features])[:, 1]
    current["probability"] = probability
    current["created_at"] = pd.Timestamp.now(tz=UTC)
    # The decisions the stored policy would make, so approval rates by group can be compared.
    current["decision"] = policy.decide_many(probability)
    current["outcome"] = pd.array([pd.NA] * len(current), dtype="Int64")
    if spec.target in frame.columns:  # a labelled file: realised performance too
        target = frame[spec.target]
        defaulted = (target.astype(str) == str(spec.positive)).astype("Int64")
        current["outcome"] = defaulted.where(target.notna(), pd.NA)  # unknown stays unknown
    current.attrs["feature_columns"] = {f: f for f in spec.features}
    current.attrs["protected_columns"] = {p: p for p in spec.protected if p in frame.columns}
    return current


def _alerts_from(
    drift: DataDriftResult | None,
    performance: PerformanceResult | None,
    loaded: LoadedModel,
    run_id: str,
) -> list[Alert]:
    flags = [*(drift.flags if drift else []), *(performance.flags if performance else [])]
    return alerts_from_flags(
        flags, model_name=loaded.name, model_version=loaded.version, run_id=run_id
    )


def _latest(values: list[Any]) -> Any:
    """The last finite value, or None."""
    return next((v for v in reversed(values) if v is not None and np.isfinite(v)), None)


def run_every(
    period_s: float,
    job: Callable[[], Any],
    *,
    max_runs: int | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Run ``job`` now and then every ``period_s`` seconds, in this process, until
    ``max_runs`` (forever without). A run never overlaps the next: the next one starts a whole
    period after this one started, or at once if this one took longer (runs do not pile up).
    Returns the number of runs."""
    if period_s <= 0:
        raise ValueError("period_s must be positive")
    runs = 0
    while max_runs is None or runs < max_runs:
        started = clock()
        job()
        runs += 1
        if max_runs is not None and runs >= max_runs:
            break
        sleep(max(0.0, period_s - (clock() - started)))
    return runs


def run_monitor(
    settings: Settings,
    *,
    config: MonitorConfig | None = None,
    data: Path | None = None,
    now: datetime | None = None,
    gauges: MonitorGauges | None = None,
) -> MonitorReport:
    """Run every check once and dispatch the alerts; see the module docstring."""
    config = config or monitor_config(settings)
    started = now or datetime.now(UTC)
    clock = time.perf_counter()
    run_id = f"{started:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    loaded, reference = _champion_reference(settings)
    spec = loaded.spec
    notes: list[str] = []

    if data is not None:
        current = _current_from_file(Path(data), loaded, reference.policy)
        source = str(data)
    else:
        log = PredictionLog(settings.resolved_database_url)
        try:
            current = log.window(
                since=None if config.last_n else started - timedelta(hours=config.window_hours),
                until=started + timedelta(microseconds=1),
                last_n=config.last_n,
                model_name=loaded.name,
                model_version=loaded.version,
            )
        finally:
            log.close()
        source = (
            f"the last {config.last_n} decisions"
            if config.last_n
            else f"decisions of the last {config.window_hours:g} hours"
        )

    drift: DataDriftResult | None = None
    if len(current) >= config.min_rows:
        drift = reference.drift_calculator(config.drift, spec).calculate(
            current, current_scores=current["probability"].to_numpy(dtype=float)
        )
    else:
        notes.append(
            f"only {len(current)} decision(s) in {source}: drift needs {config.min_rows}; "
            "not judged"
        )

    performance: PerformanceResult | None = None
    if len(current):
        perf_config = config.performance.model_copy(
            update={"threshold": reference.decline_threshold}
        )
        performance = reference.performance_calculator(perf_config).calculate(current)
        notes.extend(performance.notes)

    alerts = _alerts_from(drift, performance, loaded, run_id)
    gauges = gauges or MonitorGauges()
    gauges.set_model(loaded.name, loaded.version)
    realised = estimated = None
    labelled = 0
    if drift is not None:
        gauges.set_drift(
            drift.drift_share,
            {f.feature: f.drifted for f in drift.features},
            statistics={f.feature: f.statistic for f in drift.features},
            methods={f.feature: f.method for f in drift.features},
        )
        gauges.set_prediction_drift(drift.prediction.psi if drift.prediction else None)
    if performance is not None and performance.windows:
        windows = performance.windows
        # The realised AUC is the last window's that has one; its labelled decisions are the
        # evidence behind it.
        measured = next(
            (w for w in reversed(windows) if _latest([w.realised.roc_auc]) is not None), None
        )
        realised = None if measured is None else measured.realised.roc_auc
        estimated = _latest([w.estimated.roc_auc for w in windows])
        labelled = sum(w.realised.labelled_rows for w in windows)
        gauges.set_performance(
            realised_auc=realised,
            estimated_auc=estimated,
            reference_auc=performance.reference.roc_auc,
            labelled_rows=0 if measured is None else measured.realised.labelled_rows,
        )
        gauges.set_fairness({a.attribute: a.disparate_impact_ratio for a in windows[-1].fairness})

    store = AlertStore.from_settings(settings)
    try:
        dispatcher = AlertDispatcher.from_config(store, config.alerts, gauges=gauges)
        result = dispatcher.dispatch(alerts, checks=_MONITOR_CHECKS)
        finished = datetime.now(UTC)
        level = max((a.level for a in alerts), key=LEVELS.__getitem__, default="info")
        realised_drop = None
        if performance is not None and performance.windows:
            realised_drop = _latest([w.realised.auc_drop_relative for w in performance.windows])
        store.save_run(
            MonitorRun(
                id=run_id,
                started_at=started,
                finished_at=finished,
                model_name=loaded.name,
                model_version=loaded.version,
                rows=len(current),
                drift_level=None if drift is None else drift.level,
                drift_share=None if drift is None else drift.drift_share,
                prediction_psi=(
                    drift.prediction.psi if drift is not None and drift.prediction else None
                ),
                realised_roc_auc=realised,
                realised_auc_drop_relative=realised_drop,
                estimated_roc_auc=estimated,
                level=level,
                summary={"alerts": len(alerts), "labelled_rows": labelled, "source": source},
            )
        )
    finally:
        store.close()
    gauges.mark_run(finished_at=finished, duration_s=time.perf_counter() - clock)
    for error in gauges.publish(
        textfile=config.alerts.textfile_path, pushgateway=config.alerts.pushgateway_url
    ):
        notes.append(f"metrics not published: {error}")
    return MonitorReport(
        run_id=run_id,
        started_at=started,
        finished_at=finished,
        model_name=loaded.name,
        model_version=loaded.version,
        source=source,
        rows=len(current),
        level=level,
        drift=None if drift is None else drift.to_dict(),
        performance=None if performance is None else performance.to_dict(),
        alerts=[a.to_dict() for a in alerts],
        dispatch=result.to_dict(),
        notes=notes,
    )
