"""What demographic parity would cost: the fitted model beside a mitigated version of it.

Mitigation fits new decision rules (fairlearn's ThresholdOptimizer or ExponentiatedGradient),
so it is kept apart from the fairness report, which only measures the decisions it is given.
Groups and approval rates come from :mod:`creditops.evaluation.fairness` (``protected_groups``,
``approval_rates``), so both sides of a comparison are judged exactly as the report judges them.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.metrics import accuracy_score, balanced_accuracy_score, roc_auc_score

from creditops.evaluation.fairness import (
    TOO_SMALL,
    FairnessConfig,
    approval_rates,
    judgeable_groups,
    protected_groups,
)
from creditops.features.preprocessing import build_preprocessor

__all__ = [
    "POOLED_GROUP",
    "GroupApproval",
    "MitigationResult",
    "MitigationSide",
    "compare_mitigation",
]


class GroupApproval(BaseModel):
    group: str
    size: int
    approval_rate: float
    too_small: bool


class MitigationSide(BaseModel):
    label: str
    approval_rates: list[GroupApproval]
    disparate_impact_ratio: float | None
    demographic_parity_difference: float | None
    accuracy: float
    balanced_accuracy: float
    roc_auc: float | None  # None for randomised decisions, which have no score to rank


class MitigationResult(BaseModel):
    """Both sides on the same test rows, and what the mitigation cost in accuracy."""

    schema_version: int = 1
    method: Literal["threshold_optimizer", "exponentiated_gradient"]
    attribute: str
    threshold: float
    unmitigated: MitigationSide
    mitigated: MitigationSide
    accuracy_cost: float  # unmitigated accuracy − mitigated accuracy (positive = lost)
    balanced_accuracy_cost: float  # the same for balanced accuracy (default data is imbalanced)
    disparate_impact_closer_to_one: bool | None
    notes: list[str]


class _Float64Proba(ClassifierMixin, BaseEstimator):
    """A fitted classifier whose probabilities come back as float64.

    fairlearn 0.15's ThresholdOptimizer.predict writes float64 values into a Series of the
    scores' dtype, which pandas 3 refuses for XGBoost's float32 probabilities.
    """

    def __init__(self, estimator: Any = None) -> None:
        self.estimator = estimator

    def fit(self, X: Any, y: Any) -> _Float64Proba:
        self.estimator = clone(self.estimator).fit(X, y)
        return self

    def __sklearn_is_fitted__(self) -> bool:
        return True

    def predict_proba(self, X: Any) -> np.ndarray:
        return np.asarray(self.estimator.predict_proba(X), dtype=np.float64)


def _as_frame(sensitive: pd.Series | pd.DataFrame) -> pd.DataFrame:
    frame = sensitive.to_frame() if isinstance(sensitive, pd.Series) else pd.DataFrame(sensitive)
    return frame.reset_index(drop=True)


def _roc_auc(y: np.ndarray, score: np.ndarray) -> float | None:
    """ROC AUC, or None when the rows hold one class only."""
    return float(roc_auc_score(y, score)) if len(np.unique(y)) == 2 else None


def _side(
    label: str,
    y: np.ndarray,
    declined: np.ndarray,
    groups: pd.Series,
    score: np.ndarray | None,
    config: FairnessConfig,
    order: Sequence[str],
) -> MitigationSide:
    frame = pd.DataFrame({"group": groups.to_numpy(), "y": y})
    stats = frame.groupby("group", sort=False).agg(size=("y", "size"), defaults=("y", "sum"))
    stats["goods"] = stats["size"] - stats["defaults"]
    stats = stats.reindex([g for g in order if g in stats.index])
    eligible = judgeable_groups(stats, config)
    approval = approval_rates(
        1 - declined,
        groups,
        not_judged={str(g): TOO_SMALL for g in stats.index[~eligible]},
        order=[str(g) for g in stats.index],
    )
    judged = [g.approval_rate for g in approval.groups if g.status == "judged"]
    dp = float(max(judged) - min(judged)) if len(judged) >= 2 else None
    return MitigationSide(
        label=label,
        approval_rates=[
            GroupApproval(
                group=g.group,
                size=g.size,
                approval_rate=g.approval_rate,
                too_small=g.status != "judged",
            )
            for g in approval.groups
        ],
        disparate_impact_ratio=approval.disparate_impact_ratio,
        demographic_parity_difference=dp,
        accuracy=float(accuracy_score(y, declined)),
        balanced_accuracy=float(balanced_accuracy_score(y, declined)),
        roc_auc=_roc_auc(y, score) if score is not None else None,
    )


POOLED_GROUP = "pooled small groups"


def _mitigation_groups(
    groups_train: pd.Series, y_train: np.ndarray, groups_test: pd.Series, config: FairnessConfig
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Group labels for the mitigator: groups too small to judge in training share one group.

    A per-group threshold or constraint needs both outcomes in the group; a lone "missing"
    row would make fairlearn fail. When even the pooled group lacks an outcome it joins the
    largest group. Test groups never seen in training are pooled the same way.
    """
    counts = pd.DataFrame({"group": groups_train.to_numpy(), "y": y_train}).groupby("group")["y"]
    stats = pd.DataFrame({"size": counts.size(), "defaults": counts.sum()})
    stats["goods"] = stats["size"] - stats["defaults"]
    keep = set(stats.index[judgeable_groups(stats, config)])
    if not keep:  # nothing large enough: let fairlearn work with the groups as they are
        keep = set(stats.index)
    pooled = sorted(set(groups_train).union(groups_test) - keep)
    target = POOLED_GROUP
    small = stats.loc[[g for g in stats.index if g not in keep]]
    if pooled and (small["defaults"].sum() == 0 or small["goods"].sum() == 0):
        target = str(stats.loc[list(keep), "size"].idxmax())

    def relabel(groups: pd.Series) -> np.ndarray:
        return groups.where(groups.isin(keep), target).to_numpy(dtype=object)

    return relabel(groups_train), relabel(groups_test), pooled


def compare_mitigation(
    model: Any,
    X_train: pd.DataFrame,
    y_train: np.ndarray | pd.Series,
    sensitive_train: pd.Series | pd.DataFrame,
    X_test: pd.DataFrame,
    y_test: np.ndarray | pd.Series,
    sensitive_test: pd.Series | pd.DataFrame,
    *,
    method: Literal["threshold_optimizer", "exponentiated_gradient"] = "threshold_optimizer",
    threshold: float = 0.5,
    config: FairnessConfig | None = None,
    seed: int = 0,
) -> MitigationResult:
    """The fitted model beside a demographic-parity-mitigated version, on the test rows.

    ``threshold_optimizer``: fairlearn's ThresholdOptimizer on the model's probabilities
    (prefit, objective balanced accuracy) picks a (randomised) threshold per group; it needs the
    protected attribute at decision time, which lending law may not allow: this is a diagnostic
    of what parity would cost, not a deployment recipe. Fit it on rows the model was not trained
    on where possible (pass them as ``X_train``). ``exponentiated_gradient``: a logistic
    regression trained under a demographic parity constraint on the features preprocessed as
    the logistic regression candidate preprocesses them, whatever the model (so part of the
    difference is the change of model family). Both give randomised
    decisions (seeded), so the mitigated ROC AUC is None. Sensitive columns are grouped with
    :func:`~creditops.evaluation.fairness.bin_protected` (several columns: their intersection).
    """
    from fairlearn.postprocessing import ThresholdOptimizer
    from fairlearn.reductions import DemographicParity, ExponentiatedGradient
    from sklearn.linear_model import LogisticRegression

    config = config or FairnessConfig()
    train_frame, test_frame = _as_frame(sensitive_train), _as_frame(sensitive_test)
    # Bin train and test together so both share one set of groups (and quartile edges).
    combined = pd.concat([train_frame, test_frame], ignore_index=True)
    attribute, _, _, labels = protected_groups(combined)[-1]
    order = [str(c) for c in labels.cat.categories]
    text = labels.astype(str)
    groups_train = text.iloc[: len(train_frame)].reset_index(drop=True)
    groups_test = text.iloc[len(train_frame) :].reset_index(drop=True)
    y_tr = np.asarray(y_train).astype(np.int64).ravel()
    y_te = np.asarray(y_test).astype(np.int64).ravel()
    proba_test = model.predict_proba(X_test)[:, 1]
    unmitigated = _side(
        "unmitigated",
        y_te,
        (proba_test >= threshold).astype(np.int64),
        groups_test,
        proba_test,
        config,
        order,
    )
    fit_groups, predict_groups, pooled = _mitigation_groups(groups_train, y_tr, groups_test, config)
    notes: list[str] = []
    if pooled:
        notes.append(
            "Groups too small to judge in the training rows were pooled for the mitigator "
            f"(it cannot set a threshold for a group without both outcomes): {', '.join(pooled)}."
        )
    if method == "threshold_optimizer":
        mitigator = ThresholdOptimizer(
            estimator=_Float64Proba(model),
            constraints="demographic_parity",
            objective="balanced_accuracy_score",
            prefit=True,
            predict_method="predict_proba",
        )
        mitigator.fit(X_train, y_tr, sensitive_features=fit_groups)
        declined = mitigator.predict(X_test, sensitive_features=predict_groups, random_state=seed)
        notes.append(
            "ThresholdOptimizer chooses its own per-group thresholds (balanced accuracy under "
            f"demographic parity); the threshold {threshold} applies to the unmitigated model only."
        )
    elif method == "exponentiated_gradient":
        # The logistic candidate's preprocessing (one-hot, Yeo-Johnson, standardised): the
        # input a logistic regression converges on, whatever the model's own preprocessing
        # is (a scorecard's passes text through; an ensemble has one per member).
        numeric = [c for c in X_train.columns if pd.api.types.is_numeric_dtype(X_train[c])]
        categorical = [c for c in X_train.columns if c not in set(numeric)]
        preprocess = build_preprocessor(numeric, categorical, scale=True)
        features_train = preprocess.fit_transform(X_train)
        mitigator = ExponentiatedGradient(
            LogisticRegression(max_iter=1000),
            constraints=DemographicParity(),
            eps=0.01,
            max_iter=30,
        )
        with warnings.catch_warnings():
            # fairlearn 0.15 grows and re-types Series in place, which pandas 3 deprecates.
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"fairlearn\.")
            mitigator.fit(features_train, y_tr, sensitive_features=fit_groups)
        declined = mitigator.predict(preprocess.transform(X_test), random_state=seed)
        notes.append(
            "ExponentiatedGradient fits a logistic regression on the model's preprocessed "
            "features under demographic parity; it minimises the error rate, not the "
            "class-weighted loss the zoo models use, and part of any difference is the change "
            "of model family."
        )
    else:
        raise ValueError(f"unknown mitigation method {method!r}")
    mitigated = _side(
        method, y_te, np.asarray(declined).astype(np.int64), groups_test, None, config, order
    )
    before, after = unmitigated.disparate_impact_ratio, mitigated.disparate_impact_ratio
    closer = None if before is None or after is None else abs(1 - after) < abs(1 - before)
    if closer is False:
        notes.append(
            f"Mitigation did not bring the disparate impact ratio closer to 1 on these rows "
            f"({before:.3f} → {after:.3f})."
        )
    return MitigationResult(
        method=method,
        attribute=attribute,
        threshold=float(threshold),
        unmitigated=unmitigated,
        mitigated=mitigated,
        accuracy_cost=unmitigated.accuracy - mitigated.accuracy,
        balanced_accuracy_cost=unmitigated.balanced_accuracy - mitigated.balanced_accuracy,
        disparate_impact_closer_to_one=closer,
        notes=notes,
    )
