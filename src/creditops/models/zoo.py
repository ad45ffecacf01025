"""The candidate models and their search spaces.

Every candidate is a scikit-learn Pipeline (preprocessing → estimator), so it can be cloned,
cross-validated, pickled by MLflow and served the same way. Class imbalance is handled in each
estimator (class weights or ``scale_pos_weight``), except in the WoE scorecard, which stays
unweighted so its points match the observed odds; probabilities are calibrated afterwards by
training when that improves validation log loss.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from creditops.config import Profile
from creditops.data.spec import ResolvedSpec
from creditops.exceptions import ConfigurationError
from creditops.features.preprocessing import (
    build_binning_preprocessor,
    build_preprocessor,
    build_tree_preprocessor,
)
from creditops.models.scorecard import ScorecardClassifier

Tuner = Literal["grid", "optuna"]


@dataclass(frozen=True)
class FeatureSet:
    """The model's inputs by type, and the spec's monotone expectations on them: candidates
    that can honour a direction (boosted trees, the scorecard's bins) are built with it."""

    numeric: Sequence[str]
    categorical: Sequence[str]
    # numeric features whose higher values must not lower / must not raise the risk of default
    increasing: Sequence[str] = ()
    decreasing: Sequence[str] = ()
    # categorical features with their categories ordered from least to most risky
    ordered: Mapping[str, Sequence[str]] = field(default_factory=dict)

    @classmethod
    def from_spec(cls, resolved: ResolvedSpec) -> FeatureSet:
        monotone = resolved.monotone
        numeric, categorical = set(resolved.numeric), set(resolved.categorical)
        return cls(
            numeric=list(resolved.numeric),
            categorical=list(resolved.categorical),
            increasing=tuple(c for c in monotone.increasing if c in numeric),
            decreasing=tuple(c for c in monotone.decreasing if c in numeric),
            ordered={c: tuple(v) for c, v in monotone.ordered.items() if c in categorical},
        )


@dataclass(frozen=True)
class Candidate:
    """A model family: how to build it, how complex it is, and how to tune it."""

    name: str
    label: str
    complexity: int  # lower is simpler; breaks ties in validation AUC
    tuner: Tuner
    build: Callable[[FeatureSet, dict[str, Any], float, int], Pipeline]
    grid: dict[Profile, dict[str, list[Any]]] = field(default_factory=dict)
    suggest: Callable[[Any, Profile], dict[str, Any]] | None = None
    trials: dict[Profile, int] = field(default_factory=dict)
    # built with the spec's monotone expectations as constraints (``monotone: False`` in the
    # parameters builds it free, to measure what the constraints cost)
    constrainable: bool = False
    # Optuna's first trial (the rest are sampled): known-good settings, so a search cut short
    # by a time budget still has a sound model
    first_trial: dict[str, Any] = field(default_factory=dict)
    # relative share of a time budget for tuning this candidate
    tuning_cost: float = 1.0
    # the parameter that caps the rows one model learns from, if the candidate has one:
    # training sets it to the tuning sample's size on large data, so the final fit costs what
    # the tuned fits cost (a forest's trees each draw that many rows)
    rows_per_model: str | None = None
    # its decisions are explained exactly (linear SHAP, TreeSHAP, points); the network's are
    # sampled (permutation SHAP), tens of ms each, so the stacked ensemble leaves it out
    exact_explanations: bool = True


def _logistic(features: FeatureSet, params: dict[str, Any], _: float, seed: int) -> Pipeline:
    return Pipeline(
        [
            ("preprocess", build_preprocessor(features.numeric, features.categorical, scale=True)),
            (
                "model",
                LogisticRegression(
                    C=params.get("C", 1.0),
                    class_weight="balanced",
                    max_iter=5000,
                    random_state=seed,
                ),
            ),
        ]
    )


def _scorecard(features: FeatureSet, params: dict[str, Any], _: float, __: int) -> Pipeline:
    """Monotone bins in the spec's directions, WoE, logistic regression; unweighted, so its
    probabilities need no calibrator and its points match observed odds (see models.scorecard)."""
    return Pipeline(
        [
            ("preprocess", build_binning_preprocessor(features.numeric, features.categorical)),
            (
                "model",
                ScorecardClassifier(
                    max_n_bins=params.get("max_n_bins", 6),
                    min_bin_size=params.get("min_bin_size", 0.05),
                    increasing=tuple(features.increasing),
                    decreasing=tuple(features.decreasing),
                    ordered={c: tuple(v) for c, v in features.ordered.items()} or None,
                    min_iv=params.get("min_iv", 0.02),
                    C=params.get("C", 1.0),
                ),
            ),
        ]
    )


def _pca_logistic(features: FeatureSet, params: dict[str, Any], _: float, seed: int) -> Pipeline:
    return Pipeline(
        [
            ("preprocess", build_preprocessor(features.numeric, features.categorical, scale=True)),
            ("pca", PCA(n_components=params.get("n_components", 0.95), random_state=seed)),
            (
                "model",
                LogisticRegression(
                    C=params.get("C", 1.0),
                    class_weight="balanced",
                    max_iter=5000,
                    random_state=seed,
                ),
            ),
        ]
    )


def _random_forest(features: FeatureSet, params: dict[str, Any], _: float, seed: int) -> Pipeline:
    return Pipeline(
        [
            ("preprocess", build_preprocessor(features.numeric, features.categorical, scale=False)),
            (
                "model",
                RandomForestClassifier(
                    n_estimators=params.get("n_estimators", 300),
                    max_depth=params.get("max_depth"),
                    min_samples_leaf=params.get("min_samples_leaf", 1),
                    max_features=params.get("max_features", "sqrt"),
                    # rows drawn per tree; training caps it on large data (rows_per_model)
                    max_samples=params.get("max_samples"),
                    class_weight="balanced_subsample",
                    n_jobs=1,
                    random_state=seed,
                ),
            ),
        ]
    )


def _numeric_constraints(features: FeatureSet, params: dict[str, Any]) -> list[int]:
    """+1 / -1 / 0 per numeric feature, in the preprocessors' order (numeric columns first);
    empty when the candidate is built without constraints (``monotone: False``)."""
    if not params.get("monotone", True):
        return []
    direction = {**dict.fromkeys(features.increasing, 1), **dict.fromkeys(features.decreasing, -1)}
    return [direction.get(c, 0) for c in features.numeric]


def _xgboost(
    features: FeatureSet, params: dict[str, Any], pos_weight: float, seed: int
) -> Pipeline:
    from xgboost import XGBClassifier

    # Numeric columns lead the one-hot layout; XGBoost leaves the columns past the tuple free.
    constraints = _numeric_constraints(features, params)
    while constraints and constraints[-1] == 0:
        constraints.pop()

    return Pipeline(
        [
            ("preprocess", build_preprocessor(features.numeric, features.categorical, scale=False)),
            (
                "model",
                XGBClassifier(
                    n_estimators=params.get("n_estimators", 300),
                    learning_rate=params.get("learning_rate", 0.05),
                    max_depth=params.get("max_depth", 4),
                    min_child_weight=params.get("min_child_weight", 1.0),
                    subsample=params.get("subsample", 0.8),
                    colsample_bytree=params.get("colsample_bytree", 0.8),
                    reg_lambda=params.get("reg_lambda", 1.0),
                    reg_alpha=params.get("reg_alpha", 0.0),
                    scale_pos_weight=pos_weight,
                    monotone_constraints=tuple(constraints) if constraints else None,
                    tree_method="hist",
                    eval_metric="logloss",
                    # one thread: OpenMP threads spin when another process holds the cores, and a
                    # fit that takes a second alone took minutes beside other work (measured)
                    n_jobs=1,
                    random_state=seed,
                ),
            ),
        ]
    )


def _suggest_xgboost(trial: Any, profile: Profile) -> dict[str, Any]:
    return {
        "n_estimators": trial.suggest_int(
            "n_estimators", 100, 600 if profile == "full" else 200, step=50
        ),
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
        "max_depth": trial.suggest_int("max_depth", 2, 6),
        "min_child_weight": trial.suggest_float("min_child_weight", 0.5, 20.0, log=True),
        "subsample": trial.suggest_float("subsample", 0.6, 1.0),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.5, 1.0),
        "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 10.0, log=True),
        "reg_alpha": trial.suggest_float("reg_alpha", 1e-3, 1.0, log=True),
    }


def _lightgbm(features: FeatureSet, params: dict[str, Any], _: float, seed: int) -> Pipeline:
    from creditops.models.boosting import BoostedTreesClassifier

    numeric = list(features.numeric)
    ordered = {c: v for c, v in features.ordered.items() if c in set(features.categorical)}
    unordered = [c for c in features.categorical if c not in ordered]
    # the tree preprocessor's layout: numeric, ordered categorical (coded least → most risky),
    # categorical
    constraints = _numeric_constraints(features, params)
    if constraints:
        constraints += [1] * len(ordered) + [0] * len(unordered)
    first_categorical = len(numeric) + len(ordered)
    return Pipeline(
        [
            ("preprocess", build_tree_preprocessor(numeric, features.categorical, ordered)),
            (
                "model",
                BoostedTreesClassifier(
                    n_estimators=params.get("n_estimators", 1000),
                    learning_rate=params.get("learning_rate", 0.05),
                    num_leaves=params.get("num_leaves", 15),
                    min_child_samples=params.get("min_child_samples", 20),
                    subsample=params.get("subsample", 0.8),
                    colsample_bytree=params.get("colsample_bytree", 0.8),
                    reg_lambda=params.get("reg_lambda", 1.0),
                    cat_smooth=params.get("cat_smooth", 10.0),
                    categorical_columns=tuple(
                        range(first_categorical, first_categorical + len(unordered))
                    ),
                    monotone_constraints=tuple(constraints),
                    early_stopping_rounds=50,
                    # OpenMP's default: all cores, or the one a parallel CV worker is allowed
                    n_jobs=0,
                    random_state=seed,
                ),
            ),
        ]
    )


def _suggest_lightgbm(trial: Any, profile: Profile) -> dict[str, Any]:
    params = {
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.15, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 4, 64, log=True),
        "min_child_samples": trial.suggest_int("min_child_samples", 5, 200, log=True),
        "subsample": trial.suggest_float("subsample", 0.5, 1.0),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.4, 1.0),
        "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 30.0, log=True),
        "cat_smooth": trial.suggest_float("cat_smooth", 1.0, 50.0, log=True),
    }
    if profile == "fast":
        params["n_estimators"] = 300
    return params


_ARCHITECTURES = {"64": (64,), "64-32": (64, 32), "128-64": (128, 64), "32-16": (32, 16)}


def _neural(features: FeatureSet, params: dict[str, Any], _: float, seed: int) -> Pipeline:
    from creditops.models.neural import TorchMLPClassifier

    return Pipeline(
        [
            ("preprocess", build_preprocessor(features.numeric, features.categorical, scale=True)),
            (
                "model",
                TorchMLPClassifier(
                    hidden_layer_sizes=_ARCHITECTURES[params.get("architecture", "64-32")],
                    dropout=params.get("dropout", 0.1),
                    learning_rate=params.get("learning_rate", 1e-3),
                    weight_decay=params.get("weight_decay", 1e-4),
                    batch_size=params.get("batch_size", 256),
                    max_epochs=params.get("max_epochs", 200),
                    patience=params.get("patience", 10),
                    class_weight="balanced",
                    random_state=seed,
                ),
            ),
        ]
    )


def _suggest_neural(trial: Any, profile: Profile) -> dict[str, Any]:
    params = {
        "architecture": trial.suggest_categorical("architecture", list(_ARCHITECTURES)),
        "dropout": trial.suggest_float("dropout", 0.0, 0.5),
        "learning_rate": trial.suggest_float("learning_rate", 3e-4, 1e-2, log=True),
        "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True),
        "batch_size": trial.suggest_categorical("batch_size", [128, 256, 512]),
    }
    if profile == "fast":
        params.update(max_epochs=30, patience=5)
    return params


CANDIDATES: dict[str, Candidate] = {
    candidate.name: candidate
    for candidate in (
        Candidate(
            name="logistic_regression",
            label="Logistic regression",
            complexity=1,
            tuner="grid",
            build=_logistic,
            grid={
                "fast": {"C": [0.1, 1.0]},
                "full": {"C": [0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0]},
            },
        ),
        Candidate(
            name="scorecard",
            label="WoE scorecard",
            complexity=2,
            tuner="grid",
            build=_scorecard,
            grid={
                "fast": {"max_n_bins": [6], "C": [1.0]},
                "full": {
                    "max_n_bins": [4, 6, 8],
                    "min_bin_size": [0.05, 0.1],
                    "C": [0.1, 1.0],
                },
            },
        ),
        Candidate(
            name="pca_logistic",
            label="PCA → logistic regression",
            complexity=3,
            tuner="grid",
            build=_pca_logistic,
            grid={
                "fast": {"n_components": [0.9], "C": [1.0]},
                "full": {"n_components": [0.8, 0.9, 0.95, 0.99], "C": [0.01, 0.1, 1.0]},
            },
        ),
        Candidate(
            name="random_forest",
            label="Random forest",
            complexity=4,
            tuner="grid",
            build=_random_forest,
            tuning_cost=2.0,
            rows_per_model="max_samples",
            grid={
                "fast": {"n_estimators": [100], "min_samples_leaf": [5], "max_depth": [8]},
                "full": {
                    "n_estimators": [300],
                    "max_depth": [8, 12, None],
                    "min_samples_leaf": [2, 5, 10],
                    "max_features": ["sqrt", 0.4],
                },
            },
        ),
        Candidate(
            name="lightgbm",
            label="LightGBM",
            complexity=5,
            tuner="optuna",
            build=_lightgbm,
            suggest=_suggest_lightgbm,
            trials={"fast": 4, "full": 30},
            constrainable=True,
            first_trial={
                "learning_rate": 0.05,
                "num_leaves": 15,
                "min_child_samples": 20,
                "subsample": 0.8,
                "colsample_bytree": 0.8,
                "reg_lambda": 1.0,
                "cat_smooth": 10.0,
            },
            tuning_cost=3.0,
        ),
        Candidate(
            name="xgboost",
            label="XGBoost",
            complexity=5,
            tuner="optuna",
            build=_xgboost,
            suggest=_suggest_xgboost,
            trials={"fast": 4, "full": 40},
            constrainable=True,
            first_trial={
                "learning_rate": 0.05,
                "max_depth": 4,
                "min_child_weight": 1.0,
                "subsample": 0.8,
                "colsample_bytree": 0.8,
                "reg_lambda": 1.0,
                "reg_alpha": 0.001,
            },
            tuning_cost=3.0,
        ),
        Candidate(
            name="neural_network",
            label="PyTorch neural network",
            complexity=6,
            tuner="optuna",
            build=_neural,
            suggest=_suggest_neural,
            trials={"fast": 2, "full": 12},
            first_trial={
                "architecture": "64-32",
                "dropout": 0.1,
                "learning_rate": 1e-3,
                "weight_decay": 1e-4,
                "batch_size": 256,
            },
            tuning_cost=3.0,
            exact_explanations=False,
        ),
    )
}


def get_candidates(names: Sequence[str] | None = None) -> list[Candidate]:
    """The candidates to train, in order of complexity; all of them when ``names`` is empty."""
    if not names:
        return sorted(CANDIDATES.values(), key=lambda c: c.complexity)
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        raise ConfigurationError(
            f"unknown model(s): {', '.join(unknown)}; choose from {', '.join(CANDIDATES)}"
        )
    return sorted((CANDIDATES[n] for n in dict.fromkeys(names)), key=lambda c: c.complexity)
