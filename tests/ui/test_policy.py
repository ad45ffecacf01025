"""What-if on the policy in a real browser: the sliders move the figures and the four-fifths
verdict, and a saved policy is the one /predict decides with."""

from __future__ import annotations

import json
import re
import time

import httpx
import numpy as np
import pytest
from playwright.sync_api import Page, expect

from creditops.evaluation.business import amounts_from
from creditops.evaluation.policy import Economics
from creditops.evaluation.whatif import policy_what_if, what_if_policy
from creditops.registry.load import load_model
from creditops.registry.policy import stored_policy
from creditops.registry.review import scored_test_split
from creditops.retraining.policy_change import change_policy
from creditops.store.audit import AuditLog
from ui_helpers import API_HEADERS, READER_KEY, Dashboard, log_in


def test_the_what_if_of_a_hand_checked_sample() -> None:
    from creditops.evaluation.policy import DecisionPolicy

    base = DecisionPolicy(
        approve_below=0.5,
        decline_at_or_above=0.5,
        threshold_source="manual",
        economics=Economics(average_amount=1000, loss_given_default=0.5, interest_margin=0.1,
                            review_cost=10),
    )  # fmt: skip
    policy = what_if_policy(base, 0.3, 0.6)
    y = np.array([0, 0, 1, 0, 1, 1])
    p = np.array([0.1, 0.2, 0.25, 0.4, 0.7, 0.9])
    result = policy_what_if(policy, y, p, np.full(6, 1000.0))
    assert result.confusion == {
        "approve": {"good": 2, "bad": 1},
        "refer": {"good": 1, "bad": 0},
        "decline": {"good": 0, "bad": 2},
    }
    assert result.outcome.approve_rate == pytest.approx(0.5)
    assert result.outcome.bad_rate_approved == pytest.approx(1 / 3)
    # Two repaid loans earn 0.1 × 1000 each; one default loses 0.5 × 1000; one review costs 10.
    assert result.outcome.realised_profit_approved == pytest.approx(200 - 500)
    assert result.net_profit == pytest.approx(-300 - 10)
    with pytest.raises(ValueError, match="decline_at_or_above"):
        what_if_policy(base, 0.6, 0.3)


def _verdicts(dashboard: Dashboard) -> tuple[float, float]:
    """An approve cut-off where some group's disparate impact falls below 0.8, and one where
    none does, on v1's test split."""
    settings = dashboard.settings
    split = scored_test_split(settings, "1")
    base = stored_policy(settings, load_model(settings, "1"))
    found: dict[bool, float] = {}
    for cut in np.round(np.arange(0.05, 0.95, 0.05), 2):
        policy = what_if_policy(base, float(cut), max(float(cut), base.decline_at_or_above))
        result = policy_what_if(
            policy,
            split.y,
            split.proba,
            amounts_from(split.frame, policy.economics),
            split.protected,
        )
        adverse = any(a.rates.verdict == "adverse impact presumed" for a in result.fairness)
        found.setdefault(adverse, float(cut))
    return found[True], found[False]


def test_sliders_move_the_approval_rate_and_the_four_fifths_verdict(
    page: Page, dashboard: Dashboard
) -> None:
    adverse, fair = _verdicts(dashboard)
    log_in(page, start="/ui/models/1/policy")
    rate = page.locator("#approval-rate")
    decline = page.get_by_label(re.compile("Decline from"))
    decline.fill("0.95")
    page.get_by_label(re.compile("Approve below")).fill(f"{fair}")
    adverse_verdict = re.compile(r"(?<!no )adverse impact presumed")
    expect(page.locator("#fairness")).not_to_contain_text(adverse_verdict)
    before = rate.inner_text()
    page.get_by_label(re.compile("Approve below")).fill(f"{adverse}")
    expect(page.locator("#fairness")).to_contain_text(adverse_verdict)
    expect(rate).not_to_have_text(before)


def test_a_saved_policy_is_the_one_predict_uses(page: Page, dashboard: Dashboard) -> None:
    settings = dashboard.settings
    loaded = load_model(settings, "1")
    original = stored_policy(settings, loaded)
    columns = list(dict.fromkeys([*loaded.spec.features, *loaded.spec.protected]))
    split = scored_test_split(settings, "1")
    referred = np.flatnonzero(
        (split.proba >= original.approve_below) & (split.proba < original.decline_at_or_above)
    )
    assert referred.size, "no test applicant falls in the refer band"
    row = split.frame.iloc[int(referred[0])][columns].to_dict()
    application = json.loads(json.dumps(
        {k: (None if v != v else v) for k, v in row.items()}, default=lambda v: v.item()
    ))  # fmt: skip
    first = httpx.post(f"{dashboard.url}/predict", headers=API_HEADERS, json=application).json()
    assert first.get("decision") == "refer", first
    try:
        log_in(page, start="/ui/models/1/policy")
        new_cut = f"{original.decline_at_or_above:.4f}"
        page.get_by_label(re.compile("Approve below")).fill(new_cut)
        page.get_by_label("Reason (kept in the audit trail)").fill("approve the whole refer band")
        page.get_by_role("button", name="Save as policy").click()
        expect(page.locator("p.notice")).to_contain_text("the service decides with it")
        answer = httpx.post(
            f"{dashboard.url}/predict", headers=API_HEADERS, json=application
        ).json()
        assert answer["decision"] == "approve"
        with AuditLog.from_settings(settings) as audit:
            entry = audit.recent(1, action="policy")[0]
        assert entry.details["reason"] == "approve the whole refer band"
        assert entry.details["before"]["approve_below"] == original.approve_below
    finally:
        change_policy(settings, "1", original, before=None, reason="restore", via="test")
        deadline = time.time() + 30
        while (
            httpx.post(f"{dashboard.url}/predict", headers=API_HEADERS, json=application).json()[
                "decision"
            ]
            != "refer"
        ):
            assert time.time() < deadline, "the service did not follow the restored policy"
            time.sleep(0.5)


def test_a_reader_cannot_save_a_policy(page: Page, dashboard: Dashboard) -> None:
    log_in(page, READER_KEY, start="/ui/models/1/policy")
    expect(page.get_by_role("button", name="Save as policy")).to_be_disabled()
    csrf = page.locator("input[name=csrf_token]").first.get_attribute("value")
    response = page.request.post(
        f"{dashboard.url}/ui/models/1/policy",
        form={"csrf_token": csrf, "approve_below": "0.9", "decline_at_or_above": "0.95",
              "loss_given_default": "0.6", "interest_margin": "0.1", "review_cost": "1",
              "reason": "reader"},
    )  # fmt: skip
    assert response.status == 403
