"""Validation before any training: every failure names the column and the problem, every
silent repair (a dropped column, dropped rows) becomes a warning the run records."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from creditops.data.spec import DatasetSpec, Direction, FeatureSchema, ResolvedSpec
from creditops.exceptions import DataValidationError

TRAIN_FRACTION = 0.70
_HIGH_CARDINALITY = 50


@dataclass(frozen=True)
class DataWarning:
    code: str
    message: str
    column: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {"code": self.code, "column": self.column, "message": self.message}


@dataclass
class ValidatedDataset:
    """Clean data ready to split: the target as 0/1, features typed, the spec resolved."""

    frame: pd.DataFrame
    y: np.ndarray
    spec: ResolvedSpec
    warnings: list[DataWarning] = field(default_factory=list)

    @property
    def X(self) -> pd.DataFrame:
        return self.frame[self.spec.features]


def validate_dataset(
    data: pd.DataFrame,
    spec: DatasetSpec,
    *,
    dataset_name: str = "user",
    n_folds: int = 5,
    leakage_auc: float = 0.95,
) -> ValidatedDataset:
    """Check ``data`` against ``spec`` and return it cleaned, or raise DataValidationError."""
    if data.shape[0] == 0 or data.shape[1] == 0:
        raise DataValidationError("the data has no rows or no columns")
    _check_columns(data, spec)
    warnings: list[DataWarning] = []
    frame = data.copy()

    frame, y, negative = _clean_target(frame, spec, warnings)
    _check_id(frame, spec)
    numeric, categorical = _feature_types(frame, spec)
    frame = _coerce_types(frame, numeric, categorical)
    numeric, categorical, dropped = _drop_uninformative(frame, numeric, categorical, warnings)
    if not numeric and not categorical:
        raise DataValidationError("no usable feature columns remain after validation")
    _check_minority(y, spec, n_folds)
    _warn_high_cardinality(frame, categorical, warnings)
    _warn_leakage(frame, y, numeric, categorical, leakage_auc, warnings)

    # Reasons and levers may name columns this data lacks (one spec for several extracts):
    # a reason text is then unused, a lever is left out with a warning.
    actionable: dict[str, Direction] = {}
    for column, direction in spec.actionable.items():
        if column in spec.protected or column in categorical:
            raise DataValidationError(
                f"actionable column {column!r} must be a numeric feature and not protected",
                column=column,
            )
        if column in numeric:
            actionable[column] = direction
        else:
            warnings.append(
                DataWarning(
                    "actionable_ignored",
                    f"actionable column {column!r} is not a feature of this data: ignored",
                    column,
                )
            )
    keep = [*numeric, *categorical, spec.target]
    keep += [c for c in spec.protected if c not in keep]
    if spec.id:
        keep.append(spec.id)
    frame = frame[keep].reset_index(drop=True)
    resolved = ResolvedSpec(
        dataset=dataset_name,
        target=spec.target,
        positive=spec.positive,
        negative=negative,
        protected=list(spec.protected),
        pii=list(spec.pii),
        id=spec.id,
        numeric=numeric,
        categorical=categorical,
        schema=[_feature_schema(frame[c], c, c in numeric) for c in [*numeric, *categorical]],
        dropped=dropped,
        monotone=spec.monotone,
        reasons=dict(spec.reasons),
        actionable=actionable,
        n_rows=len(frame),
        positive_rate=round(float(y.mean()), 6),
    )
    return ValidatedDataset(frame=frame, y=y, spec=resolved, warnings=warnings)


@dataclass(frozen=True)
class ValidationProblem:
    """One reason the data cannot be trained on, with the column it is about."""

    message: str
    column: str | None = None


@dataclass
class ValidationReport:
    """Every problem found (none: the data can be trained on) and every warning."""

    rows: int
    columns: int
    problems: list[ValidationProblem] = field(default_factory=list)
    warnings: list[DataWarning] = field(default_factory=list)
    spec: ResolvedSpec | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def check_dataset(
    data: pd.DataFrame, spec: DatasetSpec, *, dataset_name: str = "user", n_folds: int = 5
) -> ValidationReport:
    """:func:`validate_dataset`'s checks, reporting every problem instead of the first: each
    column's own checks run even when another column failed (the same words as the CLI)."""
    report = ValidationReport(rows=int(data.shape[0]), columns=int(data.shape[1]))

    def attempt(check: Callable[[], object]) -> bool:
        try:
            check()
        except DataValidationError as error:
            report.problems.append(ValidationProblem(str(error), error.column))
            return False
        return True

    if data.shape[0] == 0 or data.shape[1] == 0:
        attempt(lambda: validate_dataset(data, spec, dataset_name=dataset_name))
        return report
    if not attempt(lambda: _check_columns(data, spec)):
        return report  # columns the spec names are not there: nothing else can be checked
    # The later checks see the rows training would keep: those with a known outcome.
    cleaned = [data]

    def clean_target() -> None:
        cleaned[0] = _clean_target(data.copy(), spec, [])[0]

    attempt(clean_target)
    frame = cleaned[0]
    attempt(lambda: _check_id(frame, spec))
    numeric, _ = _feature_types(frame, spec)
    for column in numeric:
        attempt(lambda column=column: _coerce_types(frame[[column]].copy(), [column], []))
    if report.ok:
        try:
            validated = validate_dataset(data, spec, dataset_name=dataset_name, n_folds=n_folds)
        except DataValidationError as error:
            report.problems.append(ValidationProblem(str(error), error.column))
        else:
            report.warnings = validated.warnings
            report.spec = validated.spec
    return report


def _check_columns(data: pd.DataFrame, spec: DatasetSpec) -> None:
    duplicated = data.columns[data.columns.duplicated()].unique().tolist()
    if duplicated:
        raise DataValidationError(
            f"duplicated column name(s): {', '.join(map(str, duplicated))}",
            column=str(duplicated[0]),
        )
    columns = set(data.columns)
    if spec.target not in columns:
        raise DataValidationError(
            f"target column {spec.target!r} not found; columns are: {', '.join(map(str, data))}",
            column=spec.target,
        )
    missing = {c: role for c, role in spec.declared_columns().items() if c not in columns}
    if missing:
        listed = ", ".join(f"{c!r} ({role})" for c, role in missing.items())
        raise DataValidationError(
            f"the spec names column(s) not in the data: {listed}", column=next(iter(missing))
        )
    if spec.features:
        both = set(spec.features.numeric) & set(spec.features.categorical)
        if both:
            raise DataValidationError(
                f"column(s) listed as both numeric and categorical: {', '.join(sorted(both))}",
                column=sorted(both)[0],
            )
        for column in (spec.target, spec.id):
            if column and column in (*spec.features.numeric, *spec.features.categorical):
                raise DataValidationError(
                    f"column {column!r} is the target or id and cannot also be a feature",
                    column=column,
                )


def _label_matches(values: pd.Series, label: object) -> pd.Series:
    # Compare as text so `positive: 1` matches a column of integers or of "1" strings alike.
    return values.astype(str) == str(label)


def _clean_target(
    frame: pd.DataFrame, spec: DatasetSpec, warnings: list[DataWarning]
) -> tuple[pd.DataFrame, np.ndarray, object]:
    target = frame[spec.target]
    missing = int(target.isna().sum())
    if missing == len(frame):
        raise DataValidationError(
            f"target {spec.target!r} is empty in every row", column=spec.target
        )
    if missing:
        warnings.append(
            DataWarning(
                "target_missing",
                f"{missing} row(s) with a missing target {spec.target!r} were dropped",
                spec.target,
            )
        )
        frame = frame.loc[target.notna()].reset_index(drop=True)
        target = frame[spec.target]
    classes = pd.unique(target)
    shown = ", ".join(sorted(map(str, classes))[:10])
    if len(classes) == 1:
        raise DataValidationError(
            f"target {spec.target!r} has only one class ({shown}); a model needs both outcomes",
            column=spec.target,
        )
    if len(classes) > 2:
        raise DataValidationError(
            f"target {spec.target!r} has {len(classes)} classes ({shown}); creditops needs a "
            "binary outcome",
            column=spec.target,
        )
    is_positive = _label_matches(target, spec.positive)
    if not is_positive.any():
        raise DataValidationError(
            f"positive value {spec.positive!r} does not occur in target {spec.target!r} "
            f"(its values are: {shown})",
            column=spec.target,
        )
    negative = next(value for value in classes if str(value) != str(spec.positive))
    negative = negative.item() if hasattr(negative, "item") else negative
    return frame, is_positive.to_numpy(dtype=np.int64), negative


def _check_id(frame: pd.DataFrame, spec: DatasetSpec) -> None:
    if not spec.id:
        return
    ids = frame[spec.id]
    if ids.isna().any():
        raise DataValidationError(f"id column {spec.id!r} has missing values", column=spec.id)
    if ids.duplicated().any():
        example = ids[ids.duplicated()].iloc[0]
        raise DataValidationError(
            f"id column {spec.id!r} has duplicated values (e.g. {example!r})", column=spec.id
        )


def _feature_types(frame: pd.DataFrame, spec: DatasetSpec) -> tuple[list[str], list[str]]:
    if spec.features is not None:
        return list(spec.features.numeric), list(spec.features.categorical)
    excluded = {spec.target, spec.id, *spec.protected, *spec.pii}
    numeric, categorical = [], []
    for column in frame.columns:
        if column in excluded:
            continue
        series = frame[column]
        if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            numeric.append(column)
        else:
            categorical.append(column)
    return numeric, categorical


def _coerce_types(frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> pd.DataFrame:
    for column in numeric:
        series = frame[column]
        converted = pd.to_numeric(series, errors="coerce")
        bad = converted.isna() & series.notna()
        if bad.any():
            examples = ", ".join(repr(v) for v in series[bad].astype(str).unique()[:3])
            raise DataValidationError(
                f"numeric column {column!r} has {int(bad.sum())} non-numeric value(s), e.g. "
                f"{examples}",
                column=column,
            )
        converted = converted.astype("float64")
        infinite = np.isinf(converted.to_numpy())
        if infinite.any():
            raise DataValidationError(
                f"numeric column {column!r} has {int(infinite.sum())} infinite value(s)",
                column=column,
            )
        frame[column] = converted
    for column in categorical:
        frame[column] = to_category_text(frame[column])
    return frame


def to_category_text(series: pd.Series) -> pd.Series:
    """Categories as plain text with NaN for missing, whatever the source dtype.

    Shared by validation and the model pipelines so training and prediction see identical
    category values (``1`` and ``"1"`` are the same category).
    """
    text = series.astype(object)
    mask = text.notna()
    text = text.where(~mask, text[mask].map(str).str.strip()) if mask.any() else text
    text = text.where(text.notna() & (text != ""), np.nan)
    return text.astype(object)


def _drop_uninformative(
    frame: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    warnings: list[DataWarning],
) -> tuple[list[str], list[str], dict[str, str]]:
    dropped: dict[str, str] = {}
    for column in [*numeric, *categorical]:
        series = frame[column]
        if series.isna().all():
            dropped[column] = "all values missing"
        elif series.nunique(dropna=False) <= 1:
            dropped[column] = f"constant (every value is {series.iloc[0]!r})"
    for column, reason in dropped.items():
        warnings.append(
            DataWarning("column_dropped", f"column {column!r} dropped: {reason}", column)
        )
    return (
        [c for c in numeric if c not in dropped],
        [c for c in categorical if c not in dropped],
        dropped,
    )


def _check_minority(y: np.ndarray, spec: DatasetSpec, n_folds: int) -> None:
    counts = {spec.positive: int(y.sum()), "other": int(len(y) - y.sum())}
    minority = min(counts.values())
    needed = math.ceil(n_folds / TRAIN_FRACTION)
    if minority < needed:
        label = min(counts, key=counts.get)
        raise DataValidationError(
            f"target {spec.target!r} has only {minority} row(s) of its minority class "
            f"({label!r}); a {n_folds}-fold stratified split of the {TRAIN_FRACTION:.0%} training "
            f"part needs at least {needed}",
            column=spec.target,
        )


def _warn_high_cardinality(
    frame: pd.DataFrame, categorical: list[str], warnings: list[DataWarning]
) -> None:
    for column in categorical:
        levels = frame[column].nunique()
        if levels > _HIGH_CARDINALITY and levels > 0.5 * len(frame):
            warnings.append(
                DataWarning(
                    "high_cardinality",
                    f"categorical column {column!r} has {levels} distinct values for "
                    f"{len(frame)} rows; is it an identifier?",
                    column,
                )
            )


def single_feature_auc(values: pd.Series, y: np.ndarray, *, categorical: bool) -> float:
    """How well one column alone ranks the outcome (max of AUC and 1 − AUC).

    Categories are scored by out-of-fold target rates, so a high-cardinality column does not
    look predictive merely by memorising rows; missing values count as their own level.
    """
    if categorical:
        codes = values.fillna("\x00missing").astype(str).to_numpy()
        scores = np.zeros(len(codes))
        folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
        prior = float(y.mean())
        for fit_idx, score_idx in folds.split(codes, y):
            rates = pd.Series(y[fit_idx]).groupby(codes[fit_idx]).agg(["sum", "count"])
            smoothed = (rates["sum"] + prior * 10) / (rates["count"] + 10)
            scores[score_idx] = pd.Series(codes[score_idx]).map(smoothed).fillna(prior)
    else:
        numbers = values.to_numpy(dtype="float64")
        lowest = np.nanmin(numbers) if np.isfinite(numbers).any() else 0.0
        scores = np.where(np.isnan(numbers), lowest - 1.0, numbers)
    auc = float(roc_auc_score(y, scores))
    return max(auc, 1.0 - auc)


def leakage_message(column: str, auc: float) -> str:
    """The words of the leakage warning (validation's and the data profile's)."""
    return (
        f"feature {column!r} alone predicts the target with ROC AUC {auc:.3f}; check "
        "that it is known at application time (possible target leakage)"
    )


def _warn_leakage(
    frame: pd.DataFrame,
    y: np.ndarray,
    numeric: list[str],
    categorical: list[str],
    threshold: float,
    warnings: list[DataWarning],
) -> None:
    for column in [*numeric, *categorical]:
        auc = single_feature_auc(frame[column], y, categorical=column in categorical)
        if auc >= threshold:
            warnings.append(DataWarning("possible_leakage", leakage_message(column, auc), column))


def _feature_schema(series: pd.Series, name: str, is_numeric: bool) -> FeatureSchema:
    missing_rate = round(float(series.isna().mean()), 6)
    if is_numeric:
        values = series.dropna()
        return FeatureSchema(
            name=name,
            kind="numeric",
            missing_rate=missing_rate,
            minimum=float(values.min()) if len(values) else None,
            maximum=float(values.max()) if len(values) else None,
            integer=bool(len(values) and np.all(np.mod(values.to_numpy(), 1) == 0)),
            median=float(values.median()) if len(values) else None,
        )
    categories = sorted(str(v) for v in series.dropna().unique())
    return FeatureSchema(
        name=name, kind="categorical", missing_rate=missing_rate, categories=categories
    )
