"""The monitor job (``creditops monitor``): every registered check once, on the champion and a
window of its decision log, with the alerts stored, logged, exported to Prometheus and posted.

One run:

1. The champion, with the data it was trained on (stored with its run), as a
   :class:`~creditops.monitoring.base.Reference`: training rows, its scores and labels on the
   test split, its recorded test figures and its decision policy's decline threshold.
2. The current window: the champion's decisions of the last ``window_hours`` (or the last
   ``last_n``) from the decision log, or any file of applications (scored with the champion).
   The log is read in chunks of ``CREDITOPS_MONITOR_CHUNK_ROWS`` decisions
   (:mod:`creditops.store.decision_chunks`), only the columns the checks read, and never as
   one frame: every check folds each chunk into its sufficient statistics (counts on the
   reference's bins and categories, score histograms, approvals by group) and gives its result
   at the end, so a window of ten million decisions costs one chunk and those summaries.
3. Every calculator registered in :mod:`creditops.monitoring.base` (importing
   :mod:`creditops.monitoring` registers the built-in ones: data and prediction drift, realised
   and estimated performance, fairness of approvals), each built from its section of the config,
   fitted on the reference (once per champion and config, kept between scheduled runs) and
   fed the window's chunks in one pass, all in the same way. A check that cannot judge the
   window (too few decisions, no outcomes) is reported skipped, with its reason; the others
   run.
4. Their flags become :class:`~creditops.store.alerts.Alert`\\ s through one function
   (:func:`~.alerts.alerts_from_flags`), dispatched (store, JSON log, gauges, webhook); the run
   itself is recorded (:class:`~creditops.store.alerts.MonitorRun`, from each check's
   ``run_figures``) so retraining triggers can read how long drift has lasted.
5. With the decision log as its source, the run also builds the timeline of the last windows
   (:mod:`.timeline`) and keeps its whole report, which the monitoring page reads.

So a new check is one calculator class and one registration. Nothing here names a check, but
for the report's ``drift`` and ``performance`` keys, kept for readers of its first schema.
Thresholds and drift methods come from a YAML file named by ``CREDITOPS_MONITORING_CONFIG``:
sections ``monitor``, ``alerts`` and ``retrain``, and one per check's ``config_section``
(``drift``, ``performance``), each optional.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    model_validator,
)

from creditops.config import Settings
from creditops.data.io import read_table
from creditops.evaluation.policy import DecisionPolicy
from creditops.exceptions import ConfigurationError, DataValidationError, InsufficientDataError
from creditops.monitoring.alerts import AlertDispatcher, AlertsConfig, alerts_from_flags
from creditops.monitoring.base import (
    Calculator,
    CurrentData,
    Flag,
    Reference,
    Stream,
    alert_checks,
    calculators,
    config_sections,
    worst_level,
)
from creditops.monitoring.gauges import MonitorGauges
from creditops.monitoring.performance import reference_metrics_from_tags
from creditops.monitoring.shadow import COMPARE_ROWS, compare_shadow
from creditops.monitoring.timeline import TimelineConfig, build_timeline
from creditops.registry import (
    CHALLENGER,
    CHAMPION,
    LoadedModel,
    get_version,
    load_model,
    load_version_data,
    version_policy,
)
from creditops.store.alerts import LEVELS, AlertStore, MonitorRun
from creditops.store.decision_chunks import read_decision_chunks
from creditops.store.predlog import PredictionLog
from creditops.store.shadow import shadow_pairs

logger = logging.getLogger(__name__)

#: Sections of the monitoring YAML that belong to the job, not to a check.
_JOB_SECTIONS = ("monitor", "alerts", "retrain")


class MonitorConfig(BaseModel):
    """What one run looks at, and the settings of every check.

    ``checks`` holds each registered check's section (``drift``, ``performance``, ...), validated
    by the model its calculator names; pass them by section name, as in the YAML
    (``MonitorConfig.model_validate({"performance": {"window": None}})``).
    """

    model_config = ConfigDict(extra="forbid")

    window_hours: float = Field(default=168.0, gt=0, description="the current window: 7 days")
    last_n: int | None = Field(default=None, ge=1, description="instead: the last n decisions")
    min_rows: int = Field(default=100, ge=1, description="fewer decisions: drift not judged")
    timeline: TimelineConfig = Field(default_factory=TimelineConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    checks: dict[str, SerializeAsAny[BaseModel]] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _check_sections(cls, data: Any) -> Any:
        """Validate each check's section with its calculator's model; errors keep their place
        (``drift.numeric_method``)."""
        if not isinstance(data, Mapping):
            return data
        models = config_sections()
        data = dict(data)
        given = dict(data.pop("checks", None) or {})
        given.update({name: data.pop(name) for name in list(data) if name in models})
        checks: dict[str, BaseModel] = {}
        errors: list[Any] = []
        for name, section in given.items():
            model = models.get(name)
            if model is None:
                errors.append({"type": "extra_forbidden", "loc": (name,), "input": section})
            elif isinstance(section, model):
                checks[name] = section
            else:
                try:
                    checks[name] = model.model_validate(section or {})
                except ValidationError as error:
                    errors.extend(
                        {**e, "loc": (name, *e["loc"])} for e in error.errors(include_url=False)
                    )
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        data["checks"] = checks
        return data

    def section(self, name: str) -> BaseModel | None:
        """The validated section ``name`` (its model's defaults when the config leaves it out;
        None when no registered check reads it)."""
        if name in self.checks:
            return self.checks[name]
        model = config_sections().get(name)
        return None if model is None else model()


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
    known = [*_JOB_SECTIONS, *config_sections()]
    unknown = set(raw) - set(known)
    if unknown:
        raise ConfigurationError(
            f"monitoring config {path}: unknown section(s) {sorted(unknown)}; "
            f"use {', '.join(known)}"
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
    checks = {name: sections.get(name) or {} for name in config_sections() if name in sections}
    try:
        return MonitorConfig.model_validate(
            {
                **(sections.get("monitor") or {}),
                "checks": checks,
                "alerts": {k: v for k, v in alerts.items() if v is not None},
            }
        )
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        raise ConfigurationError(f"monitoring config is invalid: {problems}") from None


class CheckReport(BaseModel):
    """One check in one run: its result (plain JSON) and level, or why it was skipped."""

    status: Literal["ran", "skipped"]
    level: str | None = None
    reason: str | None = None
    result: dict[str, Any] | None = None


class MonitorReport(BaseModel):
    """Everything one run found.

    ``checks``: every registered check by name, with its result or the reason it was skipped.
    ``drift`` and ``performance`` repeat the ``data_drift`` and ``performance`` results (None
    when skipped) for readers of schema 1; since schema 2 the performance result holds the
    realised figures only, the estimate and fairness being checks of their own.
    """

    model_config = ConfigDict(protected_namespaces=())

    schema_version: int = 2
    run_id: str
    started_at: datetime
    finished_at: datetime
    model_name: str
    model_version: str
    source: str
    rows: int
    level: str
    checks: dict[str, CheckReport]
    drift: dict[str, Any] | None
    performance: dict[str, Any] | None
    alerts: list[dict[str, Any]]
    dispatch: dict[str, Any]
    notes: list[str]
    timeline: dict[str, Any] | None = None
    #: The champion beside the challenger in shadow (:func:`compare_shadow`), when a version
    #: holds the challenger alias.
    shadow: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class _Champion:
    """What a champion is compared with, and the calculators fitted on it: built once per
    version and process, so ``monitor --every`` does not reload and refit every period."""

    def __init__(self, settings: Settings, loaded: LoadedModel) -> None:
        spec = loaded.spec
        data = load_version_data(settings, loaded)
        train, _ = data.part("train", spec)
        test, test_labels = data.part("test", spec)
        # The version's decision policy, read once per version.
        self.policy = version_policy(settings, loaded)
        self.reference = Reference(
            features=train[spec.features].reset_index(drop=True),
            numeric=tuple(spec.numeric),
            categorical=tuple(spec.categorical),
            scores=loaded.model.predict_proba(test[spec.features])[:, 1],
            labels=test_labels,
            metrics=reference_metrics_from_tags(loaded.tags),
            decline_threshold=self.policy.decline_at_or_above,
            schema=tuple(spec.schema_),
        )
        self._fitted: dict[tuple[type[Calculator[Any]], str], Calculator[Any]] = {}

    def calculator(self, cls: type[Calculator[Any]], config: BaseModel | None) -> Calculator[Any]:
        """``cls`` fitted on this champion with ``config``, fitted once per config."""
        key = (cls, "" if config is None else config.model_dump_json())
        if key not in self._fitted:
            self._fitted[key] = cls.for_monitor(self.reference, config)
        return self._fitted[key]


# The champion last prepared in this process, by (tracking store, model name, version).
_prepared: dict[tuple[str, str, str], tuple[LoadedModel, _Champion]] = {}


def _champion_reference(settings: Settings) -> tuple[LoadedModel, _Champion]:
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
        _prepared[key] = (loaded, _Champion(settings, loaded))
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


def _current(
    settings: Settings,
    config: MonitorConfig,
    loaded: LoadedModel,
    policy: DecisionPolicy,
    data: Path | None,
    started: datetime,
) -> CurrentData:
    """The decisions this run judges: ``data`` scored with the champion, or its log window."""
    if data is not None:
        frame = _current_from_file(Path(data), loaded, policy)
        return CurrentData(frame=frame, source=str(data), min_rows=config.min_rows)
    # Only the model's features and protected attributes are read, chunk by chunk.
    spec = loaded.spec
    since = None if config.last_n else started - timedelta(hours=config.window_hours)

    def chunks() -> Iterator[pd.DataFrame]:
        log = PredictionLog(settings.resolved_database_url)
        try:
            yield from read_decision_chunks(
                log,
                features=list(spec.features),
                protected=list(spec.protected),
                since=since,
                until=started + timedelta(microseconds=1),
                last_n=config.last_n,
                model_name=loaded.name,
                model_version=loaded.version,
                chunk_rows=settings.monitor_chunk_rows,
            )
        finally:
            log.close()

    source = (
        f"the last {config.last_n} decisions"
        if config.last_n
        else f"decisions of the last {config.window_hours:g} hours"
    )
    return CurrentData(chunks=chunks, source=source, min_rows=config.min_rows)


#: MonitorRun fields the run fills itself; a check's figures fill the others.
_RUN_OWN = frozenset(
    {"id", "started_at", "finished_at", "model_name", "model_version", "rows", "level", "summary"}
)


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
    """Run every registered check once and dispatch the alerts; see the module docstring."""
    config = config or monitor_config(settings)
    started = now or datetime.now(UTC)
    clock = time.perf_counter()
    run_id = f"{started:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    loaded, champion = _champion_reference(settings)
    current = _current(settings, config, loaded, champion.policy, data, started)
    gauges = gauges or MonitorGauges()
    gauges.set_model(loaded.name, loaded.version)

    checks: dict[str, CheckReport] = {}
    flags: list[Flag] = []
    figures: dict[str, Any] = {}
    notes: list[str] = []

    def skip(name: str, error: InsufficientDataError) -> None:
        checks[name] = CheckReport(status="skipped", reason=str(error))
        notes.append(f"{name} skipped: {error}")

    # Every check is fed the window's chunks in one pass over the log.
    streams: dict[str, tuple[Calculator[Any], Stream[Any]]] = {}
    for name, cls in calculators().items():
        section = None if cls.config_section is None else config.section(cls.config_section)
        try:
            calculator = champion.calculator(cls, section)
            streams[name] = (calculator, calculator.stream_current(current))
        except InsufficientDataError as error:
            skip(name, error)
    rows = 0
    for chunk in current.iter_chunks():
        rows += len(chunk)
        for name, (_, stream) in list(streams.items()):
            try:
                stream.update(chunk)
            except InsufficientDataError as error:
                skip(name, error)
                del streams[name]
    for name in calculators():
        if name not in streams:
            continue
        calculator, stream = streams[name]
        try:
            result = stream.finish()
        except InsufficientDataError as error:
            skip(name, error)
            continue
        found = calculator.flags(result)
        flags.extend(found)
        notes.extend(calculator.notes(result))
        figures.update(calculator.run_figures(result))
        calculator.export(result, gauges)
        checks[name] = CheckReport(
            status="ran", level=worst_level(f.level for f in found), result=result.to_dict()
        )
    alerts = alerts_from_flags(
        flags, model_name=loaded.name, model_version=loaded.version, run_id=run_id
    )
    timeline = None
    if data is None and config.timeline.windows:
        try:
            built = _timeline(settings, config, loaded, champion, started)
            timeline = built.model_dump(mode="json")
        except Exception as error:  # the dashboard's picture must not cost the alerts
            logger.exception("the monitoring timeline could not be built")
            notes.append(f"timeline not built: {type(error).__name__}: {error}")

    shadow = None
    if data is None:
        try:
            shadow = _shadow_comparison(settings, loaded.version)
        except Exception as error:  # the comparison must not cost the alerts either
            logger.exception("the shadow comparison could not be made")
            notes.append(f"shadow comparison not made: {type(error).__name__}: {error}")

    # The checks' figures fill the run record's fields by name; the others go to its summary.
    fields = set(MonitorRun.model_fields) - _RUN_OWN
    columns = {k: v for k, v in figures.items() if k in fields}
    summary = {k: v for k, v in figures.items() if k not in fields}
    store = AlertStore.from_settings(settings)
    try:
        dispatcher = AlertDispatcher.from_config(store, config.alerts, gauges=gauges)
        dispatched = dispatcher.dispatch(alerts, checks=alert_checks())
        finished = datetime.now(UTC)
        level = max((a.level for a in alerts), key=LEVELS.__getitem__, default="info")
        store.save_run(
            MonitorRun(
                **columns,
                id=run_id,
                started_at=started,
                finished_at=finished,
                model_name=loaded.name,
                model_version=loaded.version,
                rows=rows,
                level=level,
                summary={**summary, "alerts": len(alerts), "source": current.source},
            )
        )
        gauges.mark_run(finished_at=finished, duration_s=time.perf_counter() - clock)
        for error in gauges.publish(
            textfile=config.alerts.textfile_path, pushgateway=config.alerts.pushgateway_url
        ):
            notes.append(f"metrics not published: {error}")
        drift, performance = checks.get("data_drift"), checks.get("performance")
        report = MonitorReport(
            run_id=run_id,
            started_at=started,
            finished_at=finished,
            model_name=loaded.name,
            model_version=loaded.version,
            source=current.source,
            rows=rows,
            level=level,
            checks=checks,
            drift=None if drift is None else drift.result,
            performance=None if performance is None else performance.result,
            alerts=[a.to_dict() for a in alerts],
            dispatch=dispatched.to_dict(),
            notes=notes,
            timeline=timeline,
            shadow=shadow,
        )
        store.save_report(report.to_dict())
    finally:
        store.close()
    return report


def _shadow_comparison(settings: Settings, champion_version: str) -> dict[str, Any] | None:
    """The champion beside the version holding the challenger alias, on the live applications
    both scored (None without a challenger other than the champion)."""
    challenger = get_version(settings, CHALLENGER)
    if challenger is None or str(challenger.version) == champion_version:
        return None
    with PredictionLog.from_settings(settings) as log:
        pairs = shadow_pairs(log, str(challenger.version), limit=COMPARE_ROWS)
    return compare_shadow(pairs, str(challenger.version)).to_dict()


def _timeline(
    settings: Settings,
    config: MonitorConfig,
    loaded: LoadedModel,
    champion: _Champion,
    now: datetime,
) -> Any:
    """The champion's last ``config.timeline.windows`` windows of the decision log."""
    log = PredictionLog(settings.resolved_database_url)

    def read_window(start: datetime, end: datetime) -> Iterator[pd.DataFrame]:
        return read_decision_chunks(
            log,
            features=list(loaded.spec.features),
            protected=list(loaded.spec.protected),
            since=start,
            until=end,
            model_name=loaded.name,
            model_version=loaded.version,
            chunk_rows=settings.monitor_chunk_rows,
        )

    try:
        return build_timeline(
            reference=champion.reference,
            schema=loaded.spec.schema_,
            make_calculator=champion.calculator,
            read_window=read_window,
            config=config.timeline,
            drift=config.section("drift"),  # type: ignore[arg-type]
            performance=config.section("performance"),  # type: ignore[arg-type]
            now=now,
            min_rows=config.min_rows,
        )
    finally:
        log.close()
