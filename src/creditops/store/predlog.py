"""The prediction log: every credit decision, written durably before the API answers.

A decision that was returned but not logged cannot be explained to the applicant, audited or
matched with its outcome, so :meth:`PredictionLog.write` returns only after the row is committed
and flushed to stable storage, and raises :class:`PredictionLogError` otherwise (the API then
answers 503 instead of pretending).

Backends: SQLite (default, ``CREDITOPS_HOME/predictions.db``) and PostgreSQL
(``postgresql+psycopg://...``), through SQLAlchemy Core. On SQLite every connection runs in WAL
mode with ``synchronous=FULL`` (the WAL is fsynced at every commit, so an acknowledged row
survives a killed process *and* a power loss), a busy timeout, foreign keys on, and write
transactions that take the write lock up front (``BEGIN IMMEDIATE``), so concurrent writers
queue instead of failing half-way. Writers in one process are serialised by a lock and grouped:
while one transaction commits, the records that arrive queue up and are committed together by
the next one (group commit), so one fsync acknowledges many decisions under load. Several
processes (uvicorn workers) may share one SQLite file; they wait for each other through the
busy timeout and retry "database is locked" until ``timeout_s``.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import unquote, urlsplit
from uuid import UUID

import sqlalchemy as sa
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError

from creditops.config import get_settings
from creditops.exceptions import (
    DuplicatePredictionError,
    PersonalDataError,
    PredictionLogError,
    RecordRejectedError,
    SchemaError,
)
from creditops.store.chain import CHAIN_COLUMNS, ChainWriter
from creditops.store.checkpoints import AuditKey, CheckpointKind, write_checkpoint
from creditops.store.database import (
    bulk_insert,
    create_store_engine,
    normalise_url,
    prediction_key,
    run_transaction,
)
from creditops.store.decision_table import decisions_frame, write_decisions
from creditops.store.outcomes import (
    OutcomeStatus,
    OutcomeUpdate,
    outcome_of,
    outcome_updates,
    record_outcomes_in,
)
from creditops.store.pii import PiiCipher
from creditops.store.schema import decision_chains_table, ensure_schema, outcomes, predictions
from creditops.store.writers import GroupCommit, WriterLock

if TYPE_CHECKING:
    import pandas as pd

    from creditops.config import Settings

__all__ = [
    "OutcomeUpdate",
    "PredictionLog",
    "PredictionRecord",
]

logger = logging.getLogger(__name__)

DecisionLabel = Literal["approve", "refer", "decline"]

_T = TypeVar("_T")

# Most rows one group commit writes in one transaction: large enough that one fsync covers a
# burst, small enough that no single transaction holds the SQLite write lock for long.
_MAX_GROUP_ROWS = 1000
# Bound parameters per IN (...) list: far below SQLite's and PostgreSQL's limits.
_IN_CHUNK = 500
# Free space a SQLite log needs to count as writable: room for a few full group commits in the
# WAL and for the checkpoint that copies them into the database. Below it the next commits fail
# ("database or disk is full"), while a probe row rolled back still succeeds: it writes nothing.
MIN_FREE_BYTES = 8 * 2**20


class _PlaceTakenError(RecordRejectedError):
    """The writer's chain had its next place taken; its rows may go to a new chain."""


# ---------------------------------------------------------------------------------------------
# The record
# ---------------------------------------------------------------------------------------------


def _utcnow() -> datetime:
    return datetime.now(UTC)


class PredictionRecord(BaseModel):
    """One logged decision: what was asked, what was answered, by which model, how fast."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", allow_inf_nan=False, protected_namespaces=()
    )

    prediction_id: UUID = Field(default_factory=uuid.uuid4)
    created_at: AwareDatetime = Field(default_factory=_utcnow, description="UTC")
    model_name: str = Field(min_length=1)
    model_version: str = Field(min_length=1)
    features: dict[str, Any] = Field(description="model inputs as received, after validation")
    protected: dict[str, Any] = Field(
        default_factory=dict, description="for fairness monitoring only; never model inputs"
    )
    imputed: list[str] = Field(default_factory=list)
    probability: float = Field(ge=0.0, le=1.0)
    points: int = Field(ge=-(2**31), le=2**31 - 1)
    grade: str | None = None
    decision: DecisionLabel
    reasons: list[dict[str, Any]] = Field(default_factory=list)
    latency_ms: float = Field(ge=0.0)
    actor: str | None = Field(default=None, description="the name of the key that asked")
    pii: dict[str, str | None] | None = Field(
        default=None,
        repr=False,
        description="the spec's personal-data fields as sent: sealed before they are stored, "
        "and never read back by get (see PredictionLog.personal_data)",
    )
    out_of_range: list[str] | None = Field(
        default=None,
        description="features whose value lay outside the model's experience (None: none)",
    )

    @field_validator("created_at")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @field_validator("reasons", mode="before")
    @classmethod
    def _dump_models(cls, value: Any) -> Any:
        # Accept the API's Reason models as they are, without a copy at every call site.
        if isinstance(value, list | tuple):
            return [item.model_dump() if isinstance(item, BaseModel) else item for item in value]
        return value


# ---------------------------------------------------------------------------------------------
# Rows (the tables are in :mod:`creditops.store.schema`)
# ---------------------------------------------------------------------------------------------


def _row(record: PredictionRecord, cipher: PiiCipher | None) -> dict[str, Any]:
    pii = record.pii
    sealed = None
    if pii:
        if cipher is None:
            raise RecordRejectedError(
                "prediction log refused the record: it holds personal data and no personal-data "
                "key is configured (CREDITOPS_PII_KEY or CREDITOPS_PII_KEY_FILE)"
            )
        sealed = cipher.seal(pii)
    return {
        "id": str(record.prediction_id),
        "created_at": record.created_at,
        "model_name": record.model_name,
        "model_version": record.model_version,
        "features": record.features,
        "protected": record.protected,
        "imputed": record.imputed,
        "probability": record.probability,
        "points": record.points,
        "grade": record.grade,
        "decision": record.decision,
        "reasons": record.reasons,
        "latency_ms": record.latency_ms,
        "actor": record.actor,
        "pii": sealed,
        "out_of_range": record.out_of_range or None,
    }


def _aware(value: datetime | None, name: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValueError(f"{name} must carry a time zone")
    return value


# ---------------------------------------------------------------------------------------------
# The log
# ---------------------------------------------------------------------------------------------


def window_filter(
    stmt: sa.Select[Any],
    since: datetime | None,
    until: datetime | None,
    model_name: str | None,
    model_version: str | None,
) -> sa.Select[Any]:
    """``stmt`` kept to the decisions of a monitoring window: made from ``since`` (inclusive)
    until ``until`` (exclusive), by that model and version where given."""
    if since is not None:
        stmt = stmt.where(predictions.c.created_at >= since)
    if until is not None:
        stmt = stmt.where(predictions.c.created_at < until)
    if model_name is not None:
        stmt = stmt.where(predictions.c.model_name == model_name)
    if model_version is not None:
        stmt = stmt.where(predictions.c.model_version == model_version)
    return stmt


def _sqlite_path(url: URL) -> Path | None:
    database = url.database or ""
    if database.startswith("file:"):
        return Path(unquote(urlsplit(database).path))
    return Path(database) if database else None


def _disk_full(database: Path) -> str | None:
    """Why the filesystem holding ``database`` is too full for the log to write (less than
    :data:`MIN_FREE_BYTES` available), or None."""
    try:
        found = os.statvfs(database.parent)
    except OSError:
        return None  # the write probe that follows says what is wrong
    free = found.f_bavail * found.f_frsize
    if free >= MIN_FREE_BYTES:
        return None
    return (
        f"disk full: {free / 2**20:.1f} MiB free on the filesystem of {database} "
        f"(at least {MIN_FREE_BYTES // 2**20} MiB needed)"
    )


class PredictionLog:
    """The durable decision log, safe from many threads and several processes.

    Create one per process (it owns the connection pool) and :meth:`close` it at shutdown.
    """

    def __init__(
        self,
        url: str | URL,
        *,
        create: bool = True,
        timeout_s: float = 10.0,
        busy_timeout_ms: int = 5000,
        pool_size: int = 8,
        max_overflow: int = 32,
        audit_key: AuditKey | Literal["settings"] | None = "settings",
        checkpoint_rows: int | None = None,
        checkpoint_seconds: float | None = None,
        pii_cipher: PiiCipher | Literal["settings"] | None = "settings",
    ) -> None:
        """Open the log at ``url`` and, with ``create``, upgrade its schema if it is behind.

        ``timeout_s`` bounds how long a write waits for the database (locks, retries) before it
        raises; the pool (``pool_size`` + ``max_overflow`` = 40 by default) covers the service's
        decision threads and FastAPI's for its synchronous endpoints (a group commit writes on
        one connection for many decisions).

        ``audit_key`` signs this writer's checkpoints (default: the settings' key, if any),
        every ``checkpoint_rows`` rows or ``checkpoint_seconds`` (default: the settings').
        ``pii_cipher`` seals the records' personal data (default: the settings' key, if any);
        without one, a record that holds personal data is refused."""
        self._url = normalise_url(url, "the prediction log", "decision")
        self._backend = self._url.get_backend_name()
        self._timeout_s = float(timeout_s)
        self._busy_timeout_ms = int(busy_timeout_ms)
        self._pool_size = pool_size
        self._max_overflow = max_overflow
        self._sqlite_path = _sqlite_path(self._url) if self._is_sqlite else None
        self._file_identity: tuple[int, int] | None = None
        self._closed = False
        self._configure_chain(audit_key, checkpoint_rows, checkpoint_seconds)
        if pii_cipher == "settings":
            pii_cipher = PiiCipher.from_settings(get_settings())
        self._pii: PiiCipher | None = pii_cipher
        self._engine = self._make_engine()
        self._start_process_state()
        if create:
            self._create_schema()

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def for_home(cls, home: Path, **options: Any) -> PredictionLog:
        """The default SQLite log, ``home/predictions.db`` (the directory is created)."""
        home = Path(home)
        try:
            home.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PredictionLogError(f"cannot create {home}: {exc.strerror}") from exc
        return cls(URL.create("sqlite", database=str(home / "predictions.db")), **options)

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> PredictionLog:
        """``CREDITOPS_DATABASE_URL`` when set, else the SQLite log under ``CREDITOPS_HOME``."""
        # These settings, not the process's: a service may be built for another store.
        options.setdefault("pii_cipher", PiiCipher.from_settings(settings))
        options.setdefault("audit_key", AuditKey.from_settings(settings))
        options.setdefault("checkpoint_rows", settings.audit_checkpoint_rows)
        options.setdefault("checkpoint_seconds", settings.audit_checkpoint_seconds)
        if settings.database_url:
            return cls(settings.database_url, **options)
        return cls.for_home(settings.home, **options)

    @property
    def _is_sqlite(self) -> bool:
        return self._backend == "sqlite"

    @property
    def url(self) -> str:
        """The database URL with any password hidden (safe to log)."""
        return self._url.render_as_string(hide_password=True)

    def _make_engine(self) -> Engine:
        return create_store_engine(
            self._url,
            timeout_s=self._timeout_s,
            busy_timeout_ms=self._busy_timeout_ms,
            pool_size=self._pool_size,
            max_overflow=self._max_overflow,
            on_sqlite_connect=self._on_sqlite_connect,
        )

    def _on_sqlite_connect(self, dbapi_connection: Any) -> None:
        dbapi_connection.execute("PRAGMA foreign_keys = ON")
        if self._file_identity is None and self._sqlite_path is not None:
            try:
                stat = self._sqlite_path.stat()
            except OSError:
                return
            self._file_identity = (stat.st_dev, stat.st_ino)

    def _start_process_state(self) -> None:
        """Locks and the group committer belong to one process; rebuilt after a fork."""
        self._pid = os.getpid()
        # SQLite allows one writer at a time: an in-process lock lets threads queue without
        # SQLite's sleeping busy handler; other processes are handled by busy_timeout.
        old = getattr(self, "_write_lock", None)
        if old is not None:
            old.close()  # after a fork: the parent's lock file description is not ours
        self._write_lock = WriterLock(self._sqlite_path) if self._is_sqlite else None
        self._group = GroupCommit(self._insert_rows, _MAX_GROUP_ROWS)
        self._start_chain()  # a forked child writes a chain of its own

    def _check_process(self) -> None:
        if self._closed:
            raise PredictionLogError("the prediction log is closed")
        if os.getpid() != self._pid:
            # Connections inherited through fork() belong to the parent: leave them to it.
            self._engine.dispose(close=False)
            self._start_process_state()

    def _create_schema(self) -> None:
        try:
            ensure_schema(self._engine, timeout_s=self._timeout_s)
        except SchemaError as exc:
            raise PredictionLogError(f"cannot open the prediction log {self.url}: {exc}") from exc

    # -- transactions -------------------------------------------------------------------------

    def _run(self, work: Callable[[Connection], _T], *, write: bool) -> _T:
        """Run ``work`` in one transaction, again while the database is merely busy; writes
        queue on the writer lock first. Database failures become :class:`PredictionLogError`;
        the caller's own exceptions (unknown id, conflict) pass through unchanged."""
        return run_transaction(
            self._engine,
            work,
            write=write,
            timeout_s=self._timeout_s,
            store="prediction log",
            failure=PredictionLogError,
            rejected=RecordRejectedError,
            lock=self._write_lock if write else None,
        )

    def read(self, work: Callable[[Connection], _T]) -> _T:
        """Run a read-only query function in one transaction (the dashboard's aggregates and
        searches live in their own modules and run through here)."""
        self._check_process()
        return self._run(work, write=False)

    def read_chunks(self, stmt: sa.Select[Any], *, chunk_rows: int) -> Iterator[list[Any]]:
        """The rows of ``stmt`` in lists of at most ``chunk_rows``, over one connection and one
        read transaction (one consistent snapshot), with a server-side cursor where the backend
        has one: a read of millions of decisions holds one chunk at a time, never all of them
        (the monitor reads its windows this way, :mod:`creditops.store.decision_chunks`)."""
        self._check_process()
        try:
            with self._engine.connect() as conn:
                result = conn.execution_options(stream_results=True, yield_per=chunk_rows).execute(
                    stmt
                )
                for part in result.partitions(chunk_rows):
                    yield list(part)
        except DBAPIError as exc:
            raise PredictionLogError(f"cannot read the prediction log: {exc.orig}") from exc
        except SQLAlchemyError as exc:
            raise PredictionLogError(f"cannot read the prediction log: {exc}") from exc

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    # -- the hash chain (creditops.store.chain, creditops.store.checkpoints) -----------------

    def _configure_chain(
        self,
        audit_key: AuditKey | Literal["settings"] | None,
        checkpoint_rows: int | None,
        checkpoint_seconds: float | None,
    ) -> None:
        if audit_key == "settings" or checkpoint_rows is None or checkpoint_seconds is None:
            settings = get_settings()
            if audit_key == "settings":
                audit_key = AuditKey.from_settings(settings)
            if checkpoint_rows is None:
                checkpoint_rows = settings.audit_checkpoint_rows
            if checkpoint_seconds is None:
                checkpoint_seconds = settings.audit_checkpoint_seconds
        self._audit_key: AuditKey | None = audit_key
        self._checkpoint_rows = max(1, int(checkpoint_rows))
        self._checkpoint_seconds = float(checkpoint_seconds)

    def _start_chain(self) -> None:
        self._chain = ChainWriter()
        self._signed_seq = 0  # this chain's head in the newest checkpoint
        self._signed_at = time.monotonic()

    def _checkpoint_due(self, seq: int) -> CheckpointKind | None:
        """Which checkpoint the transaction that takes the chain to ``seq`` writes, if any."""
        if self._audit_key is None:
            return None
        if not self._chain.started:
            return "start"  # announces the chain, atomically with its first rows
        if seq - self._signed_seq >= self._checkpoint_rows:
            return "periodic"
        if time.monotonic() - self._signed_at >= self._checkpoint_seconds:
            return "periodic"
        return None

    def _integrity_error(self, rows: list[dict[str, Any]]) -> PredictionLogError:
        error = self._duplicate_error(rows)
        if not isinstance(error, DuplicatePredictionError) and self._places_taken(rows):
            # The chain's next place is taken by a row written past this writer: sign where
            # the chain really ends, and continue on a new one.
            logger.error(
                "decision log chain %s: seq %d is taken by a row this writer did not write; "
                "continuing on a new chain (run `creditops audit verify`)",
                self._chain.chain_id,
                self._chain.last[0] + 1,
            )
            self._close_checkpoint()
            self._start_chain()
            return _PlaceTakenError(str(error))
        return error

    def _places_taken(self, rows: list[dict[str, Any]]) -> bool:
        chain, first, last = rows[0]["chain"], rows[0]["seq"], rows[-1]["seq"]
        stmt = sa.select(predictions.c.id).where(
            predictions.c.chain == chain, predictions.c.seq.between(first, last)
        )
        try:
            found = self._run(lambda conn: conn.execute(stmt.limit(1)).first(), write=False)
        except PredictionLogError:
            return False
        return found is not None

    def _close_checkpoint(self) -> None:
        """Sign this writer's head as its chain's last (the log closes, or the chain's next
        place was taken): nothing it wrote is left unsigned, and a row found after it was
        written past the log."""
        key, chain = self._audit_key, self._chain
        seq, head = chain.last
        if key is None or not chain.started or os.getpid() != self._pid:
            return
        try:
            self._run(
                lambda conn: write_checkpoint(
                    conn, key, "close", {chain.chain_id: (seq, head)}, writer=chain.chain_id
                ),
                write=True,
            )
        except PredictionLogError as exc:
            logger.warning(
                "decision log chain %s: closing checkpoint not written: %s", chain.chain_id, exc
            )
        else:
            self._signed_seq = seq

    @property
    def chain_id(self) -> str:
        """This writer's current chain (a new one after a fork or an uncertain write)."""
        return self._chain.chain_id

    def transact(self, work: Callable[[Connection], _T]) -> _T:
        """Run ``work`` in one write transaction under the log's write lock, retried while the
        database is busy (the checkpoint and retention commands write through here)."""
        self._check_process()
        return self._run(work, write=True)

    # -- writing decisions --------------------------------------------------------------------

    def _insert_rows(self, rows: list[dict[str, Any]]) -> None:
        """One group commit: the rows chained after this writer's head, inserted, with the
        chain's registration (its first rows) and a signed checkpoint when one is due, in one
        transaction; the head moves only once it committed. When the chain's next place was
        taken by a row written past this writer, the rows go to a new chain instead."""
        try:
            self._insert_chained(rows)
        except _PlaceTakenError:
            self._insert_chained(rows)

    def _insert_chained(self, rows: list[dict[str, Any]]) -> None:
        chain = self._chain
        seq, head = chain.stamp(rows)
        kind = self._checkpoint_due(seq)
        register = not chain.started
        key = self._audit_key

        def work(conn: Connection) -> None:
            if register:
                conn.execute(decision_chains_table.insert(), [chain.registration()])
            bulk_insert(conn, predictions, rows)
            if kind is not None and key is not None:
                heads = {chain.chain_id: (seq, head)}
                write_checkpoint(conn, key, kind, heads, writer=chain.chain_id)

        if register and key is None:
            logger.warning(
                "decision log chain %s: no audit key (CREDITOPS_AUDIT_KEY or "
                "CREDITOPS_AUDIT_KEY_FILE), so no checkpoint is signed: decisions are chained, "
                "but a truncated or recomputed chain cannot be detected",
                chain.chain_id,
            )
        try:
            self._run(work, write=True)
        except PredictionLogError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                raise self._integrity_error(rows) from exc.__cause__
            if not isinstance(exc, RecordRejectedError):
                # Whether it committed may be unknown (say the connection dropped at COMMIT):
                # the head cannot be trusted, so the next rows start a new chain.
                self._start_chain()
            raise
        chain.advance(seq, head)
        if kind is not None:
            self._signed_seq, self._signed_at = seq, time.monotonic()

    def _duplicate_error(self, rows: list[dict[str, Any]]) -> PredictionLogError:
        ids = [row["id"] for row in rows]
        repeated = [key for key, n in Counter(ids).items() if n > 1]
        try:
            existing = self._existing_ids(ids)
        except PredictionLogError:
            existing = []
        duplicates = sorted(set(repeated) | set(existing))
        if not duplicates:  # an integrity error that is not about ids
            return RecordRejectedError("prediction log refused the records (integrity constraint)")
        return DuplicatePredictionError(
            f"{len(duplicates)} prediction_id(s) already logged or repeated: "
            + ", ".join(duplicates[:5]),
            ids=duplicates,
        )

    def _existing_ids(self, ids: Sequence[str]) -> list[str]:
        def work(conn: Connection) -> list[str]:
            found: list[str] = []
            for start in range(0, len(ids), _IN_CHUNK):
                chunk = list(ids[start : start + _IN_CHUNK])
                stmt = sa.select(predictions.c.id).where(predictions.c.id.in_(chunk))
                found.extend(conn.execute(stmt).scalars())
            return found

        return self._run(work, write=False)

    def write(self, record: PredictionRecord) -> None:
        """Log one decision durably; returns only once it is committed and flushed to disk.

        Raises :class:`PredictionLogError` (nothing acknowledged) when it cannot.
        """
        self._check_process()
        self._group.submit([_row(record, self._pii)])

    def write_many(self, records: Sequence[PredictionRecord]) -> None:
        """Log a batch atomically: every record or none (a duplicate id writes nothing)."""
        self._check_process()
        rows = [_row(record, self._pii) for record in records]
        if rows:
            self._group.submit(rows)

    def write_rows(self, rows: Sequence[dict[str, Any]]) -> None:
        """Log a batch atomically from rows already in the table's shape (the keys
        :class:`PredictionRecord` maps to), for producers that check their values themselves
        and build no record per decision (:mod:`creditops.serving.bulk`)."""
        self._check_process()
        if rows:
            self._group.submit(list(rows))

    # -- reading decisions --------------------------------------------------------------------

    def get(self, prediction_id: UUID | str) -> PredictionRecord | None:
        """The logged decision with this id, or None."""
        self._check_process()
        key = prediction_key(prediction_id)

        def work(conn: Connection) -> Any:
            # The record's columns: the chain's are the audit's business (audit verify), the
            # personal data a reader's (personal_data).
            columns = [
                c for c in predictions.columns if c.name not in CHAIN_COLUMNS and c.name != "pii"
            ]
            stmt = sa.select(*columns).where(predictions.c.id == key)
            return conn.execute(stmt).mappings().first()

        row = self._run(work, write=False)
        if row is None:
            return None
        values = dict(row)
        values["prediction_id"] = values.pop("id")
        return PredictionRecord.model_validate(values)

    @property
    def seals_personal_data(self) -> bool:
        """Whether this log has a key to store personal data with."""
        return self._pii is not None

    def seal_personal_data(self, values: dict[str, Any]) -> str:
        """``values`` sealed as this log stores them (for writers that build rows themselves)."""
        if self._pii is None:
            raise PersonalDataError(
                "no personal-data key is configured (CREDITOPS_PII_KEY or CREDITOPS_PII_KEY_FILE)"
            )
        return self._pii.seal(values)

    def personal_data(self, prediction_id: UUID | str) -> dict[str, Any] | None:
        """The personal data logged with a decision, opened; None when it carried none (or is
        unknown). For a reader allowed to see it: the caller checks that. Raises
        :class:`PersonalDataError` when no key is configured or none opens it."""
        self._check_process()
        key = prediction_key(prediction_id)
        token = self._run(
            lambda conn: conn.execute(
                sa.select(predictions.c.pii).where(predictions.c.id == key)
            ).scalar_one_or_none(),
            write=False,
        )
        if token is None:
            return None
        if self._pii is None:
            raise PersonalDataError(
                "this decision holds personal data, and no personal-data key is configured to "
                "open it (CREDITOPS_PII_KEY or CREDITOPS_PII_KEY_FILE)"
            )
        return self._pii.open(token)

    def get_outcome(self, prediction_id: UUID | str) -> dict[str, Any] | None:
        """``{"outcome", "observed_at", "recorded_at"}`` for this prediction, or None."""
        self._check_process()
        key = prediction_key(prediction_id)
        return self._run(lambda conn: outcome_of(conn, key), write=False)

    def count(self) -> int:
        """How many decisions are logged."""
        self._check_process()
        stmt = sa.select(sa.func.count()).select_from(predictions)
        return int(self._run(lambda conn: conn.execute(stmt).scalar_one(), write=False))

    # -- outcomes -----------------------------------------------------------------------------

    def record_outcome(
        self,
        prediction_id: UUID | str,
        outcome: int | bool,
        *,
        observed_at: datetime | None = None,
        recorded_by: str | None = None,
    ) -> OutcomeStatus:
        """Record the observed outcome (1 = default, 0 = repaid) of a logged decision.

        Idempotent: sending the same outcome again answers ``"unchanged"`` (the first
        ``observed_at`` is kept). A different outcome raises :class:`OutcomeConflictError`, an id
        never logged :class:`UnknownPredictionError`.
        """
        return self.record_outcomes(
            [(prediction_id, outcome, observed_at)], recorded_by=recorded_by
        )[0]

    def record_outcomes(
        self, items: Iterable[OutcomeUpdate], *, recorded_by: str | None = None
    ) -> list[OutcomeStatus]:
        """Record many outcomes atomically (all or none), one status per item in order;
        ``recorded_by``: the name of the key that sent them (:mod:`creditops.store.outcomes`)."""
        self._check_process()
        updates = outcome_updates(items)
        if not updates:
            return []
        return self._run(lambda conn: record_outcomes_in(conn, updates, recorded_by), write=True)

    # -- monitoring ---------------------------------------------------------------------------

    def window(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        last_n: int | None = None,
        with_outcomes_only: bool = False,
        model_name: str | None = None,
        model_version: str | None = None,
    ) -> pd.DataFrame:
        """Decisions for monitoring, oldest first: one row each, features flattened.

        ``since`` is inclusive, ``until`` exclusive (both time-zone aware); ``last_n`` keeps the
        most recent n of those. Columns: the decision's own fields (``prediction_id``,
        ``created_at`` (UTC), ``model_name``, ``model_version``, ``probability``, ``points``,
        ``grade``, ``decision``, ``latency_ms``, ``imputed`` and ``reasons`` as lists),
        ``outcome`` (nullable Int64, 1 = default), ``observed_at``, ``recorded_at``, then one
        column per feature and per protected attribute under its own name. A name that clashes
        with one before it gets a ``feature.`` / ``protected.`` prefix; ``frame.attrs``
        ``["feature_columns"]`` and ``["protected_columns"]`` map each name to its column.
        """

        self._check_process()
        _aware(since, "since")
        _aware(until, "until")
        if last_n is not None and last_n < 0:
            raise ValueError("last_n must be >= 0")
        # Every column but the sealed personal data, which never leaves the log as a column.
        stmt = sa.select(
            *(column for column in predictions.columns if column.name != "pii"),
            outcomes.c.outcome,
            outcomes.c.observed_at,
            outcomes.c.recorded_at,
        )
        join = predictions.join if with_outcomes_only else predictions.outerjoin
        stmt = stmt.select_from(join(outcomes, outcomes.c.prediction_id == predictions.c.id))
        stmt = window_filter(stmt, since, until, model_name, model_version)
        if last_n is not None:
            stmt = stmt.order_by(predictions.c.created_at.desc(), predictions.c.id.desc())
            stmt = stmt.limit(last_n)
        else:
            stmt = stmt.order_by(predictions.c.created_at, predictions.c.id)
        rows = self._run(lambda conn: conn.execute(stmt).mappings().all(), write=False)
        if last_n is not None:
            rows = rows[::-1]

        return decisions_frame(rows)

    def export(
        self,
        path: Path | str,
        *,
        fmt: Literal["csv", "parquet"] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> int:
        """Write the decisions with their outcomes (:meth:`window`'s columns) to a CSV or
        Parquet file; returns the number of rows.

        ``imputed`` and ``reasons`` are written as JSON text so both formats hold the same
        thing; floats are written in their shortest exact form, so they read back bit for bit.
        The file appears complete or not at all (written beside it, then renamed).
        """

        return write_decisions(self.window(since=since, until=until), path, fmt)

    # -- health -------------------------------------------------------------------------------

    def is_writable(self, *, timeout_s: float = 1.0) -> tuple[bool, str]:
        """Whether a decision could be logged now, and why not (for ``GET /ready``).

        Takes the write lock and inserts a probe row, then rolls back: it fails for a read-only
        database, missing permissions, a full lock, an unreachable server or a standby. On
        SQLite it also fails when the database file was removed or replaced since it was
        opened (writes would go to a file nobody will ever read), and when its filesystem has
        less than :data:`MIN_FREE_BYTES` free (the probe, rolled back, writes nothing, so it
        would pass on a full disk while every commit fails).
        """
        try:
            self._check_process()
        except PredictionLogError as exc:
            return False, str(exc)
        if self._is_sqlite and self._sqlite_path is not None:
            try:
                stat = self._sqlite_path.stat()
            except OSError as exc:
                return False, f"database file {self._sqlite_path} is missing: {exc.strerror}"
            if self._file_identity is not None and self._file_identity != (
                stat.st_dev,
                stat.st_ino,
            ):
                return False, f"database file {self._sqlite_path} was replaced after opening"
            full = _disk_full(self._sqlite_path)
            if full is not None:
                return False, full
        lock = self._write_lock
        if lock is not None and not lock.acquire(timeout=timeout_s, wait_for_processes=False):
            return False, "the prediction log's write lock is held too long"
        try:
            probe = {
                **_row(
                    PredictionRecord(
                        model_name="probe",
                        model_version="0",
                        features={},
                        probability=0.0,
                        points=0,
                        decision="refer",
                        latency_ms=0.0,
                    ),
                    None,
                )
            }
            with self._engine.connect() as conn:
                if self._is_sqlite:
                    # Wait for other processes' writes for timeout_s at most, not busy_timeout.
                    raw = conn.connection.dbapi_connection
                    raw.execute(f"PRAGMA busy_timeout = {max(0, int(timeout_s * 1000))}")
                    conn.execution_options(creditops_begin="IMMEDIATE")
                try:
                    transaction = conn.begin()
                    try:
                        conn.execute(predictions.insert(), [probe])
                    finally:
                        transaction.rollback()
                finally:
                    if self._is_sqlite:
                        raw.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
        except DBAPIError as exc:
            return False, f"not writable: {exc.orig}"
        except SQLAlchemyError as exc:
            return False, f"not writable: {exc}"
        finally:
            if lock is not None:
                lock.release()
        return True, "ok"

    def describe(self) -> dict[str, Any]:
        """Backend, URL (password hidden) and, on SQLite, the durability settings in force."""
        self._check_process()
        info: dict[str, Any] = {"backend": self._backend, "url": self.url}
        if self._is_sqlite:
            with self._engine.connect() as conn:
                raw = conn.connection.dbapi_connection
                info["journal_mode"] = raw.execute("PRAGMA journal_mode").fetchone()[0]
                level = raw.execute("PRAGMA synchronous").fetchone()[0]
                info["synchronous"] = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}[level]
                info["busy_timeout_ms"] = raw.execute("PRAGMA busy_timeout").fetchone()[0]
                info["foreign_keys"] = bool(raw.execute("PRAGMA foreign_keys").fetchone()[0])
        else:
            with self._engine.connect() as conn:
                info["synchronous_commit"] = conn.exec_driver_sql(
                    "SHOW synchronous_commit"
                ).scalar_one()
        return info

    def close(self) -> None:
        """Close every pooled connection; the log cannot be used afterwards."""
        if not self._closed:
            self._close_checkpoint()
            self._closed = True
            self._engine.dispose()
            if self._write_lock is not None:
                self._write_lock.close()

    def __enter__(self) -> PredictionLog:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PredictionLog({self.url!r})"
