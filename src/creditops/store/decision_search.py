"""Searching the decision log, newest first, a page at a time.

Pages are keyset-paginated on ``(created_at, id)``: the next page starts strictly after the last
row shown, so page 1,000 of a log of millions costs what page 1 costs (an OFFSET would read and
throw away every row before it). Filters use the indexes of revision 0002.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from uuid import UUID

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy.engine import Connection

from creditops.store.predlog import PredictionLog
from creditops.store.schema import outcomes, predictions

__all__ = ["DecisionFilter", "DecisionPage", "DecisionRow", "search_decisions"]

_CURSOR_SEPARATOR = "|"


class DecisionFilter(BaseModel):
    """What to look for; every field optional. Dates are whole UTC days, both inclusive."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    since: date | None = None
    until: date | None = None
    decision: Literal["approve", "refer", "decline"] | None = None
    model_version: str | None = Field(default=None, pattern=r"^[0-9]{1,18}$")
    prediction_id: UUID | None = None
    outcome: Literal["known", "unknown"] | None = None

    @model_validator(mode="after")
    def _ordered(self) -> DecisionFilter:
        if self.since and self.until and self.until < self.since:
            raise ValueError(f"until: {self.until} is before since ({self.since})")
        return self


class DecisionRow(BaseModel):
    prediction_id: str
    created_at: datetime
    model_version: str
    decision: str
    probability: float
    points: int
    grade: str | None
    outcome: int | None


class DecisionPage(BaseModel):
    rows: list[DecisionRow]
    next_cursor: str | None  # pass as ``after`` for the next page; None on the last one


def _cursor(row: DecisionRow) -> str:
    return f"{row.created_at.isoformat()}{_CURSOR_SEPARATOR}{row.prediction_id}"


def _parse_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        stamp, identifier = cursor.split(_CURSOR_SEPARATOR, 1)
        created = datetime.fromisoformat(stamp)
        UUID(identifier)
    except ValueError:
        raise ValueError("after: not a page cursor of this search") from None
    if created.tzinfo is None:
        raise ValueError("after: not a page cursor of this search")
    return created.astimezone(UTC), identifier


def _conditions(spec: DecisionFilter, when: Any) -> list[Any]:
    where: list[Any] = []
    if spec.since is not None:
        where.append(when >= datetime.combine(spec.since, time(), UTC))
    if spec.until is not None:
        where.append(when < datetime.combine(spec.until + timedelta(days=1), time(), UTC))
    if spec.decision is not None:
        where.append(predictions.c.decision == spec.decision)
    if spec.model_version is not None:
        where.append(predictions.c.model_version == spec.model_version)
    if spec.prediction_id is not None:
        where.append(predictions.c.id == str(spec.prediction_id))
    if spec.outcome == "unknown":
        where.append(outcomes.c.outcome.is_(None))
    return where


def search_decisions(
    log: PredictionLog, spec: DecisionFilter, *, after: str | None = None, limit: int = 50
) -> DecisionPage:
    """One page of the decisions matching ``spec``, newest first, starting after the cursor
    ``after`` (from the previous page). Raises ``ValueError`` for a forged cursor."""
    if not 1 <= limit <= 500:
        raise ValueError("limit: between 1 and 500")
    # "Outcome known" walks the outcomes by decision time (the newest decisions have no
    # outcome yet, so walking the decisions would pass months of them first); otherwise the
    # decisions are walked. Both orders are the same: (decision time, prediction id).
    known = spec.outcome == "known"
    when = outcomes.c.decided_at if known else predictions.c.created_at
    key = outcomes.c.prediction_id if known else predictions.c.id
    where = _conditions(spec, when)
    if after:
        created, identifier = _parse_cursor(after)
        # The first condition alone is what the index can seek to; the second breaks ties
        # between decisions logged in the same microsecond.
        where.append(when <= created)
        where.append(sa.or_(when < created, key < identifier))
    query = (
        sa.select(
            predictions.c.id,
            predictions.c.created_at,
            predictions.c.model_version,
            predictions.c.decision,
            predictions.c.probability,
            predictions.c.points,
            predictions.c.grade,
            outcomes.c.outcome,
        )
        .select_from(
            outcomes.join(predictions, outcomes.c.prediction_id == predictions.c.id)
            if known
            else predictions.outerjoin(outcomes, outcomes.c.prediction_id == predictions.c.id)
        )
        .where(*where)
        .order_by(when.desc(), key.desc())
        .limit(limit + 1)  # one more than shown: is there a next page?
    )

    def work(conn: Connection) -> list[Any]:
        return list(conn.execute(query))

    rows = [
        DecisionRow(
            prediction_id=r.id,
            created_at=r.created_at,
            model_version=r.model_version,
            decision=r.decision,
            probability=r.probability,
            points=r.points,
            grade=r.grade,
            outcome=r.outcome,
        )
        for r in log.read(work)
    ]
    more = len(rows) > limit
    rows = rows[:limit]
    return DecisionPage(rows=rows, next_cursor=_cursor(rows[-1]) if more and rows else None)
