"""Aggregates over the decision log for the dashboard, computed by the database: a page over a
log of millions of decisions reads a few dozen rows, never the log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.engine import Connection

from creditops.store.predlog import PredictionLog
from creditops.store.schema import outcomes, predictions

__all__ = ["HourlyDecisions", "LogTotals", "hourly_decisions", "log_totals"]


class HourlyDecisions(BaseModel):
    """Decisions made in one hour (UTC) and their mean probability of default."""

    hour: datetime
    approve: int = 0
    refer: int = 0
    decline: int = 0
    mean_probability: float | None = None

    @property
    def total(self) -> int:
        return self.approve + self.refer + self.decline


class LogTotals(BaseModel):
    decisions: int
    with_outcome: int
    first_at: datetime | None
    last_at: datetime | None


def _hour_bucket(dialect: str) -> Any:
    if dialect == "postgresql":
        return sa.func.date_trunc("hour", predictions.c.created_at)
    # SQLite keeps naive UTC text ("YYYY-MM-DD HH:MM:SS.ffffff"): the first 13 characters are
    # the hour.
    return sa.func.substr(predictions.c.created_at, 1, 13)


def _as_hour(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.strptime(str(value), "%Y-%m-%d %H").replace(tzinfo=UTC)


def hourly_decisions(
    log: PredictionLog, *, hours: int = 24, now: datetime | None = None
) -> list[HourlyDecisions]:
    """One row per hour of the last ``hours`` (oldest first, empty hours included)."""
    end = (now or datetime.now(UTC)).astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(hours=hours - 1)
    bucket = _hour_bucket(log.dialect).label("hour")
    query = (
        sa.select(
            bucket,
            predictions.c.decision,
            sa.func.count().label("n"),
            sa.func.sum(predictions.c.probability).label("p"),
        )
        .where(predictions.c.created_at >= start)
        .group_by(bucket, predictions.c.decision)
    )

    def work(conn: Connection) -> list[Any]:
        return list(conn.execute(query))

    starts = [start + timedelta(hours=i) for i in range(hours)]
    rows = {hour: HourlyDecisions(hour=hour) for hour in starts}
    sums: dict[datetime, float] = {}
    for hour, decision, n, p in log.read(work):
        row = rows.get(_as_hour(hour))
        if row is None:  # a clock ahead of this one: not part of the window
            continue
        setattr(row, decision, getattr(row, decision) + int(n))
        sums[row.hour] = sums.get(row.hour, 0.0) + float(p or 0.0)
    for hour, total in sums.items():
        row = rows[hour]
        row.mean_probability = total / row.total if row.total else None
    return list(rows.values())


def log_totals(log: PredictionLog) -> LogTotals:
    """How many decisions the log holds, how many have an outcome, and its time span."""

    def work(conn: Connection) -> LogTotals:
        count, first, last = conn.execute(
            sa.select(
                sa.func.count(),
                sa.func.min(predictions.c.created_at),
                sa.func.max(predictions.c.created_at),
            )
        ).one()
        labelled = conn.execute(sa.select(sa.func.count()).select_from(outcomes)).scalar_one()
        return LogTotals(decisions=count, with_outcome=labelled, first_at=first, last_at=last)

    return log.read(work)
