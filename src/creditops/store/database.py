"""What every creditops table store shares: URL checks, aware UTC timestamps, JSON encoding,
the engine (SQLite in WAL mode with an fsync at every commit, or PostgreSQL), transactions we
begin ourselves, and a retry while the database is merely busy. The decision log, the alert
store and the retraining audit all live in the database ``CREDITOPS_DATABASE_URL`` names, whose
tables and migrations are in :mod:`creditops.store.schema`."""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError, StatementError

from creditops.exceptions import ConfigurationError

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

#: serialization_failure, deadlock_detected: a retry of the same transaction can succeed.
PG_RETRY_STATES = frozenset({"40001", "40P01"})


def normalise_url(url: str | URL, store: str, holds: str) -> URL:
    """``url`` checked for ``store`` (e.g. "the prediction log"), which keeps ``holds`` (e.g.
    "decision"): SQLite on a file, or PostgreSQL through psycopg 3 (the driver creditops
    installs; a bare ``postgresql://`` would make SQLAlchemy look for psycopg2)."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        if parsed.get_driver_name() != "psycopg":
            parsed = parsed.set(drivername="postgresql+psycopg")
    elif backend == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or "mode=memory" in database:
            raise ConfigurationError(
                f"{store} needs a file or a server: an in-memory SQLite database would lose "
                f"every {holds} when the process ends"
            )
    else:
        raise ConfigurationError(
            f"unsupported database {backend!r} for {store}: use sqlite or postgresql"
        )
    return parsed


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend: timestamptz on PostgreSQL; naive UTC text on SQLite
    (SQLite has no time zones, and naive UTC text sorts in time order for range queries)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("datetimes must carry a time zone")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def on_sqlite_begin(conn: Connection) -> None:
    """Issue BEGIN ourselves (the sqlite3 module's lazy BEGIN is switched off on connect):
    IMMEDIATE for writes, which take the write lock up front instead of failing mid-way."""
    mode = conn.get_execution_options().get("creditops_begin", "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


def _json_default(value: Any) -> Any:
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        return item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


# allow_nan=False: NaN is not JSON, and PostgreSQL refuses it; fail here, loudly. One encoder
# for every value: json.dumps with options builds a new one per call, a third of the cost.
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, default=_json_default)


def dumps_json(value: Any) -> str:
    """JSON text of ``value`` as the stores write it (numpy scalars as numbers, NaN refused)."""
    return _ENCODER.encode(value)


def create_store_engine(
    url: URL,
    *,
    timeout_s: float,
    busy_timeout_ms: int,
    pool_size: int,
    max_overflow: int,
    on_sqlite_connect: Callable[[Any], None] | None = None,
) -> Engine:
    """The engine of a table store. On SQLite: WAL (readers never block the service's writers),
    ``synchronous=FULL`` (an acknowledged commit survives a power cut), ``busy_timeout``, and
    BEGIN issued by us (:func:`on_sqlite_begin`); ``on_sqlite_connect`` then sees each new
    DB-API connection. On PostgreSQL: a connect timeout and a ping before a pooled connection
    is reused."""
    sqlite = url.get_backend_name() == "sqlite"
    connect_args: dict[str, Any] = {}
    if sqlite:
        # The pool hands a connection to one thread at a time, so sharing is safe.
        connect_args["check_same_thread"] = False
    elif "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = max(1, round(timeout_s))
    engine = sa.create_engine(
        url,
        json_serializer=dumps_json,
        json_deserializer=json.loads,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=timeout_s,
        pool_pre_ping=not sqlite,
        connect_args=connect_args,
    )
    if sqlite:

        def connect(dbapi_connection: Any, _record: Any) -> None:
            # Take transaction control from the sqlite3 module (it would BEGIN lazily,
            # deferred): we issue BEGIN ourselves, IMMEDIATE for writes.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            try:
                # busy_timeout first: changing the journal mode may have to wait for a lock.
                cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
                mode = cursor.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    logger.warning("%s is in journal mode %s, not WAL", url.database, mode)
                cursor.execute("PRAGMA synchronous = FULL")
            finally:
                cursor.close()
            if on_sqlite_connect is not None:
                on_sqlite_connect(dbapi_connection)

        event.listen(engine, "connect", connect)
        event.listen(engine, "begin", on_sqlite_begin)
    return engine


@contextmanager
def transaction(engine: Engine, *, write: bool) -> Iterator[Connection]:
    """One transaction; on SQLite a write takes the write lock at BEGIN (IMMEDIATE)."""
    with engine.connect() as conn:
        if write and engine.dialect.name == "sqlite":
            conn.execution_options(creditops_begin="IMMEDIATE")
        with conn.begin():
            yield conn


class JSONText(str):
    """A JSON column's value already encoded by :func:`dumps_json`: :func:`bulk_insert` stores
    it as it is (writers of large batches encode their rows themselves)."""

    __slots__ = ()


def _bind(values: list[Any], process: Callable[[Any], Any]) -> list[Any]:
    """A column's values through its bind processor; an already encoded JSON text kept, and a
    value repeated from the row before (a batch's timestamp) processed once."""
    out: list[Any] = []
    last: Any = object()
    last_bound: Any = None
    for value in values:
        if type(value) is JSONText:
            out.append(str(value))
            continue
        if value is not last:
            last, last_bound = value, process(value)
        out.append(last_bound)
    return out


def bulk_insert(conn: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` (dicts with the same keys) into ``table`` within ``conn``'s transaction:
    PostgreSQL ``COPY``, SQLite one ``executemany``.

    Each value goes through its column type's own bind processing (JSON text, UTC datetimes), so
    what is stored is what an ``insert()`` would store (a :class:`JSONText` is that text
    already); what is skipped is SQLAlchemy's
    per-row statement machinery, most of the cost of logging a large batch. Driver errors
    arrive wrapped as SQLAlchemy's (``IntegrityError`` for a duplicate key), as from
    ``execute``."""
    if not rows:
        return
    dialect = conn.dialect
    columns = [column for column in table.columns if column.name in rows[0]]
    names = [column.name for column in columns]
    bound = []
    for column in columns:
        process = column.type.dialect_impl(dialect).bind_processor(dialect)
        values = [row[column.name] for row in rows]
        if process is not None:
            values = _bind(values, process)
        bound.append(values)
    values = list(zip(*bound, strict=True))
    quoted = ", ".join(dialect.identifier_preparer.quote(name) for name in names)
    target = dialect.identifier_preparer.format_table(table)
    if dialect.name == "postgresql":
        statement = f"COPY {target} ({quoted}) FROM STDIN"
        raw = conn.connection.driver_connection
        try:
            with raw.cursor() as cursor, cursor.copy(statement) as copy:
                for value in values:
                    copy.write_row(value)
        except raw.Error as error:  # the driver's own: wrapped as execute() would wrap it
            raise DBAPIError.instance(statement, None, error, type(raw).Error) from error
        return
    marks = ", ".join("?" for _ in names)
    # The table and column names are the schema's own, quoted by the dialect; every value is
    # a bound parameter.
    sql = f"INSERT INTO {target} ({quoted}) VALUES ({marks})"  # nosec B608
    conn.exec_driver_sql(sql, values)


def is_busy(exc: DBAPIError, *, sqlite: bool) -> bool:
    """Whether the same transaction may succeed if tried again: SQLite locked or busy,
    PostgreSQL serialization failure or deadlock."""
    if sqlite:
        text = str(exc.orig).lower()
        return "database is locked" in text or "database is busy" in text
    return getattr(exc.orig, "sqlstate", None) in PG_RETRY_STATES


class _TimedLock(Protocol):
    def acquire(self, timeout: float) -> bool: ...

    def release(self) -> None: ...


def run_transaction(
    engine: Engine,
    work: Callable[[Connection], _T],
    *,
    write: bool,
    timeout_s: float,
    store: str,
    failure: type[Exception],
    rejected: type[Exception],
    lock: _TimedLock | None = None,
) -> _T:
    """Run ``work`` in one transaction, again (with jittered back-off) while the database is
    merely busy, until ``timeout_s``.

    Database failures become ``failure`` and values the database or driver refuses become
    ``rejected``, both naming ``store`` (e.g. "prediction log"); exceptions of ``work`` itself
    roll the transaction back and pass through unchanged. ``lock``, when given, is held around
    each attempt (acquired within what is left of ``timeout_s``).
    """
    sqlite = engine.dialect.name == "sqlite"
    deadline = time.monotonic() + timeout_s
    pause = 0.005
    while True:
        if lock is not None and not lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise failure(f"timed out waiting for the {store}'s write lock")
        try:
            with transaction(engine, write=write) as conn:
                return work(conn)
        except DBAPIError as exc:
            if not is_busy(exc, sqlite=sqlite) or time.monotonic() + pause > deadline:
                raise failure(f"{store}: {exc.orig}") from exc
        except StatementError as exc:  # e.g. a value the JSON encoder refuses (SQLite)
            raise rejected(f"{store} refused the record: {exc.orig}") from exc
        except (ValueError, TypeError) as exc:  # the same, raised inside psycopg
            raise rejected(f"{store} refused the record: {exc}") from exc
        except SQLAlchemyError as exc:
            raise failure(f"{store}: {exc}") from exc
        finally:
            if lock is not None:
                lock.release()
        time.sleep(pause * (1.0 + random.random()))  # jitter: processes do not retry in step
        pause = min(pause * 2, 0.2)


def prediction_key(value: Any) -> str:
    """Canonical text of a prediction id (a UUID or its text); refuses anything else."""
    import uuid

    if isinstance(value, uuid.UUID):
        return str(value)
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise ValueError("prediction_id must be a UUID") from None
