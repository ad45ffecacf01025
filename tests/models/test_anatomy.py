"""models.anatomy recognises every zoo candidate, calibrated or not, and refuses what it can't
take apart."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import ExtraTreesClassifier, GradientBoostingClassifier
from sklearn.pipeline import Pipeline

from creditops.exceptions import ModelStructureError
from creditops.models.anatomy import anatomy, estimator_family, unwrap
from creditops.models.zoo import CANDIDATES, FeatureSet

SMALL: dict[str, dict[str, Any]] = {
    "logistic_regression": {},
    "scorecard": {},
    "pca_logistic": {"n_components": 2},
    "random_forest": {"n_estimators": 5, "max_depth": 3},
    "xgboost": {"n_estimators": 5, "max_depth": 2},
    "neural_network": {"max_epochs": 2},
}


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, np.ndarray, FeatureSet]:
    rng = np.random.default_rng(0)
    n = 300
    frame = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.normal(size=n),
            "c": rng.uniform(0, 5, size=n),
            "kind": rng.choice(["x", "y", "z"], size=n),
        }
    )
    y = (frame["a"] + rng.normal(scale=0.5, size=n) > 0).astype(int).to_numpy()
    return frame, y, FeatureSet(numeric=["a", "b", "c"], categorical=["kind"])


def _fit(
    candidate: str, data: tuple[pd.DataFrame, np.ndarray, FeatureSet], calibrated: bool
) -> tuple[Any, Pipeline]:
    frame, y, features = data
    pipeline = CANDIDATES[candidate].build(features, SMALL[candidate], 1.0, 0)
    if calibrated:
        model = CalibratedClassifierCV(pipeline, method="sigmoid", cv=2, ensemble=False)
        return model.fit(frame, y), pipeline
    return pipeline.fit(frame, y), pipeline


@pytest.mark.parametrize("calibrated", [False, True], ids=["plain", "calibrated"])
@pytest.mark.parametrize("candidate", list(SMALL))
def test_each_candidate_is_recognised(
    candidate: str, calibrated: bool, data: tuple[pd.DataFrame, np.ndarray, FeatureSet]
) -> None:
    model, _ = _fit(candidate, data, calibrated)
    parts = anatomy(model)
    assert parts.kind == candidate
    assert parts.calibrated is calibrated
    assert isinstance(parts.pipeline, Pipeline)
    assert parts.preprocess is parts.pipeline.steps[0][1]
    assert parts.estimator is parts.pipeline.steps[-1][1]
    assert len(parts.middle) == (1 if candidate == "pca_logistic" else 0)
    assert parts.family == ("logistic_regression" if candidate == "pca_logistic" else candidate)
    if calibrated:
        assert parts.calibration is model.calibrated_classifiers_[0]
        assert parts.pipeline is parts.calibration.estimator


def test_other_estimators_are_named_by_family(
    data: tuple[pd.DataFrame, np.ndarray, FeatureSet],
) -> None:
    assert estimator_family(ExtraTreesClassifier()) == "extra_trees"
    assert estimator_family(GradientBoostingClassifier()) == "other"
    model, _ = _fit("logistic_regression", data, calibrated=False)
    other = Pipeline([("preprocess", model[0]), ("model", GradientBoostingClassifier())])
    assert anatomy(other).kind == "other"


def test_what_cannot_be_taken_apart_is_refused(
    data: tuple[pd.DataFrame, np.ndarray, FeatureSet],
) -> None:
    frame, y, features = data
    pipeline = CANDIDATES["logistic_regression"].build(features, {}, 1.0, 0)
    with pytest.raises(ModelStructureError, match="not a Pipeline"):
        unwrap(pipeline.fit(frame, y)[-1])
    with pytest.raises(ModelStructureError, match="not fitted"):
        unwrap(CalibratedClassifierCV(pipeline))
    ensemble = CalibratedClassifierCV(pipeline, cv=2, ensemble=True).fit(frame, y)
    with pytest.raises(ModelStructureError, match="2 calibrated models"):
        anatomy(ensemble)
    with pytest.raises(ModelStructureError, match="without preprocessing"):
        anatomy(Pipeline([("model", pipeline[-1])]))
    assert isinstance(ModelStructureError("x"), TypeError)  # callers catching TypeError still do
