"""The decision log read in bounded chunks, for monitoring windows of any size.

:meth:`~creditops.store.predlog.PredictionLog.window` builds one frame of every decision of a
window, with every column; at millions of decisions that frame alone is gigabytes. The monitor
reads its windows here instead: oldest first, ``chunk_rows`` decisions at a time, over one
streamed query (one read transaction, so one consistent snapshot), and only the columns its
checks read: ``created_at``, ``probability``, ``decision``, ``outcome`` and the named features
and protected attributes. The JSON of the features is taken apart by the database
(``json_extract`` on SQLite, ``->`` on PostgreSQL), one value per column, so neither the
``reasons`` nor the rest of a row's JSON is ever decoded.

Each chunk is a frame in :meth:`PredictionLog.window`'s columns and naming (a feature whose name
clashes with a column of the decision's own gets a ``feature.`` prefix, and so on), with
``attrs["feature_columns"]`` and ``attrs["protected_columns"]`` mapping names to columns, and
``attrs["recorded_protected"]`` naming the attributes with a value in that chunk (an attribute
that no decision of the window carries is left out of fairness, as ``window`` leaves it out).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa

from creditops.store.decision_table import column_names
from creditops.store.predlog import PredictionLog, window_filter
from creditops.store.schema import outcomes, predictions

__all__ = ["DEFAULT_CHUNK_ROWS", "column_names", "read_decision_chunks"]

#: Decisions per chunk unless the caller says otherwise (``CREDITOPS_MONITOR_CHUNK_ROWS``).
DEFAULT_CHUNK_ROWS = 50_000


def _json_value(column: sa.Column[Any], name: str, dialect: str) -> sa.ColumnElement[Any]:
    """One key of a JSON column, decoded by the database (None when absent or null)."""
    if dialect == "sqlite":
        path = '$."' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return sa.func.json_extract(column, path, type_=sa.types.NullType())
    return column[name]


def read_decision_chunks(
    log: PredictionLog,
    *,
    features: Sequence[str],
    protected: Sequence[str] = (),
    since: datetime | None = None,
    until: datetime | None = None,
    last_n: int | None = None,
    model_name: str | None = None,
    model_version: str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> Iterator[pd.DataFrame]:
    """The decisions :meth:`PredictionLog.window` would return for the same arguments, oldest
    first, as frames of at most ``chunk_rows`` rows holding only the monitoring columns.

    ``since`` is inclusive, ``until`` exclusive; ``last_n`` keeps the most recent n. Nothing
    is read until the first chunk is asked for; an empty window yields no chunk.
    """
    for value, name in ((since, "since"), (until, "until")):
        if value is not None and value.tzinfo is None:
            raise ValueError(f"{name} must carry a time zone")
    if last_n is not None and last_n < 0:
        raise ValueError("last_n must be >= 0")
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be >= 1")
    if last_n == 0:
        return
    dialect = log.dialect
    feature_columns, protected_columns = column_names(features, protected)
    created = (
        sa.type_coerce(predictions.c.created_at, sa.String)
        if dialect == "sqlite"
        else predictions.c.created_at
    )
    selected = [
        created.label("created_at"),
        predictions.c.probability,
        predictions.c.decision,
        outcomes.c.outcome,
        *(
            _json_value(predictions.c.features, name, dialect).label(f"f{i}")
            for i, name in enumerate(features)
        ),
        *(
            _json_value(predictions.c.protected, name, dialect).label(f"p{i}")
            for i, name in enumerate(protected)
        ),
    ]
    joined = predictions.outerjoin(outcomes, outcomes.c.prediction_id == predictions.c.id)
    stmt = window_filter(
        sa.select(*selected).select_from(joined), since, until, model_name, model_version
    )
    if last_n is not None:
        # The oldest of the last n decisions: the window starts there.
        newest = sa.select(predictions.c.created_at, predictions.c.id)
        boundary = (
            window_filter(newest, since, until, model_name, model_version)
            .order_by(predictions.c.created_at.desc(), predictions.c.id.desc())
            .offset(last_n - 1)
        )
        first = log.read(lambda conn: conn.execute(boundary.limit(1)).first())
        if first is not None:
            created_at, key = first
            stmt = stmt.where(
                sa.or_(
                    predictions.c.created_at > created_at,
                    sa.and_(predictions.c.created_at == created_at, predictions.c.id >= key),
                )
            )
    stmt = stmt.order_by(predictions.c.created_at, predictions.c.id)
    names = [
        "created_at",
        "probability",
        "decision",
        "outcome",
        *feature_columns.values(),
        *protected_columns.values(),
    ]
    for rows in log.read_chunks(stmt, chunk_rows=chunk_rows):
        frame = pd.DataFrame.from_records(rows, columns=names)
        frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True, format="ISO8601")
        frame["probability"] = frame["probability"].astype("float64")
        frame["outcome"] = frame["outcome"].astype("Int64")
        frame.attrs["feature_columns"] = dict(feature_columns)
        frame.attrs["protected_columns"] = dict(protected_columns)
        frame.attrs["recorded_protected"] = [
            name for name, column in protected_columns.items() if frame[column].notna().any()
        ]
        yield frame
