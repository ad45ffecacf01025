"""Watching the live model in a real browser: shifted traffic sent by the simulator, the
monitor run from the page as a job, the heatmap showing the shifted feature, its
distributions beside the training data's, the alert raised and acknowledged with a note;
the retraining page with every trigger against its threshold, and the challenger scoring the
same simulated traffic in shadow beside the champion."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from creditops.config import Settings
from creditops.data.datasets import load_builtin
from creditops.simulation import simulate
from helpers import copy_with_challenger, served_process
from ui_helpers import ADMIN_KEY, READER_KEY, Dashboard, log_in, snapshot

pytestmark = pytest.mark.slow

_JOB_TIMEOUT_MS = 180_000


@pytest.fixture(scope="module")
def dashboard(trained, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    """The shared trained champion, served from a copy of its home with an empty log, and
    another candidate as the challenger, scoring every decision in shadow."""
    home = tmp_path_factory.mktemp("monitoring-home") / "home"
    copy_with_challenger(trained, home, declining=False)
    settings = Settings(home=home, api_key=ADMIN_KEY, reader_keys=READER_KEY, shadow_share=1.0)
    with served_process(settings) as url:
        yield Dashboard(url=url, settings=settings)


def test_shifted_traffic_shows_on_the_heatmap_and_its_alert_is_acknowledged(
    page: Page, dashboard: Dashboard
) -> None:
    report = simulate(dashboard.url, "income_shock", 600, feedback=False, seed=5, key=ADMIN_KEY)
    assert report.rows_decided == 600, report
    log_in(page)
    page.goto("/ui/monitoring")
    expect(page.locator("#no-run")).to_be_visible()
    page.get_by_role("button", name="Run the monitor now").click()
    expect(page).to_have_url(re.compile(r"/ui/jobs/[0-9a-f-]{36}$"))
    expect(page.locator("#job-state")).to_have_text("succeeded", timeout=_JOB_TIMEOUT_MS)
    page.locator("#job-result").get_by_role("link", name="See the monitoring page.").click()

    # The heatmap: Income (× 0.6) at warning or critical in the window that holds the traffic.
    heatmap = page.locator("[data-click-url] .chart")
    expect(heatmap.locator(".main-svg").first).to_be_visible()
    figure = json.loads(heatmap.get_attribute("data-figure"))["data"][0]
    row = figure["y"].index("Income")
    assert figure["z"][row][-1] in (1, 2), figure["z"][row]
    assert figure["y"][0] in ("Income", "Expenses")  # the most drifted first

    # A click on its cell shows both distributions.
    box = heatmap.locator(".nsewdrag").first.bounding_box()
    rows, columns = len(figure["y"]), len(figure["x"])
    page.mouse.click(
        box["x"] + box["width"] * (columns - 0.5) / columns,
        box["y"] + box["height"] * (row + 0.5) / rows,
    )
    distribution = page.locator("#distribution")
    expect(distribution.locator("h3")).to_contain_text("Income")
    expect(distribution.locator(".chart .main-svg").first).to_be_visible()
    expect(distribution).to_contain_text(re.compile(r"(warning|critical)"))
    snapshot(page, "monitoring")

    # The alert is listed; acknowledged with a note, it says who and what.
    alerts = page.locator("#alerts-table")
    income = alerts.locator("tr.alert-row", has_text="Income").first
    expect(income).to_be_visible()
    income.get_by_label("Note for this alert").fill("Income feed rescaled upstream; fix deployed")
    income.get_by_role("button", name="Acknowledge").click()
    acknowledged = page.locator("#alerts-table tr.alert-row", has_text="Income").first
    expect(acknowledged).to_contain_text("acknowledged by dashboard (CREDITOPS_API_KEY)")
    expect(acknowledged.locator(".ack-note")).to_have_text(
        "Income feed rescaled upstream; fix deployed"
    )
    # Filtering keeps what is still open.
    page.get_by_label("Not acknowledged only").check()
    expect(page.locator("#alerts-table")).not_to_contain_text("Income feed rescaled upstream")
    # The acknowledgement is in the audit trail.
    page.goto("/ui/audit/changes")
    expect(page.locator("main")).to_contain_text("Income feed rescaled upstream; fix deployed")

    page.goto("/ui/retraining")
    triggers = page.locator("#triggers")
    expect(triggers).to_contain_text("features drifted")
    expect(triggers).to_contain_text("auc drop")
    # The challenger scored the same 600 simulated applications in shadow.
    shadow = page.get_by_role("region", name="Challenger v2 in shadow")
    expect(shadow).to_contain_text("On 600 live applications scored by both")
    expect(shadow.locator("#shadow")).to_contain_text("Disparate impact: Age")
    cells = shadow.locator("#shadow-decisions tbody td").all_inner_texts()
    assert sum(int(c.replace(",", "")) for c in cells) == 600
    snapshot(page, "retraining")


def test_a_reader_sees_monitoring_but_cannot_run_or_acknowledge(page: Page) -> None:
    log_in(page, READER_KEY)
    page.goto("/ui/monitoring")
    expect(page.get_by_role("button", name="Run the monitor now")).to_be_disabled()
    expect(page.get_by_role("button", name="Acknowledge")).to_have_count(0)
    page.goto("/ui/retraining")
    expect(page.get_by_role("button", name="Retrain now")).to_be_disabled()


def test_recent_applications_are_compared_with_the_champions_training_data(
    page: Page, tmp_path
) -> None:
    frame, spec = load_builtin("credit_data")
    recent = frame.drop(columns=[spec.target]).sample(800, random_state=2)
    recent["Income"] = recent["Income"] * 0.6
    path = tmp_path / "recent_applications.csv"
    recent.to_csv(path, index=False)
    log_in(page)
    page.goto("/ui/data")
    page.get_by_label(re.compile(r"CSV \(UTF-8")).set_input_files(str(path))
    page.get_by_role("button", name="Upload").click()
    notice = page.locator("#no-outcome")
    expect(notice).to_contain_text("no outcome column the served model knows")
    notice.get_by_role("link", name="compare them with the champion's training data").click()
    expect(page.get_by_role("status").first).to_contain_text("(training rows)")
    table = page.locator("#iv-table")
    income = table.locator("tbody tr", has=page.get_by_role("link", name="Income", exact=True))
    psi = float(income.locator("td").last.inner_text())
    assert psi > 0.1
    # No outcome: nothing to train on, so no training form.
    expect(page.get_by_role("button", name="Train")).to_have_count(0)
