"""The decision policy stored with every model version, and the scorecard scale it applies.

A :class:`DecisionPolicy` is made once, when a version is registered (from its validation
split), and only read afterwards: serving decides with it, monitoring and retraining judge with
it. This module holds the policy and what applying it needs (points, grades), with numpy and
pydantic only, so a serving process never loads the plotting stack to decide.

Scorecard points follow the industry scaling ``points = offset + factor · ln(good:bad odds)``,
``factor = PDO / ln 2``; risk grades are fixed point bands on that scale.
"""

from __future__ import annotations

import itertools
import math
import string
from collections.abc import Sequence
from typing import Literal, Self

import numpy as np
from numpy.typing import ArrayLike
from pydantic import BaseModel, ConfigDict, Field, model_validator

# Probabilities are clipped to [EPS, 1 − EPS] before taking log-odds, so points stay finite
# (about ±400 points around the offset with the default scale).
PROBA_EPS = 1e-6
DEFAULT_N_GRADES = 7
Objective = Literal["realised", "expected"]
Decision = Literal["approve", "refer", "decline"]
ThresholdSource = Literal["profit-maximizing", "approval-rate", "bad-rate", "manual"]
GradeMethod = Literal["scale", "quantile"]


class Economics(BaseModel):
    """What a loan earns or loses, used to put money on the thresholds.

    Amounts come from ``amount_column`` in the data (e.g. ``"Amount"`` on credit_data) or, when
    there is no such column, every loan is taken to be ``average_amount``.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    amount_column: str | None = None
    average_amount: float | None = Field(default=None, gt=0.0)
    loss_given_default: float = Field(default=0.6, ge=0.0, le=1.0)
    interest_margin: float = Field(default=0.15, ge=0.0)  # net margin on a good loan, × amount
    review_cost: float = Field(default=50.0, ge=0.0)  # cost of one manual review (refer band)

    @model_validator(mode="after")
    def _amount_source(self) -> Self:
        if self.amount_column is None and self.average_amount is None:
            raise ValueError("amount_column or average_amount: give one of them")
        return self

    @property
    def break_even_pd(self) -> float:
        """The PD at which approving has zero expected profit: margin / (margin + LGD)."""
        total = self.interest_margin + self.loss_given_default
        return 1.0 if total == 0 else self.interest_margin / total


class ScoreScale(BaseModel):
    """Scorecard scaling: ``base_points`` at ``base_odds`` (good:bad); ``pdo`` doubles the odds."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    base_points: float = 600.0
    base_odds: float = Field(default=50.0, gt=0.0)
    pdo: float = Field(default=20.0, gt=0.0)

    @property
    def factor(self) -> float:
        return self.pdo / math.log(2.0)

    @property
    def offset(self) -> float:
        return self.base_points - self.factor * math.log(self.base_odds)


def check_proba(proba: ArrayLike, name: str = "proba") -> np.ndarray:
    values = np.asarray(proba, dtype=np.float64)
    if values.ndim != 1:
        values = values.reshape(-1)
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name}: probabilities must be finite (found NaN or infinity)")
    if values.size and (values.min() < 0.0 or values.max() > 1.0):
        raise ValueError(f"{name}: probabilities must lie in [0, 1]")
    return values


def raw_points(proba: np.ndarray, scale: ScoreScale) -> np.ndarray:
    p = np.clip(proba, PROBA_EPS, 1.0 - PROBA_EPS)
    return scale.offset + scale.factor * np.log((1.0 - p) / p)


def to_points(proba: ArrayLike, scale: ScoreScale | None = None) -> np.ndarray | float:
    """Scorecard points for probabilities of default (unrounded; a float for a scalar input).

    Higher points mean lower risk; probabilities are clipped to ``[1e-6, 1 − 1e-6]`` first.
    """
    scale = scale or ScoreScale()
    scalar = np.ndim(proba) == 0
    points = raw_points(check_proba(proba), scale)
    return float(points[0]) if scalar else points


def points_to_proba(points: ArrayLike, scale: ScoreScale | None = None) -> np.ndarray | float:
    """The probability of default that ``points`` stands for (inverse of :func:`to_points`)."""
    scale = scale or ScoreScale()
    scalar = np.ndim(points) == 0
    values = np.asarray(points, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(values)):
        raise ValueError("points: must be finite (found NaN or infinity)")
    # p = 1 / (1 + odds) with ln odds = (points − offset) / factor; written with exp(−x) stable.
    log_odds = (values - scale.offset) / scale.factor
    proba = np.exp(-np.logaddexp(0.0, log_odds))
    return float(proba[0]) if scalar else proba


def grade_labels(n_grades: int) -> list[str]:
    if not 2 <= n_grades <= 26:
        raise ValueError(f"n_grades: must be between 2 and 26, got {n_grades}")
    return list(string.ascii_uppercase[:n_grades])


def scale_cutoffs(
    scale: ScoreScale | None = None,
    n_grades: int = DEFAULT_N_GRADES,
    *,
    top: float | None = None,
    width: float | None = None,
) -> list[float]:
    """Grade cut-offs fixed on the scale: ``top`` (default base points), then every ``width``.

    With the default width of one PDO, each grade down doubles the odds of default: A is better
    than the base odds (600 points, 50:1), B 25–50:1, C 12.5–25:1, … and the last grade holds
    everything below.
    """
    scale = scale or ScoreScale()
    grade_labels(n_grades)
    top = scale.base_points if top is None else float(top)
    width = scale.pdo if width is None else float(width)
    if not width > 0:
        raise ValueError(f"width: must be positive, got {width}")
    return [float(top - i * width) for i in range(n_grades - 1)]


def quantile_cutoffs(points: ArrayLike, n_grades: int = DEFAULT_N_GRADES) -> list[float]:
    """Cut-offs that split ``points`` into equal-sized grades (rounded, duplicates dropped)."""
    grade_labels(n_grades)
    values = np.round(np.asarray(points, dtype=np.float64))
    levels = np.linspace(1.0, 0.0, n_grades + 1)[1:-1]  # from the top grade down
    return [float(c) for c in dict.fromkeys(np.round(np.quantile(values, levels)).tolist())]


def assign_grades(points: ArrayLike, cutoffs: Sequence[float]) -> np.ndarray:
    """Grade index (0 = A, best) of each score: the number of cut-offs above it.

    Scores are rounded first, so the grade always agrees with the score an applicant is shown.
    """
    ascending = np.asarray(cutoffs, dtype=np.float64)[::-1]
    shown = np.round(np.asarray(points, dtype=np.float64))
    return len(ascending) - np.searchsorted(ascending, shown, side="right")


def check_cutoffs(cutoffs: Sequence[float]) -> list[float]:
    values = [float(c) for c in cutoffs]
    if not values or not all(math.isfinite(c) for c in values):
        raise ValueError("cutoffs: need at least one finite cut-off")
    if any(b >= a for a, b in itertools.pairwise(values)):
        raise ValueError("cutoffs: must be strictly descending (best grade first)")
    if len(values) > 25:
        raise ValueError("cutoffs: at most 25 (26 grades)")
    return values


class DecisionPolicy(BaseModel):
    """Approve / refer / decline on the probability of default, stored with the model version.

    Approve when ``p < approve_below``, decline when ``p ≥ decline_at_or_above``, refer to a
    manual review in between (an empty band when the two are equal).
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    schema_version: int = 1
    approve_below: float = Field(ge=0.0, le=1.0)
    decline_at_or_above: float = Field(ge=0.0, le=1.0)
    threshold_source: ThresholdSource
    source_target: float | None = None  # the approval / bad rate targeted, for those sources
    objective: Objective | None = None  # the profit maximised, for "profit-maximizing"
    refer_width: float | None = Field(default=None, ge=0.0, le=1.0)
    scale: ScoreScale = Field(default_factory=ScoreScale)
    grade_cutoffs: list[float] = Field(default_factory=lambda: scale_cutoffs())
    economics: Economics

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.decline_at_or_above < self.approve_below:
            raise ValueError(
                "decline_at_or_above: must be ≥ approve_below "
                f"({self.decline_at_or_above} < {self.approve_below})"
            )
        check_cutoffs(self.grade_cutoffs)
        return self

    @property
    def grade_names(self) -> list[str]:
        return grade_labels(len(self.grade_cutoffs) + 1)

    def tags(self) -> dict[str, str]:
        """The thresholds as registry tags, readable without downloading the policy."""
        return {
            "policy_approve_below": f"{self.approve_below:.6g}",
            "policy_decline_at_or_above": f"{self.decline_at_or_above:.6g}",
            "policy_threshold_source": self.threshold_source,
        }

    def decide_many(self, proba: ArrayLike) -> np.ndarray:
        """Vectorised :meth:`decide`: an array of ``"approve"``, ``"refer"``, ``"decline"``."""
        p = check_proba(proba)
        return np.where(
            p < self.approve_below,
            "approve",
            np.where(p >= self.decline_at_or_above, "decline", "refer"),
        )

    def decide(self, proba: float) -> Decision:
        if np.ndim(proba) != 0:
            raise ValueError("proba: decide takes one probability; use decide_many for arrays")
        return str(self.decide_many([proba])[0])  # type: ignore[return-value]

    def points(self, proba: ArrayLike) -> np.ndarray:
        """Scorecard points, rounded to whole points as shown to applicants."""
        return np.round(raw_points(check_proba(proba), self.scale)).astype(np.int64)

    def grade(self, proba: ArrayLike) -> np.ndarray:
        names = np.array(self.grade_names)
        return names[assign_grades(raw_points(check_proba(proba), self.scale), self.grade_cutoffs)]
