"""The job store on real databases: claiming under a running limit, heartbeats carrying a
cancel back, finishing only what still runs, and reaping jobs whose process is gone."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from creditops.exceptions import JobError
from creditops.store.jobs import JobStore, process_alive
from creditops.store.schema import jobs_table


@pytest.fixture
def store(db_url: str):
    jobs = JobStore(db_url)
    yield jobs
    jobs.close()


def test_claims_go_oldest_first_and_never_past_the_running_limit(store: JobStore) -> None:
    first = store.create("train", {"dataset": "credit_data"}, requested_by="alice")
    second = store.create("train", {"dataset": "lending_club"}, requested_by="bob")
    assert (first.state, first.started_at, first.progress) == ("queued", None, {})
    claimed = store.claim_next(max_running=1)
    assert claimed is not None
    assert claimed.id == first.id
    assert claimed.state == "running"
    assert store.claim_next(max_running=1) is None  # one runs: the limit holds
    store.attach(first.id, os.getpid(), data_fingerprint="f" * 64)
    assert store.get(first.id).pid == os.getpid()
    assert store.get(first.id).data_fingerprint == "f" * 64
    assert store.finish(first.id, "succeeded", run_id="r1", model_version="3")
    assert store.claim_next(max_running=1).id == second.id
    done = store.get(first.id)
    assert (done.state, done.run_id, done.model_version) == ("succeeded", "r1", "3")
    assert done.elapsed_seconds() >= 0
    assert [j.id for j in store.list()] == [second.id, first.id]  # newest first
    assert [j.id for j in store.list(state="succeeded")] == [first.id]


def test_a_cancel_reaches_the_worker_through_its_heartbeat(store: JobStore) -> None:
    job = store.create("train", {}, requested_by="cli", running_here=True)
    assert store.heartbeat(job.id, {"steps": {"lr": {"done": 1, "total": 3}}})
    assert store.get(job.id).progress["steps"]["lr"]["done"] == 1
    cancelled = store.cancel(job.id, by="alice")
    assert cancelled.state == "running"  # its worker stops it
    assert cancelled.cancel_requested
    assert store.heartbeat(job.id) is False
    assert store.finish(job.id, "cancelled", message="cancelled by alice")
    # A finished job stays as it ended.
    assert store.finish(job.id, "succeeded") is False
    assert store.get(job.id).state == "cancelled"
    with pytest.raises(JobError, match="already cancelled"):
        store.cancel(job.id, by="bob")


def test_a_queued_job_is_cancelled_at_once(store: JobStore) -> None:
    job = store.create("train", {}, requested_by="alice")
    cancelled = store.cancel(job.id, by="bob")
    assert (cancelled.state, cancelled.message) == ("cancelled", "cancelled by bob")
    assert store.claim_next(max_running=5) is None
    with pytest.raises(JobError, match="no job nope"):
        store.get("nope")


def test_jobs_whose_process_is_gone_are_marked_failed_with_the_reason(store: JobStore) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    gone_pid = int(dead.stdout)
    assert not process_alive(gone_pid)
    gone = store.create("train", {}, requested_by="ui")
    store.claim_next(max_running=5)
    store.attach(gone.id, gone_pid)
    alive = store.create("train", {}, requested_by="cli", running_here=True)  # this process
    silent = store.create("train", {}, requested_by="ui")
    store.claim_next(max_running=5)
    store.attach(silent.id, os.getpid(), host="another-host")
    stale = datetime.now(UTC) - timedelta(minutes=10)
    engine = sa.create_engine(store._engine.url)  # back-date the other host's heartbeat
    with engine.begin() as conn:
        conn.execute(
            jobs_table.update().where(jobs_table.c.id == silent.id).values(heartbeat_at=stale)
        )
    engine.dispose()

    reaped = {job.id: job for job in store.reap(heartbeat_timeout_s=120)}
    assert set(reaped) == {gone.id, silent.id}
    assert reaped[gone.id].state == "failed"
    assert f"pid {gone_pid}" in reaped[gone.id].message
    assert "killed" in reaped[gone.id].message
    assert "no heartbeat since" in reaped[silent.id].message
    assert store.get(alive.id).state == "running"
