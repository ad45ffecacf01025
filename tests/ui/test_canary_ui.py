"""The canary in a real browser: the challenger decides a share of live traffic until its
watch halts it; the retraining page says so with the check that failed, and an admin resumes
and halts it from there with a reason, each switch in its audit table; a reader sees the state
but cannot switch it."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect

from creditops.config import Settings
from helpers import applications, copy_with_challenger, served_process
from ui_helpers import ADMIN_KEY, READER_KEY, Dashboard, log_in, snapshot

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dashboard(trained, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    """The shared champion and a challenger that declines everything, deciding 30% of live
    single decisions as a canary, compared after 10 decisions of each."""
    home = tmp_path_factory.mktemp("canary-ui") / "home"
    copy_with_challenger(trained, home, declining=True)
    settings = Settings(
        home=home,
        api_key=ADMIN_KEY,
        reader_keys=READER_KEY,
        canary_share=0.3,
        canary_min_decisions=10,
    )
    with served_process(settings, ready=True) as url:
        yield Dashboard(url=url, settings=settings)


def _traffic(url: str, n: int) -> Counter:
    with httpx.Client(base_url=url, headers={"X-API-Key": ADMIN_KEY}, timeout=60) as client:
        return Counter(
            client.post("/predict", json=body).json()["model_version"] for body in applications(n)
        )


def test_an_admin_sees_the_canary_halted_and_resumes_and_halts_it(
    page: Page, dashboard: Dashboard
) -> None:
    versions = _traffic(dashboard.url, 200)
    assert versions["2"] == 25, versions  # halted at its first check
    log_in(page)
    page.goto("/ui/retraining")
    card = page.get_by_role("region", name="Challenger v2 as a canary")
    expect(card.locator("#canary-state")).to_have_text("halted")
    newest = card.locator("#canary-audit tbody tr").first
    expect(newest).to_contain_text("halted by worker")
    expect(newest).to_contain_text("canary approval rate")
    expect(newest).to_contain_text("canary approves 0.0%")
    snapshot(page, "canary-halted")

    card.get_by_label("Reason (kept in the audit)").fill("declines checked with the risk team")
    card.get_by_role("button", name="Resume the canary").click()
    expect(page).to_have_url(re.compile(r"/ui/retraining\?canary=resumed"))
    card = page.get_by_role("region", name="Challenger v2 as a canary")
    expect(card.locator("#canary-state")).to_have_text("deciding (resumed)")
    expect(card.locator("#canary-audit tbody tr").first).to_contain_text(
        "resumed by dashboard (CREDITOPS_API_KEY): declines checked with the risk team"
    )

    card.get_by_label("Reason (kept in the audit)").fill("pause for the month-end run")
    card.get_by_role("button", name="Halt the canary").click()
    card = page.get_by_role("region", name="Challenger v2 as a canary")
    expect(card.locator("#canary-state")).to_have_text("halted")
    expect(card.locator("#canary-audit tbody tr")).to_have_count(4)
    expect(card.locator("#canary-audit tbody tr").first).to_contain_text(
        "pause for the month-end run"
    )
    # Halted by hand: every decision is the champion's.
    assert _traffic(dashboard.url, 60) == Counter({"1": 60})


def test_a_reader_sees_the_canary_but_cannot_switch_it(page: Page) -> None:
    log_in(page, READER_KEY)
    page.goto("/ui/retraining")
    card = page.get_by_role("region", name="Challenger v2 as a canary")
    expect(card.locator("#canary-state")).to_be_visible()
    expect(
        card.get_by_role("button", name=re.compile(r"(Halt|Resume) the canary"))
    ).to_be_disabled()
