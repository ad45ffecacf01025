"""Start, run and stop jobs on this machine: one detached process per job
(``creditops jobs run ID``), at most ``Settings.max_jobs`` at once, the rest queued.

Whoever submits a job dispatches it; a job that ends dispatches the next queued one, so no
scheduler has to stay up. Every dispatch first reaps the running jobs whose process is gone
(:meth:`~creditops.store.jobs.JobStore.reap`). A training run from the command line is
recorded as a job too (:func:`train_recorded`), so every training shows up in one list.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from creditops.config import Settings
from creditops.exceptions import JobCancelledError, JobError
from creditops.jobs.progress import JobProgress, TeeProgress
from creditops.store.jobs import Job, JobKind, JobStore, process_alive, runs_job
from creditops.training.candidate import Progress
from creditops.training.offload import Offload


class TrainingRequest(BaseModel):
    """What to train: a built-in dataset, or a file with its spec; how, and whether to
    register the champion."""

    model_config = ConfigDict(extra="forbid")

    dataset: str | None = None
    data_path: str | None = None
    spec_path: str | None = None
    delimiter: str = ","
    encoding: str = "utf-8"
    profile: Literal["fast", "full"] | None = None
    models: list[str] = Field(default_factory=list)
    register_champion: bool = True
    # Under which alias the best candidate is registered: a new champion serves at once, a
    # challenger waits for the gates and a promotion.
    alias: Literal["champion", "challenger"] = "champion"
    seed: int | None = None
    time_budget: float | None = Field(default=None, gt=0)
    # The Dask cluster the run used (tcp://… or local[:N]), for the record; None: this process.
    cluster: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> TrainingRequest:
        if self.data_path is not None and self.dataset is not None:
            raise ValueError("give a built-in dataset or a data file, not both")
        if (self.data_path is None) != (self.spec_path is None):
            raise ValueError("a data file needs its spec (and a spec its data file)")
        return self

    def settings_for(self, settings: Settings) -> Settings:
        update: dict[str, Any] = {}
        if self.seed is not None:
            update["seed"] = self.seed
        if self.time_budget is not None:
            update["time_budget"] = self.time_budget
        return settings.model_copy(update=update) if update else settings


def train_recorded(
    settings: Settings,
    request: TrainingRequest,
    *,
    requested_by: str,
    progress: Progress | None = None,
    store: JobStore | None = None,
    job_id: str | None = None,
    parallel: Offload | None = None,
) -> Any:
    """Train (and register) here, in this process, recorded as a job: a new running one, or
    ``job_id`` already claimed for this process. Returns the TrainingResult. ``parallel``:
    where Optuna's trials run (a Dask cluster, :mod:`creditops.scale.training`)."""
    from creditops.registry import train_and_register
    from creditops.training.tracking import data_fingerprint
    from creditops.training.train import load_training_data

    if store is None:
        with JobStore.from_settings(settings) as own:
            return train_recorded(
                settings,
                request,
                requested_by=requested_by,
                progress=progress,
                store=own,
                parallel=parallel,
            )
    if job_id is None:
        job_id = store.create(
            "train", request.model_dump(mode="json"), requested_by=requested_by, running_here=True
        ).id
    reporter = JobProgress(store, job_id)
    try:
        frame, spec, name = load_training_data(
            dataset=request.dataset,
            data_path=request.data_path,
            spec_path=request.spec_path,
            delimiter=request.delimiter,
            encoding=request.encoding,
        )
        store.attach(job_id, os.getpid(), data_fingerprint=data_fingerprint(frame))
        result = train_and_register(
            request.settings_for(settings),
            frame=frame,
            spec=spec,
            dataset_name=name,
            profile=request.profile,
            models=request.models or None,
            register=request.register_champion,
            alias=request.alias,
            progress=reporter if progress is None else TeeProgress(progress, reporter),
            parallel=parallel,
        )
    except JobCancelledError:
        store.finish(job_id, "cancelled", message=store.get(job_id).message or "cancelled")
        raise
    except BaseException as exc:  # recorded, then passed on (KeyboardInterrupt included)
        message = str(exc) or type(exc).__name__
        store.finish(job_id, "failed", message=message, progress=reporter.snapshot())
        raise
    finally:
        reporter.close()
    store.finish(
        job_id,
        "succeeded",
        message=result.selection,
        run_id=result.parent_run_id,
        model_version=result.registered_version,
        progress=reporter.snapshot(),
    )
    return result


def submit_training(settings: Settings, request: TrainingRequest, *, requested_by: str) -> Job:
    """Queue a training job and start it when a slot is free."""
    return submit_job(settings, "train", request.model_dump(mode="json"), requested_by=requested_by)


class RetrainRequest(BaseModel):
    """A retrain job: whether to retrain without a trigger, and whether to promote."""

    model_config = ConfigDict(extra="forbid")

    force: bool = False
    auto_promote: bool | None = None


def submit_job(
    settings: Settings, kind: JobKind, params: dict[str, Any], *, requested_by: str
) -> Job:
    """Queue a job of any kind and start it when a slot is free."""
    with JobStore.from_settings(settings) as store:
        job = store.create(kind, params, requested_by=requested_by)
        dispatch(settings, store)
        return store.get(job.id)


def dispatch(settings: Settings, store: JobStore | None = None) -> list[Job]:
    """Reap dead jobs, then start queued ones while fewer than ``max_jobs`` run; returns the
    jobs started."""
    if store is None:
        with JobStore.from_settings(settings) as own:
            return dispatch(settings, own)
    store.reap(heartbeat_timeout_s=settings.job_heartbeat_timeout)
    started = []
    while (job := store.claim_next(settings.max_jobs)) is not None:
        try:
            process = _spawn(settings, job.id)
        except OSError as exc:  # the slot must not stay taken until the heartbeat times out
            store.finish(job.id, "failed", message=f"could not start its process: {exc}")
            continue
        store.attach(job.id, process.pid)
        started.append(store.get(job.id))
    return started


def job_log(settings: Settings, job_id: str) -> Path:
    """Where a job's process writes its output."""
    return settings.home / "jobs" / f"{job_id}.log"


def _spawn(settings: Settings, job_id: str) -> subprocess.Popen[bytes]:
    """``creditops jobs run ID`` in a new session: it outlives the web worker that started it
    and takes no signal meant for the server."""
    log = job_log(settings, job_id)
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "CREDITOPS_HOME": str(settings.home),
        "CREDITOPS_DATABASE_URL": settings.resolved_database_url,
        "MLFLOW_TRACKING_URI": settings.resolved_tracking_uri,
    }
    with open(log, "ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "creditops.cli", "jobs", "run", job_id],
            env=env,
            cwd=settings.home,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def run_job(settings: Settings, job_id: str) -> Job:
    """Run a claimed job in this process (what ``creditops jobs run ID`` does), record how it
    ended, then start the next queued one."""
    with JobStore.from_settings(settings) as store:
        return _run_claimed(settings, store, job_id)


def _run_claimed(settings: Settings, store: JobStore, job_id: str) -> Job:
    job = store.get(job_id)
    if job.state != "running":
        raise JobError(f"job {job_id} is {job.state}, not claimed to run")
    _stop_on_sigterm()
    try:
        if job.kind == "train":
            request = TrainingRequest.model_validate(job.params)
            train_recorded(
                settings, request, requested_by=job.requested_by, store=store, job_id=job_id
            )
        else:
            _run_other(settings, store, job)
    except JobCancelledError:
        if job.kind != "train":  # train_recorded records its own
            store.finish(job_id, "cancelled", message=store.get(job_id).message or "cancelled")
    except Exception as exc:  # recorded (if it got that far) and ended: the next job may run
        store.finish(job_id, "failed", message=str(exc) or type(exc).__name__)
    finally:
        dispatch(settings, store)
    return store.get(job_id)


def _run_other(settings: Settings, store: JobStore, job: Job) -> None:
    """A monitor or retrain job, its heartbeat beating while it works (so no dispatcher takes
    it for dead)."""
    beat = JobProgress(store, job.id)
    try:
        if job.kind == "monitor":
            _monitor(settings, store, job.id)
        elif job.kind == "retrain":
            _retrain(settings, store, job.id, RetrainRequest.model_validate(job.params))
        else:
            raise JobError(f"job kind {job.kind!r} cannot run")
    finally:
        beat.close()


def _monitor(settings: Settings, store: JobStore, job_id: str) -> None:
    from creditops.monitoring.monitor import run_monitor

    report = run_monitor(settings)
    store.finish(
        job_id,
        "succeeded",
        message=f"{report.rows:,} decisions checked; level {report.level}; "
        f"{len(report.alerts)} alert(s)",
        run_id=report.run_id,
        model_version=report.model_version,
    )


def _retrain(settings: Settings, store: JobStore, job_id: str, request: RetrainRequest) -> None:
    from creditops.retraining import decide_retrain, record_no_retrain, retrain, retrain_config

    config = retrain_config(settings)
    if request.auto_promote is not None:
        config = config.model_copy(update={"auto_promote": request.auto_promote})
    decision = decide_retrain(settings, config, force=request.force)
    if not decision.retrain:
        entry = record_no_retrain(settings, decision)
        store.finish(job_id, "succeeded", message=entry.message)
        return
    result = retrain(settings, config, decision)
    store.finish(
        job_id,
        "succeeded",
        message=f"{result.outcome}: {result.message}",
        model_version=result.challenger_version,
    )


def _stop_on_sigterm() -> None:
    def stop(signum: int, frame: FrameType | None) -> None:
        raise JobCancelledError("stopped by SIGTERM")

    signal.signal(signal.SIGTERM, stop)


def cancel_job(settings: Settings, job_id: str, *, by: str) -> Job:
    """Cancel a queued job, or stop a running one (its process on this machine is sent
    SIGTERM; elsewhere its worker stops at its next heartbeat)."""
    with JobStore.from_settings(settings) as store:
        # A dead job's pid may belong to another program by now: reap before signalling.
        store.reap(heartbeat_timeout_s=settings.job_heartbeat_timeout)
        job = store.cancel(job_id, by=by)
        if (
            job.state == "running"
            and job.pid is not None
            and job.host == socket.gethostname()
            and job.pid != os.getpid()
            and process_alive(job.pid)
            and runs_job(job.pid, job_id)
        ):
            os.kill(job.pid, signal.SIGTERM)
        return store.get(job_id)


def describe(jobs: Sequence[Job]) -> list[dict[str, Any]]:
    """Jobs as rows for a table: id, kind, state, who, when, elapsed, version, message."""
    return [
        {
            "id": job.id,
            "kind": job.kind,
            "state": job.state,
            "requested_by": job.requested_by,
            "created_at": job.created_at.isoformat(timespec="seconds"),
            "elapsed_s": None if job.elapsed_seconds() is None else round(job.elapsed_seconds(), 1),
            "model_version": job.model_version,
            "message": job.message,
        }
        for job in jobs
    ]


__all__ = [
    "RetrainRequest",
    "TrainingRequest",
    "cancel_job",
    "describe",
    "dispatch",
    "job_log",
    "run_job",
    "submit_job",
    "submit_training",
    "train_recorded",
]
