"""The alert store: alerts raised by the monitoring checks and their acknowledgements, one row
per monitor run, and each run's whole report, in the creditops database (tables ``alerts``,
``monitor_runs`` and ``monitor_reports``, beside the decision log: same URL,
``settings.resolved_database_url``), SQLite or PostgreSQL.

The records it keeps (:class:`Alert`, :class:`MonitorRun`) are defined here, with the store,
so that monitoring raises them and retraining reads them without either owning the other.
"""

from __future__ import annotations

import math
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

import sqlalchemy as sa
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.engine import URL, Connection, Engine

from creditops.exceptions import AlertStoreError, SchemaError
from creditops.store.database import create_store_engine, normalise_url, run_transaction
from creditops.store.schema import (
    alerts_table,
    ensure_schema,
    monitor_reports_table,
    monitor_runs_table,
)

if TYPE_CHECKING:
    from creditops.config import Settings

__all__ = [
    "LEVELS",
    "Alert",
    "AlertStore",
    "Level",
    "MonitorRun",
]


class Level(StrEnum):
    """Severity, in increasing order: ``ok`` < ``info`` < ``warning`` < ``critical``: the one
    level of every monitoring result, flag and alert.

    ``ok`` is a result's level when nothing was found; ``info`` an alert worth recording but
    not acting on; a finding is ``warning`` or ``critical``; an alert is never ``ok``. Members
    are strings, so JSON and database columns hold the plain names. Defined with the records
    that store it, so that monitoring (which raises alerts) and the store share it.
    """

    OK = "ok"
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """Position in the order above (0 for ``ok``)."""
        return _RANK[self]


_RANK = {level: index for index, level in enumerate(Level)}

#: The severity of an alert; also the value of ``creditops_alert_level`` (info counts as ok).
LEVELS: dict[str, int] = {"info": 0, "warning": 1, "critical": 2}


def _an_alert_level(value: Level) -> Level:
    if value == Level.OK:
        raise ValueError("an alert's level is 'info', 'warning' or 'critical'")
    return value


_T = TypeVar("_T")


# ---------------------------------------------------------------------------------------------
# The records
# ---------------------------------------------------------------------------------------------


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _plain(value: Any) -> Any:
    """``value`` as plain JSON: numpy scalars unwrapped, NaN/inf as None (JSON has neither)."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(item) for item in value]
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID | Path):
        return str(value)
    tolist = getattr(value, "tolist", None)  # numpy scalars and arrays, pandas series
    if callable(tolist):
        return _plain(tolist())
    raise TypeError(f"{type(value).__name__} cannot be stored in an alert's details")


class Alert(BaseModel):
    """One finding of one check, complete enough to act on without opening a report.

    ``value`` and ``threshold`` that are not finite numbers (an AUC on a window with one class)
    are stored as None; ``details`` is converted to plain JSON on creation.
    """

    model_config = ConfigDict(
        frozen=True, extra="forbid", protected_namespaces=(), use_enum_values=True
    )

    id: UUID = Field(default_factory=uuid.uuid4)
    created_at: AwareDatetime = Field(default_factory=_utcnow, description="UTC")
    check: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$", description="e.g. 'data_drift'")
    level: Level
    metric: str = Field(min_length=1, max_length=200)
    value: float | None = None
    threshold: float | None = None
    message: str = Field(min_length=1, description="a sentence a person can act on")
    model_name: str | None = None
    model_version: str | None = None
    run_id: str | None = Field(default=None, description="the monitor run that raised it")
    details: dict[str, Any] = Field(default_factory=dict)
    acknowledged_at: AwareDatetime | None = None
    acknowledged_by: str | None = None
    acknowledgement: str | None = Field(default=None, description="the person's note")

    @field_validator("created_at")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @field_validator("level")
    @classmethod
    def _not_ok(cls, value: Level) -> Level:
        return _an_alert_level(value)

    @field_validator("value", "threshold", mode="before")
    @classmethod
    def _finite(cls, value: Any) -> Any:
        item = getattr(value, "item", None)  # numpy scalars
        value = item() if callable(item) else value
        return None if isinstance(value, float) and not math.isfinite(value) else value

    @field_validator("details", mode="before")
    @classmethod
    def _json_details(cls, value: Any) -> Any:
        if not isinstance(value, Mapping):
            return value
        try:
            return _plain(value)
        except TypeError as exc:
            raise ValueError(str(exc)) from None

    @property
    def severity(self) -> int:
        """0 info, 1 warning, 2 critical (the value of ``creditops_alert_level``)."""
        return LEVELS[self.level]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON: ids and datetimes as ISO text."""
        return self.model_dump(mode="json")


class MonitorRun(BaseModel):
    """The headline figures of one monitor run (the full report is in ``summary``)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), use_enum_values=True)

    id: str
    started_at: AwareDatetime
    finished_at: AwareDatetime
    model_name: str | None = None
    model_version: str | None = None
    rows: int
    drift_level: str | None = None
    drift_share: float | None = None
    prediction_psi: float | None = None
    realised_roc_auc: float | None = None
    realised_auc_drop_relative: float | None = None
    estimated_roc_auc: float | None = None
    level: Level
    summary: dict[str, Any] = Field(default_factory=dict)

    @field_validator(
        "drift_share",
        "prediction_psi",
        "realised_roc_auc",
        "realised_auc_drop_relative",
        "estimated_roc_auc",
    )
    @classmethod
    def _finite_or_none(cls, value: float | None) -> float | None:
        return None if value is None or not math.isfinite(value) else float(value)


# ---------------------------------------------------------------------------------------------
# The store
# ---------------------------------------------------------------------------------------------


#: Monitor reports kept per model version (hourly runs: two days of them).
REPORTS_KEPT = 48


def _alert(row: Mapping[str, Any]) -> Alert:
    return Alert(
        id=row["id"],
        created_at=row["created_at"],
        check=row["check_name"],
        level=row["level"],
        metric=row["metric"],
        value=row["value"],
        threshold=row["threshold"],
        message=row["message"],
        model_name=row["model_name"],
        model_version=row["model_version"],
        run_id=row["run_id"],
        details=row["details"] or {},
        acknowledged_at=row["acknowledged_at"],
        acknowledged_by=row["acknowledged_by"],
        acknowledgement=row["acknowledgement"],
    )


def _as_tuple(value: str | Sequence[str] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    return (value,) if isinstance(value, str) else tuple(value)


class AlertStore:
    """The ``alerts`` table, on SQLite (WAL, shared with the decision log) or PostgreSQL.

    One per process; :meth:`close` it when done. Writes that find SQLite busy (the service is
    committing decisions to the same file) are retried until ``timeout_s``.
    """

    def __init__(
        self,
        url: str | URL,
        *,
        create: bool = True,
        timeout_s: float = 10.0,
        busy_timeout_ms: int = 5000,
    ) -> None:
        """Open the store at ``url``; with ``create``, upgrade its schema if it is behind."""
        self._url = normalise_url(url, "the alert store", "alert")
        self._is_sqlite = self._url.get_backend_name() == "sqlite"
        self._timeout_s = float(timeout_s)
        self._busy_timeout_ms = int(busy_timeout_ms)
        self._closed = False
        self._lock = threading.Lock()
        self._engine = self._make_engine()
        if create:
            self._create_schema()

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> AlertStore:
        """The store in the decision log's database (``settings.resolved_database_url``)."""
        if not settings.database_url:
            Path(settings.home).mkdir(parents=True, exist_ok=True)
        return cls(settings.resolved_database_url, **options)

    @property
    def url(self) -> str:
        """The database URL with any password hidden (safe to log)."""
        return self._url.render_as_string(hide_password=True)

    def _make_engine(self) -> Engine:
        # The decision log's settings (same file on SQLite): WAL, an fsync at every commit.
        return create_store_engine(
            self._url,
            timeout_s=self._timeout_s,
            busy_timeout_ms=self._busy_timeout_ms,
            pool_size=2,
            max_overflow=4,
        )

    def _create_schema(self) -> None:
        try:
            ensure_schema(self._engine, timeout_s=self._timeout_s)
        except SchemaError as exc:
            raise AlertStoreError(f"cannot open the alert store {self.url}: {exc}") from exc

    def _run(self, work: Callable[[Connection], _T], *, write: bool) -> _T:
        """Run ``work`` in one transaction, again while the database is merely busy."""
        if self._closed:
            raise AlertStoreError("the alert store is closed")
        return run_transaction(
            self._engine,
            work,
            write=write,
            timeout_s=self._timeout_s,
            store="alert store",
            failure=AlertStoreError,
            rejected=AlertStoreError,
        )

    def save(self, alerts: Iterable[Alert]) -> int:
        """Store ``alerts`` in one transaction (all or none); returns how many."""
        rows = [
            {
                "id": str(alert.id),
                "created_at": alert.created_at,
                "check_name": alert.check,
                "level": alert.level,
                "metric": alert.metric,
                "value": alert.value,
                "threshold": alert.threshold,
                "message": alert.message,
                "model_name": alert.model_name,
                "model_version": alert.model_version,
                "run_id": alert.run_id,
                "details": alert.details,
            }
            for alert in alerts
        ]
        if rows:
            with self._lock:  # one SQLite writer per process; others wait on busy_timeout
                self._run(lambda conn: conn.execute(alerts_table.insert(), rows), write=True)
        return len(rows)

    def recent(
        self,
        limit: int = 100,
        *,
        level: Level | Sequence[Level] | None = None,
        check: str | Sequence[str] | None = None,
        since: datetime | None = None,
        run_id: str | None = None,
        metric: str | None = None,
        acknowledged: bool | None = None,
    ) -> list[Alert]:
        """The newest ``limit`` alerts, newest first, optionally of these levels / checks,
        created at or after ``since`` (time-zone aware), from one monitor run, whose metric
        contains ``metric``, acknowledged or not."""
        if limit < 0:
            raise ValueError("limit must be >= 0")
        if since is not None and since.tzinfo is None:
            raise ValueError("since must carry a time zone")
        t = alerts_table
        stmt = sa.select(t).order_by(t.c.created_at.desc(), t.c.id.desc()).limit(limit)
        if (levels := _as_tuple(level)) is not None:
            unknown = set(levels) - set(LEVELS)
            if unknown:
                raise ValueError(f"unknown level(s) {sorted(unknown)}: use {list(LEVELS)}")
            stmt = stmt.where(t.c.level.in_(levels))
        if (checks := _as_tuple(check)) is not None:
            stmt = stmt.where(t.c.check_name.in_(checks))
        if since is not None:
            stmt = stmt.where(t.c.created_at >= since)
        if run_id is not None:
            stmt = stmt.where(t.c.run_id == run_id)
        if metric:
            stmt = stmt.where(t.c.metric.contains(metric, autoescape=True))
        if acknowledged is not None:
            ack = t.c.acknowledged_at
            stmt = stmt.where(ack.is_not(None) if acknowledged else ack.is_(None))
        rows = self._run(lambda conn: conn.execute(stmt).mappings().all(), write=False)
        return [_alert(row) for row in rows]

    def get(self, alert_id: str) -> Alert:
        """One alert; AlertStoreError when there is none with this id."""
        stmt = sa.select(alerts_table).where(alerts_table.c.id == str(alert_id))
        row = self._run(lambda conn: conn.execute(stmt).mappings().first(), write=False)
        if row is None:
            raise AlertStoreError(f"no alert {alert_id}")
        return _alert(row)

    def acknowledge(self, alert_id: str, *, by: str, note: str) -> Alert:
        """Record that ``by`` has seen the alert, with their ``note``; an alert keeps its first
        acknowledgement (AlertStoreError for a second one, or for an unknown id)."""
        note = note.strip()
        if not note:
            raise ValueError("an acknowledgement needs a note: what was found or done")
        t = alerts_table
        stmt = (
            t.update()
            .where(t.c.id == str(alert_id), t.c.acknowledged_at.is_(None))
            .values(acknowledged_at=_utcnow(), acknowledged_by=by, acknowledgement=note)
        )
        with self._lock:
            changed = self._run(lambda conn: conn.execute(stmt).rowcount, write=True)
        alert = self.get(alert_id)
        if not changed:
            raise AlertStoreError(
                f"alert {alert_id} was already acknowledged by {alert.acknowledged_by}"
            )
        return alert

    def save_report(self, report: Mapping[str, Any]) -> None:
        """Keep a monitor run's whole report (plain JSON, with ``run_id``)."""
        row = {
            "run_id": report["run_id"],
            "created_at": datetime.fromisoformat(str(report["started_at"])),
            "model_name": report.get("model_name"),
            "model_version": report.get("model_version"),
            "report": dict(report),
        }
        t = monitor_reports_table
        # The newest reports of this version are kept; older ones only repeat their windows.
        keep = (
            sa.select(t.c.run_id)
            .where(t.c.model_name == row["model_name"], t.c.model_version == row["model_version"])
            .order_by(t.c.created_at.desc())
            .limit(REPORTS_KEPT)
        )
        prune = t.delete().where(
            t.c.model_name == row["model_name"],
            t.c.model_version == row["model_version"],
            t.c.run_id.not_in(keep.scalar_subquery()),
        )

        def write(conn: Connection) -> None:
            conn.execute(t.insert(), [row])
            conn.execute(prune)

        with self._lock:
            self._run(write, write=True)

    def latest_report(
        self, *, model_name: str | None = None, model_version: str | None = None
    ) -> dict[str, Any] | None:
        """The newest stored report (of this model version, when given), or None."""
        t = monitor_reports_table
        stmt = sa.select(t.c.report).order_by(t.c.created_at.desc()).limit(1)
        if model_name is not None:
            stmt = stmt.where(t.c.model_name == model_name)
        if model_version is not None:
            stmt = stmt.where(t.c.model_version == model_version)
        found = self._run(lambda conn: conn.execute(stmt).scalar_one_or_none(), write=False)
        return None if found is None else dict(found)

    def save_run(self, run: MonitorRun) -> None:
        """Record one monitor run."""
        row = run.model_dump()
        with self._lock:
            self._run(lambda conn: conn.execute(monitor_runs_table.insert(), [row]), write=True)

    def runs(self, *, since: datetime | None = None, limit: int = 1000) -> list[MonitorRun]:
        """Monitor runs, oldest first, started at or after ``since`` (the newest ``limit``)."""
        if since is not None and since.tzinfo is None:
            raise ValueError("since must carry a time zone")
        t = monitor_runs_table
        stmt = sa.select(t).order_by(t.c.started_at.desc()).limit(limit)
        if since is not None:
            stmt = stmt.where(t.c.started_at >= since)
        rows = self._run(lambda conn: conn.execute(stmt).mappings().all(), write=False)
        return [MonitorRun.model_validate(dict(row)) for row in reversed(rows)]

    def count(self) -> int:
        """How many alerts are stored."""
        stmt = sa.select(sa.func.count()).select_from(alerts_table)
        return int(self._run(lambda conn: conn.execute(stmt).scalar_one(), write=False))

    def close(self) -> None:
        """Close the pooled connections; the store cannot be used afterwards."""
        if not self._closed:
            self._closed = True
            self._engine.dispose()

    def __enter__(self) -> AlertStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"AlertStore({self.url!r})"
