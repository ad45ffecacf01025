"""Behaviour checks: does the model respond the way the domain expects?

For each expectation in the spec (``monotone``), every row is scored twice, once as it is and
once with only that feature moved in the risky direction (numeric: up or down by one standard
deviation of the feature; ordered categories: from the least to the most risky level). A row
violates the expectation when its risk falls by more than ``tolerance``. A check passes when
at most ``max_violation_share`` of rows violate it: tree ensembles are piecewise constant and can
dip locally, and a reviewer needs the share to judge, not just a verdict.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel

from creditops.data.spec import ResolvedSpec


class BehaviourCheck(BaseModel):
    feature: str
    expectation: Literal["increasing", "decreasing", "ordered"]
    change: str
    rows: int
    violations: int
    violation_share: float
    mean_risk_change: float
    passed: bool


class BehaviourReport(BaseModel):
    schema_version: int = 1
    tolerance: float
    max_violation_share: float
    checks: list[BehaviourCheck]

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)


def behaviour_checks(
    model: Any,
    X: pd.DataFrame,
    spec: ResolvedSpec,
    *,
    tolerance: float = 1e-3,
    max_violation_share: float = 0.01,
) -> BehaviourReport:
    """Run every monotone expectation of ``spec`` that names a model feature."""
    base = model.predict_proba(X)[:, 1]
    checks: list[BehaviourCheck] = []
    expectations = spec.monotone
    for feature in expectations.increasing + expectations.decreasing:
        if feature not in spec.numeric:
            continue
        direction = 1.0 if feature in expectations.increasing else -1.0
        step = float(np.nanstd(X[feature].to_numpy(dtype=float))) or 1.0
        moved = X.copy()
        moved[feature] = moved[feature].astype(float) + direction * step
        kind = "increasing" if direction > 0 else "decreasing"
        sign = "+" if direction > 0 else "−"
        checks.append(
            _judge(
                model,
                moved,
                base,
                feature,
                kind,
                f"{sign}{step:.4g} (one std)",
                tolerance,
                max_violation_share,
            )
        )
    for feature, levels in expectations.ordered.items():
        if feature not in spec.categorical or len(levels) < 2:
            continue
        safe, risky = X.copy(), X.copy()
        safe[feature], risky[feature] = levels[0], levels[-1]
        safe_risk = model.predict_proba(safe)[:, 1]
        checks.append(
            _judge(
                model,
                risky,
                safe_risk,
                feature,
                "ordered",
                f"{levels[0]} → {levels[-1]}",
                tolerance,
                max_violation_share,
            )
        )
    return BehaviourReport(
        tolerance=tolerance, max_violation_share=max_violation_share, checks=checks
    )


def _judge(
    model: Any,
    moved: pd.DataFrame,
    reference_risk: np.ndarray,
    feature: str,
    kind: Literal["increasing", "decreasing", "ordered"],
    change: str,
    tolerance: float,
    max_violation_share: float,
) -> BehaviourCheck:
    # Every feature was moved in its risky direction, so the risk must not fall.
    delta = model.predict_proba(moved)[:, 1] - reference_risk
    violations = int(np.sum(delta < -tolerance))
    share = violations / len(delta) if len(delta) else 0.0
    return BehaviourCheck(
        feature=feature,
        expectation=kind,
        change=change,
        rows=len(delta),
        violations=violations,
        violation_share=share,
        mean_risk_change=float(np.mean(delta)) if len(delta) else 0.0,
        passed=share <= max_violation_share,
    )
