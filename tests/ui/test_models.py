"""The models pages in a real browser: the list, a comparison, a version's review, and
promotion (refused to a reader, confirmed with a reason by an admin, audited)."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import Page, expect

from creditops.store.audit import AuditLog
from ui_helpers import READER_KEY, Dashboard, log_in


def test_the_list_shows_every_version_with_its_aliases(page: Page) -> None:
    log_in(page, start="/ui/models")
    table = page.get_by_role("region", name="Registered versions").get_by_role("table")
    expect(table.get_by_role("row")).to_have_count(3)  # header + two versions
    expect(table.get_by_role("row", name=re.compile(r"v1 .*champion"))).to_be_visible()
    expect(table.get_by_role("row", name=re.compile(r"v2 .*challenger"))).to_be_visible()
    expect(table.get_by_role("row", name=re.compile(r"v1 "))).to_contain_text("fail")


def test_comparing_two_versions_draws_both_curves(page: Page) -> None:
    log_in(page, start="/ui/models")
    page.get_by_label("First version").select_option("2")
    page.get_by_label("Second version").select_option("1")
    page.get_by_role("button", name="Compare").click()
    expect(page).to_have_url(re.compile(r"/ui/models/compare\?a=2&b=1"))
    # v2 has no stored review yet: the page computes it and fills in by itself.
    metrics = page.get_by_role("region", name=re.compile("Metrics on the same test split"))
    expect(metrics).to_be_visible(timeout=180_000)
    expect(metrics).to_contain_text("ROC AUC (95% interval)")
    roc = page.get_by_role("img", name="ROC curves of both versions")
    expect(roc.locator(".main-svg").first).to_be_visible()
    expect(roc.locator(".legend")).to_contain_text("v1")
    expect(roc.locator(".legend")).to_contain_text("v2")


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
    page.expected_console_errors.append("404")


def test_a_reader_cannot_promote(page: Page, dashboard: Dashboard) -> None:
    log_in(page, READER_KEY, start="/ui/models")
    expect(page.get_by_role("button", name="Promote…")).to_be_disabled()
    csrf = page.locator("input[name=csrf_token]").first.get_attribute("value")
    response = page.request.post(
        f"{dashboard.url}/ui/models/2/promote",
        form={"csrf_token": csrf, "confirmed": "true", "reason": "try", "force": "true"},
    )
    assert response.status == 403
    assert httpx.get(f"{dashboard.url}/model").json()["model_version"] == "1"


@pytest.mark.parametrize("page", [390], indirect=True)
def test_an_admin_promotes_with_a_reason_and_it_is_audited(
    page: Page, dashboard: Dashboard
) -> None:
    log_in(page, start="/ui/models")
    try:
        page.get_by_role("button", name="Promote…").click()
        confirm = page.get_by_role("region", name="Promote version 2?")
        expect(confirm).to_contain_text("instead of v1")
        # The browser insists on a reason; a request without one gets the server's answer.
        csrf = page.locator("input[name=csrf_token]").first.get_attribute("value")
        bare = page.request.post(
            f"{dashboard.url}/ui/models/2/promote",
            form={"csrf_token": csrf, "confirmed": "true", "reason": " "},
        )
        assert "Give a reason" in bare.text()
        page.get_by_label("Reason (kept in the audit trail)").fill("challenger wins on 2026 data")
        page.get_by_label(re.compile("Force")).check()
        page.get_by_role("button", name="Yes, promote").click()
        expect(page.get_by_role("status")).to_contain_text("the champion changed")
        assert httpx.get(f"{dashboard.url}/model").json()["model_version"] == "2"
        with AuditLog.from_settings(dashboard.settings) as audit:
            entry = audit.recent(1, action="promote")[0]
        assert entry.outcome == "promoted"
        assert entry.details == {"via": "dashboard", "reason": "challenger wins on 2026 data"}
    finally:
        if httpx.get(f"{dashboard.url}/model").json()["model_version"] == "2":
            _roll_back(page)
    assert httpx.get(f"{dashboard.url}/model").json()["model_version"] == "1"


def _roll_back(page: Page) -> None:
    page.goto("/ui/models")
    page.get_by_role("button", name="Roll back to v1…").click()
    page.get_by_label("Reason (kept in the audit trail)").fill("restore the test state")
    page.get_by_role("button", name="Yes, roll back").click()
    expect(page.get_by_role("status")).to_contain_text("the champion changed")
