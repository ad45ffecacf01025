"""The one schema of the creditops database, and keeping a database at its revision.

Every table lives on :data:`metadata`; Alembic revisions under ``store/migrations/versions``
change it, one revision per change (revision 0001 is the schema the stores created on their own
before migrations existed). Every store calls :func:`ensure_schema` when it opens the database:
a database that is behind is upgraded first, under a lock (SQLite: the write transaction,
``BEGIN IMMEDIATE``; PostgreSQL: an advisory transaction lock), so workers starting together
never race; once a database was seen at head, the check costs nothing more in that process.

A database written before migrations (the stores' tables, no ``alembic_version``) is adopted:
its tables are checked against revision 0001, which creates only the ones missing and stamps it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar
from urllib.parse import unquote, urlsplit

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from pydantic import BaseModel, ConfigDict
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from creditops.exceptions import SchemaError
from creditops.store.database import (
    UTCDateTime,
    create_store_engine,
    normalise_url,
    run_transaction,
)

__all__ = [
    "RecordStore",
    "SchemaStatus",
    "access_log_table",
    "alerts_table",
    "api_keys_table",
    "audit_table",
    "database_status",
    "decision_chains_table",
    "decision_checkpoints_table",
    "ensure_schema",
    "head_revision",
    "jobs_table",
    "metadata",
    "monitor_reports_table",
    "monitor_runs_table",
    "outcomes",
    "predictions",
    "upgrade_database",
]

logger = logging.getLogger(__name__)

_MIGRATIONS = Path(__file__).parent / "migrations"
# PostgreSQL advisory-lock key that serialises upgrades between processes ("crom").
_MIGRATION_LOCK_KEY = 0x63726F6D
# The tables and columns of revision 0001: what a database made before migrations must have.
_BASELINE = {
    "predictions": {
        "id",
        "created_at",
        "model_name",
        "model_version",
        "features",
        "protected",
        "imputed",
        "probability",
        "points",
        "grade",
        "decision",
        "reasons",
        "latency_ms",
    },
    "outcomes": {"prediction_id", "outcome", "observed_at", "recorded_at"},
    "alerts": {
        "id",
        "created_at",
        "check_name",
        "level",
        "metric",
        "value",
        "threshold",
        "message",
        "model_name",
        "model_version",
        "run_id",
        "details",
    },
    "monitor_runs": {
        "id",
        "started_at",
        "finished_at",
        "model_name",
        "model_version",
        "rows",
        "drift_level",
        "drift_share",
        "prediction_psi",
        "realised_roc_auc",
        "realised_auc_drop_relative",
        "estimated_roc_auc",
        "level",
        "summary",
    },
    "retraining_audit": {
        "id",
        "started_at",
        "finished_at",
        "action",
        "outcome",
        "champion_version",
        "challenger_version",
        "reasons",
        "gates",
        "message",
        "details",
    },
}


# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------

metadata = sa.MetaData()

#: The decision log: one row per credit decision (:mod:`creditops.store.predlog`).
predictions = sa.Table(
    "predictions",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("created_at", UTCDateTime(), nullable=False, index=True),
    sa.Column("model_name", sa.Text, nullable=False),
    sa.Column("model_version", sa.Text, nullable=False),
    sa.Column("features", sa.JSON, nullable=False),
    sa.Column("protected", sa.JSON, nullable=False),
    sa.Column("imputed", sa.JSON, nullable=False),
    sa.Column("probability", sa.Double, nullable=False),
    sa.Column("points", sa.Integer, nullable=False),
    sa.Column("grade", sa.Text, nullable=True),
    sa.Column("decision", sa.String(16), nullable=False),
    sa.Column("reasons", sa.JSON, nullable=False),
    sa.Column("latency_ms", sa.Double, nullable=False),
    # Revision 0006: the decision's place in its writer's hash chain (creditops.store.chain).
    # NULL only in a row written past the log, which verification reports.
    sa.Column("chain", sa.String(32), nullable=True),
    sa.Column("seq", sa.BigInteger, nullable=True),
    sa.Column("prev_hash", sa.String(64), nullable=True),
    sa.Column("row_hash", sa.String(64), nullable=True),
    # Revision 0005: the name of the key that asked for the decision (never the key).
    sa.Column("actor", sa.Text, nullable=True),
    # Revision 0007: the spec's personal-data fields as one Fernet token (creditops.store.pii);
    # NULL when the application carried none.
    sa.Column("pii", sa.Text, nullable=True),
    # Revision 0008: the features whose value lay outside the model's experience (past the
    # training range, or an unseen category: creditops.data.experience); NULL when none did.
    sa.Column("out_of_range", sa.JSON(none_as_null=True), nullable=True),
    sa.CheckConstraint("decision IN ('approve', 'refer', 'decline')", name="ck_decision"),
    sa.CheckConstraint("probability >= 0 AND probability <= 1", name="ck_probability"),
    # Revision 0002: the audit search filters on these, newest first.
    sa.Index("ix_predictions_decision_created", "decision", "created_at"),
    sa.Index("ix_predictions_version_created", "model_version", "created_at"),
    # Revision 0006: one row per place in a chain; chains are read and cut in this order.
    sa.Index("ux_predictions_chain_seq", "chain", "seq", unique=True),
)

#: The observed outcome of a logged decision (1 = default), at most one per decision.
outcomes = sa.Table(
    "outcomes",
    metadata,
    sa.Column("prediction_id", sa.String(36), sa.ForeignKey("predictions.id"), primary_key=True),
    sa.Column("outcome", sa.SmallInteger, nullable=False),
    sa.Column("observed_at", UTCDateTime(), nullable=True),
    sa.Column("recorded_at", UTCDateTime(), nullable=False),
    # Revision 0002: when the decision was made (its predictions.created_at), so "decisions
    # whose outcome is known, newest first" is an index scan of this table, not a walk through
    # months of unlabelled decisions.
    sa.Column("decided_at", UTCDateTime(), nullable=True),
    sa.Column("recorded_by", sa.Text, nullable=True),  # revision 0005: the key's name
    sa.CheckConstraint("outcome IN (0, 1)", name="ck_outcome"),
    sa.Index("ix_outcomes_decided", "decided_at", "prediction_id"),
)

#: Alerts raised by the monitoring checks (:mod:`creditops.store.alerts`).
alerts_table = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("created_at", UTCDateTime(), nullable=False, index=True),
    # "check" is an SQL keyword: the column is check_name so hand-written queries need no quotes.
    sa.Column("check_name", sa.String(64), nullable=False),
    sa.Column("level", sa.String(16), nullable=False),
    sa.Column("metric", sa.Text, nullable=False),
    sa.Column("value", sa.Double, nullable=True),
    sa.Column("threshold", sa.Double, nullable=True),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("model_name", sa.Text, nullable=True),
    sa.Column("model_version", sa.Text, nullable=True),
    sa.Column("run_id", sa.String(64), nullable=True, index=True),
    sa.Column("details", sa.JSON, nullable=False),
    # A person's acknowledgement: who, when and their note (also in the audit trail).
    sa.Column("acknowledged_at", UTCDateTime(), nullable=True),
    sa.Column("acknowledged_by", sa.Text, nullable=True),
    sa.Column("acknowledgement", sa.Text, nullable=True),
    sa.CheckConstraint("level IN ('info', 'warning', 'critical')", name="ck_alert_level"),
    sa.Index("ix_alerts_check_created", "check_name", "created_at"),
)

#: Each monitor run's whole report, its timeline included (what the monitoring page draws);
#: kept apart from ``monitor_runs`` so reading the run history never loads them.
monitor_reports_table = sa.Table(
    "monitor_reports",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("model_name", sa.Text, nullable=True),
    sa.Column("model_version", sa.Text, nullable=True),
    sa.Column("report", sa.JSON, nullable=False),
    sa.Index("ix_monitor_reports_model_created", "model_name", "model_version", "created_at"),
    sa.Index("ix_monitor_reports_created", "created_at"),
)

#: One row per monitor run, alerts or not: the history retraining triggers read ("critical
#: drift in every run of the last 24 hours" needs the runs that found none too).
monitor_runs_table = sa.Table(
    "monitor_runs",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("started_at", UTCDateTime(), nullable=False, index=True),
    sa.Column("finished_at", UTCDateTime(), nullable=False),
    sa.Column("model_name", sa.Text, nullable=True),
    sa.Column("model_version", sa.Text, nullable=True),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("drift_level", sa.String(16), nullable=True),
    sa.Column("drift_share", sa.Double, nullable=True),
    sa.Column("prediction_psi", sa.Double, nullable=True),
    sa.Column("realised_roc_auc", sa.Double, nullable=True),
    sa.Column("realised_auc_drop_relative", sa.Double, nullable=True),
    sa.Column("estimated_roc_auc", sa.Double, nullable=True),
    sa.Column("level", sa.String(16), nullable=False),
    sa.Column("summary", sa.JSON, nullable=False),
)

#: Every retrain, promotion and rollback, with why (:mod:`creditops.store.audit`).
audit_table = sa.Table(
    "retraining_audit",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("started_at", UTCDateTime(), nullable=False, index=True),
    sa.Column("finished_at", UTCDateTime(), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("outcome", sa.String(32), nullable=False),
    sa.Column("champion_version", sa.Text, nullable=True),
    sa.Column("challenger_version", sa.Text, nullable=True),
    sa.Column("reasons", sa.JSON, nullable=False),
    sa.Column("gates", sa.JSON, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("details", sa.JSON, nullable=False),
)

#: API keys: a salted SHA-256 of each (the key itself is shown once, when created), the roles
#: it holds, and when it expires or was revoked (:mod:`creditops.store.keys`). Revision 0005.
api_keys_table = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.Text, nullable=False, unique=True),
    sa.Column("salt", sa.String(64), nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("roles", sa.JSON, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("created_by", sa.Text, nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=True),
    sa.Column("revoked_at", UTCDateTime(), nullable=True),
    sa.Column("revoked_by", sa.Text, nullable=True),
)


#: Background work (training, monitoring, retraining) and how far it got
#: (:mod:`creditops.store.jobs`). Revision 0003.
jobs_table = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=True),
    sa.Column("finished_at", UTCDateTime(), nullable=True),
    sa.Column("heartbeat_at", UTCDateTime(), nullable=True),
    sa.Column("requested_by", sa.Text, nullable=False),
    sa.Column("params", sa.JSON, nullable=False),
    sa.Column("data_fingerprint", sa.String(64), nullable=True),
    sa.Column("host", sa.Text, nullable=True),
    sa.Column("pid", sa.Integer, nullable=True),
    sa.Column("progress", sa.JSON, nullable=False),
    sa.Column("run_id", sa.String(64), nullable=True),
    sa.Column("model_version", sa.Text, nullable=True),
    sa.Column("message", sa.Text, nullable=True),
    sa.Column("cancel_requested", sa.Boolean, nullable=False),
    sa.CheckConstraint(
        "state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')", name="ck_job_state"
    ),
    sa.Index("ix_jobs_state_created", "state", "created_at"),
    sa.Index("ix_jobs_created", "created_at"),
)

#: Each chain of the decision log (one per writer process; revision 0006): when and where it
#: started, and the serialisation its hashes use (:mod:`creditops.store.chain`).
decision_chains_table = sa.Table(
    "decision_chains",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("format", sa.Integer, nullable=False),
    sa.Column("writer", sa.Text, nullable=False),
)

#: Signed checkpoints of the chains (revision 0006; :mod:`creditops.store.checkpoints`): the
#: text signed, exactly, and its HMAC; numbered, each signing the one before.
decision_checkpoints_table = sa.Table(
    "decision_checkpoints",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("key_id", sa.String(16), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("mac", sa.String(64), nullable=False),
)

#: Who read what (revision 0007; :mod:`creditops.store.access_log`): each explanation and each
#: opening of a decision's personal data, by the name of the key that asked. Append-only.
access_log_table = sa.Table(
    "access_log",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("prediction_id", sa.String(36), nullable=True),
    sa.Column("model_version", sa.Text, nullable=True),
    sa.Index("ix_access_log_prediction", "prediction_id", "created_at"),
    sa.Index("ix_access_log_created", "created_at"),
)

#: The challenger's shadow decisions (revision 0009; :mod:`creditops.store.shadow`): the same
#: live application scored by the version holding the ``challenger`` alias, after the
#: champion's answer was sent, never changing it. ``prediction_id`` is the champion's logged
#: decision (its inputs and protected attributes live there). Append-only.
shadow_decisions_table = sa.Table(
    "shadow_decisions",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("prediction_id", sa.String(36), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("model_version", sa.Text, nullable=False),
    sa.Column("champion_version", sa.Text, nullable=False),
    sa.Column("probability", sa.Double, nullable=False),
    sa.Column("points", sa.Integer, nullable=False),
    sa.Column("grade", sa.Text, nullable=True),
    sa.Column("decision", sa.String(16), nullable=False),
    sa.CheckConstraint("decision IN ('approve', 'refer', 'decline')", name="ck_shadow_decision"),
    sa.Index("ix_shadow_version_created", "model_version", "created_at"),
    sa.Index("ix_shadow_prediction", "prediction_id"),
)


# ---------------------------------------------------------------------------------------------
# Revisions
# ---------------------------------------------------------------------------------------------


class SchemaStatus(BaseModel):
    """Where a database stands: its revision, the one this creditops needs, what was done."""

    model_config = ConfigDict(frozen=True)

    url: str
    current: str | None
    head: str
    up_to_date: bool
    applied: list[str] = []
    adopted: bool = False

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def _config(connection: Connection | None = None) -> Config:
    """Alembic's configuration, built here: nothing to find on disk at run time."""
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@lru_cache(maxsize=1)
def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def head_revision() -> str:
    """The revision this creditops needs."""
    head = _script().get_current_head()
    if head is None:  # pragma: no cover - the package ships its revisions
        raise SchemaError("no database migrations are installed")
    return head


def _current(conn: Connection) -> str | None:
    heads = MigrationContext.configure(conn).get_current_heads()
    if len(heads) > 1:
        raise SchemaError(f"the database has several schema revisions: {', '.join(heads)}")
    return heads[0] if heads else None


def _check_known(current: str | None) -> None:
    if current is not None and current not in {rev.revision for rev in _script().walk_revisions()}:
        raise SchemaError(
            f"the database is at schema revision {current}, unknown to this creditops "
            f"(it needs {head_revision()}): a newer release wrote it"
        )


def _check_adoptable(conn: Connection) -> bool:
    """Whether ``conn``'s database predates migrations (some creditops tables, no version);
    raises :class:`SchemaError` when a table of that name lacks revision 0001's columns."""
    inspector = sa.inspect(conn)
    present = set(inspector.get_table_names()) & set(_BASELINE)
    for name in sorted(present):
        columns = {column["name"] for column in inspector.get_columns(name)}
        missing = _BASELINE[name] - columns
        if missing:
            raise SchemaError(
                f"table {name!r} is not creditops's (no column {', '.join(sorted(missing))}): "
                "refusing to adopt this database"
            )
    return bool(present)


def _upgrade(conn: Connection) -> tuple[str | None, list[str], bool]:
    """Upgrade inside the caller's transaction, which holds the migration lock."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_MIGRATION_LOCK_KEY)))
    before = _current(conn)  # read again under the lock: another process may have done it
    _check_known(before)
    head = head_revision()
    if before == head:
        return before, [], False
    adopted = before is None and _check_adoptable(conn)
    if adopted:
        logger.info("adopting a database created before migrations as revision 0001")
    applied = [
        rev.revision
        for rev in reversed(list(_script().iterate_revisions(head, before or "base")))
        if rev.revision != before
    ]
    command.upgrade(_config(conn), "head")
    return before, applied, adopted


# Databases seen at head in this process: (URL, SQLite file identity).
_AT_HEAD: set[tuple[str, Any]] = set()
_AT_HEAD_LOCK = threading.Lock()


def _sqlite_file(url: URL) -> Path | None:
    database = url.database or ""
    if url.get_backend_name() != "sqlite" or not database:
        return None
    if database.startswith("file:"):
        return Path(unquote(urlsplit(database).path))
    return Path(database)


def _cache_key(url: URL) -> tuple[str, Any] | None:
    """A key per database; a SQLite file replaced or removed is a new database."""
    path = _sqlite_file(url)
    identity: Any = None
    if path is not None:
        try:
            stat = path.stat()
        except OSError:
            return None
        identity = (stat.st_dev, stat.st_ino)
    return url.render_as_string(hide_password=False), identity


def ensure_schema(engine: Engine, *, timeout_s: float = 30.0) -> SchemaStatus | None:
    """Upgrade ``engine``'s database to head when it is behind (adopting one made before
    migrations), under the migration lock; returns what was done, or None when the database was
    already known to be at head in this process. Raises :class:`SchemaError` when it cannot."""
    key = _cache_key(engine.url)
    if key is not None and key in _AT_HEAD:
        return None
    try:
        with engine.connect() as conn:
            current = _current(conn)
        if current == head_revision():
            status = _status(engine.url, current)
        else:
            _check_known(current)
            before, applied, adopted = run_transaction(
                engine,
                _upgrade,
                write=True,
                timeout_s=timeout_s,
                store="schema upgrade",
                failure=SchemaError,
                rejected=SchemaError,
            )
            status = _status(engine.url, head_revision(), applied=applied, adopted=adopted)
            if applied:
                logger.info("upgraded %s from %s to %s", status.url, before or "empty", status.head)
    except (SQLAlchemyError, CommandError) as exc:
        raise SchemaError(
            f"cannot bring the database to revision {head_revision()}: {exc}"
        ) from exc
    key = _cache_key(engine.url)  # a new SQLite file exists now
    if key is not None:
        with _AT_HEAD_LOCK:
            _AT_HEAD.add(key)
    return status


def _status(
    url: URL, current: str | None, *, applied: list[str] | None = None, adopted: bool = False
) -> SchemaStatus:
    head = head_revision()
    return SchemaStatus(
        url=url.render_as_string(hide_password=True),
        current=current,
        head=head,
        up_to_date=current == head,
        applied=applied or [],
        adopted=adopted,
    )


def _engine(url: str | URL) -> Engine:
    parsed = normalise_url(url, "the creditops database", "record")
    return create_store_engine(
        parsed, timeout_s=30.0, busy_timeout_ms=5000, pool_size=1, max_overflow=1
    )


def upgrade_database(url: str | URL) -> SchemaStatus:
    """Bring the database at ``url`` to head (``creditops db upgrade``); creates a SQLite file
    that does not exist yet. Always checks the database itself, whatever this process saw."""
    engine = _engine(url)
    try:
        key = _cache_key(engine.url)
        if key is not None:
            with _AT_HEAD_LOCK:
                _AT_HEAD.discard(key)
        status = ensure_schema(engine)
    finally:
        engine.dispose()
    assert status is not None
    return status


def database_status(url: str | URL) -> SchemaStatus:
    """The database's revision and the head (``creditops db current``); changes nothing (a
    SQLite file that does not exist is not created)."""
    parsed = normalise_url(url, "the creditops database", "record")
    path = _sqlite_file(parsed)
    if path is not None and not path.exists():
        return _status(parsed, None)
    engine = _engine(parsed)
    try:
        with engine.connect() as conn:
            current = _current(conn)
    except SQLAlchemyError as exc:
        raise SchemaError(f"cannot read the database's revision: {exc}") from exc
    finally:
        engine.dispose()
    return _status(parsed, current)


_T = TypeVar("_T")


class RecordStore:
    """One kind of durable record in the creditops database (the retraining audit, the jobs):
    the engine, the schema brought to head on open, and transactions with busy retries, all
    failing as the subclass's ``error`` naming its ``store``."""

    store: ClassVar[str]  # e.g. "retraining audit"
    holds: ClassVar[str]  # one record, e.g. "audit entry"
    error: ClassVar[type[Exception]]

    def __init__(self, url: str | URL, *, timeout_s: float = 30.0) -> None:
        parsed = normalise_url(url, f"the {self.store}", self.holds)
        self._timeout_s = float(timeout_s)
        self._engine = create_store_engine(
            parsed, timeout_s=self._timeout_s, busy_timeout_ms=5000, pool_size=1, max_overflow=2
        )
        try:
            ensure_schema(self._engine, timeout_s=self._timeout_s)
        except SchemaError as exc:
            self._engine.dispose()
            raise self.error(f"cannot open the {self.store}: {exc}") from exc

    def _run(self, work: Callable[[Connection], _T], *, write: bool) -> _T:
        return run_transaction(
            self._engine,
            work,
            write=write,
            timeout_s=self._timeout_s,
            store=self.store,
            failure=self.error,
            rejected=self.error,
        )

    def close(self) -> None:
        """Close the pooled connections."""
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
