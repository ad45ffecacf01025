"""What every creditops table store shares: URL checks, aware UTC timestamps, SQLite
transaction control and the PostgreSQL errors worth retrying. The decision log, the alert store
and the retraining audit all live in the database ``CREDITOPS_DATABASE_URL`` names."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, make_url

from creditops.exceptions import ConfigurationError

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
