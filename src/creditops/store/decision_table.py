"""The decision log as a table: one row per decision, its features and protected attributes
flattened into columns, for the monitor, the retraining pipeline and exports; and the export
itself, as CSV or Parquet.

Personal data never becomes a column here: it stays sealed in the log
(:meth:`~creditops.store.predlog.PredictionLog.personal_data`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from creditops.data.io import table_format, write_table
from creditops.store.database import dumps_json

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["META_COLUMNS", "column_names", "decisions_frame", "write_decisions"]

#: The decision's own columns, before the features and protected attributes.
META_COLUMNS = (
    "prediction_id",
    "created_at",
    "model_name",
    "model_version",
    "probability",
    "points",
    "grade",
    "decision",
    "latency_ms",
    "imputed",
    "reasons",
    "outcome",
    "observed_at",
    "recorded_at",
)


def column_names(
    features: Sequence[str], protected: Sequence[str]
) -> tuple[dict[str, str], dict[str, str]]:
    """The columns of ``features`` and ``protected``: their own names unless taken by a column
    before them (then ``feature.<name>`` / ``protected.<name>``)."""
    taken = set(META_COLUMNS)
    feature_columns = {name: f"feature.{name}" if name in taken else name for name in features}
    taken |= set(feature_columns.values())
    protected_columns = {name: f"protected.{name}" if name in taken else name for name in protected}
    return feature_columns, protected_columns


def decisions_frame(rows: Sequence[Any]) -> pd.DataFrame:
    """Decisions read with their outcomes (mappings of the ``predictions`` columns plus
    ``outcome``, ``observed_at``, ``recorded_at``) as :meth:`PredictionLog.window` returns
    them."""
    import pandas as pd

    feature_names = list(dict.fromkeys(key for row in rows for key in row["features"]))
    protected_names = list(dict.fromkeys(key for row in rows for key in row["protected"]))
    feature_columns, protected_columns = column_names(feature_names, protected_names)

    records = []
    for row in rows:
        record = {
            "prediction_id": row["id"],
            "created_at": row["created_at"],
            "model_name": row["model_name"],
            "model_version": row["model_version"],
            "probability": row["probability"],
            "points": row["points"],
            "grade": row["grade"],
            "decision": row["decision"],
            "latency_ms": row["latency_ms"],
            "imputed": row["imputed"],
            "reasons": row["reasons"],
            "outcome": row["outcome"],
            "observed_at": row["observed_at"],
            "recorded_at": row["recorded_at"],
        }
        for name, value in row["features"].items():
            record[feature_columns[name]] = value
        for name, value in row["protected"].items():
            record[protected_columns[name]] = value
        records.append(record)
    columns = [
        *META_COLUMNS,
        *feature_columns.values(),
        *protected_columns.values(),
    ]
    frame = pd.DataFrame.from_records(records, columns=columns)
    for column in ("created_at", "observed_at", "recorded_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    frame["outcome"] = frame["outcome"].astype("Int64")
    frame["points"] = frame["points"].astype("int64")
    frame["probability"] = frame["probability"].astype("float64")
    frame["latency_ms"] = frame["latency_ms"].astype("float64")
    frame.attrs["feature_columns"] = feature_columns
    frame.attrs["protected_columns"] = protected_columns
    return frame


def write_decisions(
    frame: pd.DataFrame, path: Path | str, fmt: Literal["csv", "parquet"] | None = None
) -> int:
    """Write a :func:`decisions_frame` to a CSV or Parquet file; returns its rows.

    ``imputed`` and ``reasons`` are written as JSON text so both formats hold the same thing;
    floats are written in their shortest exact form, so they read back bit for bit. The file
    appears complete or not at all (written beside it, then renamed)."""
    path = Path(path)
    fmt = fmt or table_format(path)
    if fmt is None:
        raise ValueError(f"cannot tell the format of {path.name}: pass fmt='csv'|'parquet'")
    if fmt not in ("csv", "parquet"):
        raise ValueError("fmt must be 'csv' or 'parquet'")
    frame = frame.copy()
    for column in ("imputed", "reasons"):
        frame[column] = [dumps_json(value) for value in frame[column]]
    write_table(frame, path, fmt)
    return len(frame)
