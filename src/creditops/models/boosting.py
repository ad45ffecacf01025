"""Histogram gradient-boosted trees (LightGBM) as a scikit-learn classifier.

LightGBM was chosen over scikit-learn's HistGradientBoosting and CatBoost because it splits
categories natively (no one-hot columns to dilute a categorical feature), honours monotone
constraints, trains about twice as fast as HistGradientBoosting on the built-in datasets, and
computes exact TreeSHAP values itself (``pred_contrib``), categorical splits included, so every
decision it makes can be explained without an approximation.

The estimator stops early on its own: a stratified ``validation_fraction`` of the rows it is
given is held out, trees are added until the held-out log loss has not improved for
``early_stopping_rounds`` rounds, and only the trees up to the best round are kept. Inside
cross-validation that makes every fold stop on data the fold's score never sees.

Probabilities are ``expit`` of the raw score (``decision_function``) computed here in numpy, so
a compiled serving path that reads the same booster reproduces them bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import train_test_split
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

# Fewer rows than this (or a held-out part without both classes) and early stopping is skipped:
# the held-out log loss of a few dozen rows would stop at random.
_MIN_EARLY_STOPPING_ROWS = 200
_THREADED_ROWS = 2048
# Training on fewer rows than this uses one thread when ``n_jobs`` is 0: threads gain little on
# small data, and OpenMP threads that spin while another process holds the cores made a fit
# on 700 rows take minutes instead of a fraction of a second (measured).
_THREADED_FIT_ROWS = 20_000


class BoostedTreesClassifier(ClassifierMixin, BaseEstimator):
    """LightGBM binary classifier with native categorical columns, monotone constraints and
    early stopping on an internal held-out part.

    ``categorical_columns``: positions of columns holding category codes (non-negative
    integers; NaN is missing). ``monotone_constraints``: one entry per column, +1 where the
    probability of the positive class must not fall as the value rises, -1 where it must not
    rise, 0 free (empty: none). ``n_jobs``: LightGBM threads; 0 is one thread on small data and
    OpenMP's default otherwise, which a parallel cross-validation worker limits to its share of
    the cores (an explicit count there oversubscribes the cores and spins: 150 times slower,
    measured).
    """

    def __init__(
        self,
        *,
        n_estimators: int = 1000,
        learning_rate: float = 0.05,
        num_leaves: int = 15,
        min_child_samples: int = 20,
        subsample: float = 0.8,
        colsample_bytree: float = 0.8,
        reg_lambda: float = 1.0,
        cat_smooth: float = 10.0,
        categorical_columns: Sequence[int] = (),
        monotone_constraints: Sequence[int] = (),
        early_stopping_rounds: int | None = 50,
        validation_fraction: float = 0.1,
        n_jobs: int = 0,
        random_state: int | None = None,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.cat_smooth = cat_smooth
        self.categorical_columns = categorical_columns
        self.monotone_constraints = monotone_constraints
        self.early_stopping_rounds = early_stopping_rounds
        self.validation_fraction = validation_fraction
        self.n_jobs = n_jobs
        self.random_state = random_state

    def _params(self, n_features: int, n_rows: int) -> dict[str, Any]:
        seed = 0 if self.random_state is None else int(self.random_state)
        params: dict[str, Any] = {
            "objective": "binary",
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_child_samples": self.min_child_samples,
            "bagging_fraction": self.subsample,
            "bagging_freq": 1 if self.subsample < 1.0 else 0,
            "feature_fraction": self.colsample_bytree,
            "lambda_l2": self.reg_lambda,
            "cat_smooth": self.cat_smooth,
            "num_threads": self.n_jobs or (1 if n_rows < _THREADED_FIT_ROWS else 0),
            "seed": seed,
            "deterministic": True,
            "force_row_wise": True,
            "verbosity": -1,
        }
        constraints = list(self.monotone_constraints)
        if any(constraints):
            if len(constraints) != n_features:
                raise ValueError(
                    f"monotone_constraints has {len(constraints)} entries for {n_features} columns"
                )
            params["monotone_constraints"] = constraints
            params["monotone_constraints_method"] = "intermediate"
        return params

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> BoostedTreesClassifier:
        import lightgbm as lgb

        X, y = validate_data(self, X, y, dtype=np.float64, ensure_all_finite="allow-nan")
        check_classification_targets(y)
        if type_of_target(y) != "binary":
            raise ValueError(
                "Only binary classification is supported. The type of the target is "
                f"{type_of_target(y)}."
            )
        self.classes_, encoded = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"the target has only one class ({self.classes_[0]!r}) to learn")
        weights = None
        if sample_weight is not None:
            weights = _check_sample_weight(sample_weight, X, dtype=np.float64)
            if not (weights > 0).any():
                raise ValueError("sample_weight is zero for every row: nothing to learn from")
        categorical = [int(c) for c in self.categorical_columns]
        if any(c < 0 or c >= X.shape[1] for c in categorical):
            raise ValueError(f"categorical_columns {categorical} outside {X.shape[1]} columns")
        params = self._params(X.shape[1], X.shape[0])
        fit_rows = np.arange(len(X))
        held_out: np.ndarray | None = None
        if self.early_stopping_rounds and len(X) >= _MIN_EARLY_STOPPING_ROWS:
            fit_rows, held_out = train_test_split(
                fit_rows,
                test_size=self.validation_fraction,
                stratify=encoded,
                random_state=self.random_state,
            )
            if len(np.unique(encoded[held_out])) < 2:
                fit_rows, held_out = np.arange(len(X)), None

        def dataset(rows: np.ndarray, reference: Any = None) -> Any:
            return lgb.Dataset(
                X[rows],
                label=encoded[rows],
                weight=None if weights is None else weights[rows],
                categorical_feature=categorical,
                reference=reference,
                free_raw_data=True,
                params={"verbosity": -1},
            )

        train_set = dataset(fit_rows)
        callbacks = []
        valid_sets = []
        if held_out is not None:
            valid_sets = [dataset(held_out, train_set)]
            callbacks = [lgb.early_stopping(self.early_stopping_rounds, verbose=False)]
        booster = lgb.train(
            params,
            train_set,
            num_boost_round=self.n_estimators,
            valid_sets=valid_sets,
            callbacks=callbacks,
        )
        best = booster.best_iteration if held_out is not None else 0
        self.n_estimators_ = int(best or booster.current_iteration())
        # Keep only the trees up to the best round: what is served is what was validated.
        self.booster_ = lgb.Booster(model_str=booster.model_to_string(num_iteration=best or -1))
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """The raw score (log-odds of the positive class)."""
        check_is_fitted(self, "booster_")
        X = validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan", reset=False)
        return np.asarray(
            self.booster_.predict(X, raw_score=True, num_threads=self._threads(len(X))),
            dtype=np.float64,
        )

    def predict_proba(self, X: Any) -> np.ndarray:
        positive = expit(self.decision_function(X))
        return np.column_stack([1.0 - positive, positive])

    def predict(self, X: Any) -> np.ndarray:
        positive = self.decision_function(X) > 0
        return self.classes_[positive.astype(int)]

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Exact TreeSHAP values of the raw score, one column per input plus the expected
        value last (LightGBM's ``pred_contrib``)."""
        check_is_fitted(self, "booster_")
        X = validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan", reset=False)
        return np.asarray(
            self.booster_.predict(X, pred_contrib=True, num_threads=self._threads(len(X))),
            dtype=np.float64,
        )

    def _threads(self, n_rows: int) -> int:
        # A few rows gain nothing from threads, and an OpenMP pool stalls for milliseconds
        # whenever a core is busy elsewhere: score small batches on the calling thread.
        return 1 if n_rows < _THREADED_ROWS else self.n_jobs

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.classifier_tags.multi_class = False  # default or not: one log-odds
        return tags


__all__ = ["BoostedTreesClassifier"]
