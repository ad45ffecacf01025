"""The challenger's shadow decisions, in the decision log's database (table
``shadow_decisions``, revision 0009).

Each row is one live application that the champion decided (its logged decision,
``prediction_id``) scored again by the version holding the ``challenger`` alias, after the
champion's answer was sent: the challenger's probability, points, grade and decision. Nothing
a client saw depends on it. The comparison reads each shadow row beside the champion's own row
(:func:`shadow_pairs`), whose inputs and protected attributes it shares.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pandas as pd
import sqlalchemy as sa

from creditops.store.schema import predictions, shadow_decisions_table

if TYPE_CHECKING:
    from creditops.store.predlog import PredictionLog

__all__ = ["count_shadow", "shadow_pairs", "write_shadow"]

_COLUMNS = (
    "id",
    "prediction_id",
    "created_at",
    "model_version",
    "champion_version",
    "probability",
    "points",
    "grade",
    "decision",
)


def write_shadow(log: PredictionLog, rows: Sequence[dict[str, Any]]) -> None:
    """Store shadow decisions (each a dict of the table's columns) in one transaction."""
    if not rows:
        return
    unknown = set(rows[0]) - set(_COLUMNS)
    if unknown:
        raise ValueError(f"shadow decision: unknown column(s) {', '.join(sorted(unknown))}")
    log.transact(lambda conn: conn.execute(shadow_decisions_table.insert(), list(rows)))


def count_shadow(log: PredictionLog, model_version: str) -> int:
    """How many shadow decisions ``model_version`` has made."""
    t = shadow_decisions_table.c
    stmt = sa.select(sa.func.count()).where(t.model_version == str(model_version))
    return int(log.read(lambda conn: conn.execute(stmt).scalar_one()))


def shadow_pairs(
    log: PredictionLog,
    model_version: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = None,
) -> pd.DataFrame:
    """The shadow decisions of ``model_version`` beside the champion's decisions of the same
    applications: ``prediction_id``, ``created_at``, ``champion_version``,
    ``champion_probability``, ``champion_decision``, ``challenger_probability``,
    ``challenger_decision`` and ``protected`` (a dict per row), oldest first; ``limit``: the
    newest that many."""
    s, p = shadow_decisions_table.c, predictions.c
    stmt = (
        sa.select(
            s.prediction_id,
            s.created_at,
            s.champion_version,
            p.probability.label("champion_probability"),
            p.decision.label("champion_decision"),
            s.probability.label("challenger_probability"),
            s.decision.label("challenger_decision"),
            p.protected,
        )
        .select_from(shadow_decisions_table.join(predictions, p.id == s.prediction_id))
        .where(s.model_version == str(model_version))
    )
    if since is not None:
        stmt = stmt.where(s.created_at >= since)
    if until is not None:
        stmt = stmt.where(s.created_at < until)
    stmt = stmt.order_by(s.created_at.desc(), s.id)
    if limit is not None:
        stmt = stmt.limit(max(0, int(limit)))
    rows = log.read(lambda conn: conn.execute(stmt).mappings().all())
    columns = [
        "prediction_id",
        "created_at",
        "champion_version",
        "champion_probability",
        "champion_decision",
        "challenger_probability",
        "challenger_decision",
        "protected",
    ]
    frame = pd.DataFrame([dict(row) for row in rows], columns=columns)
    return frame.iloc[::-1].reset_index(drop=True)
