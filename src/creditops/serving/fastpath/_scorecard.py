"""The WoE scorecard's input side compiled to lookups: each request value → its bin → the bin's
WoE, one column per scored feature (the space its logistic regression, an affine head, reads).

The scorecard's pipeline converts the request with the binning preprocessor (numbers as float
with NaN kept, categories as text; ``features.preprocessing.build_binning_preprocessor``) and
bins the converted values; here both happen per value: ``_number`` / ``_text`` read a value as
the converters do, then a numeric value is placed with ``bisect_right`` on the bin edges (what
optbinning's ``np.digitize(x, splits, right=False)`` does) and a category is looked up. Missing
values take the missing bin's WoE, categories never seen in training (or, for an ordered
feature, outside the spec's order) the WoE optbinning gives them. The WoE values themselves were
read from optbinning's own transform when the scorecard was fitted
(:class:`creditops.models.scorecard.FeatureBins`).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.preprocessing import FunctionTransformer

from creditops.exceptions import UnsupportedModel
from creditops.features.preprocessing import categories_as_text, numbers_as_float
from creditops.serving.fastpath._parse import _number, _text
from creditops.serving.fastpath._preprocess import _column_names, _describe, _steps

_INFINITY = "Input X contains infinity or a value too large for dtype('float64')."


@dataclass(frozen=True)
class _WoeFeature:
    column: str  # the request field
    numeric: bool
    splits: tuple[float, ...]  # numeric: bin i holds splits[i-1] <= x < splits[i]
    woe: tuple[float, ...]  # numeric: per bin
    categories: Mapping[str, float]  # text → WoE
    missing: float
    unknown: float  # text absent from ``categories``


class _WoeLookup:
    """Request records → the scorecard's WoE columns, shape (n, len(features))."""

    def __init__(self, features: list[_WoeFeature], numeric: list[str], text: list[str]) -> None:
        self.features = features
        self.width = len(features)
        self.numeric_columns = numeric  # every numeric input the pipeline reads
        self.text_columns = text  # every categorical input the pipeline reads

    def transform(self, records: Sequence[Mapping[str, object]]) -> np.ndarray:
        rows = [[_woe(f, record.get(f.column)) for f in self.features] for record in records]
        return np.array(rows, dtype=np.float64).reshape(len(records), self.width)

    def known_categories(self, column: str) -> set[str]:
        return {c for f in self.features if f.column == column for c in f.categories}


def _woe(feature: _WoeFeature, value: object) -> float:
    if feature.numeric:
        x = _number(value)
        if math.isnan(x):
            return feature.missing
        if math.isinf(x):  # the scorecard refuses infinity, like every pipeline's imputer
            raise ValueError(_INFINITY)
        return feature.woe[bisect_right(feature.splits, x)]
    text = _text(value)
    if text is None:
        return feature.missing
    return feature.categories.get(text, feature.unknown)


def _converters(ct: Any) -> dict[str, tuple[str, bool]]:
    """The binning preprocessor's output columns → (request field, numeric?)."""
    if not isinstance(ct, ColumnTransformer) or not hasattr(ct, "transformers_"):
        raise UnsupportedModel(
            f"first pipeline step is {_describe(ct)}, not a fitted ColumnTransformer"
        )
    names = [str(n) for n in ct.get_feature_names_out()]
    out: dict[str, tuple[str, bool]] = {}
    for name, transformer, selector in ct.transformers_:
        if isinstance(transformer, str):
            if transformer == "drop":
                continue
            raise UnsupportedModel(f"ColumnTransformer entry {name!r} is {transformer!r}")
        steps = [s for _, s in _steps(transformer)]
        step = steps[0] if len(steps) == 1 else None
        if not isinstance(step, FunctionTransformer) or step.kw_args:
            raise UnsupportedModel(
                f"scorecard preprocessing {name!r} is not a single number or text conversion"
            )
        if step.func is numbers_as_float:
            numeric = True
        elif step.func is categories_as_text:
            numeric = False
        else:
            raise UnsupportedModel(f"FunctionTransformer({step.func!r}) in {name!r}")
        columns = _column_names(ct, selector)
        where = ct.output_indices_[name]
        if len(columns) != where.stop - where.start:
            raise UnsupportedModel(f"{name!r} width does not match the ColumnTransformer layout")
        for column, output in zip(columns, names[where], strict=True):
            out[output] = (column, numeric)
    return out


def _compile_scorecard(preprocess: Any, estimator: Any) -> tuple[_WoeLookup, tuple[str, ...]]:
    """The lookups of a fitted scorecard and the request fields its pipeline reads."""
    converters = _converters(preprocess)
    names_in = [str(n) for n in getattr(estimator, "feature_names_in_", [])]
    if names_in != list(converters):
        raise UnsupportedModel("the scorecard does not read the preprocessing's columns by name")
    features = []
    for bins in estimator.bins_:
        column, numeric = converters[bins.feature]
        if numeric != (bins.kind == "numeric"):
            raise UnsupportedModel(f"{bins.feature!r} is converted and binned as different kinds")
        if numeric:
            woe = tuple(float(b.woe) for b in bins.bins)
            if len(woe) != len(bins.splits) + 1:
                raise UnsupportedModel(f"{bins.feature!r}: bins and edges do not match")
            categories: dict[str, float] = {}
        else:
            woe = ()
            categories = {c: float(bins.bins[i].woe) for c, i in bins.categories.items()}
        features.append(
            _WoeFeature(
                column=column,
                numeric=numeric,
                splits=tuple(float(s) for s in bins.splits),
                woe=woe,
                categories=categories,
                missing=float(bins.missing.woe),
                unknown=float(bins.unknown_woe),
            )
        )
    inputs = tuple(dict.fromkeys(column for column, _ in converters.values()))
    numeric_inputs = [c for c, numeric in converters.values() if numeric]
    text_inputs = [c for c, numeric in converters.values() if not numeric]
    return _WoeLookup(features, numeric_inputs, text_inputs), inputs
