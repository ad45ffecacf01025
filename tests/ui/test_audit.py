"""The audit pages in a real browser: find a decision just made, page through the log, open a
decision and reproduce it, read the trail of changes; bad filters are named."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import httpx
import pytest
from playwright.sync_api import Page, expect

from ui_helpers import API_HEADERS, Dashboard, application, log_in


def test_a_decision_just_made_is_found_and_reproduces_identically(
    page: Page, dashboard: Dashboard
) -> None:
    made = httpx.post(
        f"{dashboard.url}/predict", headers=API_HEADERS, json=application(5), timeout=60
    ).json()
    prediction_id = made["prediction_id"]
    log_in(page, start="/ui/audit")
    page.get_by_label("Prediction id").fill(prediction_id)
    page.get_by_role("button", name="Search").click()
    results = page.get_by_role("region", name="Decisions, newest first")
    expect(results.get_by_role("row")).to_have_count(2)
    expect(results).to_contain_text(made["decision"])
    # The same decision by filters: today, its decision, its version.
    page.goto("/ui/audit")
    today = datetime.now(UTC).date().isoformat()
    page.get_by_label("From (UTC day)").fill(today)
    page.get_by_label("Decision", exact=True).select_option(made["decision"])
    page.get_by_label("Model version").fill(made["model_version"])
    page.get_by_role("button", name="Search").click()
    results.get_by_role("link", name=prediction_id).click()
    expect(page.get_by_role("heading", name=f"Decision {prediction_id}")).to_be_visible()
    expect(page.get_by_role("region", name="Inputs")).to_contain_text("Income")
    page.get_by_role("button", name="Reproduce").click()
    expect(page.locator("#reproduction")).to_contain_text("Identical", timeout=60_000)


def test_paging_forward_reaches_older_decisions(page: Page, dashboard: Dashboard) -> None:
    for row in range(10, 62):  # more than one page of 50
        response = httpx.post(
            f"{dashboard.url}/predict", headers=API_HEADERS, json=application(row), timeout=60
        )
        assert response.status_code == 200, response.text
    log_in(page, start="/ui/audit")
    rows = page.get_by_role("region", name="Decisions, newest first").get_by_role("row")
    expect(rows).to_have_count(51)
    newest = rows.nth(1).inner_text()
    page.get_by_role("link", name="Next page").click()
    expect(rows.nth(1)).not_to_have_text(newest)
    expect(page.get_by_role("link", name="First page")).to_be_visible()


def test_a_bad_filter_is_named_next_to_its_field(page: Page) -> None:
    log_in(page, start="/ui/audit?since=2026-05-02&until=2026-05-01")
    expect(page.locator("#until-error")).to_contain_text("before since")
    expect(page.get_by_label("To (UTC day, included)")).to_have_attribute("aria-invalid", "true")
    page.goto("/ui/audit?model_version=abc")
    expect(page.locator("#model_version-error")).to_be_visible()
    page.goto("/ui/audit?after=forged")
    expect(page.locator("#after-error")).to_contain_text("not a page cursor")


@pytest.mark.parametrize("page", [390], indirect=True)
def test_the_trail_of_changes_shows_each_entry(page: Page, dashboard: Dashboard) -> None:
    # A refused rollback (there is no previous champion) is an entry of the trail too.
    response = httpx.post(
        f"{dashboard.url}/models/rollback",
        headers={"X-API-Key": "admin-key-for-the-dashboard-tests"},
    )
    assert response.status_code in (404, 409)
    log_in(page, start="/ui/audit/changes")
    expect(page.get_by_role("heading", name=re.compile("rollback: refused")).first).to_be_visible()
