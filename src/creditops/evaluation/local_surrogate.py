"""LIME: a local linear surrogate of one applicant's probability of default.

A second, model-agnostic view beside the SHAP attributions of :mod:`creditops.evaluation.explain`:
LIME samples around the applicant on the original features and fits a weighted linear model, so
it needs only ``predict_proba`` and the dataset spec, none of the explainer's machinery.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel

from creditops.data.spec import ResolvedSpec

__all__ = ["LimeExplanation", "LimeWeight", "explain_lime"]

_MISSING_LABEL = "(missing)"


class LimeWeight(BaseModel):
    feature: str
    condition: str
    weight: float


class LimeExplanation(BaseModel):
    """A LIME local surrogate of the probability of default (weights by |weight|)."""

    schema_version: int = 1
    weights: list[LimeWeight]
    intercept: float
    local_prediction: float
    model_proba: float
    score: float  # R² of the weighted local fit
    num_samples: int
    seed: int
    imputed_for_lime: list[str]  # missing numeric values set to the sample median for LIME


def explain_lime(
    model: Any,
    X_train_sample: pd.DataFrame,
    row: pd.DataFrame,
    spec: ResolvedSpec,
    *,
    num_features: int = 6,
    num_samples: int = 5000,
    seed: int = 0,
) -> LimeExplanation:
    """LIME on the original features: categoricals as integer codes (decoded back to text for
    the model), numeric features discretised into quartiles; seeded, so reproducible.

    LIME cannot sample around missing values, so missing numeric values (in the sample and in
    the row) are set to the sample median for LIME only; the result lists the row's.
    """
    from lime.lime_tabular import LimeTabularExplainer

    features = list(spec.features)
    if len(row) != 1:
        raise ValueError(f"explain_lime takes one row, got {len(row)}")
    categorical = [f for f in features if f in set(spec.categorical)]
    schema = {s.name: s for s in spec.schema_}
    sample = X_train_sample[features]
    levels: dict[str, list[str]] = {}
    for feature in categorical:
        known = list(schema[feature].categories or []) if feature in schema else []
        seen = pd.concat([sample[feature], row[feature]]).dropna().astype(str)
        extra = sorted(set(seen) - set(known))
        levels[feature] = [*known, *extra, _MISSING_LABEL]
    medians = {
        f: float(np.nanmedian(v)) if np.isfinite(v := sample[f].to_numpy(float)).any() else 0.0
        for f in features
        if f not in levels
    }

    def encode(frame: pd.DataFrame) -> np.ndarray:
        columns = []
        for feature in features:
            if feature in levels:
                lookup = {level: code for code, level in enumerate(levels[feature])}
                text = frame[feature].astype(object)
                missing = len(levels[feature]) - 1
                codes = [missing if pd.isna(v) else lookup[str(v)] for v in text]
                columns.append(np.asarray(codes, dtype=float))
            else:
                values = frame[feature].to_numpy(dtype=float)
                columns.append(np.where(np.isnan(values), medians[feature], values))
        return np.column_stack(columns)

    def decode(codes: np.ndarray) -> pd.DataFrame:
        data: dict[str, Any] = {}
        for j, feature in enumerate(features):
            if feature in levels:
                names = np.asarray(levels[feature], dtype=object)
                texts = names[np.clip(np.rint(codes[:, j]).astype(int), 0, len(names) - 1)]
                data[feature] = np.where(texts == _MISSING_LABEL, np.nan, texts).astype(object)
            else:
                data[feature] = codes[:, j].astype(float)
        return pd.DataFrame(data, columns=features)

    def predict_fn(codes: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict_proba(decode(codes)), dtype=float)

    explainer = LimeTabularExplainer(
        encode(sample),
        mode="classification",
        feature_names=features,
        categorical_features=[features.index(f) for f in categorical],
        categorical_names={features.index(f): levels[f] for f in categorical},
        class_names=[str(spec.negative), str(spec.positive)],
        discretize_continuous=True,
        random_state=seed,
    )
    encoded_row = encode(row[features])[0]
    result = explainer.explain_instance(
        encoded_row, predict_fn, labels=(1,), num_features=num_features, num_samples=num_samples
    )
    weights = [
        LimeWeight(feature=features[index], condition=condition, weight=float(weight))
        for (index, weight), (condition, _) in zip(
            result.as_map()[1], result.as_list(label=1), strict=True
        )
    ]
    imputed = [f for f in features if f not in levels and pd.isna(row[f].iloc[0])]
    return LimeExplanation(
        weights=weights,
        intercept=float(result.intercept[1]),
        local_prediction=float(np.ravel(result.local_pred)[0]),
        model_proba=float(model.predict_proba(row[features])[0, 1]),
        score=float(result.score),
        num_samples=num_samples,
        seed=seed,
        imputed_for_lime=imputed,
    )
