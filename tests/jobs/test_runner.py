"""Training as a job, for real: the command line's training recorded, jobs run by detached
processes one at a time, a killed job marked failed at the next start, a running one stopped."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from creditops.cli import app
from creditops.config import Settings
from creditops.jobs.runner import (
    RetrainRequest,
    TrainingRequest,
    cancel_job,
    dispatch,
    job_log,
    submit_job,
    submit_training,
)
from creditops.store.alerts import AlertStore
from creditops.store.jobs import Job, JobStore

pytestmark = pytest.mark.slow

FAST_LR = TrainingRequest(dataset="credit_data", profile="fast", models=["logistic_regression"])
# Long enough to catch while it runs: the network's trials.
SLOW = TrainingRequest(dataset="credit_data", profile="full", models=["neural_network"])


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("CREDITOPS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("CREDITOPS_DATABASE_URL", raising=False)
    return Settings(home=tmp_path / "home")


def _wait(store: JobStore, job_id: str, done: Callable[[Job], bool], timeout: float = 240) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = store.get(job_id)
        if done(job):
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} still {store.get(job_id).state} after {timeout} s")


def test_command_line_training_shows_up_as_a_job(home: Settings) -> None:
    runner = CliRunner()
    trained = runner.invoke(
        app, ["train", "--profile", "fast", "--model", "logistic_regression", "--json"]
    )
    assert trained.exit_code == 0, trained.output
    listed = runner.invoke(app, ["jobs", "list", "--json"])
    rows = json.loads(listed.stdout)
    assert len(rows) == 1
    assert rows[0]["state"] == "succeeded"
    assert rows[0]["requested_by"] == "cli"
    assert rows[0]["model_version"] == "1"
    job = JobStore.from_settings(home).get(rows[0]["id"])
    assert job.run_id
    assert len(job.data_fingerprint) == 64
    steps = job.progress["steps"]
    assert steps["logistic_regression"]["finished"]
    assert steps["logistic_regression"]["done"] == steps["logistic_regression"]["total"] > 0
    shown = runner.invoke(app, ["jobs", "show", job.id[:8]])
    assert json.loads(shown.stdout)["id"] == job.id
    bad = runner.invoke(app, ["train", "--data", "x.csv"])
    assert bad.exit_code == 1
    assert "needs its spec" in bad.output


def test_jobs_run_in_their_own_process_one_at_a_time(home: Settings) -> None:
    first = submit_training(home, FAST_LR, requested_by="alice")
    second = submit_training(home, FAST_LR, requested_by="bob")
    assert first.state == "running"
    assert first.pid not in (None, os.getpid())
    assert second.state == "queued"  # max_jobs = 1
    store = JobStore.from_settings(home)
    done = _wait(store, first.id, lambda j: j.finished)
    assert done.state == "succeeded", job_log(home, first.id).read_text()
    assert done.model_version == "1"
    # the first job started the second when it ended
    later = _wait(store, second.id, lambda j: j.finished)
    assert later.state == "succeeded", job_log(home, second.id).read_text()
    assert later.model_version == "2"
    assert later.started_at >= done.finished_at


def test_a_killed_job_is_marked_failed_at_the_next_start(home: Settings) -> None:
    job = submit_training(home, SLOW, requested_by="alice")
    store = JobStore.from_settings(home)
    running = _wait(store, job.id, lambda j: bool(j.progress.get("steps")))
    os.kill(running.pid, signal.SIGKILL)
    time.sleep(0.5)
    assert store.get(job.id).state == "running"  # nobody has looked yet
    dispatch(home, store)  # what the next start (a page, a submit, `jobs list`) does
    failed = store.get(job.id)
    assert failed.state == "failed"
    assert f"pid {running.pid}" in failed.message
    assert "killed" in failed.message


def test_a_running_job_is_stopped_and_recorded_cancelled(home: Settings) -> None:
    job = submit_training(home, SLOW, requested_by="alice")
    store = JobStore.from_settings(home)
    _wait(store, job.id, lambda j: bool(j.progress.get("steps")))
    cancel_job(home, job.id, by="bob")
    stopped = _wait(store, job.id, lambda j: j.finished, timeout=60)
    assert stopped.state == "cancelled"
    assert stopped.message == "cancelled by bob"
    assert stopped.model_version is None


def test_a_server_start_marks_jobs_whose_process_died_failed(home: Settings) -> None:
    import subprocess
    import sys

    from helpers import serving

    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    with JobStore.from_settings(home) as store:
        job = store.create("train", FAST_LR.model_dump(mode="json"), requested_by="alice")
        store.claim_next(max_running=1)
        store.attach(job.id, int(gone.stdout))  # as if the last server's job had been killed
        with serving(home):
            failed = store.get(job.id)
    assert failed.state == "failed"
    assert f"pid {int(gone.stdout)}" in failed.message


def test_monitor_and_retrain_run_as_jobs(home: Settings) -> None:
    store = JobStore.from_settings(home)
    trained = _wait(store, submit_training(home, FAST_LR, requested_by="alice").id, _finished)
    assert trained.state == "succeeded", job_log(home, trained.id).read_text()
    # No decision logged yet: the monitor still runs, and records its run and report.
    monitor = submit_job(home, "monitor", {}, requested_by="carol")
    monitored = _wait(store, monitor.id, _finished)
    assert monitored.state == "succeeded", job_log(home, monitor.id).read_text()
    assert "0 decisions checked" in monitored.message
    with AlertStore.from_settings(home) as alerts:
        assert alerts.latest_report()["run_id"] == monitored.run_id
    # No trigger fires on a fresh champion: the retrain job says so, and the audit keeps it.
    retrain = submit_job(home, "retrain", RetrainRequest().model_dump(), requested_by="dan")
    retrained = _wait(store, retrain.id, _finished)
    assert retrained.state == "succeeded", job_log(home, retrain.id).read_text()
    assert retrained.message.startswith("not retrained: no trigger fired")
    with pytest.raises(ValidationError):
        RetrainRequest.model_validate({"force": True, "profile": "full"})


def _finished(job: Job) -> bool:
    return job.finished
