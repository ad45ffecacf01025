"""Bringing data in through the dashboard, in a real browser, on a service with no model yet (a
newcomer's first steps): upload the credit_data CSV, correct the inferred spec, see the IV
table, train with the fast profile as a job, watch its progress and find the new version in
Models. Broken files are refused with the problem named and nothing trained; a job whose
process is killed shows failed, with the reason, after the service restarts."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from creditops.config import Settings
from creditops.data.datasets import load_builtin
from creditops.jobs.runner import TrainingRequest, submit_training
from creditops.store.jobs import JobStore
from helpers import served_process
from ui_helpers import ADMIN_KEY, READER_KEY, Dashboard, log_in, snapshot

pytestmark = pytest.mark.slow

# The fast profile on credit_data takes about a minute on two cores; a job must end well
# before this, or the test fails rather than hang.
_JOB_TIMEOUT_MS = 300_000


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    """A service over an empty home: no model registered, nothing logged."""
    settings = Settings(
        home=tmp_path_factory.mktemp("data-home"), api_key=ADMIN_KEY, reader_keys=READER_KEY
    )
    with served_process(settings) as url:
        yield Dashboard(url=url, settings=settings)


@pytest.fixture(scope="module")
def credit_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    frame, _ = load_builtin("credit_data")
    path = tmp_path_factory.mktemp("files") / "credit_data.csv"
    frame.to_csv(path, index=False)
    return path


def _upload(page: Page, path: Path) -> None:
    page.goto("/ui/data")
    page.get_by_label(re.compile(r"CSV \(UTF-8, a header row\) or Parquet")).set_input_files(
        str(path)
    )
    page.get_by_role("button", name="Upload").click()


def test_upload_correct_the_spec_profile_and_train_as_a_job(
    page: Page, dashboard: Dashboard, credit_csv: Path
) -> None:
    log_in(page)
    _upload(page, credit_csv)
    expect(page.get_by_role("heading", name="credit_data.csv")).to_be_visible()
    expect(page.get_by_text("first guess from the file")).to_be_visible()
    # The guess: Status is the target, "bad" its positive value, Age and Marital protected.
    expect(page.get_by_label("Target (the outcome)")).to_have_value("Status")
    expect(page.get_by_label("Its value that means default")).to_have_value("bad")
    expect(page.get_by_label("Role of Age")).to_have_value("protected")
    expect(page.locator("#validation-verdict")).to_have_text("ready to train")

    # A wrong correction is caught as it is made, naming the column...
    page.get_by_label("Monotone expectation of Home").select_option("increasing")
    expect(page.locator("#validation .error-box")).to_contain_text(
        "Home: a monotone expectation needs a numeric feature"
    )
    # ...and a right one validates: debt raises the risk, in the analyst's own words.
    page.get_by_label("Monotone expectation of Home").select_option("")
    page.get_by_label("Monotone expectation of Debt").select_option("increasing")
    page.get_by_label("Reason text for Debt").fill("Debt is high for the income")
    page.get_by_label("Reason text for Debt").blur()
    expect(page.locator("#validation-verdict")).to_have_text("ready to train")
    snapshot(page, "data-spec")
    page.get_by_role("button", name="Save spec").click()
    expect(page.get_by_role("status").first).to_contain_text("Spec saved")
    key = page.url.split("/ui/data/")[1].split("?")[0]
    saved = (Path(dashboard.settings.home) / "uploads" / key / "spec.yaml").read_text()
    assert "increasing:\n  - Debt" in saved
    assert "Debt is high for the income" in saved

    page.get_by_role("link", name="Profile").click()
    table = page.locator("#iv-table")
    expect(table).to_contain_text("Seniority")
    first = table.locator("tbody tr").first
    expect(first.locator("th")).to_contain_text(re.compile(r"\w"))
    expect(page.locator("#feature .chart .main-svg").first).to_be_visible()
    page.locator("#iv-table").get_by_role("link", name="Income", exact=True).click()
    expect(page.locator("#feature-h")).to_have_text("Income")
    expect(page.locator("#feature .chart .main-svg").first).to_be_visible()
    snapshot(page, "data-profile")

    # No champion yet: the form offers to register the best model as the champion.
    expect(page.get_by_label("Register the best model as")).to_have_value("champion")
    # Four of the seven candidates: the slowest to train are left out.
    for slow in ("Random forest", "LightGBM", "PyTorch neural network"):
        page.get_by_label(slow).uncheck()
    page.get_by_role("button", name="Train").click()
    expect(page).to_have_url(re.compile(r"/ui/jobs/[0-9a-f-]{36}$"))
    # Live progress: the candidates fill in while the job runs...
    expect(page.locator("#candidates tbody tr").nth(2)).to_be_visible(timeout=_JOB_TIMEOUT_MS)
    snapshot(page, "job-progress")
    expect(page.locator("#job-state")).to_have_text("succeeded", timeout=_JOB_TIMEOUT_MS)
    result = page.locator("#job-result")
    expect(result).to_contain_text("registered as version 1")
    rows = page.locator("#candidates tbody tr")
    trained = [rows.nth(i).inner_text().lower() for i in range(rows.count())]
    assert len(trained) == 5  # the four ticked and their ensemble
    assert not [t for t in trained if "random" in t or "lightgbm" in t or "neural" in t]
    assert all("done" in rows.nth(i).inner_text() for i in range(rows.count()))
    result.get_by_role("link", name="version 1").click()
    expect(page).to_have_url(re.compile(r"/ui/models/1$"))
    page.goto("/ui/models")
    expect(page.locator("body")).to_contain_text("champion")
    page.goto("/ui/jobs")
    expect(page.locator("#jobs tbody tr").first).to_contain_text("succeeded")


def test_a_reader_sees_the_data_but_cannot_upload(page: Page) -> None:
    log_in(page, READER_KEY)
    page.goto("/ui/data")
    expect(page.get_by_role("button", name="Upload")).to_be_disabled()
    expect(page.get_by_text("Uploading data needs the admin key.")).to_be_visible()


def test_a_text_value_in_a_numeric_column_is_named_and_nothing_is_trained(
    page: Page, dashboard: Dashboard, tmp_path: Path
) -> None:
    frame, _ = load_builtin("credit_data")
    frame = frame.head(400).astype({"Income": object})
    frame.loc[17, "Income"] = "twelve hundred"
    broken = tmp_path / "broken_income.csv"
    frame.to_csv(broken, index=False)
    log_in(page)
    _upload(page, broken)
    # Read as text, the column is guessed categorical: said to be numeric, it fails, by name.
    page.get_by_label("Role of Income").select_option("numeric")
    problems = page.locator("#validation-problems")
    expect(problems).to_contain_text("numeric column 'Income' has 1 non-numeric value(s)")
    expect(problems).to_contain_text("twelve hundred")
    expect(page.locator("#validation-verdict")).to_have_text("cannot be trained on")
    page.get_by_role("button", name="Save spec").click()
    jobs_before = _job_count(dashboard.settings)
    page.get_by_role("button", name="Train").click()
    expect(page.get_by_role("alert").last).to_contain_text("Not trained")
    page.expected_console_errors.append("422")
    assert _job_count(dashboard.settings) == jobs_before


def _job_count(settings: Settings) -> int:
    with JobStore.from_settings(settings) as store:
        return len(store.list(limit=1000))


@pytest.mark.parametrize(
    ("name", "body", "problem"),
    [
        ("empty.csv", b"", "empty.csv is empty"),
        ("binary.csv", bytes(range(256)) * 64, "binary.csv"),
        ("notes.txt", b"a,b\n1,2\n", "upload a .csv or .parquet file"),
    ],
)
def test_a_broken_file_is_refused_with_its_problem(
    page: Page, dashboard: Dashboard, tmp_path: Path, name: str, body: bytes, problem: str
) -> None:
    path = tmp_path / name
    path.write_bytes(body)
    log_in(page)
    _upload(page, path)
    page.expected_console_errors.append("422")
    expect(page.locator("#data-error")).to_contain_text(problem)
    uploads = Path(dashboard.settings.home) / "uploads"
    assert not [p for p in uploads.rglob("*") if p.is_file() and p.name == name]


def test_a_killed_job_shows_failed_with_its_reason_after_a_restart(
    page: Page, dashboard: Dashboard
) -> None:
    settings = dashboard.settings
    job = submit_training(
        settings, TrainingRequest(dataset="credit_data", profile="fast"), requested_by="test"
    )
    with JobStore.from_settings(settings) as store:
        deadline = time.monotonic() + 60
        while (current := store.get(job.id)).pid is None or current.state != "running":
            assert time.monotonic() < deadline, f"the job did not start: {current}"
            time.sleep(0.2)
    os.kill(current.pid, signal.SIGKILL)  # as the OOM killer would
    _wait_gone(current.pid)
    # A restart of the service (a second server on the same home) finds it dead.
    with served_process(settings) as url:
        log_in(page, start=f"{url}/ui/jobs/{job.id}")
        page.goto(f"{url}/ui/jobs/{job.id}")
        expect(page.locator("#job-state")).to_have_text("failed")
        expect(page.locator("#job-result")).to_contain_text(
            re.compile(r"its process \(pid \d+ on .+\) is gone: the server restarted")
        )


def _wait_gone(pid: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
