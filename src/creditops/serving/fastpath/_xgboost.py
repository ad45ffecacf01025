"""XGBoost compiled: its trees walked with numpy for a few rows, its booster for batches."""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import logging
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from creditops.exceptions import UnsupportedModel

logger = logging.getLogger(__name__)

# Up to this many rows XGBoost's trees are walked with numpy; above it the booster's own
# predictor is faster (its ~150 µs fixed cost per call is then shared by the rows).
_TREE_VECTOR_ROWS = 8


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
