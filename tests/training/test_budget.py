"""The time budget: tuning's share divided among the candidates by their cost."""

from __future__ import annotations

import time

import pytest

from creditops.models.zoo import get_candidates
from creditops.training.budget import TUNING_SHARE, Budget


def test_no_budget_sets_no_deadline_and_is_never_spent():
    budget = Budget(None)
    candidates = get_candidates()
    assert budget.tuning_deadline(candidates[0], candidates) is None
    assert not budget.spent


def test_each_candidate_gets_its_cost_share_of_what_tuning_has_left():
    budget = Budget(100.0)
    candidates = get_candidates()
    total = sum(c.tuning_cost for c in candidates)
    first = candidates[0]
    deadline = budget.tuning_deadline(first, candidates)
    share = TUNING_SHARE * 100.0 * first.tuning_cost / total
    assert deadline - time.monotonic() == pytest.approx(share, abs=0.5)
    # the last candidate gets all that is left of tuning's share
    last = candidates[-1]
    assert budget.tuning_deadline(last, [last]) - time.monotonic() == pytest.approx(
        TUNING_SHARE * 100.0, abs=0.5
    )


def test_a_spent_budget_leaves_no_tuning_time():
    budget = Budget(0.01)
    time.sleep(0.02)
    assert budget.spent
    candidates = get_candidates()
    assert budget.tuning_deadline(candidates[0], candidates) <= time.monotonic()
