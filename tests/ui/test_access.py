"""Logging in and out, the overview, and what the dashboard refuses (in a real browser)."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import Page, expect

from ui_helpers import ADMIN_KEY, API_HEADERS, READER_KEY, Dashboard, application, log_in


def test_a_wrong_key_is_refused_and_the_right_one_opens_the_overview(
    page: Page, dashboard: Dashboard
) -> None:
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/ui/login\?next=/ui$"))
    page.get_by_label("Key").fill("not-a-key-of-this-service")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_have_text("That key is not valid here.")
    page.expected_console_errors.append("401")  # the refused login answers 401
    page.get_by_label("Key").fill(ADMIN_KEY)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    champion = page.get_by_role("region", name="Champion")
    expect(champion).to_contain_text("credit-default v1")
    expect(champion).to_contain_text("credit_data")
    expect(page.locator(".chart .main-svg").first).to_be_visible()  # Plotly drew the chart


def test_the_overview_counts_decisions_just_made(page: Page, dashboard: Dashboard) -> None:
    log_in(page)
    health = page.get_by_role("region", name="Service health")
    logged = re.compile(r"Decisions logged\s*([\d,]+)")
    before = int(logged.search(health.inner_text())[1].replace(",", ""))
    for row in (2, 3, 4):
        response = httpx.post(
            f"{dashboard.url}/predict", headers=API_HEADERS, json=application(row), timeout=60
        )
        assert response.status_code == 200, response.text
    page.reload()
    expect(health).to_contain_text(re.compile(rf"Decisions logged\s*{before + 3:,}\b"))
    day = page.get_by_role("region", name="Last 24 hours")
    assert int(re.search(r"Decisions\s*([\d,]+)", day.inner_text(), re.I)[1].replace(",", "")) >= 3


def test_logging_out_ends_the_session(page: Page) -> None:
    log_in(page, READER_KEY)
    expect(page.locator(".role")).to_have_text("analyst")  # a reader key: the analyst role
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/ui/login"))
    page.goto("/ui")
    expect(page).to_have_url(re.compile(r"/ui/login"))


def test_a_form_post_without_the_csrf_token_is_refused(page: Page, dashboard: Dashboard) -> None:
    log_in(page)
    # The browser's own session cookie, but a form without the token (as a forged page sends).
    response = page.request.post(f"{dashboard.url}/ui/logout", form={"x": "1"})
    assert response.status == 403
    assert "CSRF token" in response.text()
    page.goto("/ui")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()  # still logged in


def test_every_page_carries_the_security_headers(dashboard: Dashboard) -> None:
    response = httpx.get(f"{dashboard.url}/ui/login")
    csp = response.headers["content-security-policy"]
    script_sources = csp.split("script-src")[1].split(";")[0]
    assert script_sources.split() == ["'self'"]
    assert "frame-ancestors 'none'" in csp
    assert response.headers["referrer-policy"] == "no-referrer"
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
