"""The models pages in a real browser: the list, two versions compared on their shared test
split, and changing the champion (refused to a reader and to a form without its CSRF token,
confirmed with a reason by an admin, audited, then rolled back)."""

from __future__ import annotations

import re
import time

import httpx
import pytest
from playwright.sync_api import Page, expect

from creditops.retraining import rollback
from creditops.store.audit import AuditLog
from ui_helpers import API_HEADERS, READER_KEY, Dashboard, log_in


def _served(dashboard: Dashboard) -> str:
    return httpx.get(f"{dashboard.url}/model", headers=API_HEADERS).json()["model_version"]


def test_the_list_shows_every_version_with_its_aliases(page: Page) -> None:
    log_in(page, start="/ui/models")
    table = page.get_by_role("region", name="Registered versions").get_by_role("table")
    expect(table.get_by_role("row")).to_have_count(3)  # header + two versions
    v1 = table.get_by_role("row", name=re.compile(r"^v1 "))
    v2 = table.get_by_role("row", name=re.compile(r"^v2 "))
    expect(v1).to_contain_text("champion")
    expect(v2).to_contain_text("challenger")
    expect(v2).to_contain_text("logistic_regression")
    # Cells after the row's header (its version): aliases, model, CV AUC, ..., fairness (7th).
    # v1's evaluation is stored (its fairness gate fails on credit_data); v2 has none.
    expect(v1.get_by_role("cell").nth(7)).to_have_text("fail")
    expect(v2.get_by_role("cell").nth(7)).to_have_text("not evaluated yet")
    expect(v1.get_by_role("cell").nth(2)).to_have_text(re.compile(r"^0\.\d{3} ± 0\.\d{3}$"))
    expect(v2.get_by_role("link", name="v2")).to_have_attribute("href", "/ui/models/2")
    expect(page.get_by_role("region", name="Gates of the last retrain")).to_contain_text(
        "No retrain has run yet"
    )


def test_comparing_two_versions_draws_both_curves_and_the_tables(page: Page) -> None:
    log_in(page, start="/ui/models")
    page.get_by_label("First version").select_option("1")
    page.get_by_label("Second version").select_option("2")
    page.get_by_role("button", name="Compare").click()
    expect(page).to_have_url(re.compile(r"/ui/models/compare\?a=1&b=2$"))
    metrics = page.get_by_role("region", name="Metrics on the same test split")
    expect(metrics).to_contain_text("test applicants of credit_data")
    auc = metrics.get_by_role("row", name=re.compile("^ROC AUC"))
    expect(auc.get_by_role("cell")).to_have_count(2)
    expect(auc.get_by_role("cell").first).to_have_text(
        re.compile(r"0\.\d{3} \(0\.\d{3}–0\.\d{3}\)")
    )
    expect(metrics).to_contain_text("95% paired interval")
    roc = page.get_by_role("img", name="ROC curves of both versions")
    expect(roc.locator(".main-svg").first).to_be_visible()
    expect(roc.locator(".legend")).to_contain_text("v1")
    expect(roc.locator(".legend")).to_contain_text("v2 logistic_regression")
    for name in ("Calibration of both versions", "Score distribution of v2"):
        expect(page.get_by_role("img", name=name).locator(".main-svg").first).to_be_visible()
    fairness = page.get_by_role("region", name="Fairness by group")
    age = fairness.get_by_role("table", name="Age")
    expect(age.get_by_role("row", name=re.compile("^Disparate impact ratio"))).to_contain_text(
        "adverse impact presumed"
    )
    expect(page.get_by_role("region", name="Gates of the last retrain")).to_be_visible()


def test_a_comparison_that_cannot_be_made_says_why(page: Page) -> None:
    log_in(page, start="/ui/models/compare?a=1&b=1")
    expect(page.get_by_role("alert")).to_contain_text("choose two different versions")
    page.goto("/ui/models/compare?a=1&b=99")
    expect(page.get_by_role("alert")).to_contain_text("version 99")


# The version page (/ui/models/{version}) the list links to; kept here until its own module
# (the version page's) takes these two over.
def test_a_version_page_shows_its_review_and_its_report_downloads(page: Page) -> None:
    log_in(page, start="/ui/models/1")
    expect(page.get_by_role("heading", name=re.compile("Version 1"))).to_be_visible()
    expect(page.get_by_role("img", name="ROC curve").locator(".main-svg").first).to_be_visible()
    expect(page.get_by_role("region", name="Fairness")).to_contain_text("four-fifths")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download the HTML report").click()
    assert download.value.suggested_filename == "credit-default-v1-report.html"
    with open(download.value.path(), encoding="utf-8") as report:
        assert "<html" in report.read(2000).lower()


def test_an_unknown_version_is_a_404_page(page: Page) -> None:
    log_in(page, start="/ui/models/999")
    expect(page.get_by_role("heading", name="No such version")).to_be_visible()
    page.expected_console_errors.append("404")  # type: ignore[attr-defined]


def test_a_reader_cannot_promote_or_roll_back(page: Page, dashboard: Dashboard) -> None:
    log_in(page, READER_KEY, start="/ui/models")
    button = page.get_by_role("button", name="Promote v2…")
    expect(button).to_be_disabled()
    expect(button).to_have_accessible_description(re.compile("need the admin key"))
    csrf = page.locator("input[name=csrf_token]").first.get_attribute("value")
    for path in ("/ui/models/2/promote", "/ui/models/rollback"):
        response = page.request.post(
            f"{dashboard.url}{path}",
            form={"csrf_token": csrf, "confirmed": "true", "reason": "try", "force": "true"},
        )
        assert response.status == 403
        assert "needs the admin key" in response.text()
    assert _served(dashboard) == "1"


def test_a_change_without_the_csrf_token_is_refused(page: Page, dashboard: Dashboard) -> None:
    log_in(page, start="/ui/models")
    response = page.request.post(
        f"{dashboard.url}/ui/models/2/promote",
        form={"confirmed": "true", "reason": "forged", "force": "true"},
    )
    assert response.status == 403
    assert "CSRF token" in response.text()
    assert _served(dashboard) == "1"


@pytest.mark.parametrize("page", [390], indirect=True)
def test_the_list_fits_a_phone(page: Page) -> None:
    log_in(page, start="/ui/models")
    expect(page.get_by_role("heading", name="Registered versions")).to_be_visible()
    # The table scrolls inside its box; the page itself never scrolls sideways.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    expect(page.get_by_label("First version")).to_be_visible()


def test_an_admin_promotes_with_a_reason_and_it_is_audited(
    page: Page, dashboard: Dashboard
) -> None:
    log_in(page, start="/ui/models")
    try:
        page.get_by_role("button", name="Promote v2…").click()
        confirm = page.get_by_role("region", name="Promote version 2?")
        change = confirm.get_by_role("table", name="What will change")
        expect(change.get_by_role("row", name=re.compile("^Champion"))).to_have_text(
            re.compile(r"Champion\s*v1\s*v2")
        )
        expect(change.get_by_role("row", name=re.compile("^Test AUC"))).to_have_text(
            re.compile(r"Test AUC\s*0\.\d{3}\s*0\.\d{3}")
        )
        expect(confirm.get_by_label(re.compile("^Force"))).to_have_count(0)
        # The browser insists on a reason; a request without one gets the server's answer.
        csrf = page.locator("input[name=csrf_token]").first.get_attribute("value")
        bare = page.request.post(
            f"{dashboard.url}/ui/models/2/promote",
            form={"csrf_token": csrf, "confirmed": "true", "reason": " "},
        )
        assert "Give a reason" in bare.text()
        reason = "challenger is simpler to explain to applicants"
        page.get_by_label("Reason (kept in the audit trail)").fill(reason)
        page.get_by_role("button", name="Yes, promote").click()
        # No retrain cleared v2: the library's refusal (409), and only now the offer to force.
        page.expected_console_errors.append("409")  # type: ignore[attr-defined]
        refused = page.get_by_role("region", name="Promote version 2?")
        expect(refused.get_by_role("alert")).to_contain_text("not cleared for promotion")
        expect(page.get_by_label("Reason (kept in the audit trail)")).to_have_value(reason)
        page.get_by_label(re.compile("^Force")).check()
        page.get_by_role("button", name="Yes, promote").click()
        expect(page.get_by_role("status")).to_contain_text("v2 is the champion now")
        assert _served(dashboard) == "2"
        page.goto("/ui")
        champion = page.get_by_role("region", name="Champion")
        expect(champion.get_by_role("link", name=re.compile(r" v2$"))).to_be_visible()
        with AuditLog.from_settings(dashboard.settings) as audit:
            refusal, entry = audit.recent(2, action="promote")[::-1]
        assert refusal.outcome == "refused"
        assert refusal.details["reason"] == reason
        assert entry.outcome == "promoted"
        assert entry.reasons == ["forced"]
        assert entry.details == {"via": "dashboard (CREDITOPS_API_KEY)", "reason": reason}
        assert reason in entry.message
    finally:
        _restore_v1(page, dashboard)
    with AuditLog.from_settings(dashboard.settings) as audit:
        back = audit.recent(1, action="rollback")[0]
    assert back.details == {
        "via": "dashboard (CREDITOPS_API_KEY)",
        "reason": "restore the test state",
    }


def _restore_v1(page: Page, dashboard: Dashboard) -> None:
    """Put v1 back as champion for the other test modules: through the page, else directly."""
    if _served(dashboard) == "1":
        return
    try:
        page.goto("/ui/models")
        page.get_by_role("button", name="Roll back to v1…").click()
        confirm = page.get_by_role("region", name="Roll back to version 1?")
        expect(confirm.get_by_role("table", name="What will change")).to_contain_text("v2")
        page.get_by_label("Reason (kept in the audit trail)").fill("restore the test state")
        page.get_by_role("button", name="Yes, roll back").click()
        expect(page.get_by_role("status")).to_contain_text("v1 is the champion now")
    finally:
        if _served(dashboard) != "1":
            rollback(dashboard.settings, reason="restore the test state")
            deadline = time.monotonic() + 30
            while _served(dashboard) != "1" and time.monotonic() < deadline:
                time.sleep(0.5)
    assert _served(dashboard) == "1"
