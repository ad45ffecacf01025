"""A stacked ensemble of fitted candidates: a logistic regression on their out-of-fold log-odds.

The ensemble's log-odds is ``intercept + Σ_i weight_i · logit(p_i(x))``, where ``p_i`` is
member ``i``'s probability of default. Stacking on log-odds rather than on probabilities keeps
the ensemble additive in its members' own explanations (a member's SHAP values of its log-odds,
times its weight, are the ensemble's), and the stacker, fitted on predictions each member made
for rows it never saw, is at the same time the ensemble's calibration.

Weights are kept positive: a member with a non-positive weight only corrects the others, which
no validator can read as a reason, so it is dropped and the stacker refitted (training offers
the ensemble only when at least two members are left).

:meth:`StackedEnsembleClassifier.fit` does the whole recipe (out-of-fold predictions by
stratified k-fold, the stacker, each member refitted on every row). Training already holds the
members fitted on every row and their out-of-fold predictions from tuning, so it assembles the
same object with :meth:`StackedEnsembleClassifier.from_fitted` instead of fitting it again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.special import expit, logit
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

# Member probabilities are clipped to [ε, 1 − ε] before their logit: a forest can say exactly
# 0 or 1, and one infinite log-odds would decide alone.
PROBABILITY_FLOOR = 1e-6


def member_log_odds(probabilities: np.ndarray) -> np.ndarray:
    """``logit`` of probabilities of default, clipped to ±13.8 (see ``PROBABILITY_FLOOR``)."""
    clipped = np.clip(np.asarray(probabilities, dtype=np.float64), PROBABILITY_FLOOR, None)
    return logit(np.minimum(clipped, 1.0 - PROBABILITY_FLOOR))


def stack(intercept: float, weights: np.ndarray, log_odds: np.ndarray) -> np.ndarray:
    """``intercept + Σ_i weight_i · log_odds[:, i]``, summed member by member in order, so a
    row's value never depends on how many rows are stacked with it (a matrix product's
    summation order does)."""
    total = np.full(log_odds.shape[0], float(intercept))
    for i, weight in enumerate(weights):
        total += weight * log_odds[:, i]
    return total


def fit_stacker(
    log_odds: np.ndarray, y: np.ndarray, *, C: float = 1.0
) -> tuple[np.ndarray, np.ndarray, float]:
    """The stacker on members' out-of-fold log-odds (rows × members): the indices of the
    members kept (every weight positive, unless one member is left), their weights and the
    intercept."""
    kept = np.arange(log_odds.shape[1])
    while True:
        stacker = LogisticRegression(C=C, max_iter=1000).fit(log_odds[:, kept], y)
        weights = stacker.coef_.ravel()
        if (weights > 0).all() or len(kept) == 1:
            return kept, weights.astype(np.float64), float(stacker.intercept_[0])
        kept = np.delete(kept, int(np.argmin(weights)))


class StackedEnsembleClassifier(ClassifierMixin, BaseEstimator):
    """Binary classifier stacking ``estimators`` (``(name, estimator)`` pairs) on their
    out-of-fold log-odds with a positive-weight logistic regression (module docstring).

    ``cv`` folds (stratified, shuffled with ``random_state``) give the out-of-fold predictions;
    ``C`` is the stacker's inverse regularisation.
    """

    def __init__(
        self,
        estimators: Sequence[tuple[str, Any]] = (),
        *,
        cv: int = 5,
        C: float = 1.0,
        random_state: int | None = 0,
    ) -> None:
        self.estimators = estimators
        self.cv = cv
        self.C = C
        self.random_state = random_state

    def fit(self, X: Any, y: Any) -> StackedEnsembleClassifier:
        if len(self.estimators) < 2:
            raise ValueError("a stacked ensemble needs at least two estimators")
        y = column_or_1d(y, warn=True)
        self._check_target(y)
        classes, y_codes = np.unique(y, return_inverse=True)
        folds = StratifiedKFold(n_splits=self.cv, shuffle=True, random_state=self.random_state)
        oof = np.column_stack(
            [
                cross_val_predict(clone(est), X, y_codes, cv=folds, method="predict_proba")[:, 1]
                for _, est in self.estimators
            ]
        )
        members = [(name, clone(est).fit(X, y_codes)) for name, est in self.estimators]
        self._assemble(members, oof, y_codes, X)
        self.classes_ = classes
        return self

    @classmethod
    def from_fitted(
        cls,
        members: Sequence[tuple[str, Any]],
        out_of_fold: np.ndarray,
        y: np.ndarray,
        X_example: Any,
        *,
        cv: int = 5,
        C: float = 1.0,
        random_state: int | None = 0,
    ) -> StackedEnsembleClassifier:
        """The ensemble of members already fitted on every row, stacked on their out-of-fold
        probabilities of default (rows × members) for the 0/1 outcomes ``y``; ``X_example``
        (a few rows of the members' input) records the input's width and column names."""
        ensemble = cls(
            [(name, clone(m)) for name, m in members], cv=cv, C=C, random_state=random_state
        )
        y = np.asarray(y)
        ensemble._check_target(y)
        ensemble._assemble(list(members), np.asarray(out_of_fold, dtype=np.float64), y, X_example)
        ensemble.classes_ = np.array([0, 1])
        return ensemble

    def _check_target(self, y: Any) -> None:
        kind = type_of_target(y, input_name="y", raise_unknown=True)
        if kind != "binary":
            raise ValueError(
                f"Only binary classification is supported. The type of the target is {kind}."
            )
        if len(np.unique(np.asarray(y))) < 2:
            raise ValueError("a stacked ensemble needs rows of both classes, got 1 class")

    def _assemble(
        self, members: list[tuple[str, Any]], oof: np.ndarray, y: np.ndarray, X: Any
    ) -> None:
        if oof.shape != (len(y), len(members)):
            raise ValueError("out-of-fold predictions must be rows × members")
        kept, weights, intercept = fit_stacker(member_log_odds(oof), y, C=self.C)
        self.members_ = [members[i][1] for i in kept]
        self.member_names_ = [members[i][0] for i in kept]
        self.dropped_ = [members[i][0] for i in range(len(members)) if i not in set(kept)]
        self.weights_ = weights
        self.intercept_ = intercept
        self._check_input(X, reset=True)

    def _check_input(self, X: Any, *, reset: bool) -> None:
        """Shape and column names, as sklearn's own estimators check them; the members get
        ``X`` unchanged (pipelines read named columns of any type, missing values included)."""
        validate_data(self, X, reset=reset, dtype=None, ensure_all_finite=False)

    def summary(self) -> dict[str, Any]:
        """The stack as plain JSON: members with their weights, the intercept, who was dropped."""
        check_is_fitted(self, "members_")
        return {
            "members": [
                {"name": name, "weight": float(weight)}
                for name, weight in zip(self.member_names_, self.weights_, strict=True)
            ],
            "intercept": float(self.intercept_),
            "dropped": list(self.dropped_),
        }

    def member_log_odds(self, X: Any) -> np.ndarray:
        """Each kept member's clipped log-odds, shape (rows, members)."""
        check_is_fitted(self, "members_")
        return np.column_stack([member_log_odds(m.predict_proba(X)[:, 1]) for m in self.members_])

    def decision_function(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "members_")
        self._check_input(X, reset=False)
        return stack(self.intercept_, self.weights_, self.member_log_odds(X))

    def predict_proba(self, X: Any) -> np.ndarray:
        p = expit(self.decision_function(X))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Any) -> np.ndarray:
        positive = self.decision_function(X) > 0
        return self.classes_[positive.astype(int)]

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags


__all__ = [
    "PROBABILITY_FLOOR",
    "StackedEnsembleClassifier",
    "fit_stacker",
    "member_log_odds",
    "stack",
]
