"""The fitted ColumnTransformer compiled to array operations: imputation with missingness
indicators (or missing numbers kept as NaN for trees), Yeo-Johnson with its scaler, one-hot
encoding with infrequent buckets, ordinal category codes, and the column layout; anything else
is refused."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    OneHotEncoder,
    OrdinalEncoder,
    PowerTransformer,
)

from creditops.exceptions import UnsupportedModel
from creditops.features.preprocessing import categories_as_text, numbers_as_float
from creditops.serving.fastpath._parse import _text


@dataclass(frozen=True)
class _YeoJohnson:
    """PowerTransformer(method="yeo-johnson") with its optional standard scaler.

    Same operations as ``scipy.stats.yeojohnson`` with a given lambda (expm1/log1p form),
    vectorised over columns with per-element lambdas.
    """

    lam_pos: np.ndarray  # lambda, used where x >= 0
    lam_neg: np.ndarray  # 2 - lambda, used where x < 0
    log_pos: np.ndarray  # lambda == 0 (within eps): log1p branch for x >= 0
    log_neg: np.ndarray  # lambda == 2 (within eps): log1p branch for x < 0
    mean: np.ndarray | None
    scale: np.ndarray | None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        pos = x >= 0
        magnitude = np.log1p(np.where(pos, x, -x))
        lam = np.where(pos, self.lam_pos, self.lam_neg)
        special = np.where(pos, self.log_pos, self.log_neg)
        curved = np.expm1(lam * magnitude) / np.where(special, 1.0, lam)
        out = np.where(special, magnitude, curved)
        out = np.where(pos, out, -out)
        if self.mean is not None:
            out = out - self.mean
        if self.scale is not None:
            out = out / self.scale
        return out


@dataclass(frozen=True)
class _NumericBlock:
    """to_float → SimpleImputer (+ missingness indicators) → optional Yeo-Johnson; or to_float
    alone (``statistics`` None: missing stays NaN, for models that route it themselves)."""

    columns: tuple[str, ...]
    statistics: np.ndarray | None
    indicator: np.ndarray  # column positions that get a missingness flag, in output order
    power: _YeoJohnson | None
    out: slice

    def transform(self, values: np.ndarray) -> np.ndarray:
        if self.statistics is None:
            return values
        missing = np.isnan(values)
        filled = np.where(missing, self.statistics, values)
        if self.indicator.size:
            filled = np.concatenate([filled, missing[:, self.indicator]], axis=1, dtype=float)
        return filled if self.power is None else self.power(filled)


def _lookup(codes: dict[str, Any], unknown: Any, text: str, j: int, column: str) -> Any:
    """A category's code, else the unseen-category code, else the encoder's own error."""
    code = codes.get(text)
    if code is not None:
        return code
    if unknown is None:
        raise ValueError(
            f"Found unknown categories [{text!r}] in column {j} during transform "
            f"(feature {column!r})"
        )
    return unknown


@dataclass(frozen=True)
class _CategoricalBlock:
    """to_text → SimpleImputer (constant / most frequent) → OneHotEncoder."""

    columns: tuple[str, ...]
    fill: tuple[str, ...]  # the imputer's value per column
    codes: tuple[dict[str, int], ...]  # category → column offset in the block, -1: no column
    unknown: tuple[int | None, ...]  # offset for unseen categories; -1: all zeros; None: error
    out: slice

    def offset(self, j: int, value: object) -> int:
        text = _text(value)
        if text is None:
            text = self.fill[j]
        return _lookup(self.codes[j], self.unknown[j], text, j, self.columns[j])


@dataclass(frozen=True)
class _OrdinalBlock:
    """to_text → OrdinalEncoder: one code per column (NaN for missing or unseen categories
    where the encoder gives NaN), read off the fitted encoder itself."""

    columns: tuple[str, ...]
    codes: tuple[dict[str, float], ...]  # category text → code
    missing: tuple[float, ...]  # code of a missing value
    unknown: tuple[float | None, ...]  # code of an unseen category; None: the encoder refuses
    out: slice

    def code(self, j: int, value: object) -> float:
        text = _text(value)
        if text is None:
            return self.missing[j]
        return _lookup(self.codes[j], self.unknown[j], text, j, self.columns[j])


def _column_names(ct: ColumnTransformer, columns: Any) -> tuple[str, ...]:
    names = list(getattr(ct, "feature_names_in_", []))
    if isinstance(columns, str):
        columns = [columns]
    try:
        selected = list(columns)
    except TypeError as exc:
        raise UnsupportedModel(f"column selector {columns!r} is not a list") from exc
    if all(isinstance(c, str) for c in selected):
        return tuple(selected)
    if names and all(isinstance(c, int | np.integer) and not isinstance(c, bool) for c in selected):
        return tuple(str(names[int(c)]) for c in selected)
    raise UnsupportedModel(f"column selector {columns!r} is neither names nor positions")


def _is_nan(value: object) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _steps(transformer: Any) -> list[tuple[str, Any]]:
    if isinstance(transformer, Pipeline):
        return [(n, s) for n, s in transformer.steps if s is not None and s != "passthrough"]
    return [("step", transformer)]


def _describe(step: Any) -> str:
    return type(step).__name__


def _compile_imputer(step: Any, *, numeric: bool) -> SimpleImputer:
    if not isinstance(step, SimpleImputer):
        raise UnsupportedModel(f"expected a SimpleImputer, found {_describe(step)}")
    if not _is_nan(step.missing_values):
        raise UnsupportedModel(f"SimpleImputer(missing_values={step.missing_values!r})")
    if not hasattr(step, "statistics_"):
        raise UnsupportedModel("the SimpleImputer is not fitted")
    if numeric:
        stats = np.asarray(step.statistics_, dtype=float)
        if not np.all(np.isfinite(stats)):
            raise UnsupportedModel("the imputer drops all-missing columns (keep_empty_features)")
    else:
        if step.indicator_ is not None:
            raise UnsupportedModel("missingness indicators on categorical columns")
        if not all(isinstance(s, str) for s in step.statistics_):
            raise UnsupportedModel("a categorical imputer whose fill value is not text")
    return step


def _compile_numeric(columns: tuple[str, ...], steps: list[Any], out: slice) -> _NumericBlock:
    if not steps:
        return _NumericBlock(columns, None, np.zeros(0, dtype=np.intp), None, out)
    imputer = _compile_imputer(steps[0], numeric=True)
    if len(columns) != imputer.statistics_.shape[0]:
        raise UnsupportedModel("the imputer was fitted on a different number of columns")
    indicator = np.zeros(0, dtype=np.intp)
    if imputer.indicator_ is not None:
        if not _is_nan(imputer.indicator_.missing_values):
            raise UnsupportedModel("a missingness indicator for values other than NaN")
        indicator = np.asarray(imputer.indicator_.features_, dtype=np.intp)
    width = len(columns) + indicator.size
    power = None
    for step in steps[1:]:
        if power is not None or not isinstance(step, PowerTransformer):
            raise UnsupportedModel(
                f"numeric step {_describe(step)} (only SimpleImputer, then PowerTransformer)"
            )
        power = _compile_power(step, width)
    return _NumericBlock(columns, np.asarray(imputer.statistics_, float), indicator, power, out)


def _compile_power(step: PowerTransformer, width: int) -> _YeoJohnson:
    if step.method != "yeo-johnson":
        raise UnsupportedModel(f"PowerTransformer(method={step.method!r})")
    lambdas = np.asarray(step.lambdas_, dtype=np.float64)
    if lambdas.shape != (width,):
        raise UnsupportedModel("PowerTransformer lambdas do not match its input columns")
    eps = np.finfo(np.float64).eps
    mean = scale = None
    if step.standardize:
        scaler = step._scaler  # fitted StandardScaler inside PowerTransformer
        mean = None if scaler.mean_ is None or not scaler.with_mean else scaler.mean_
        scale = None if scaler.scale_ is None or not scaler.with_std else scaler.scale_
    return _YeoJohnson(
        lam_pos=lambdas,
        lam_neg=2 - lambdas,
        log_pos=np.abs(lambdas) < eps,
        log_neg=~(np.abs(lambdas - 2) > eps),
        mean=None if mean is None else np.asarray(mean, dtype=np.float64),
        scale=None if scale is None else np.asarray(scale, dtype=np.float64),
    )


def _encoder_codes(encoder: OneHotEncoder, i: int) -> tuple[dict[str, int], int | None, int]:
    """Column offsets of feature ``i``'s categories, the unknown offset, and the width."""
    categories = list(encoder.categories_[i])
    if not all(isinstance(c, str) for c in categories):
        raise UnsupportedModel("one-hot categories that are not text")
    infrequent_all = getattr(encoder, "infrequent_categories_", None)
    infrequent = infrequent_all[i] if infrequent_all is not None else None
    rare = set() if infrequent is None else {str(c) for c in infrequent}
    frequent = [c for c in categories if c not in rare]
    codes = {c: k for k, c in enumerate(frequent)}
    rare_column = len(frequent) if rare else None
    for c in rare:
        codes[c] = len(frequent)
    width = len(frequent) + (1 if rare else 0)
    drop = None if encoder.drop_idx_ is None else encoder.drop_idx_[i]
    if drop is not None:
        dropped = codes[categories[int(drop)]]
        codes = {c: (-1 if k == dropped else k - (k > dropped)) for c, k in codes.items()}
        if rare_column is not None:
            rare_column = None if rare_column == dropped else rare_column - (rare_column > dropped)
        width -= 1
    handle = encoder.handle_unknown
    if handle == "error":
        unknown = None
    elif handle == "ignore":
        unknown = -1
    elif handle in ("infrequent_if_exist", "warn"):
        unknown = -1 if rare_column is None else rare_column
    else:
        raise UnsupportedModel(f"OneHotEncoder(handle_unknown={handle!r})")
    return codes, unknown, width


def _compile_categorical(
    columns: tuple[str, ...], steps: list[Any], out: slice
) -> _CategoricalBlock:
    if len(steps) != 2:
        raise UnsupportedModel(
            "categorical columns need exactly SimpleImputer then OneHotEncoder, found "
            + ", ".join(_describe(s) for s in steps)
        )
    imputer = _compile_imputer(steps[0], numeric=False)
    encoder = steps[1]
    if not isinstance(encoder, OneHotEncoder):
        raise UnsupportedModel(f"categorical step {_describe(encoder)} (only OneHotEncoder)")
    if not hasattr(encoder, "categories_") or len(encoder.categories_) != len(columns):
        raise UnsupportedModel("the OneHotEncoder is not fitted on these columns")
    codes, unknown, offset = [], [], 0
    for i in range(len(columns)):
        feature_codes, feature_unknown, width = _encoder_codes(encoder, i)
        codes.append({c: (k if k < 0 else offset + k) for c, k in feature_codes.items()})
        unknown.append(
            feature_unknown
            if feature_unknown is None or feature_unknown < 0
            else offset + feature_unknown
        )
        offset += width
    if offset != out.stop - out.start:
        raise UnsupportedModel("one-hot width does not match the ColumnTransformer layout")
    return _CategoricalBlock(
        columns, tuple(str(s) for s in imputer.statistics_), tuple(codes), tuple(unknown), out
    )


def _compile_ordinal(columns: tuple[str, ...], steps: list[Any], out: slice) -> _OrdinalBlock:
    """Codes read by running the fitted encoder on every known category, a missing value and
    an unseen one, so whatever it does (infrequent groups, its missing code) is reproduced."""
    if len(steps) != 1 or not isinstance(steps[0], OrdinalEncoder):
        raise UnsupportedModel(
            "ordinal columns need exactly one OrdinalEncoder, found "
            + ", ".join(_describe(s) for s in steps)
        )
    encoder: OrdinalEncoder = steps[0]
    if not hasattr(encoder, "categories_") or len(encoder.categories_) != len(columns):
        raise UnsupportedModel("the OrdinalEncoder is not fitted on these columns")
    if out.stop - out.start != len(columns):
        raise UnsupportedModel("ordinal width does not match the ColumnTransformer layout")
    known = [[c for c in cats if isinstance(c, str)] for cats in encoder.categories_]
    if any(
        len(k) != len(c) - (1 if any(_is_nan(v) for v in c) else 0)
        for k, c in zip(known, encoder.categories_, strict=True)
    ):
        raise UnsupportedModel("ordinal categories that are not text")
    rows = max(len(k) for k in known) + 2
    probe = np.empty((rows, len(columns)), dtype=object)
    for j, cats in enumerate(known):
        filled = [*cats, *[cats[0] if cats else "__none__"] * (rows - 2 - len(cats))]
        probe[: rows - 2, j] = filled
        probe[rows - 2, j] = np.nan
        probe[rows - 1, j] = "\x00__unseen_category__"
    unknown_ok = encoder.handle_unknown == "use_encoded_value"
    if not unknown_ok:
        raise UnsupportedModel(f"OrdinalEncoder(handle_unknown={encoder.handle_unknown!r})")
    names = getattr(encoder, "feature_names_in_", None)
    rows_in = probe if names is None else pd.DataFrame(probe, columns=list(names))
    coded = np.asarray(encoder.transform(rows_in), dtype=np.float64)
    codes = tuple(
        {cat: float(coded[i, j]) for i, cat in enumerate(cats)} for j, cats in enumerate(known)
    )
    return _OrdinalBlock(
        columns,
        codes,
        tuple(float(v) for v in coded[rows - 2]),
        tuple(float(v) for v in coded[rows - 1]),
        out,
    )


def _compile_preprocess(
    ct: Any,
) -> tuple[list[_NumericBlock], list[_CategoricalBlock], list[_OrdinalBlock], int, tuple[str, ...]]:
    if not isinstance(ct, ColumnTransformer):
        raise UnsupportedModel(f"first pipeline step is {_describe(ct)}, not a ColumnTransformer")
    if not hasattr(ct, "transformers_"):
        raise UnsupportedModel("the ColumnTransformer is not fitted")
    if getattr(ct, "sparse_output_", False):
        raise UnsupportedModel("sparse preprocessing output")
    numeric: list[_NumericBlock] = []
    categorical: list[_CategoricalBlock] = []
    ordinal: list[_OrdinalBlock] = []
    for name, transformer, selector in ct.transformers_:
        if isinstance(transformer, str):
            if transformer == "drop":
                continue
            raise UnsupportedModel(f"ColumnTransformer entry {name!r} is {transformer!r}")
        columns = _column_names(ct, selector)
        out = ct.output_indices_[name]
        if not columns or out.stop == out.start:
            continue
        steps = [s for _, s in _steps(transformer)]
        first = steps[0]
        if not isinstance(first, FunctionTransformer) or first.kw_args:
            raise UnsupportedModel(
                f"preprocessing {name!r} starts with {_describe(first)}, not a known conversion"
            )
        if first.func is numbers_as_float:
            block: _NumericBlock | _CategoricalBlock = _compile_numeric(columns, steps[1:], out)
            numeric.append(block)
            width = len(block.columns) + block.indicator.size
        elif first.func is categories_as_text and isinstance(steps[-1], OrdinalEncoder):
            ordinal_block = _compile_ordinal(columns, steps[1:], out)
            ordinal.append(ordinal_block)
            width = len(columns)
        elif first.func is categories_as_text:
            block = _compile_categorical(columns, steps[1:], out)
            categorical.append(block)
            width = out.stop - out.start
        else:
            raise UnsupportedModel(f"FunctionTransformer({first.func!r}) in {name!r}")
        if width != out.stop - out.start:
            raise UnsupportedModel(f"{name!r} width does not match the ColumnTransformer layout")
    blocks: list[_NumericBlock | _CategoricalBlock | _OrdinalBlock] = [
        *numeric,
        *categorical,
        *ordinal,
    ]
    if not blocks:
        raise UnsupportedModel("the ColumnTransformer produces no columns")
    total = max(b.out.stop for b in blocks)
    if sum(b.out.stop - b.out.start for b in blocks) != total:
        raise UnsupportedModel("the ColumnTransformer output has columns the fast path cannot fill")
    inputs = tuple(dict.fromkeys(c for b in blocks for c in b.columns))
    return numeric, categorical, ordinal, total, inputs
