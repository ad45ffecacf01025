"""A WoE scorecard's points table: every bin of every scored feature, in points on the version's
score scale (:class:`~creditops.evaluation.policy.ScoreScale`).

The scorecard's log-odds of default is ``L = intercept + Σ_j t_j`` with ``t_j = coefficient_j ·
WoE_j(bin)`` (:mod:`creditops.models.scorecard`), and the scale gives ``points = offset +
factor · ln(good:bad odds) = offset − factor · L``. Spreading the constant part evenly over the
``n`` scored features, the usual convention (optbinning's ``Scorecard`` does the same), each bin
is worth

    points(bin) = (offset − factor · intercept) / n − factor · t_j(bin)

so the table needs no separate base row: an applicant's score is the sum of the one row per
feature that holds their value, and equals ``to_points(predict_proba)`` (unrounded) wherever
``to_points`` does not clip the probability (``PROBA_EPS``: beyond about ±400 points).

Calibration: a sigmoid calibrator (``CalibratedClassifierCV(method="sigmoid")``) maps the
log-odds affinely, ``L' = −(a · L + b)``, and is folded into the table, which then reproduces the
calibrated model's score. An isotonic calibrator is not additive: the table then gives the
scorecard's own points and says so (``reproduces_score`` is False).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel

from creditops.evaluation.policy import ScoreScale
from creditops.models.anatomy import anatomy

__all__ = ["PointsRow", "PointsTable", "applicant_points", "points_table"]


class PointsRow(BaseModel):
    feature: str
    bin: str
    count: int  # training rows in the bin
    event_rate: float | None  # the bin's default rate in training; None when it held no rows
    woe: float
    iv: float
    points: float  # unrounded; the constant share (see base_points_per_feature) included


class PointsTable(BaseModel):
    """The points of every bin; one row per feature, summed, is an applicant's score."""

    schema_version: int = 1
    scale: ScoreScale
    features: list[str]  # the scored features, in the model's order
    intercept: float  # log-odds of default (calibration folded in, where it can be)
    # The constant part, (offset − factor · intercept) / n, already inside every row's points.
    base_points_per_feature: float
    calibration: str  # none, sigmoid or isotonic
    reproduces_score: bool  # False: an isotonic calibration the table cannot carry
    rows: list[PointsRow]

    def to_frame(self) -> pd.DataFrame:
        columns = list(PointsRow.model_fields)
        return pd.DataFrame([r.model_dump() for r in self.rows], columns=columns)

    def feature_range(self, feature: str) -> tuple[float, float]:
        """The fewest and the most points ``feature`` can give (bins with training rows)."""
        values = [r.points for r in self.rows if r.feature == feature and r.count > 0]
        return min(values), max(values)


def _calibration_map(model: Any) -> tuple[str, float, float, bool]:
    """(method, multiplier, shift, exact): the calibrated log-odds of default is
    ``multiplier · L + shift`` when ``exact``."""
    calibration = anatomy(model).calibration
    if calibration is None:
        return "none", 1.0, 0.0, True
    calibrator = calibration.calibrators[0]
    if calibration.method == "sigmoid":  # p = expit(−(a · L + b))
        return "sigmoid", -float(calibrator.a_), -float(calibrator.b_), True
    return str(calibration.method), 1.0, 0.0, False


def points_table(model: Any, scale: ScoreScale | None = None) -> PointsTable:
    """The points table of a fitted scorecard pipeline (optionally calibrated)."""
    parts = anatomy(model)
    if parts.kind != "scorecard":
        raise TypeError(f"a points table needs a scorecard, not a {parts.kind} model")
    scale = scale or ScoreScale()
    estimator = parts.estimator
    method, multiplier, shift, exact = _calibration_map(model)
    table = estimator.bin_table()
    n = len(estimator.features_)
    intercept = multiplier * estimator.intercept + shift
    base = (scale.offset - scale.factor * intercept) / n
    points = base - scale.factor * multiplier * table["log_odds"].to_numpy(dtype=np.float64)
    rows = [
        PointsRow(
            feature=str(row.feature),
            bin=str(row.bin),
            count=int(row.count),
            event_rate=None if pd.isna(row.event_rate) else float(row.event_rate),
            woe=float(row.woe),
            iv=float(row.iv),
            points=float(p),
        )
        for row, p in zip(table.itertuples(index=False), points, strict=True)
    ]
    return PointsTable(
        scale=scale,
        features=list(estimator.features_),
        intercept=float(intercept),
        base_points_per_feature=float(base),
        calibration=method,
        reproduces_score=exact,
        rows=rows,
    )


def applicant_points(model: Any, X: pd.DataFrame, scale: ScoreScale | None = None) -> pd.DataFrame:
    """Points per scored feature for each row of ``X`` (columns: the scored features), on the
    same terms as :func:`points_table`: a row's sum is its score."""
    parts = anatomy(model)
    if parts.kind != "scorecard":
        raise TypeError(f"applicant points need a scorecard, not a {parts.kind} model")
    scale = scale or ScoreScale()
    estimator = parts.estimator
    _, multiplier, shift, _ = _calibration_map(model)
    woe = estimator.woe(parts.preprocess.transform(X))
    coefficients = np.array([f.coefficient for f in estimator.bins_])
    n = len(estimator.features_)
    base = (scale.offset - scale.factor * (multiplier * estimator.intercept + shift)) / n
    points = base - scale.factor * multiplier * woe * coefficients
    return pd.DataFrame(points, columns=list(estimator.features_), index=X.index)
