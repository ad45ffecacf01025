"""Observed outcomes of logged decisions (1 = default, 0 = repaid), at most one per decision.

The statements run inside a transaction of the decision log
(:meth:`~creditops.store.predlog.PredictionLog.record_outcomes`), which gives them its retries,
its write lock on SQLite and its process checks; what is here is what an outcome is and how it
is written: refused for a decision never logged, idempotent for the same outcome, refused when
it contradicts one already recorded.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from creditops.exceptions import OutcomeConflictError, UnknownPredictionError
from creditops.store.database import prediction_key
from creditops.store.schema import outcomes, predictions

__all__ = ["OutcomeStatus", "OutcomeUpdate", "outcome_of", "outcome_updates", "record_outcomes_in"]

OutcomeStatus = Literal["recorded", "unchanged"]
#: ``(prediction_id, outcome)`` or ``(prediction_id, outcome, observed_at)``; outcome 1 = default.
OutcomeUpdate = tuple[UUID | str, int | bool] | tuple[UUID | str, int | bool, datetime | None]

# Bound parameters per IN (...) list: far below SQLite's and PostgreSQL's limits.
_IN_CHUNK = 500
# PostgreSQL advisory locks of outcomes being recorded: (this space, hashtext(prediction id)).
_LOCK_SPACE = 0x6F757463  # "outc"
_LOCKS = sa.text(
    "SELECT pg_advisory_xact_lock(CAST(:space AS integer), hashtext(k)) "
    "FROM unnest(CAST(:ids AS text[])) AS k"
)


def _outcome_value(value: Any) -> int:
    if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
        return int(value)
    raise ValueError("outcome must be 1 (default) or 0 (repaid)")


def outcome_updates(items: Iterable[OutcomeUpdate]) -> list[tuple[str, int, datetime | None]]:
    """The updates checked: a UUID, 1 or 0, and a time-zone aware ``observed_at`` or None
    (``ValueError`` naming what is wrong)."""
    updates: list[tuple[str, int, datetime | None]] = []
    for item in items:
        prediction_id, outcome, *rest = item
        observed_at = rest[0] if rest else None
        if observed_at is not None and observed_at.tzinfo is None:
            raise ValueError("observed_at must carry a time zone")
        updates.append((prediction_key(prediction_id), _outcome_value(outcome), observed_at))
    return updates


def record_outcomes_in(
    conn: Connection,
    updates: list[tuple[str, int, datetime | None]],
    recorded_by: str | None,
) -> list[OutcomeStatus]:
    """Record checked updates in ``conn``'s transaction, all or none; one status per update."""
    ids = sorted({key for key, _, _ in updates})
    known: dict[str, datetime] = {}  # id -> when it was decided
    recorded: dict[str, int] = {}
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = ids[start : start + _IN_CHUNK]
        # On PostgreSQL an advisory lock per decision, taken in id order, serialises concurrent
        # feedback for the same loan (not FOR UPDATE: that needs UPDATE rights on the
        # decisions, which the service's role does not hold); SQLite is already serialised by
        # BEGIN IMMEDIATE.
        if conn.dialect.name == "postgresql":
            conn.execute(_LOCKS, {"space": _LOCK_SPACE, "ids": chunk})
        decided = (
            sa.select(predictions.c.id, predictions.c.created_at)
            .where(predictions.c.id.in_(chunk))
            .order_by(predictions.c.id)
        )
        known.update({key: created for key, created in conn.execute(decided)})
        stmt = sa.select(outcomes.c.prediction_id, outcomes.c.outcome).where(
            outcomes.c.prediction_id.in_(chunk)
        )
        recorded.update({key: int(value) for key, value in conn.execute(stmt)})
    unknown = [key for key in ids if key not in known]
    if unknown:
        raise UnknownPredictionError(
            f"{len(unknown)} unknown prediction_id(s): " + ", ".join(unknown[:5]), ids=unknown
        )
    now = datetime.now(UTC)
    statuses: list[OutcomeStatus] = []
    rows: list[dict[str, Any]] = []
    for key, value, observed_at in updates:
        if key in recorded:
            if recorded[key] != value:
                raise OutcomeConflictError(
                    f"prediction {key} already has outcome {recorded[key]}, not {value}",
                    prediction_id=key,
                    recorded=recorded[key],
                    requested=value,
                )
            statuses.append("unchanged")
            continue
        recorded[key] = value
        rows.append(
            {
                "prediction_id": key,
                "outcome": value,
                "observed_at": observed_at,
                "recorded_at": now,
                "decided_at": known[key],
                "recorded_by": recorded_by,
            }
        )
        statuses.append("recorded")
    if rows:
        conn.execute(outcomes.insert(), rows)
    return statuses


def outcome_of(conn: Connection, key: str) -> dict[str, Any] | None:
    """``{"outcome", "observed_at", "recorded_at"}`` of one decision, or None."""
    stmt = sa.select(outcomes.c.outcome, outcomes.c.observed_at, outcomes.c.recorded_at)
    row = conn.execute(stmt.where(outcomes.c.prediction_id == key)).mappings().first()
    return None if row is None else dict(row)
