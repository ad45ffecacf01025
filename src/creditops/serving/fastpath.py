"""A fast path for scoring single applications: the fitted pipeline compiled to numpy.

``model.predict_proba(one-row DataFrame)`` spends several milliseconds in pandas, input
validation and ColumnTransformer bookkeeping while the model itself needs a fraction of a
millisecond. :meth:`FastScorer.compile` reads the fitted attributes of the preprocessing
(imputation statistics and missingness indicators, Yeo-Johnson lambdas and their standard
scaler, one-hot categories with infrequent buckets, the column layout of the
ColumnTransformer) and of the final estimator, and replays them with plain array operations
on records as they arrive in a JSON request.

The compiled path must give the pipeline's numbers, so it refuses (``UnsupportedModel``)
anything it does not reproduce exactly, and by default checks itself against the pipeline on
probe rows built from the dataset spec before it is used. Callers keep the pipeline as the
fallback: :func:`compile_or_none`.

Per final estimator:

* ``LogisticRegression`` (optionally after ``PCA``): one affine map on the preprocessed row;
  PCA is folded into the coefficients.
* ``XGBClassifier``: for a few rows the booster's trees, read from its JSON model, are walked
  with vectorised numpy exactly as XGBoost walks them (float32 comparisons, default
  directions, float32 sums in tree order, the C library's ``expf`` in the logistic link); for
  larger batches ``inplace_predict`` on a single-threaded copy of the booster, asking for the
  output the sklearn wrapper asks for. Both are bit-identical to ``predict_proba``.
* ``RandomForestClassifier`` / ``ExtraTreesClassifier``: for a few rows all trees are walked
  at once with vectorised numpy (one step per tree level instead of one sklearn call per
  tree); for larger batches each tree's compiled ``tree_.predict``. Per-tree probabilities
  are summed in tree order, exactly as sklearn does, so results are bit-identical too.
* ``TorchMLPClassifier``: the network's layers as float64 numpy matmuls, mirroring the
  estimator's own float64 inference (inputs rounded to float32 first, as it does).
* ``CalibratedClassifierCV(ensemble=False)`` around any of these: its fitted calibrator
  applied to the response sklearn feeds it (the decision function when the pipeline has one,
  else the positive-class probability, in the same dtype).

Costs per application on the 2-core development machine (``benchmarks/fastpath.py``; the
pipeline takes 7-8 ms, forests ~20 ms): ~27 µs for the logistic models, ~34 µs for the
network, ~63 µs for XGBoost (150 trees walked with numpy; one ``inplace_predict`` call costs
~150 µs even for a single tree) and ~0.3 ms for a 300-tree full-depth forest (sklearn's own
``predict_proba`` on the preprocessed numpy row costs ~13 ms: joblib plus one validated call
per tree).

Records are mappings as decoded from JSON: numbers as int or float (or numeric text, read as
``pd.to_numeric`` reads it), categories as text (surrounding blanks stripped); an absent key,
None, NaN, or empty text is missing and imputed. A compiled scorer is immutable and safe to
share between threads.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import logging
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd
from scipy.special import erf, expit
from sklearn.calibration import CalibratedClassifierCV, _SigmoidCalibration
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, PowerTransformer

from creditops.data.spec import ResolvedSpec
from creditops.exceptions import CreditOpsError
from creditops.features.preprocessing import categories_as_text, numbers_as_float

__all__ = ["FastScorer", "UnsupportedModel", "compile_or_none"]

logger = logging.getLogger(__name__)

# Agreement required between the compiled path and the pipeline on the probe rows checked at
# compile time. Float64 models agree to ~1e-15 (summation order); the tree models and
# XGBoost are bit-identical.
VERIFY_TOLERANCE = 1e-9
# Up to this many rows the forest is walked with vectorised numpy (all trees at once);
# above it sklearn's compiled per-tree traversal is faster (measured crossover: ~8 rows for
# 300 full-depth trees).
_FOREST_VECTOR_ROWS = 8
# Up to this many rows XGBoost's trees are walked with numpy; above it the booster's own
# predictor is faster (its ~150 µs fixed cost per call is then shared by the rows).
_TREE_VECTOR_ROWS = 8
# The smallest magnitude that rounds to infinity in float32: FLT_MAX plus half its ulp (2**103).
_FLOAT32_OVERFLOW = float(np.finfo(np.float32).max) + 2.0**103


class UnsupportedModel(CreditOpsError):  # noqa: N818 (the serving API's agreed name)
    """The model holds a step the fast path cannot reproduce exactly; serve the pipeline."""


# --------------------------------------------------------------------------- record parsing


def _number(value: object) -> float:
    """A request value as the pipeline's ``pd.to_numeric(errors="coerce")`` would read it."""
    if value is None:
        return math.nan
    kind = type(value)
    if kind is float or kind is int or kind is bool:
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        # pandas refuses digit separators and non-ASCII digits that float() accepts.
        if not text.isascii() or "_" in text:
            return math.nan
        try:
            return float(text)
        except ValueError:
            return math.nan
    try:
        return float(value)  # numpy scalars, Decimal; int overflow raises like pandas
    except (TypeError, ValueError):
        return math.nan


def _text(value: object) -> str | None:
    """A request value as ``to_category_text`` would read it; None when missing."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float) and value != value:
        return None
    text = (value if isinstance(value, str) else str(value)).strip()
    return text or None


# --------------------------------------------------------------------------- preprocessing


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
    """to_float → SimpleImputer (+ missingness indicators) → optional Yeo-Johnson."""

    columns: tuple[str, ...]
    statistics: np.ndarray
    indicator: np.ndarray  # column positions that get a missingness flag, in output order
    power: _YeoJohnson | None
    out: slice

    def transform(self, values: np.ndarray) -> np.ndarray:
        missing = np.isnan(values)
        filled = np.where(missing, self.statistics, values)
        if self.indicator.size:
            filled = np.concatenate([filled, missing[:, self.indicator]], axis=1, dtype=float)
        return filled if self.power is None else self.power(filled)


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
        code = self.codes[j].get(text)
        if code is not None:
            return code
        unknown = self.unknown[j]
        if unknown is None:
            raise ValueError(
                f"Found unknown categories [{text!r}] in column {j} during transform "
                f"(feature {self.columns[j]!r})"
            )
        return unknown


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
        raise UnsupportedModel("numeric columns without an imputer")
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


def _compile_preprocess(
    ct: Any,
) -> tuple[list[_NumericBlock], list[_CategoricalBlock], int, tuple[str, ...]]:
    if not isinstance(ct, ColumnTransformer):
        raise UnsupportedModel(f"first pipeline step is {_describe(ct)}, not a ColumnTransformer")
    if not hasattr(ct, "transformers_"):
        raise UnsupportedModel("the ColumnTransformer is not fitted")
    if getattr(ct, "sparse_output_", False):
        raise UnsupportedModel("sparse preprocessing output")
    numeric: list[_NumericBlock] = []
    categorical: list[_CategoricalBlock] = []
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
        elif first.func is categories_as_text:
            block = _compile_categorical(columns, steps[1:], out)
            categorical.append(block)
            width = out.stop - out.start
        else:
            raise UnsupportedModel(f"FunctionTransformer({first.func!r}) in {name!r}")
        if width != out.stop - out.start:
            raise UnsupportedModel(f"{name!r} width does not match the ColumnTransformer layout")
    blocks = [*numeric, *categorical]
    if not blocks:
        raise UnsupportedModel("the ColumnTransformer produces no columns")
    total = max(b.out.stop for b in blocks)
    if sum(b.out.stop - b.out.start for b in blocks) != total:
        raise UnsupportedModel("the ColumnTransformer output has columns the fast path cannot fill")
    inputs = tuple(dict.fromkeys(c for b in blocks for c in b.columns))
    return numeric, categorical, total, inputs


# --------------------------------------------------------------------------- estimators


def _check_finite(X: np.ndarray) -> None:
    """The estimator-input check sklearn makes (same exception type and message)."""
    if not np.isfinite(X).all():
        raise ValueError("Input X contains infinity or a value too large for dtype('float64').")


class _Head(Protocol):
    has_decision: bool
    kind: str

    def response(self, X: np.ndarray) -> np.ndarray: ...

    def proba(self, response: np.ndarray) -> np.ndarray: ...


class _AffineHead:
    """Logistic regression (with any PCA before it folded in): one affine map."""

    has_decision = True

    def __init__(self, weights: np.ndarray, intercept: np.ndarray, kind: str) -> None:
        self.weights = weights  # (d, 1)
        self.intercept = intercept  # (1,)
        self.kind = kind

    def response(self, X: np.ndarray) -> np.ndarray:
        _check_finite(X)
        return (X @ self.weights + self.intercept)[:, 0]

    def proba(self, response: np.ndarray) -> np.ndarray:
        return expit(response)


def _compile_affine(estimator: LogisticRegression, middle: list[PCA], width: int) -> _AffineHead:
    if len(estimator.classes_) != 2 or estimator.coef_.shape[0] != 1:
        raise UnsupportedModel("a logistic regression that is not binary")
    weights = np.asarray(estimator.coef_, dtype=np.float64).T.copy()
    intercept = np.asarray(estimator.intercept_, dtype=np.float64).copy()
    for pca in reversed(middle):  # fold z = (x @ C.T - mean @ C.T) / s into the weights
        components = np.asarray(pca.components_, dtype=np.float64)
        if pca.whiten:
            scale = np.sqrt(pca.explained_variance_)
            scale[scale < np.finfo(scale.dtype).eps] = np.finfo(scale.dtype).eps
            weights = weights / scale[:, None]
        intercept = intercept - (pca.mean_ @ components.T) @ weights
        weights = components.T @ weights
    if weights.shape[0] != width:
        raise UnsupportedModel("the logistic regression does not match the preprocessing width")
    kind = "logistic_regression" if not middle else "pca_logistic_regression"
    return _AffineHead(weights, intercept, kind)


def _c_float_function(name: str) -> Callable[[float], float] | None:
    """A float32 function of the C maths library (``expf``, ``logf``), or None if not found."""
    library = ctypes.util.find_library("m")
    if library is None:
        return None
    try:
        function = getattr(ctypes.CDLL(library), name)
    except (OSError, AttributeError):
        return None
    function.restype = ctypes.c_float
    function.argtypes = [ctypes.c_float]
    return function


class _BoosterTrees:
    """An XGBoost booster's trees as arrays, walked for a few rows at once with numpy.

    Walks the trees exactly as XGBoost's CPU predictor does: the float32 feature value is
    compared ``value < split_condition`` (left when true), a missing value follows the node's
    default direction, and the leaf values are added in float32, in tree order, onto the base
    margin. The margins are therefore bit-identical to ``inplace_predict(predict_type="margin")``.
    """

    def __init__(self, booster: Any, iteration_range: tuple[int, int]) -> None:
        config = json.loads(booster.save_config())
        learner = config["learner"]
        parameters = learner["learner_model_param"]
        if (
            parameters.get("num_class", "0") not in ("0", "1")
            or parameters.get("num_target", "1") != "1"
        ):
            raise UnsupportedModel("an XGBoost model with several outputs")
        gbm = learner["gradient_booster"]
        if gbm.get("name") != "gbtree":
            raise UnsupportedModel(f"XGBoost booster {gbm.get('name')!r}")
        per_iteration = int(gbm["gbtree_model_param"].get("num_parallel_tree", "1"))
        trees = json.loads(booster.save_raw("json"))["learner"]["gradient_booster"]["model"][
            "trees"
        ]
        first, last = iteration_range
        if (first, last) != (0, 0):
            trees = trees[first * per_iteration : last * per_iteration]
        logf = _c_float_function("logf")
        if logf is None:
            raise UnsupportedModel("the C maths library (logf) is not available")
        base_scores = [float(v) for v in parameters["base_score"].strip("[]").split(",")]
        if len(base_scores) != 1 or not 0.0 < base_scores[0] < 1.0:
            raise UnsupportedModel(f"XGBoost base_score {parameters['base_score']!r}")
        base = np.float32(base_scores[0])
        # XGBoost's logistic ProbToMargin, in float32 with the C library's logf
        self.base_margin = np.float32(-logf(float(np.float32(1.0) / base - np.float32(1.0))))
        lefts, rights, features, conditions, defaults, roots = [], [], [], [], [], []
        offset, depth = 0, 0
        for tree in trees:
            if any(int(t) != 0 for t in tree["split_type"]):
                raise UnsupportedModel("an XGBoost tree with categorical splits")
            left = np.asarray(tree["left_children"], dtype=np.intp)
            right = np.asarray(tree["right_children"], dtype=np.intp)
            n = len(left)
            node = np.arange(offset, offset + n)
            leaf = left < 0
            lefts.append(np.where(leaf, node, left + offset))
            rights.append(np.where(leaf, node, right + offset))
            features.append(np.where(leaf, 0, np.asarray(tree["split_indices"], dtype=np.intp)))
            # a leaf's value is stored in its split condition
            conditions.append(np.asarray(tree["split_conditions"], dtype=np.float32))
            defaults.append(np.asarray(tree["default_left"], dtype=bool))
            roots.append(offset)
            offset += n
            levels = np.zeros(n, dtype=np.intp)
            for i in range(n):  # children are always numbered after their parent
                if left[i] >= 0:
                    levels[left[i]] = levels[right[i]] = levels[i] + 1
            depth = max(depth, int(levels.max()))
        if not roots:
            raise UnsupportedModel("an XGBoost model without trees")
        self.left = np.concatenate(lefts)
        self.right = np.concatenate(rights)
        self.feature = np.concatenate(features)
        self.condition = np.concatenate(conditions)
        self.default_left = np.concatenate(defaults)
        self.roots = np.asarray(roots, dtype=np.intp)
        self.depth = depth

    def margin(self, x32: np.ndarray) -> np.ndarray:
        n = x32.shape[0]
        node = np.tile(self.roots, (n, 1))
        rows = np.arange(n)[:, None]
        for _ in range(self.depth):
            value = x32[rows, self.feature[node]]
            left = np.where(np.isnan(value), self.default_left[node], value < self.condition[node])
            node = np.where(left, self.left[node], self.right[node])
        leaves = np.concatenate(
            [np.full((n, 1), self.base_margin, dtype=np.float32), self.condition[node]], axis=1
        )
        # add.accumulate sums in order, in float32, as XGBoost does: bit-identical margins
        return np.cumsum(leaves, axis=1, dtype=np.float32)[:, -1]


class _XGBoostHead:
    """XGBoost's own prediction on float32 rows, bit-identical to ``predict_proba``.

    ``inplace_predict`` has a fixed cost of ~150 µs per call (XGBoost builds a context and a
    proxy matrix each time), many times what one row needs. So up to ``_TREE_VECTOR_ROWS``
    rows the trees are walked by :class:`_BoosterTrees` and the logistic link applied as
    XGBoost applies it (``1 / (1 + expf(-x))`` in float32, with the C library's ``expf``);
    larger batches go to ``inplace_predict`` on a single-threaded copy of the booster. A model
    the tree walk cannot reproduce (dart, categorical splits, a missing value other than NaN)
    is served by the booster alone.
    """

    has_decision = False
    kind = "xgboost"

    def __init__(self, estimator: Any) -> None:
        if getattr(estimator, "objective", None) != "binary:logistic":
            raise UnsupportedModel(f"XGBoost objective {estimator.objective!r}")
        if getattr(estimator, "booster", None) not in (None, "gbtree", "dart"):
            raise UnsupportedModel(f"XGBoost booster {estimator.booster!r}")
        if getattr(estimator, "n_classes_", 2) != 2:
            raise UnsupportedModel("an XGBoost model that is not binary")
        # A copy: the served model keeps its thread setting (and stays thread-safe).
        self.booster = estimator.get_booster().copy()
        self.booster.set_param({"nthread": 1})
        try:
            self.iteration_range = (0, estimator.best_iteration + 1)
        except AttributeError:
            self.iteration_range = (0, 0)
        self.missing = estimator.missing
        self.width = self.booster.num_features()
        self.trees: _BoosterTrees | None = None
        self._expf = _c_float_function("expf")
        missing_is_nan = self.missing is None or (
            isinstance(self.missing, float) and math.isnan(self.missing)
        )
        if missing_is_nan and self._expf is not None:
            try:
                self.trees = _BoosterTrees(self.booster, self.iteration_range)
            except UnsupportedModel as exc:
                logger.info("XGBoost rows scored by the booster only: %s", exc)

    def margin(self, X: np.ndarray) -> np.ndarray:
        """The raw log-odds (before the logistic link), float32."""
        x32 = np.ascontiguousarray(X, dtype=np.float32)
        if self.trees is not None and x32.shape[0] <= _TREE_VECTOR_ROWS:
            return self.trees.margin(x32)  # ±inf go where XGBoost sends them: no check
        return self._predict(x32, "margin")

    def response(self, X: np.ndarray) -> np.ndarray:
        x32 = np.ascontiguousarray(X, dtype=np.float32)
        if self.trees is None or x32.shape[0] > _TREE_VECTOR_ROWS:
            return self._predict(x32, "value")
        expf, one = self._expf, np.float32(1.0)
        margin = self.margin(x32)
        exponent = np.minimum(-margin, np.float32(88.7))  # XGBoost's overflow guard
        return np.array([one / (np.float32(expf(float(e))) + one) for e in exponent])

    def _predict(self, x32: np.ndarray, predict_type: str) -> np.ndarray:
        return self.booster.inplace_predict(
            x32,
            iteration_range=self.iteration_range,
            predict_type=predict_type,
            missing=self.missing,
            validate_features=False,
        )

    def proba(self, response: np.ndarray) -> np.ndarray:
        return response


class _ForestHead:
    """Random forest / extra trees: mean of the trees' positive-class leaf fractions."""

    has_decision = False
    kind = "random_forest"

    def __init__(self, forest: Any) -> None:
        if forest.n_outputs_ != 1 or len(forest.classes_) != 2:
            raise UnsupportedModel("a forest that is not a single binary output")
        self.trees = [e.tree_ for e in forest.estimators_]
        lefts, rights, features, thresholds, values, roots = [], [], [], [], [], []
        offset = 0
        for tree in self.trees:
            if tree.value.shape[1:] != (1, 2):
                raise UnsupportedModel("a tree without two class columns")
            n = tree.node_count
            node = np.arange(offset, offset + n)
            leaf = tree.children_left < 0
            lefts.append(np.where(leaf, node, tree.children_left + offset))
            rights.append(np.where(leaf, node, tree.children_right + offset))
            features.append(np.where(leaf, 0, tree.feature))
            thresholds.append(tree.threshold)
            values.append(tree.value[:, 0, 1])
            roots.append(offset)
            offset += n
        self.left = np.concatenate(lefts).astype(np.intp)
        self.right = np.concatenate(rights).astype(np.intp)
        self.feature = np.concatenate(features).astype(np.intp)
        self.threshold = np.concatenate(thresholds).astype(np.float64)
        self.value = np.concatenate(values).astype(np.float64)
        self.roots = np.asarray(roots, dtype=np.intp)
        self.depth = max(t.max_depth for t in self.trees)
        self.width = forest.n_features_in_

    def response(self, X: np.ndarray) -> np.ndarray:
        if not (np.abs(X) < _FLOAT32_OVERFLOW).all():  # sklearn refuses what float32 can't hold
            raise ValueError("Input X contains infinity or a value too large for dtype('float32').")
        x32 = np.ascontiguousarray(X, dtype=np.float32)  # sklearn's trees compare in float32
        n = x32.shape[0]
        if n <= _FOREST_VECTOR_ROWS:
            node = np.tile(self.roots, (n, 1))
            rows = np.arange(n)[:, None]
            for _ in range(self.depth):
                left = x32[rows, self.feature[node]] <= self.threshold[node]
                node = np.where(left, self.left[node], self.right[node])
            # cumsum adds in tree order, like sklearn's accumulation: bit-identical sums.
            total = np.cumsum(self.value[node], axis=1)[:, -1]
        else:
            total = np.zeros(n)
            for tree in self.trees:
                total += tree.predict(x32)[:, 1]
        return total / len(self.trees)

    def proba(self, response: np.ndarray) -> np.ndarray:
        return response


def _activation(module: Any) -> Callable[[np.ndarray], np.ndarray]:
    name = type(module).__name__
    if name == "ReLU":
        return lambda h: np.maximum(h, 0.0)
    if name == "LeakyReLU":
        slope = float(module.negative_slope)
        return lambda h: np.where(h > 0, h, h * slope)
    if name == "Tanh":
        return np.tanh
    if name == "SiLU":
        return lambda h: h * expit(h)
    if name == "ELU":
        alpha = float(module.alpha)
        return lambda h: np.where(h > 0, h, alpha * np.expm1(h))
    if name == "GELU" and module.approximate == "none":
        return lambda h: 0.5 * h * (1.0 + erf(h / math.sqrt(2.0)))
    if name == "GELU" and module.approximate == "tanh":
        c = math.sqrt(2.0 / math.pi)
        return lambda h: 0.5 * h * (1.0 + np.tanh(c * (h + 0.044715 * h**3)))
    raise UnsupportedModel(f"network layer {name}")


class _NetworkHead:
    """TorchMLPClassifier as float64 numpy matmuls of its weights (its own inference dtype)."""

    has_decision = True
    kind = "neural_network"

    def __init__(self, estimator: Any) -> None:
        import torch  # already imported: the estimator holds torch modules

        network = estimator.model_
        if not isinstance(network, torch.nn.Sequential):
            raise UnsupportedModel(f"network {type(network).__name__}, not Sequential")
        self.layers: list[tuple[np.ndarray, np.ndarray] | Callable[..., np.ndarray]] = []
        for module in network:
            if isinstance(module, torch.nn.Dropout):
                continue  # identity at inference
            if isinstance(module, torch.nn.Linear):
                weight = module.weight.detach().to(torch.float64).numpy().T.copy()
                bias = (
                    np.zeros(weight.shape[1])
                    if module.bias is None
                    else module.bias.detach().to(torch.float64).numpy().copy()
                )
                self.layers.append((weight, bias))
            else:
                self.layers.append(_activation(module))
        linear = [layer for layer in self.layers if isinstance(layer, tuple)]
        if not linear or linear[-1][0].shape[1] != 1:
            raise UnsupportedModel("a network without a single output logit")
        self.width = linear[0][0].shape[0]

    def response(self, X: np.ndarray) -> np.ndarray:
        _check_finite(X)
        h = X.astype(np.float32).astype(np.float64)  # the estimator feeds float32 rows
        for layer in self.layers:
            h = h @ layer[0] + layer[1] if isinstance(layer, tuple) else layer(h)
        return h[:, 0]

    def proba(self, response: np.ndarray) -> np.ndarray:
        return expit(response)


def _compile_head(estimator: Any, middle: list[Any], width: int) -> _Head:
    if middle and not isinstance(estimator, LogisticRegression):
        raise UnsupportedModel(
            f"steps {', '.join(_describe(s) for s in middle)} before {_describe(estimator)}"
        )
    if isinstance(estimator, LogisticRegression):
        return _compile_affine(estimator, middle, width)
    if isinstance(estimator, RandomForestClassifier | ExtraTreesClassifier):
        head: Any = _ForestHead(estimator)
    elif (xgb := sys.modules.get("xgboost")) is not None and isinstance(
        estimator, xgb.XGBClassifier
    ):
        head = _XGBoostHead(estimator)
    elif (neural := sys.modules.get("creditops.models.neural")) is not None and isinstance(
        estimator, neural.TorchMLPClassifier
    ):
        head = _NetworkHead(estimator)
    else:
        raise UnsupportedModel(f"final estimator {_describe(estimator)}")
    if len(estimator.classes_) != 2:
        raise UnsupportedModel("a classifier that is not binary")
    if head.width != width:
        raise UnsupportedModel(f"{_describe(estimator)} does not match the preprocessing width")
    return head


# --------------------------------------------------------------------------- calibration


class _Calibration:
    """The fitted calibrator of CalibratedClassifierCV(ensemble=False), applied as sklearn does."""

    def __init__(self, calibrator: Any) -> None:
        if isinstance(calibrator, _SigmoidCalibration):
            self.kind = "sigmoid"
        elif isinstance(calibrator, IsotonicRegression):
            if calibrator.out_of_bounds != "clip" or not hasattr(calibrator, "f_"):
                raise UnsupportedModel("an isotonic calibrator that does not clip")
            self.kind = "isotonic"
        else:
            raise UnsupportedModel(f"calibrator {_describe(calibrator)}")
        self.calibrator = calibrator

    def __call__(self, response: np.ndarray) -> np.ndarray:
        cal = self.calibrator
        if self.kind == "sigmoid":
            calibrated = expit(-(cal.a_ * response + cal.b_))
        else:
            T = np.asarray(response, dtype=cal.X_thresholds_.dtype)
            T = np.clip(T, cal.X_min_, cal.X_max_)
            calibrated = cal.f_(T).astype(T.dtype)
        proba = np.asarray(calibrated, dtype=np.float64)
        proba[(proba > 1.0) & (proba <= 1.0 + 1e-5)] = 1.0
        return proba


def _unwrap(model: Any) -> tuple[Any, _Calibration | None]:
    if not isinstance(model, CalibratedClassifierCV):
        return model, None
    fitted = getattr(model, "calibrated_classifiers_", None)
    if fitted is None:
        raise UnsupportedModel("the CalibratedClassifierCV is not fitted")
    if len(fitted) != 1:
        raise UnsupportedModel(f"CalibratedClassifierCV with {len(fitted)} calibrated models")
    inner = fitted[0]
    if inner.method not in ("sigmoid", "isotonic") or len(inner.calibrators) != 1:
        raise UnsupportedModel(f"calibration method {inner.method!r}")
    estimator = inner.estimator
    if type(estimator).__name__ == "FrozenEstimator":
        estimator = estimator.estimator
    if len(model.classes_) != 2 or list(model.classes_) != list(estimator.classes_):
        raise UnsupportedModel("calibrated classes differ from the model's")
    return estimator, _Calibration(inner.calibrators[0])


# --------------------------------------------------------------------------- the scorer


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
    ) -> None:
        self._numeric = numeric
        self._categorical = categorical
        self._width = width
        self._head = head
        self._calibration = calibration
        self.features = inputs
        """The request fields the model reads, in the pipeline's input order."""
        self.feature_names = feature_names
        """Names of the preprocessed columns (``transform_one``'s layout)."""
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
        pipeline, calibration = _unwrap(model)
        if not isinstance(pipeline, Pipeline):
            raise UnsupportedModel(f"model {_describe(pipeline)} is not a Pipeline")
        steps = [s for _, s in _steps(pipeline)]
        if len(steps) < 2:
            raise UnsupportedModel("a pipeline without preprocessing and an estimator")
        numeric, categorical, width, inputs = _compile_preprocess(steps[0])
        middle = steps[1:-1]
        for step in middle:
            if not isinstance(step, PCA):
                raise UnsupportedModel(
                    f"step {_describe(step)} between preprocessing and the estimator"
                )
        head = _compile_head(steps[-1], middle, width)
        if calibration is not None and hasattr(pipeline, "decision_function") != (
            head.has_decision
        ):
            raise UnsupportedModel("the calibrator's input response cannot be reproduced")
        unknown = [c for c in inputs if c not in set(spec.features)]
        if unknown:
            raise UnsupportedModel(f"the model reads columns the spec lacks: {unknown}")
        names = tuple(str(n) for n in steps[0].get_feature_names_out())
        return cls(
            numeric=numeric,
            categorical=categorical,
            width=width,
            inputs=inputs,
            head=head,
            calibration=calibration,
            feature_names=names,
        )

    # -- scoring -------------------------------------------------------------------------

    def transform_many(self, records: Sequence[Mapping[str, object]]) -> np.ndarray:
        """The preprocessed rows, as the pipeline's ColumnTransformer gives them."""
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
        return out

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

    def score_one(self, record: Mapping[str, object]) -> float:
        """The probability of default of one application; missing fields imputed as the
        pipeline imputes them."""
        return float(self._score(self.transform_many([record]))[0])

    def imputed_fields(self, record: Mapping[str, object]) -> list[str]:
        """The model's input fields that are missing (absent, None, empty, unreadable) in
        ``record`` and were filled in by the imputer."""
        missing = []
        for block in self._numeric:
            missing += [c for c in block.columns if math.isnan(_number(record.get(c)))]
        for cat_block in self._categorical:
            missing += [c for c in cat_block.columns if _text(record.get(c)) is None]
        order = {c: i for i, c in enumerate(self.features)}
        return sorted(missing, key=order.__getitem__)

    # -- self-check ----------------------------------------------------------------------

    def _verify(self, model: Any, spec: ResolvedSpec) -> None:
        probes = _probe_records(self, spec)
        frame = pd.DataFrame.from_records(probes, columns=list(self.features))
        try:
            expected = np.asarray(model.predict_proba(frame)[:, 1], dtype=np.float64)
            got = self.score_many(probes)
            # one at a time too: heads switch method with the number of rows
            one_by_one = np.array([self.score_one(record) for record in probes])
        except ValueError as exc:
            raise UnsupportedModel(f"probe rows could not be scored both ways: {exc}") from exc
        gap = float(max(np.max(np.abs(expected - got)), np.max(np.abs(expected - one_by_one))))
        if not gap <= VERIFY_TOLERANCE:
            raise UnsupportedModel(
                f"the compiled {self.kind} path disagrees with the pipeline on probe rows "
                f"(max |difference| {gap:.3g} > {VERIFY_TOLERANCE:g})"
            )


def _probe_records(scorer: FastScorer, spec: ResolvedSpec, n: int = 64) -> list[dict[str, Any]]:
    """Rows that exercise every branch: each category, unseen and missing values, numbers at,
    inside and far outside the training range, negative numbers, numbers sent as text."""
    rng = np.random.default_rng(0)
    schema = {s.name: s for s in spec.schema_}
    choices: dict[str, list[Any]] = {}
    for block in scorer._numeric:
        for column in block.columns:
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
    for cat_block in scorer._categorical:
        for j, column in enumerate(cat_block.columns):
            s = schema.get(column)
            known = sorted(set(cat_block.codes[j]) | set((s.categories or []) if s else []))
            values: list[Any] = [*known, None, "", "  "]
            if cat_block.unknown[j] is not None:
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


def compile_or_none(model: Any, spec: ResolvedSpec) -> FastScorer | None:
    """The compiled scorer, or None (logged) when the model must be served by its pipeline."""
    try:
        return FastScorer.compile(model, spec)
    except UnsupportedModel as exc:
        logger.warning("fast scoring path unavailable, serving the pipeline: %s", exc)
    except Exception:  # a bug here must never stop the service: the pipeline still scores
        logger.exception("compiling the fast scoring path failed, serving the pipeline")
    return None
