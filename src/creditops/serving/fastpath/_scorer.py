"""FastScorer: the compiled preprocessing, head and calibration behind one immutable object,
verified against the pipeline on probe rows before use."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA

from creditops.data.spec import ResolvedSpec
from creditops.exceptions import ModelStructureError, UnsupportedModel
from creditops.models.anatomy import Anatomy, anatomy
from creditops.serving.fastpath._calibration import _Calibration
from creditops.serving.fastpath._heads import _compile_head, _Head
from creditops.serving.fastpath._parse import _number, _text
from creditops.serving.fastpath._preprocess import (
    _CategoricalBlock,
    _compile_preprocess,
    _describe,
    _NumericBlock,
    _OrdinalBlock,
)
from creditops.serving.fastpath._scorecard import _compile_scorecard, _WoeLookup

logger = logging.getLogger(__name__)

# Agreement required between the compiled path and the pipeline on the probe rows checked at
# compile time. Float64 models agree to ~1e-15 (summation order); the tree models and
# XGBoost are bit-identical.
VERIFY_TOLERANCE = 1e-9


def _parts(model: Any) -> tuple[Anatomy, _Calibration | None]:
    """The model taken apart, with its calibration compiled (only what sklearn applies
    exactly as :class:`_Calibration` replays it)."""
    try:
        parts = anatomy(model)
    except ModelStructureError as exc:
        raise UnsupportedModel(str(exc)) from exc
    inner = parts.calibration
    if inner is None:
        return parts, None
    if inner.method not in ("sigmoid", "isotonic") or len(inner.calibrators) != 1:
        raise UnsupportedModel(f"calibration method {inner.method!r}")
    if len(model.classes_) != 2 or list(model.classes_) != list(parts.pipeline.classes_):
        raise UnsupportedModel("calibrated classes differ from the model's")
    return parts, _Calibration(inner.calibrators[0])


class FastScorer:
    """A fitted credit model compiled to numpy; build it with :meth:`compile`."""

    def __init__(
        self,
        *,
        numeric: list[_NumericBlock],
        categorical: list[_CategoricalBlock],
        width: int,
        inputs: tuple[str, ...],
        head: _Head,
        calibration: _Calibration | None,
        feature_names: tuple[str, ...],
        lookup: _WoeLookup | None = None,
        ordinal: list[_OrdinalBlock] | None = None,
    ) -> None:
        self._numeric = numeric
        self._categorical = categorical
        self._ordinal = ordinal or []
        self._lookup = lookup  # the scorecard: values → WoE columns, instead of the blocks
        self._width = width
        self._head = head
        self._calibration = calibration
        self.features = inputs
        """The request fields the model reads, in the pipeline's input order."""
        self.feature_names = feature_names
        """Names of the preprocessed columns (``transform_one``'s layout; for the scorecard, the
        scored features, whose WoE the columns hold)."""
        self.kind = head.kind + ("" if calibration is None else f"+{calibration.kind}")
        """What was compiled, e.g. ``xgboost+isotonic``."""

    @classmethod
    def compile(cls, model: Any, spec: ResolvedSpec, *, verify: bool = True) -> FastScorer:
        """Compile a fitted pipeline (optionally calibrated); raise UnsupportedModel if any step
        is not understood, or if ``verify`` finds it disagreeing with the pipeline on probe
        rows built from ``spec``."""
        try:
            scorer = cls._build(model, spec)
        except (AttributeError, IndexError, KeyError, TypeError) as exc:
            # A fitted object missing what its type promises: not something to serve fast.
            raise UnsupportedModel(f"could not read the fitted model: {exc!r}") from exc
        if verify:
            scorer._verify(model, spec)
        return scorer

    @classmethod
    def _build(cls, model: Any, spec: ResolvedSpec) -> FastScorer:
        parts, calibration = _parts(model)
        pipeline = parts.pipeline
        lookup = None
        ordinal: list[_OrdinalBlock] = []
        if parts.kind == "scorecard":
            lookup, inputs = _compile_scorecard(parts.preprocess, parts.estimator)
            numeric, categorical, width = [], [], lookup.width
            names = tuple(parts.estimator.features_)
        else:
            numeric, categorical, ordinal, width, inputs = _compile_preprocess(parts.preprocess)
            names = tuple(str(n) for n in parts.preprocess.get_feature_names_out())
        for step in parts.middle:
            if not isinstance(step, PCA):
                raise UnsupportedModel(
                    f"step {_describe(step)} between preprocessing and the estimator"
                )
        head = _compile_head(parts, width)
        if calibration is not None and hasattr(pipeline, "decision_function") != (
            head.has_decision
        ):
            raise UnsupportedModel("the calibrator's input response cannot be reproduced")
        unknown = [c for c in inputs if c not in set(spec.features)]
        if unknown:
            raise UnsupportedModel(f"the model reads columns the spec lacks: {unknown}")
        return cls(
            numeric=numeric,
            categorical=categorical,
            width=width,
            inputs=inputs,
            head=head,
            calibration=calibration,
            feature_names=names,
            lookup=lookup,
            ordinal=ordinal,
        )

    # -- scoring -------------------------------------------------------------------------

    def transform_many(self, records: Sequence[Mapping[str, object]]) -> np.ndarray:
        """The preprocessed rows, as the pipeline's ColumnTransformer gives them (for the
        scorecard: the WoE of each scored feature, as its ``woe`` gives them)."""
        if self._lookup is not None:
            return self._lookup.transform(records)
        n = len(records)
        out = np.zeros((n, self._width))
        for block in self._numeric:
            values = np.array(
                [[_number(r.get(c)) for c in block.columns] for r in records], dtype=np.float64
            ).reshape(n, len(block.columns))
            if np.isinf(values).any():  # the pipeline's imputer refuses infinity too
                raise ValueError(
                    "Input X contains infinity or a value too large for dtype('float64')."
                )
            out[:, block.out] = block.transform(values)
        if self._categorical:
            flat = [
                i * self._width + block.out.start + code
                for block in self._categorical
                for j, column in enumerate(block.columns)
                for i, record in enumerate(records)
                if (code := block.offset(j, record.get(column))) >= 0
            ]
            out.reshape(-1)[flat] = 1.0
        for ordinal_block in self._ordinal:
            out[:, ordinal_block.out] = np.array(
                [
                    [ordinal_block.code(j, r.get(c)) for j, c in enumerate(ordinal_block.columns)]
                    for r in records
                ],
                dtype=np.float64,
            ).reshape(n, len(ordinal_block.columns))
        return out

    @property
    def width(self) -> int:
        """Columns of a preprocessed row (:meth:`transform_many`)."""
        return self._width

    def transform_one(self, record: Mapping[str, object]) -> np.ndarray:
        """One preprocessed row, shape (n_columns,): for tests and explanations."""
        return self.transform_many([record])[0]

    def margin(self, X: np.ndarray) -> np.ndarray | None:
        """The model's log-odds before calibration on preprocessed rows, where the head computes
        it bit-identically to the estimator (XGBoost's ``output_margin``), else None."""
        margin = getattr(self._head, "margin", None)
        return None if margin is None else np.asarray(margin(X), dtype=np.float64)

    def _score(self, X: np.ndarray) -> np.ndarray:
        response = self._head.response(X)
        if self._calibration is None:
            return np.asarray(self._head.proba(response), dtype=np.float64)
        return self._calibration(response)

    def score_many(self, records: Sequence[Mapping[str, object]]) -> np.ndarray:
        """Probabilities of default, shape (n,), equal to ``predict_proba(frame)[:, 1]``."""
        if len(records) == 0:
            return np.zeros(0)
        return self._score(self.transform_many(records))

    def transform_columns(self, columns: Mapping[str, np.ndarray], n: int) -> np.ndarray:
        """:meth:`transform_many` of ``n`` rows given as columns (each input column's values
        in row order, as records hold them; a float array with NaN for a missing number will
        do): the same array (tested), without a Python step per cell. An absent column is
        missing in every row."""
        if self._lookup is not None:
            names = list(columns)
            rows = [
                dict(zip(names, values, strict=True))
                for values in zip(*columns.values(), strict=True)
            ]
            return self.transform_many(rows if names else [{} for _ in range(n)])
        out = np.zeros((n, self._width))
        for block in self._numeric:
            values = np.empty((n, len(block.columns)))
            for j, column in enumerate(block.columns):
                values[:, j] = _numbers(columns.get(column), n)
            if np.isinf(values).any():  # the pipeline's imputer refuses infinity too
                raise ValueError(
                    "Input X contains infinity or a value too large for dtype('float64')."
                )
            out[:, block.out] = block.transform(values)
        rows = np.arange(n)
        for block in self._categorical:
            for j, column in enumerate(block.columns):
                offsets = _per_value(columns.get(column), n, lambda v, j=j, b=block: b.offset(j, v))
                hit = offsets >= 0
                out[rows[hit], block.out.start + offsets[hit]] = 1.0
        for ordinal in self._ordinal:
            for j, column in enumerate(ordinal.columns):
                out[:, ordinal.out.start + j] = _per_value(
                    columns.get(column), n, lambda v, j=j, b=ordinal: b.code(j, v), float
                )
        return out

    def score_columns(self, columns: Mapping[str, np.ndarray], n: int) -> np.ndarray:
        """:meth:`score_many` of rows given as columns (:meth:`transform_columns`)."""
        if n == 0:
            return np.zeros(0)
        return self._score(self.transform_columns(columns, n))

    def score_one(self, record: Mapping[str, object]) -> float:
        """The probability of default of one application; missing fields imputed as the
        pipeline imputes them."""
        return float(self._score(self.transform_many([record]))[0])

    def imputed_fields(self, record: Mapping[str, object]) -> list[str]:
        """The model's input fields that are missing (absent, None, empty, unreadable) in
        ``record`` and were filled in by the imputer (the scorecard: scored as missing)."""
        numeric, text = self._input_kinds()
        missing = [c for c in numeric if math.isnan(_number(record.get(c)))]
        missing += [c for c in text if _text(record.get(c)) is None]
        order = {c: i for i, c in enumerate(self.features)}
        return sorted(missing, key=order.__getitem__)

    def _input_kinds(self) -> tuple[list[str], list[str]]:
        """The numeric and the categorical request fields."""
        if self._lookup is not None:
            return self._lookup.numeric_columns, self._lookup.text_columns
        numeric = [c for block in self._numeric for c in block.columns]
        blocks = [*self._categorical, *self._ordinal]
        return numeric, [c for block in blocks for c in block.columns]

    def known_categories(self, column: str) -> tuple[set[str], bool]:
        """The categories ``column`` knows, and whether an unseen one is scored (not refused)."""
        if self._lookup is not None:
            return self._lookup.known_categories(column), True
        for block in [*self._categorical, *self._ordinal]:
            if column in block.columns:
                j = block.columns.index(column)
                return set(block.codes[j]), block.unknown[j] is not None
        return set(), True

    # -- self-check ----------------------------------------------------------------------

    def _verify(self, model: Any, spec: ResolvedSpec) -> None:
        verify_against(self, model, spec)


def _numbers(values: Any, n: int) -> np.ndarray:
    """A column as the pipeline reads numbers (:func:`_number` per cell, unless it is a float
    array already)."""
    if values is None:
        return np.full(n, np.nan)
    if isinstance(values, np.ndarray) and values.dtype == np.float64:
        return values
    return np.fromiter((_number(v) for v in values), dtype=np.float64, count=n)


def _per_value(values: Any, n: int, code: Any, dtype: Any = np.int64) -> np.ndarray:
    """``code(value)`` for each cell of a column, computed once per distinct value."""
    if values is None:
        return np.full(n, code(None), dtype=dtype)
    known: dict[Any, Any] = {}
    for value in values:
        if value not in known:
            known[value] = code(value)
    return np.fromiter((known[v] for v in values), dtype=dtype, count=n)


class CompiledScorer(Protocol):
    """What a compiled model offers (:class:`FastScorer`, and the stacked ensemble's)."""

    features: tuple[str, ...]
    feature_names: tuple[str, ...]
    kind: str

    @property
    def width(self) -> int: ...
    def transform_many(self, records: Sequence[Mapping[str, object]]) -> np.ndarray: ...
    def transform_columns(self, columns: Mapping[str, np.ndarray], n: int) -> np.ndarray: ...
    def score_columns(self, columns: Mapping[str, np.ndarray], n: int) -> np.ndarray: ...
    def transform_one(self, record: Mapping[str, object]) -> np.ndarray: ...
    def margin(self, X: np.ndarray) -> np.ndarray | None: ...
    def score_many(self, records: Sequence[Mapping[str, object]]) -> np.ndarray: ...
    def score_one(self, record: Mapping[str, object]) -> float: ...
    def imputed_fields(self, record: Mapping[str, object]) -> list[str]: ...
    def known_categories(self, column: str) -> tuple[set[str], bool]: ...
    def _input_kinds(self) -> tuple[list[str], list[str]]: ...


def verify_against(scorer: CompiledScorer, model: Any, spec: ResolvedSpec) -> None:
    """Raise UnsupportedModel unless ``scorer`` gives ``model.predict_proba``'s numbers on
    probe rows built from ``spec``, in batches and one row at a time."""
    probes = _probe_records(scorer, spec)
    frame = pd.DataFrame.from_records(probes, columns=list(scorer.features))
    try:
        expected = np.asarray(model.predict_proba(frame)[:, 1], dtype=np.float64)
        got = scorer.score_many(probes)
        # one at a time too: heads switch method with the number of rows
        one_by_one = np.array([scorer.score_one(record) for record in probes])
    except ValueError as exc:
        raise UnsupportedModel(f"probe rows could not be scored both ways: {exc}") from exc
    gap = float(max(np.max(np.abs(expected - got)), np.max(np.abs(expected - one_by_one))))
    if not gap <= VERIFY_TOLERANCE:
        raise UnsupportedModel(
            f"the compiled {scorer.kind} path disagrees with the pipeline on probe rows "
            f"(max |difference| {gap:.3g} > {VERIFY_TOLERANCE:g})"
        )


def _probe_records(scorer: CompiledScorer, spec: ResolvedSpec, n: int = 64) -> list[dict[str, Any]]:
    """Rows that exercise every branch: each category, unseen and missing values, numbers at,
    inside and far outside the training range, negative numbers, numbers sent as text."""
    rng = np.random.default_rng(0)
    schema = {s.name: s for s in spec.schema_}
    choices: dict[str, list[Any]] = {}
    numeric, text = scorer._input_kinds()
    for column in numeric:
        s = schema.get(column)
        low = s.minimum if s is not None and s.minimum is not None else 0.0
        high = s.maximum if s is not None and s.maximum is not None else 1.0
        span = max(high - low, 1.0)
        choices[column] = [
            low,
            high,
            (low + high) / 2,
            round((low + high) / 3),
            low - span,
            high + 3 * span,
            -1.5,
            0,
            None,
            str(high),
            float(rng.uniform(low, high)),
        ]
    for column in text:
        s = schema.get(column)
        known, unseen_ok = scorer.known_categories(column)
        known |= set((s.categories or []) if s else [])
        values: list[Any] = [*sorted(known), None, "", "  "]
        if unseen_ok:
            values.append("__unseen_category__")
        choices[column] = values
    records = []
    for i in range(n):
        record: dict[str, Any] = {}
        for column, values in choices.items():
            # Cycle through every value once, then mix at random.
            value = values[i] if i < len(values) else values[int(rng.integers(len(values)))]
            if value is not None or rng.random() < 0.5:
                record[column] = value  # else leave the key out: also missing
        records.append(record)
    return records
