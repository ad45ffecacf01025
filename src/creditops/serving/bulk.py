"""Decisions for large batches without an object per decision: what a partition of
``creditops predict DIR --out DIR`` does to its rows.

A logged, explained decision made through :meth:`DecisionService.decide_batch` builds a
validated application, a ``Decision`` with its ``Reason`` models and a ``PredictionRecord``
per row: about 60 µs per row on the 2-core development machine, more than the scoring and
the SHAP values together. Here a table is validated column by column (:func:`table_is_valid`:
the rules of the application model's JSON schema, applied to whole columns), decided with
arrays (scores, policy, reasons ranked for every declined row at once) and logged as rows in
the decision log's own shape. The decisions, reasons and log rows are those of
:func:`~creditops.serving.batch.decide_applications` (tested equal).

Any table the column checks cannot vouch for (a cell of the wrong type, out of range, an
unknown category or column, a column of mixed types) is validated by the application model
row by row instead, which names the first bad cell, or accepts what the column checks were
too strict about.
"""

from __future__ import annotations

import functools
import math
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import infer_dtype, is_bool_dtype, is_numeric_dtype

from creditops.evaluation.reasons import RankedReason
from creditops.serving.schemas import ApplicationModel
from creditops.serving.served import ServedModel
from creditops.serving.service import DecisionService
from creditops.store.database import JSONText, dumps_json

_EXPLAIN_CHUNK = 2_000  # declined rows explained per call: bounds the memory it takes
_ANNOTATIONS = ("title", "description", "default", "examples")  # words, not constraints


# -- validation by columns ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Rule:
    """What one field accepts, read from the application model's JSON schema."""

    kind: str  # "number", "category", "text" (any category, seen or not), "protected" or "pii"
    nullable: bool
    required: bool
    minimum: float = -math.inf
    maximum: float = math.inf
    whole: bool = False
    categories: tuple[str, ...] = ()
    max_length: int = 0


@functools.cache
def column_rules(application_model: type[ApplicationModel]) -> dict[str, _Rule] | None:
    """Each field's rule, or None when the schema holds a field these checks do not
    understand (every table is then validated row by row)."""
    schema = application_model.model_json_schema()
    required = set(schema.get("required", ()))
    rules: dict[str, _Rule] = {}
    for name, field in schema.get("properties", {}).items():
        options = field.get("anyOf", [field])
        nullable = any(o.get("type") == "null" for o in options)
        kinds = [o for o in options if o.get("type") != "null"]
        types = sorted(str(o.get("type")) for o in kinds)
        if name in application_model.spec_pii or (
            # a category training never saw is decided as out of range (lenient models)
            types == ["string"]
            and "enum" not in kinds[0]
            and name in application_model.spec_features
        ):
            if types != ["string"]:
                return None
            rules[name] = _Rule(
                "pii" if name in application_model.spec_pii else "text",
                nullable,
                name in required,
                max_length=int(kinds[0].get("maxLength", 0)),
            )
        elif (
            name in application_model.spec_protected and name not in application_model.spec_features
        ):
            if types != ["number", "string"]:
                return None
            number = next(o for o in kinds if o.get("type") == "number")
            text = next(o for o in kinds if o.get("type") == "string")
            rules[name] = _Rule(
                "protected",
                nullable,
                name in required,
                minimum=float(number.get("minimum", -math.inf)),
                maximum=float(number.get("maximum", math.inf)),
                max_length=int(text.get("maxLength", 0)),
            )
        elif len(kinds) == 1 and "enum" in kinds[0]:
            categories = kinds[0]["enum"]
            if not all(isinstance(c, str) for c in categories):
                return None
            rules[name] = _Rule(
                "category", nullable, name in required, categories=tuple(categories)
            )
        elif types == ["number"]:
            number = kinds[0]
            if set(number) - {"type", "minimum", "maximum", "multipleOf", *_ANNOTATIONS}:
                return None
            if number.get("multipleOf", 1) != 1:
                return None
            rules[name] = _Rule(
                "number",
                nullable,
                name in required,
                minimum=float(number.get("minimum", -math.inf)),
                maximum=float(number.get("maximum", math.inf)),
                whole="multipleOf" in number,
            )
        else:
            return None
    return rules


def table_is_valid(frame: pd.DataFrame, rules: dict[str, _Rule] | None) -> bool:
    """Whether every cell of a typed table (read from Parquet; missing cells null or NaN) is
    certainly valid under ``rules``; False sends it to the row-by-row validation."""
    if rules is None or len(frame) == 0:
        return False
    columns = list(frame.columns)
    if not all(isinstance(c, str) for c in columns) or len(set(columns)) != len(columns):
        return False
    if not set(columns) <= set(rules):  # an unknown column: the model names it
        return False
    if any(rule.required and name not in columns for name, rule in rules.items()):
        return False
    return all(_column_is_valid(frame[name], rules[name]) for name in columns)


def _column_is_valid(column: pd.Series, rule: _Rule) -> bool:
    missing = column.isna().to_numpy()
    if missing.any() and not rule.nullable:
        return False
    present = column[~missing]
    if len(present) == 0:
        return True
    if isinstance(present.dtype, pd.CategoricalDtype):
        present = present.astype(object)
    if rule.kind == "category":
        return infer_dtype(present, skipna=False) in ("string", "empty") and bool(
            present.isin(rule.categories).all()
        )
    if rule.kind in ("pii", "text"):
        if infer_dtype(present, skipna=False) not in ("string", "empty"):
            return False
        try:  # an unpaired surrogate cannot be sealed: the row-by-row check names its cell
            present.str.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return bool((present.str.len() <= rule.max_length).all())
    if rule.kind == "protected" and infer_dtype(present, skipna=False) in ("string", "empty"):
        return bool((present.str.len() <= rule.max_length).all())
    if is_bool_dtype(column) or not is_numeric_dtype(column):
        return False
    values = present.to_numpy(dtype=np.float64)
    if rule.kind == "protected":
        return bool(np.all(np.abs(values) <= rule.maximum))  # NaN and inf fail
    ok = np.isfinite(values) & (values >= rule.minimum) & (values <= rule.maximum)
    if rule.whole:
        ok &= values == np.floor(values)
    return bool(ok.all())


@dataclass(frozen=True)
class TableRows:
    """A valid table's applications: features and protected attributes per row as the
    application model would give them (numbers as float, a protected number as it came,
    missing as None), and the features as columns for scoring."""

    features: list[dict[str, Any]]
    protected: list[dict[str, Any]]
    columns: dict[str, np.ndarray]
    pii: list[dict[str, str] | None] | None = None


def table_rows(frame: pd.DataFrame, served: ServedModel) -> TableRows:
    """The rows of a table :func:`table_is_valid` accepted."""
    model = served.application_model
    n = len(frame)
    columns: dict[str, np.ndarray] = {}

    def values(name: str, as_float: bool) -> list[Any]:
        if name not in frame:
            return [None] * n
        column = frame[name]
        missing = column.isna().to_numpy()
        if as_float and is_numeric_dtype(column) and not is_bool_dtype(column):
            numbers = column.to_numpy(dtype=np.float64, na_value=np.nan)
            columns[name] = numbers
            items = numbers.tolist()
        else:
            items = column.astype(object).tolist()
            items = [v.item() if hasattr(v, "item") else v for v in items]
        if missing.any():
            items = [None if m else v for v, m in zip(items, missing.tolist(), strict=True)]
        return items

    rules = column_rules(model) or {}
    features = model.spec_features
    numeric = {name for name, rule in rules.items() if rule.kind == "number"}
    feature_values = [values(f, f in numeric) for f in features]
    for name, items in zip(features, feature_values, strict=True):
        if name not in columns:
            columns[name] = np.array(items, dtype=object)
    protected = model.spec_protected
    protected_values = [
        feature_values[features.index(p)] if p in features else values(p, False) for p in protected
    ]
    return TableRows(
        features=[
            dict(zip(features, row, strict=True)) for row in zip(*feature_values, strict=True)
        ]
        if features
        else [{} for _ in range(n)],
        protected=[
            dict(zip(protected, row, strict=True)) for row in zip(*protected_values, strict=True)
        ]
        if protected
        else [{} for _ in range(n)],
        columns=columns,
        pii=_personal_data(model.spec_pii, [values(name, False) for name in model.spec_pii]),
    )


def _personal_data(
    names: Sequence[str], values: Sequence[list[Any]]
) -> list[dict[str, str] | None] | None:
    """Per row, the personal-data fields it carries (as :func:`personal_data` gives them)."""
    if not names:
        return None
    rows = []
    for row in zip(*values, strict=True):
        sent = {name: value for name, value in zip(names, row, strict=True) if value is not None}
        rows.append(sent or None)
    return rows


# -- deciding ---------------------------------------------------------------------------------


def decide_records(
    service: DecisionService,
    served: ServedModel,
    features: Sequence[dict[str, Any]],
    protected: Sequence[dict[str, Any]],
    *,
    prediction_ids: Sequence[uuid.UUID],
    log: bool,
    chunk: int,
    columns: dict[str, np.ndarray] | None = None,
    actor: str | None = None,
    pii: Sequence[dict[str, str] | None] | None = None,
) -> pd.DataFrame:
    """Decide validated applications ``chunk`` at a time (each chunk one transaction of the
    decision log; ``log=False``: recorded nowhere) and return the decisions as
    :func:`~creditops.serving.batch.decide_applications` returns them.

    A chunk whose first id is already in the log (chunks are logged all or nothing) was logged
    before a crash: it is decided again for the output but not logged twice. ``columns``: the
    features as columns (:class:`TableRows`), made from ``features`` when not given;
    ``actor``: who asked, recorded with each decision; ``pii``: each row's personal data
    (sealed in the log), when the spec declares any."""
    if not len(features) == len(protected) == len(prediction_ids):
        raise ValueError("features, protected attributes and prediction ids differ in length")
    if pii is not None and len(pii) != len(features):
        raise ValueError("personal data and features differ in length")
    if columns is None:
        columns = {
            name: np.array([row.get(name) for row in features], dtype=object)
            for name in served.spec.features
        }
    parts = []
    for start in range(0, len(features), chunk):
        stop = start + chunk
        ids = prediction_ids[start:stop]
        logged = log and service.log.get(ids[0]) is not None
        part = _Chunk(
            features[start:stop],
            protected[start:stop],
            {name: values[start:stop] for name, values in columns.items()},
            None if pii is None else pii[start:stop],
        )
        parts.append(_decide_chunk(service, served, part, ids, log=log and not logged, actor=actor))
    if not parts:
        return _frame([], np.zeros(0), np.zeros(0, dtype=np.int64), [], [], [], [], [])
    return pd.concat(parts, ignore_index=True)


@dataclass(frozen=True)
class _Chunk:
    features: Sequence[dict[str, Any]]
    protected: Sequence[dict[str, Any]]
    columns: dict[str, np.ndarray]
    pii: Sequence[dict[str, str] | None] | None = None


def _decide_chunk(
    service: DecisionService,
    served: ServedModel,
    chunk: _Chunk,
    ids: Sequence[uuid.UUID],
    *,
    log: bool,
    actor: str | None,
) -> pd.DataFrame:
    started = time.perf_counter()
    logged_features, protected = chunk.features, chunk.protected
    n = len(logged_features)
    features, scored_columns, outside = _screen(served, chunk)
    columns = served.scorer is not None  # the compiled scorers read columns
    if columns:
        probabilities = served.scorer.score_columns(scored_columns, n)
    else:
        probabilities = np.asarray(served.probabilities(list(features)), dtype=np.float64)
    labels = served.policy.decide_many(probabilities).tolist()
    refer = served.out_of_range == "refer"
    if refer:
        labels = ["refer" if o else label for label, o in zip(labels, outside, strict=True)]
    points = served.policy.points(probabilities)
    grades = served.policy.grade(probabilities).tolist()
    declined = np.flatnonzero(np.asarray(labels) != "approve")
    reasons: list[list[Any]] = [[] for _ in labels]
    for begin in range(0, len(declined), _EXPLAIN_CHUNK):
        rows = declined[begin : begin + _EXPLAIN_CHUNK]
        records = [features[i] for i in rows]
        if columns:
            picked = {name: values[rows] for name, values in scored_columns.items()}
            transformed = served.scorer.transform_columns(picked, len(rows))
        else:
            transformed = _transformed(served, records)
        for i, ranked in zip(rows.tolist(), served.rank_reasons(transformed, records), strict=True):
            reasons[i] = ranked
    if refer:
        for i, names in enumerate(outside):
            if names:
                reasons[i] = [*_out_of_range_reasons(served, names), *reasons[i]]
    latency_ms = (time.perf_counter() - started) * 1000.0
    imputed = [[name for name, value in row.items() if value is None] for row in logged_features]
    frame = _frame(ids, probabilities, points, grades, labels, reasons, imputed, outside)
    features = logged_features  # the log keeps the values as sent
    if log:
        created_at = datetime.now(UTC)
        empty = JSONText("[]")
        seal = service.log.seal_personal_data
        sealed = [None if p is None else seal(p) for p in chunk.pii] if chunk.pii else None
        service.log.write_rows(
            [
                {
                    "id": str(ids[i]),
                    "created_at": created_at,
                    "model_name": served.name,
                    "model_version": served.version,
                    # JSON encoded here as the log encodes it, the common empty lists once
                    "features": JSONText(dumps_json(features[i])),
                    "protected": JSONText(dumps_json(protected[i])),
                    "imputed": JSONText(dumps_json(imputed[i])) if imputed[i] else empty,
                    "probability": probabilities[i].item(),
                    "points": points[i].item(),
                    "grade": grades[i],
                    "decision": labels[i],
                    # the keys and order of the API's Reason, as a logged Decision stores them
                    "reasons": JSONText(dumps_json([r._asdict() for r in reasons[i]]))
                    if reasons[i]
                    else empty,
                    "latency_ms": latency_ms,
                    "actor": actor,
                    "pii": None if sealed is None else sealed[i],
                    "out_of_range": JSONText(dumps_json(outside[i])) if outside[i] else None,
                }
                for i in range(len(labels))
            ]
        )
    return frame


def _screen(
    served: ServedModel, chunk: _Chunk
) -> tuple[Sequence[dict[str, Any]], dict[str, np.ndarray], list[list[str]]]:
    """:meth:`ServedModel.screen` for a chunk: the rows and columns to score (values outside
    the model's experience held within the trusted range) and each row's features outside."""
    n = len(chunk.features)
    outside: list[list[str]] = [[] for _ in range(n)]
    masks = {
        name: served.experience.outside_mask(name, chunk.columns[name])
        for name in served.experience.features
        if name in chunk.columns
    }
    if not any(mask.any() for mask in masks.values()):
        return chunk.features, chunk.columns, outside
    for name, mask in masks.items():  # in the spec's order
        for i in np.flatnonzero(mask).tolist():
            outside[i].append(name)
    columns = dict(chunk.columns)
    for name, mask in masks.items():
        bounds = (served.scoring_ranges or {}).get(name)
        if bounds is None or not mask.any():
            continue
        values = columns[name].copy()
        for i in np.flatnonzero(mask).tolist():
            values[i] = min(max(values[i], bounds[0]), bounds[1])
        columns[name] = values
    features = [
        served.screen(row)[0] if outside[i] else row for i, row in enumerate(chunk.features)
    ]
    return features, columns, outside


def _out_of_range_reasons(served: ServedModel, names: list[str]) -> list[RankedReason]:
    return [
        RankedReason(r.code, r.text, r.feature, r.contribution)
        for r in served.out_of_range_reasons(names)
    ]


def _transformed(served: ServedModel, records: list[dict[str, Any]]) -> Any:
    if served.scorer is not None:
        return served.scorer.transform_many(records)
    return served.explainer.transform(
        pd.DataFrame.from_records(records, columns=served.spec.features)
    )


def _frame(
    ids: Sequence[uuid.UUID],
    probabilities: np.ndarray,
    points: np.ndarray,
    grades: list[str],
    labels: list[str],
    reasons: list[list[Any]],
    imputed: list[list[str]],
    outside: list[list[str]],
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "prediction_id": [str(i) for i in ids],
            "probability_of_default": probabilities.tolist(),
            "score_points": points.tolist(),
            "risk_grade": grades,
            "decision": labels,
            "reasons": [";".join(r.code for r in row) for row in reasons],
            "imputed_fields": [";".join(row) for row in imputed],
            "out_of_range": [";".join(row) for row in outside],
        }
    )
