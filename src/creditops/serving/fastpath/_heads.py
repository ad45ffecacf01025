"""Final estimators compiled to numpy: the affine head (logistic regression, PCA folded in, and
the WoE scorecard's regression on its WoE columns), random forests / extra trees, and the PyTorch
network; XGBoost lives in ``_xgboost``."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
from scipy.special import erf, expit
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression

from creditops.exceptions import UnsupportedModel
from creditops.models.anatomy import Anatomy
from creditops.serving.fastpath._preprocess import _describe
from creditops.serving.fastpath._xgboost import _XGBoostHead

# Up to this many rows the forest is walked with vectorised numpy (all trees at once);
# above it sklearn's compiled per-tree traversal is faster (measured crossover: ~8 rows for
# 300 full-depth trees).
_FOREST_VECTOR_ROWS = 8
# The smallest magnitude that rounds to infinity in float32: FLT_MAX plus half its ulp (2**103).
_FLOAT32_OVERFLOW = float(np.finfo(np.float32).max) + 2.0**103


def _check_finite(X: np.ndarray) -> None:
    """The estimator-input check sklearn makes (same exception type and message)."""
    if not np.isfinite(X).all():
        raise ValueError("Input X contains infinity or a value too large for dtype('float64').")


class _Head(Protocol):
    has_decision: bool
    kind: str

    def response(self, X: np.ndarray) -> np.ndarray: ...

    def proba(self, response: np.ndarray) -> np.ndarray: ...


def _rowwise_product(X: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``X @ weights`` with each row summed the same way however many rows there are: BLAS
    picks its kernels (and so its summation order) by the shape, so a row scored alone and in
    a batch could differ in the last bit; numpy's own einsum loop does not."""
    return np.einsum("ij,jk->ik", X, weights, optimize=False)


class _AffineHead:
    """Logistic regression (with any PCA before it folded in): one affine map."""

    has_decision = True

    def __init__(self, weights: np.ndarray, intercept: np.ndarray, kind: str) -> None:
        self.weights = weights  # (d, 1)
        self.intercept = intercept  # (1,)
        self.kind = kind

    def response(self, X: np.ndarray) -> np.ndarray:
        _check_finite(X)
        return (_rowwise_product(X, self.weights) + self.intercept)[:, 0]

    def proba(self, response: np.ndarray) -> np.ndarray:
        return expit(response)


def _compile_affine(
    estimator: LogisticRegression, middle: list[PCA], width: int, kind: str | None = None
) -> _AffineHead:
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
    if kind is None:
        kind = "logistic_regression" if not middle else "pca_logistic_regression"
    return _AffineHead(weights, intercept, kind)


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
            h = _rowwise_product(h, layer[0]) + layer[1] if isinstance(layer, tuple) else layer(h)
        return h[:, 0]

    def proba(self, response: np.ndarray) -> np.ndarray:
        return expit(response)


class _LightGBMHead:
    """The estimator's own booster: LightGBM scores one row in ~17 µs on the calling thread, so
    there is nothing to gain by walking its trees in numpy. Same call and link as
    ``BoostedTreesClassifier.decision_function`` / ``predict_proba``: bit-identical."""

    has_decision = True
    kind = "lightgbm"

    def __init__(self, estimator: Any) -> None:
        self.booster = estimator.booster_
        self.width = int(self.booster.num_feature())
        self._threads = estimator._threads

    def margin(self, X: np.ndarray) -> np.ndarray:
        return self.response(X)

    def response(self, X: np.ndarray) -> np.ndarray:
        if np.isinf(X).any():
            _check_finite(X)
        return np.asarray(
            self.booster.predict(X, raw_score=True, num_threads=self._threads(len(X))),
            dtype=np.float64,
        )

    def proba(self, response: np.ndarray) -> np.ndarray:
        return expit(response)


def _compile_head(parts: Anatomy, width: int) -> _Head:
    estimator, middle = parts.estimator, list(parts.middle)
    family = parts.family
    if middle and family != "logistic_regression":
        raise UnsupportedModel(
            f"steps {', '.join(_describe(s) for s in middle)} before {_describe(estimator)}"
        )
    if family == "logistic_regression":
        return _compile_affine(estimator, middle, width)
    if family == "scorecard":  # its WoE columns (see _scorecard) feed its logistic regression
        return _compile_affine(estimator.logistic_, [], width, kind="scorecard")
    if family in ("random_forest", "extra_trees"):
        head: Any = _ForestHead(estimator)
    elif family == "xgboost":
        head = _XGBoostHead(estimator)
    elif family == "neural_network":
        head = _NetworkHead(estimator)
    elif family == "lightgbm":
        head = _LightGBMHead(estimator)
    else:
        raise UnsupportedModel(f"final estimator {_describe(estimator)}")
    if len(estimator.classes_) != 2:
        raise UnsupportedModel("a classifier that is not binary")
    if head.width != width:
        raise UnsupportedModel(f"{_describe(estimator)} does not match the preprocessing width")
    return head
