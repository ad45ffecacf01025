"""Take a fitted credit model apart: calibration, preprocessing, middle steps, estimator, kind.

A trained model is a zoo pipeline (preprocessing ``ColumnTransformer``, optional steps such as
``PCA``, a final estimator), possibly wrapped by training in sklearn's
``CalibratedClassifierCV(ensemble=False)``. Explanations, fairness mitigation and the serving
fast path each need the same pieces and the same answer to "what kind of model is this?", so
they read it here, once.

Estimator families are recognised without importing optional heavy libraries: an XGBoost or
PyTorch estimator can only exist once its module has been imported (by unpickling or by
building it), so an absent module means "not that family". The WoE scorecard
(:class:`~creditops.models.scorecard.ScorecardClassifier`) is its own family and kind,
"scorecard": binning, WoE and a logistic regression in one estimator. A stacked ensemble
(:class:`~creditops.models.ensemble.StackedEnsembleClassifier`) holds one such model per member:
:func:`model_kind` names it "ensemble", and its members are taken apart one by one.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Literal

from sklearn.calibration import CalibratedClassifierCV
from sklearn.decomposition import PCA
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from creditops.exceptions import ModelStructureError
from creditops.models.ensemble import StackedEnsembleClassifier
from creditops.models.scorecard import ScorecardClassifier

__all__ = [
    "Anatomy",
    "EstimatorFamily",
    "ModelKind",
    "anatomy",
    "estimator_family",
    "is_ensemble",
    "model_kind",
    "unwrap",
]

EstimatorFamily = Literal[
    "logistic_regression",
    "scorecard",
    "random_forest",
    "extra_trees",
    "xgboost",
    "lightgbm",
    "neural_network",
    "other",
]
# The family, refined by what sits before the estimator: PCA → logistic is its own kind
# (named as the zoo's candidate), any other middle step makes the model "other".
ModelKind = Literal[
    "logistic_regression",
    "scorecard",
    "pca_logistic",
    "random_forest",
    "extra_trees",
    "xgboost",
    "lightgbm",
    "neural_network",
    "ensemble",
    "other",
]


def is_ensemble(model: Any) -> bool:
    """A stacked ensemble of candidate models."""
    return isinstance(model, StackedEnsembleClassifier)


def model_kind(model: Any) -> ModelKind:
    """What kind of model ``model`` is: "ensemble", or its :func:`anatomy`'s kind."""
    return "ensemble" if is_ensemble(model) else anatomy(model).kind


def estimator_family(estimator: Any) -> EstimatorFamily:
    """The family of a final estimator (by class, subclasses included)."""
    if isinstance(estimator, LogisticRegression):
        return "logistic_regression"
    if isinstance(estimator, ScorecardClassifier):
        return "scorecard"
    if isinstance(estimator, RandomForestClassifier):
        return "random_forest"
    if isinstance(estimator, ExtraTreesClassifier):
        return "extra_trees"
    xgb = sys.modules.get("xgboost")
    if xgb is not None and isinstance(estimator, xgb.XGBClassifier):
        return "xgboost"
    boosting = sys.modules.get("creditops.models.boosting")
    if boosting is not None and isinstance(estimator, boosting.BoostedTreesClassifier):
        return "lightgbm"
    neural = sys.modules.get("creditops.models.neural")
    if neural is not None and isinstance(estimator, neural.TorchMLPClassifier):
        return "neural_network"
    return "other"


def unwrap(model: Any) -> tuple[Pipeline, Any | None]:
    """The fitted pipeline, and the single fitted calibration around it (sklearn's
    ``_CalibratedClassifier``: ``.estimator``, ``.calibrators``, ``.method``) or None.

    Raises ModelStructureError for an unfitted or ensembled ``CalibratedClassifierCV`` (one
    pipeline per fold cannot be explained or compiled as one) and for anything that is not a
    ``Pipeline`` underneath.
    """
    calibration = None
    pipeline = model
    if is_ensemble(model):
        raise ModelStructureError(
            "a stacked ensemble holds one pipeline per member: take its members_ apart"
        )
    if isinstance(model, CalibratedClassifierCV):
        fitted = getattr(model, "calibrated_classifiers_", None)
        if not fitted:
            raise ModelStructureError("the CalibratedClassifierCV is not fitted")
        if len(fitted) != 1:
            raise ModelStructureError(
                f"CalibratedClassifierCV with {len(fitted)} calibrated models: one fitted "
                "pipeline is needed (calibrate with ensemble=False)"
            )
        calibration = fitted[0]
        pipeline = calibration.estimator
        if type(pipeline).__name__ == "FrozenEstimator":  # sklearn's prefit wrapper
            pipeline = pipeline.estimator
    if not isinstance(pipeline, Pipeline):
        raise ModelStructureError(f"model {type(pipeline).__name__} is not a Pipeline")
    return pipeline, calibration


@dataclass(frozen=True)
class Anatomy:
    """The parts of a fitted model; ``pipeline`` is what ``calibration`` (if any) wraps."""

    pipeline: Pipeline
    calibration: Any | None
    preprocess: Any  # the pipeline's first step (the ColumnTransformer for zoo models)
    middle: tuple[Any, ...]  # the steps between preprocessing and the estimator
    estimator: Any
    family: EstimatorFamily
    kind: ModelKind

    @property
    def calibrated(self) -> bool:
        return self.calibration is not None


def anatomy(model: Any) -> Anatomy:
    """Take ``model`` apart (see :func:`unwrap` for what it refuses)."""
    pipeline, calibration = unwrap(model)
    steps = [s for _, s in pipeline.steps if s is not None and s != "passthrough"]
    if len(steps) < 2:
        raise ModelStructureError("a pipeline without preprocessing and an estimator")
    estimator = steps[-1]
    middle = tuple(steps[1:-1])
    family = estimator_family(estimator)
    kind: ModelKind = family
    if middle:
        pca_only = all(isinstance(step, PCA) for step in middle)
        kind = "pca_logistic" if family == "logistic_regression" and pca_only else "other"
    return Anatomy(
        pipeline=pipeline,
        calibration=calibration,
        preprocess=steps[0],
        middle=middle,
        estimator=estimator,
        family=family,
        kind=kind,
    )
