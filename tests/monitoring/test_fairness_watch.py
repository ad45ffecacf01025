"""Fairness of decisions over time: approval by group per window, four-fifths flags."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from creditops.monitoring.fairness_watch import FairnessCalculator, approval_fairness
from creditops.monitoring.windows import PerformanceConfig
from decision_frames import decision_frame

# --------------------------------------------------------------------------- fairness


def _fairness_frame(rate_a: float, rate_b: float, n: int = 400, small: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(11)
    groups = ["A"] * n + ["B"] * n + ["C"] * small
    approved = np.r_[
        np.arange(n) < round(rate_a * n), np.arange(n) < round(rate_b * n), np.zeros(small, bool)
    ]
    frame = decision_frame(rng.beta(2.0, 5.0, len(groups)), None)
    frame["decision"] = np.where(approved, "approve", "refer")
    frame["Group"] = groups
    frame["Age"] = rng.integers(18, 80, len(groups))
    frame.attrs["protected_columns"] = {"Group": "Group", "Age": "Age"}
    return frame


def test_half_the_approval_rate_flags_disparate_impact(fairness: FairnessCalculator) -> None:
    result = fairness.calculate(_fairness_frame(0.8, 0.4))
    group = next(a for a in result.windows[0].attributes if a.attribute == "Group")
    rates = {g.group: g.approval_rate for g in group.groups}
    assert rates == {"A": 0.8, "B": 0.4}
    assert group.disparate_impact_ratio == pytest.approx(0.5)
    assert group.verdict == "adverse impact presumed"
    (flag,) = [f for f in result.flags if f.check == "fairness"]
    assert (flag.subject, flag.metric, flag.level) == (
        "Group",
        "disparate_impact_ratio",
        "critical",
    )
    assert "approval 40% for 'B' vs 80% for 'A'" in flag.message


def test_equal_rates_do_not_flag_and_small_groups_are_too_small(
    fairness: FairnessCalculator,
) -> None:
    result = fairness.calculate(_fairness_frame(0.6, 0.6, small=20))
    group = next(a for a in result.windows[0].attributes if a.attribute == "Group")
    status = {g.group: g.status for g in group.groups}
    assert status == {"A": "judged", "B": "judged", "C": "too small to judge"}
    assert group.judged_groups == ["A", "B"]
    assert group.disparate_impact_ratio > 0.8  # C (never approved) is left out
    assert not [f for f in result.flags if f.check == "fairness"]


def test_disparate_impact_between_warning_and_critical_is_a_warning() -> None:
    frame = _fairness_frame(0.8, 0.56)
    (group,) = approval_fairness(frame, {"Group": "Group"}, min_group=30)
    assert 0.6 < group.disparate_impact_ratio < 0.8
    calc = FairnessCalculator(PerformanceConfig(protected=["Group"], window=None))
    result = calc.fit().calculate(frame)
    (flag,) = [f for f in result.flags if f.check == "fairness"]
    assert flag.level == "warning"
    assert flag.threshold == 0.8


def test_a_low_ratio_on_small_groups_needs_significance_to_flag() -> None:
    frame = _fairness_frame(0.5, 0.35, n=40)  # 20 vs 14 approvals of 40: ratio 0.7, but noise
    (group,) = approval_fairness(frame, {"Group": "Group"})
    assert group.disparate_impact_ratio < 0.8
    assert group.p_value > 0.05
    strict = PerformanceConfig(protected=["Group"], window=None, min_estimation_rows=10)
    loose = strict.model_copy(update={"di_alpha": None})
    for config, expected in ((strict, 0), (loose, 1)):
        calc = FairnessCalculator(config).fit()
        flags = [f for f in calc.calculate(frame).flags if f.check == "fairness"]
        assert len(flags) == expected
