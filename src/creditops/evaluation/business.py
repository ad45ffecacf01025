"""Business impact of a default model: profit by threshold, scorecard points, risk grades, policy.

Money model (per application with probability of default ``p`` and loan amount ``A``):

* approved and repaid: ``+ interest_margin · A`` (net margin over the loan's life);
* approved and defaulted: ``− loss_given_default · A``;
* declined: ``0``.

So the *expected* profit of approving is ``(1 − p)·margin·A − p·LGD·A`` and is positive exactly
when ``p < margin / (margin + LGD)`` (the break-even PD, whatever the amount); the *realised*
profit on labelled data uses the actual outcome instead of ``p``. A row is approved when
``p < threshold`` (a probability equal to the threshold is not approved), the convention the
fairness report and serving share.

Thresholds that maximise, or hit a target, are searched exactly over every cut between two
distinct probabilities (placed at the midpoint, so the threshold does not sit on a row of the
evaluation sample), with ``0`` (approve nobody) and ``1`` (approve all) as the ends.

Points, grades and the :class:`DecisionPolicy` serving applies live in
:mod:`creditops.evaluation.policy`; this module derives a policy from labelled data
(:func:`build_policy`, :func:`derive_policy`) and reports what it does to a sample.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Literal, Self

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from pydantic import BaseModel, ConfigDict, Field

from creditops.data.spec import ResolvedSpec
from creditops.evaluation.policy import (
    DEFAULT_N_GRADES,
    DecisionPolicy,
    Economics,
    GradeMethod,
    Objective,
    ScoreScale,
    ThresholdSource,
    assign_grades,
    check_cutoffs,
    check_proba,
    grade_labels,
    points_to_proba,
    quantile_cutoffs,
    raw_points,
    scale_cutoffs,
)

_AMOUNT_NAME = re.compile(r"(^|_)(amount|amnt|loan_amount)($|_)", re.IGNORECASE)
DEFAULT_APPROVAL_RATES = tuple(round(0.50 + 0.05 * i, 2) for i in range(10))  # 50% … 95%

# --------------------------------------------------------------------------- input checks


def _check_labels(y_true: ArrayLike, n: int) -> np.ndarray:
    y = np.asarray(y_true).reshape(-1)
    if y.shape[0] != n:
        raise ValueError(f"y_true: {y.shape[0]} labels for {n} probabilities")
    try:
        numeric = y.astype(np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError("y_true: labels must be 0 (good) or 1 (default)") from error
    if not np.all(np.isin(numeric, (0.0, 1.0))):
        raise ValueError("y_true: labels must be 0 (good) or 1 (default)")
    return numeric.astype(np.int64)


def _check_amounts(amounts: ArrayLike | None, economics: Economics, n: int) -> np.ndarray:
    if amounts is None:
        if economics.average_amount is None:
            raise ValueError(
                f"amounts: none given and economics.average_amount is not set "
                f"(read them from column {economics.amount_column!r} with amounts_from)"
            )
        return np.full(n, economics.average_amount, dtype=np.float64)
    values = np.asarray(amounts, dtype=np.float64).reshape(-1)
    if values.shape[0] != n:
        raise ValueError(f"amounts: {values.shape[0]} amounts for {n} probabilities")
    if not np.all(np.isfinite(values)):
        raise ValueError("amounts: loan amounts must be finite (found NaN or infinity)")
    if values.size and values.min() < 0.0:
        raise ValueError("amounts: loan amounts must be non-negative")
    return values


def _check_rate(value: float, name: str) -> float:
    if not (isinstance(value, int | float) and math.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"{name}: must be a number in [0, 1], got {value!r}")
    return float(value)


def amounts_from(frame: pd.DataFrame, economics: Economics) -> np.ndarray:
    """Loan amounts for ``frame``: its ``amount_column``, else ``average_amount`` for every row.

    Missing amounts in the column are filled with ``average_amount`` when it is set and refused
    otherwise, so profit is never silently computed on a smaller book.
    """
    n = len(frame)
    if economics.amount_column is None:
        return _check_amounts(None, economics, n)
    if economics.amount_column not in frame.columns:
        raise ValueError(f"amount_column: {economics.amount_column!r} is not a column of the data")
    values = pd.to_numeric(frame[economics.amount_column], errors="coerce").to_numpy(
        dtype=np.float64, na_value=np.nan
    )
    missing = np.isnan(values)
    if missing.any():
        if economics.average_amount is None:
            raise ValueError(
                f"amount_column: {int(missing.sum())} missing values in "
                f"{economics.amount_column!r} and no average_amount to fill them"
            )
        values = np.where(missing, economics.average_amount, values)
    return _check_amounts(values, economics, n)


# --------------------------------------------------------------------------- profit curve


class ProfitPoint(BaseModel):
    threshold: float
    n_approved: int
    approval_rate: float
    bad_rate: float | None  # defaults among approved / approved; None when nobody is approved
    realised_profit: float
    expected_profit: float


class ProfitCurve(BaseModel):
    """Profit, approval and bad rate by threshold (approve when ``p < threshold``), ascending.

    Approval rate rises with the threshold, so the same rows read as profit versus approval rate.
    """

    n: int
    defaults: int
    total_amount: float
    points: list[ProfitPoint]

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([point.model_dump() for point in self.points])


class OptimalThreshold(BaseModel):
    objective: Objective  # which profit was maximised
    threshold: float
    n_approved: int
    approval_rate: float
    bad_rate: float | None
    realised_profit: float
    expected_profit: float
    profit_per_application: float  # the maximised profit / all applications


class ApprovalRateRow(BaseModel):
    target_rate: float
    threshold: float
    n_approved: int
    approval_rate: float  # achieved (ties at the cut can keep it a row or more below target)
    bad_rate: float | None
    realised_profit: float
    expected_profit: float


class _Book:
    """Rows sorted by probability with running sums, so any threshold costs one search."""

    def __init__(
        self, y_true: ArrayLike | None, proba: ArrayLike, amounts: np.ndarray | None = None
    ) -> None:
        self.proba_raw = check_proba(proba)
        self.n = self.proba_raw.shape[0]
        if self.n == 0:
            raise ValueError("proba: no rows")
        order = np.argsort(self.proba_raw, kind="stable")
        self.sorted = self.proba_raw[order]
        zero = np.zeros(1)
        self.y = None if y_true is None else _check_labels(y_true, self.n)[order]
        self.cum_defaults = None if self.y is None else np.concatenate([zero, np.cumsum(self.y)])
        self.cum_realised = self.cum_expected = None
        if amounts is not None:
            amount = amounts[order]
            self.amount = amount
            self.total_amount = float(amount.sum())

    def with_money(self, economics: Economics) -> Self:
        m, lgd = economics.interest_margin, economics.loss_given_default
        p, a = self.sorted, self.amount
        zero = np.zeros(1)
        self.cum_expected = np.concatenate([zero, np.cumsum((1.0 - p) * m * a - p * lgd * a)])
        if self.y is not None:
            realised = np.where(self.y == 1, -lgd * a, m * a)
            self.cum_realised = np.concatenate([zero, np.cumsum(realised)])
        return self

    def approved(self, thresholds: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.sorted, thresholds, side="left")

    def cut_points(self) -> tuple[np.ndarray, np.ndarray]:
        """Every distinct approval set: (threshold, number approved), ascending."""
        distinct = np.flatnonzero(np.diff(self.sorted) > 0) + 1  # k with sorted[k−1] < sorted[k]
        mids = (self.sorted[distinct - 1] + self.sorted[distinct]) / 2.0
        thresholds = np.concatenate([[0.0], mids, [1.0]])
        return thresholds, self.approved(thresholds)

    def bad_rate(self, k: int) -> float | None:
        if self.cum_defaults is None or k == 0:
            return None
        return float(self.cum_defaults[k] / k)

    def point(self, threshold: float, k: int) -> ProfitPoint:
        return ProfitPoint(
            threshold=float(threshold),
            n_approved=int(k),
            approval_rate=float(k / self.n),
            bad_rate=self.bad_rate(k),
            realised_profit=float(self.cum_realised[k]) if self.cum_realised is not None else 0.0,
            expected_profit=float(self.cum_expected[k]),
        )


def _book(
    y_true: ArrayLike | None, proba: ArrayLike, amounts: ArrayLike | None, economics: Economics
) -> _Book:
    proba = check_proba(proba)
    return _Book(y_true, proba, _check_amounts(amounts, economics, proba.shape[0])).with_money(
        economics
    )


def default_thresholds(proba: ArrayLike) -> np.ndarray:
    """0, 0.01 … 0.99, 1 and the percentiles of ``proba``: fixed steps plus where the rows lie."""
    proba = check_proba(proba)
    grid = np.round(np.arange(0, 101) / 100.0, 2)
    quantiles = np.quantile(proba, np.linspace(0.0, 1.0, 101)) if proba.size else []
    return np.unique(np.concatenate([grid, quantiles]))


def profit_curve(
    y_true: ArrayLike,
    proba: ArrayLike,
    amounts: ArrayLike | None,
    economics: Economics,
    thresholds: Sequence[float] | np.ndarray | None = None,
) -> ProfitCurve:
    """Realised and expected profit, approval and bad rate at each threshold (approve ``p < t``).

    ``amounts`` None means every loan is ``economics.average_amount``. Without ``thresholds`` the
    grid is :func:`default_thresholds` (0.01 steps plus the percentiles of ``proba``).
    """
    book = _book(y_true, proba, amounts, economics)
    grid = default_thresholds(book.proba_raw) if thresholds is None else np.asarray(thresholds)
    grid = np.unique(check_proba(grid, "thresholds"))
    approved = book.approved(grid)
    return ProfitCurve(
        n=book.n,
        defaults=int(book.cum_defaults[-1]),
        total_amount=book.total_amount,
        points=[book.point(t, k) for t, k in zip(grid, approved, strict=True)],
    )


def _optimal(book: _Book, objective: Objective) -> OptimalThreshold:
    thresholds, approved = book.cut_points()
    profit = book.cum_realised if objective == "realised" else book.cum_expected
    if profit is None:
        raise ValueError("y_true: realised profit needs labels")
    best = int(np.argmax(profit[approved]))  # first maximum: the most conservative threshold
    point = book.point(thresholds[best], approved[best])
    return OptimalThreshold(
        objective=objective,
        profit_per_application=float(profit[approved[best]] / book.n),
        **point.model_dump(),
    )


def optimal_threshold(
    y_true: ArrayLike,
    proba: ArrayLike,
    amounts: ArrayLike | None,
    economics: Economics,
    *,
    objective: Objective = "realised",
) -> OptimalThreshold:
    """The threshold that maximises profit on this sample, searched over every distinct cut.

    ``"realised"`` (default) maximises the profit the labelled outcomes actually produced, so it
    stays right for a miscalibrated model; ``"expected"`` trusts the probabilities and lands on
    the break-even PD ``margin / (margin + LGD)`` for a calibrated one. Among equal profits the
    lowest threshold wins (the most conservative).
    """
    return _optimal(_book(y_true, proba, amounts, economics), objective)


def threshold_for_approval_rate(proba: ArrayLike, target_rate: float) -> float:
    """The threshold that approves ``round(target_rate · n)`` rows (fewer only on tied scores)."""
    target_rate = _check_rate(target_rate, "target_rate")
    book = _Book(None, proba)
    k = round(target_rate * book.n)
    if k == 0:
        return 0.0
    if k == book.n:
        return 1.0
    low, high = book.sorted[k - 1], book.sorted[k]
    return float((low + high) / 2.0) if low < high else float(high)


def threshold_for_bad_rate(y_true: ArrayLike, proba: ArrayLike, target_bad_rate: float) -> float:
    """The threshold with the most approvals whose bad rate among approved is ≤ the target.

    The bad rate is not monotone in the threshold, so every distinct cut is checked; 0 (approve
    nobody) when even the safest applicant alone exceeds the target.
    """
    target_bad_rate = _check_rate(target_bad_rate, "target_bad_rate")
    book = _Book(y_true, proba)
    thresholds, approved = book.cut_points()
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = book.cum_defaults[approved] / approved
    ok = np.flatnonzero((approved > 0) & (rates <= target_bad_rate + 1e-12))
    return float(thresholds[ok[-1]]) if ok.size else 0.0


def approval_rate_table(
    y_true: ArrayLike,
    proba: ArrayLike,
    amounts: ArrayLike | None,
    economics: Economics,
    rates: Sequence[float] = DEFAULT_APPROVAL_RATES,
) -> list[ApprovalRateRow]:
    """Threshold, bad rate and profit at each target approval rate (default 50% … 95%)."""
    book = _book(y_true, proba, amounts, economics)
    rows = []
    for rate in rates:
        threshold = threshold_for_approval_rate(book.proba_raw, rate)
        point = book.point(threshold, int(book.approved(np.array([threshold]))[0]))
        rows.append(ApprovalRateRow(target_rate=float(rate), **point.model_dump()))
    return rows


# --------------------------------------------------------------------------- risk grades


class GradeRow(BaseModel):
    grade: str
    min_points: float | None  # inclusive lower bound of the (rounded) score; None: open below
    max_points: float | None  # exclusive upper bound; None: open above (the best grade)
    min_pd: float  # PD range the points band stands for on the scale
    max_pd: float
    count: int
    share: float
    defaults: int | None  # None without labels
    bad_rate: float | None  # None without labels or rows
    mean_pd: float | None  # mean probability of default of the rows; None without rows


class RiskGrades(BaseModel):
    method: GradeMethod | Literal["given"]
    scale: ScoreScale
    cutoffs: list[float]  # lower point bounds of every grade but the worst, descending
    n: int
    grades: list[GradeRow]
    monotone: bool | None  # bad rate non-decreasing from best to worst non-empty grade


def risk_grades(
    scores: ArrayLike,
    y_true: ArrayLike | None = None,
    *,
    scale: ScoreScale | None = None,
    score_type: Literal["proba", "points"] = "proba",
    method: GradeMethod = "scale",
    n_grades: int = DEFAULT_N_GRADES,
    cutoffs: Sequence[float] | None = None,
) -> RiskGrades:
    """Bad-rate table by risk grade (A best), from probabilities of default or points.

    The default ``method="scale"`` fixes the bands on the points scale (:func:`scale_cutoffs`:
    from the base points down, one PDO per grade). We chose it over quantiles because a grade
    then means the same odds band for every model version and every month: champion and
    challenger grade mixes compare directly, a population that worsens shows up as migration to
    lower grades (quantile grades are equal-sized by construction and hide it), and the cut-offs
    stored in the policy never need re-deriving. The cost is that grades can be thin or empty at
    the ends on a small sample; ``method="quantile"`` gives equal-sized grades when that matters
    (its cut-offs are then fixed in points too). ``cutoffs`` overrides both.
    """
    scale = scale or ScoreScale()
    if score_type == "proba":
        proba = check_proba(scores, "scores")
        points = raw_points(proba, scale)
    else:
        points = np.asarray(scores, dtype=np.float64).reshape(-1)
        proba = np.asarray(points_to_proba(points, scale)).reshape(-1)
    n = points.shape[0]
    if n == 0:
        raise ValueError("scores: no rows")
    y = None if y_true is None else _check_labels(y_true, n)
    if cutoffs is not None:
        used, chosen = check_cutoffs(cutoffs), "given"
    elif method == "scale":
        used, chosen = scale_cutoffs(scale, n_grades), "scale"
    else:
        used, chosen = check_cutoffs(quantile_cutoffs(points, n_grades)), "quantile"
    index = assign_grades(points, used)
    rows = []
    for g, label in enumerate(grade_labels(len(used) + 1)):
        members = index == g
        count = int(members.sum())
        low = used[g] if g < len(used) else None
        high = used[g - 1] if g > 0 else None
        defaults = None if y is None else int(y[members].sum())
        rows.append(
            GradeRow(
                grade=label,
                min_points=low,
                max_points=high,
                # Rounded scores ≥ low are raw scores ≥ low − 0.5 (and < high − 0.5 below).
                min_pd=0.0 if high is None else float(points_to_proba(high - 0.5, scale)),
                max_pd=1.0 if low is None else float(points_to_proba(low - 0.5, scale)),
                count=count,
                share=count / n,
                defaults=defaults,
                bad_rate=None if defaults is None or count == 0 else defaults / count,
                mean_pd=float(proba[members].mean()) if count else None,
            )
        )
    observed = [row.bad_rate for row in rows if row.bad_rate is not None]
    monotone = None if y is None else bool(np.all(np.diff(observed) >= 0))
    return RiskGrades(method=chosen, scale=scale, cutoffs=used, n=n, grades=rows, monotone=monotone)


def review_ceiling(economics: Economics, mean_amount: float) -> float:
    """The PD above which even a perfect manual review cannot pay for itself.

    Above the approval threshold the automatic decision is a decline (profit 0); a review that
    found every good applicant would earn ``(1 − p)·margin·A``, so it is worth its cost only while
    ``p < 1 − review_cost / (margin · A)``.
    """
    earn = economics.interest_margin * mean_amount
    if earn <= 0:
        return 0.0
    return float(min(1.0, max(0.0, 1.0 - economics.review_cost / earn)))


def build_policy(
    y_true: ArrayLike,
    proba: ArrayLike,
    amounts: ArrayLike | None,
    economics: Economics,
    scale: ScoreScale | None = None,
    *,
    refer_width: float = 0.10,
    objective: Objective = "realised",
    target_approval_rate: float | None = None,
    target_bad_rate: float | None = None,
    grade_method: GradeMethod = "scale",
    n_grades: int = DEFAULT_N_GRADES,
) -> DecisionPolicy:
    """The approve / refer / decline policy serving applies, derived on labelled evaluation data.

    * Approve below the profit-maximising threshold (``objective``; realised profit by default,
      so a miscalibrated model is still cut where the money is), or below the threshold for
      ``target_approval_rate`` / ``target_bad_rate`` when one is given.
    * Refer the band just above it: these applicants are unprofitable on average but close to
      break-even, where a reviewer's extra information can still find good loans. Its width is
      ``refer_width`` in probability (a proxy for review capacity), and it is cut off at
      :func:`review_ceiling`, beyond which even a perfect review costs more (``review_cost``)
      than the margin it could recover; a band that would be empty or negative becomes empty.
    * Decline at or above ``approve_below + width``.

    Grade cut-offs come from the scale by default (see :func:`risk_grades`).
    """
    scale = scale or ScoreScale()
    refer_width = _check_rate(refer_width, "refer_width")
    book = _book(y_true, proba, amounts, economics)
    if target_approval_rate is not None and target_bad_rate is not None:
        raise ValueError("target_approval_rate, target_bad_rate: give at most one of them")
    source_target: float | None = None
    chosen_objective: Objective | None = None
    if target_approval_rate is not None:
        source: ThresholdSource = "approval-rate"
        source_target = _check_rate(target_approval_rate, "target_approval_rate")
        approve_below = threshold_for_approval_rate(book.proba_raw, source_target)
    elif target_bad_rate is not None:
        source = "bad-rate"
        source_target = _check_rate(target_bad_rate, "target_bad_rate")
        approve_below = threshold_for_bad_rate(y_true, book.proba_raw, source_target)
    else:
        source, chosen_objective = "profit-maximizing", objective
        approve_below = _optimal(book, objective).threshold
    ceiling = review_ceiling(economics, book.total_amount / book.n)
    decline = max(approve_below, min(approve_below + refer_width, ceiling, 1.0))
    if grade_method == "scale":
        cutoffs = scale_cutoffs(scale, n_grades)
    else:
        cutoffs = quantile_cutoffs(raw_points(book.proba_raw, scale), n_grades)
    return DecisionPolicy(
        approve_below=approve_below,
        decline_at_or_above=decline,
        threshold_source=source,
        source_target=source_target,
        objective=chosen_objective,
        refer_width=refer_width,
        scale=scale,
        grade_cutoffs=cutoffs,
        economics=economics,
    )


class PolicyConfig(BaseModel):
    """What a version's decision policy is derived with (defaults: the data's loan amounts, the
    standard 600-points-at-50:1 scale, a refer band 0.10 wide)."""

    model_config = ConfigDict(extra="forbid")

    economics: Economics | None = None  # default: see default_economics
    scale: ScoreScale = Field(default_factory=ScoreScale)
    refer_width: float = Field(default=0.10, ge=0.0, le=1.0)


def default_economics(spec: ResolvedSpec, frame: pd.DataFrame) -> Economics:
    """Use the loan amount column when the data has one (e.g. ``Amount``), else unit loans."""
    for column in spec.numeric:
        if _AMOUNT_NAME.search(column) and column in frame:
            median = float(np.nanmedian(frame[column].to_numpy(dtype=float)))
            return Economics(amount_column=column, average_amount=median or 1.0)
    return Economics(average_amount=1.0)


def derive_policy(
    y_validation: ArrayLike,
    proba_validation: ArrayLike,
    validation: pd.DataFrame,
    spec: ResolvedSpec,
    data: pd.DataFrame,
    config: PolicyConfig | None = None,
) -> DecisionPolicy:
    """The policy of a model version, from its scores on the validation split (``validation``,
    the rows behind the scores; ``data``, the whole validated dataset the default economics
    read their average loan from). The one derivation used at registration."""
    config = config or PolicyConfig()
    economics = config.economics or default_economics(spec, data)
    return build_policy(
        y_validation,
        proba_validation,
        amounts_from(validation, economics),
        economics,
        config.scale,
        refer_width=config.refer_width,
    )


class PolicyOutcome(BaseModel):
    """What the policy does to the evaluation sample."""

    approve_rate: float
    refer_rate: float
    decline_rate: float
    bad_rate_approved: float | None
    bad_rate_referred: float | None
    bad_rate_declined: float | None
    realised_profit_approved: float  # profit of the automatically approved loans
    expected_profit_approved: float
    review_cost: float  # reviews of every referred application
    review_ceiling: float  # PD above which a review cannot pay (see review_ceiling)


def policy_outcome(
    policy: DecisionPolicy, y_true: ArrayLike, proba: ArrayLike, amounts: ArrayLike | None
) -> PolicyOutcome:
    book = _book(y_true, proba, amounts, policy.economics)
    decisions = policy.decide_many(book.sorted)
    y = book.y

    def rate(mask: np.ndarray) -> float | None:
        return float(y[mask].mean()) if mask.any() else None

    approve, refer, decline = (decisions == d for d in ("approve", "refer", "decline"))
    k = int(approve.sum())  # approvals are the lowest-PD prefix of the sorted book
    return PolicyOutcome(
        approve_rate=float(approve.mean()),
        refer_rate=float(refer.mean()),
        decline_rate=float(decline.mean()),
        bad_rate_approved=rate(approve),
        bad_rate_referred=rate(refer),
        bad_rate_declined=rate(decline),
        realised_profit_approved=float(book.cum_realised[k]),
        expected_profit_approved=float(book.cum_expected[k]),
        review_cost=float(refer.sum() * policy.economics.review_cost),
        review_ceiling=review_ceiling(policy.economics, book.total_amount / book.n),
    )


# --------------------------------------------------------------------------- report


class BusinessReport(BaseModel):
    schema_version: int = 1
    n: int
    defaults: int
    base_rate: float
    economics: Economics
    scale: ScoreScale
    break_even_pd: float  # margin / (margin + LGD): approving above it loses money on average
    optimal: OptimalThreshold  # realised profit (the labelled outcomes)
    optimal_expected: OptimalThreshold  # expected profit (trusts the probabilities)
    approval_table: list[ApprovalRateRow]
    profit_curve: ProfitCurve
    risk_grades: RiskGrades
    policy: DecisionPolicy
    policy_outcome: PolicyOutcome


def business_report(
    y_true: ArrayLike,
    proba: ArrayLike,
    amounts: ArrayLike | None,
    economics: Economics,
    scale: ScoreScale | None = None,
    *,
    refer_width: float = 0.10,
    grade_method: GradeMethod = "scale",
    n_grades: int = DEFAULT_N_GRADES,
    approval_rates: Sequence[float] = DEFAULT_APPROVAL_RATES,
    policy: DecisionPolicy | None = None,
) -> BusinessReport:
    """Everything above on one labelled sample: curve, optima, approval table, grades, policy.

    ``policy``: report on this (stored) policy instead of deriving one from the sample."""
    scale = scale or ScoreScale()
    book = _book(y_true, proba, amounts, economics)
    y = book.y
    amount = book.amount
    p = book.sorted  # the book's own order: every result below is order-free
    optimal = _optimal(book, "realised")
    curve = profit_curve(
        y, p, amount, economics, np.append(default_thresholds(p), optimal.threshold)
    )
    if policy is None:
        policy = build_policy(
            y, p, amount, economics, scale,
            refer_width=refer_width, grade_method=grade_method, n_grades=n_grades,
        )  # fmt: skip
    return BusinessReport(
        n=book.n,
        defaults=int(y.sum()),
        base_rate=float(y.mean()),
        economics=economics,
        scale=scale,
        break_even_pd=economics.break_even_pd,
        optimal=optimal,
        optimal_expected=_optimal(book, "expected"),
        approval_table=approval_rate_table(y, p, amount, economics, approval_rates),
        profit_curve=curve,
        risk_grades=risk_grades(p, y, scale=scale, cutoffs=policy.grade_cutoffs),
        policy=policy,
        policy_outcome=policy_outcome(policy, y, p, amount),
    )
