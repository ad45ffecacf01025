"""Background jobs in the database (table ``jobs``): training started from the dashboard or the
command line, and monitor and retrain runs.

A job is queued, then running (claimed by one process, which records its host and pid and
beats a heartbeat while it works), then succeeded, failed or cancelled. Claiming is atomic and
respects a limit on jobs running at once, so two dispatchers never start the same job or one
too many. A job whose process died (server restart, out of memory, killed) is found by
:meth:`JobStore.reap`: on this host by its pid, anywhere by a heartbeat older than the timeout,
and marked failed with that reason, never left "running". Finishing only moves a running job,
so a job cancelled meanwhile stays cancelled.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar

import sqlalchemy as sa
from pydantic import AwareDatetime, BaseModel, Field
from sqlalchemy.engine import Connection

from creditops.config import Settings
from creditops.exceptions import JobError
from creditops.store.schema import RecordStore, jobs_table

__all__ = ["FINISHED", "Job", "JobKind", "JobState", "JobStore", "process_alive", "runs_job"]

_T = TypeVar("_T")

JobKind = Literal["train", "monitor", "retrain"]
JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]
FINISHED: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
# PostgreSQL advisory-lock key serialising claims, so the running limit holds ("cjob").
_CLAIM_LOCK_KEY = 0x636A6F62


class Job(BaseModel):
    """One job as stored."""

    id: str
    kind: JobKind
    state: JobState
    created_at: AwareDatetime
    started_at: AwareDatetime | None = None
    finished_at: AwareDatetime | None = None
    heartbeat_at: AwareDatetime | None = None
    requested_by: str
    params: dict[str, Any] = Field(default_factory=dict)
    data_fingerprint: str | None = None
    host: str | None = None
    pid: int | None = None
    progress: dict[str, Any] = Field(default_factory=dict)
    run_id: str | None = None
    model_version: str | None = None
    message: str | None = None
    cancel_requested: bool = False

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    def elapsed_seconds(self, now: datetime | None = None) -> float | None:
        if self.started_at is None:
            return None
        end = self.finished_at or now or datetime.now(UTC)
        return (end - self.started_at).total_seconds()


def runs_job(pid: int, job_id: str) -> bool:
    """Whether process ``pid`` on this host is the one running ``job_id`` (a job process
    names it on its command line; a command-line training is a ``creditops train``): a pid
    the system gave to another program since is not."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            words = handle.read().decode(errors="replace").split("\0")
    except OSError:
        return False
    return job_id in words or ("train" in words and any("creditops" in w for w in words))


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host (and is not a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return True


class JobStore(RecordStore):
    """Jobs in ``url`` (SQLite or PostgreSQL), the decision log's database by default."""

    store = "job store"
    holds = "job"
    error = JobError

    @classmethod
    def from_settings(cls, settings: Settings) -> JobStore:
        settings.ensure_home()
        return cls(settings.resolved_database_url)

    # -- writing ------------------------------------------------------------------------

    def create(
        self,
        kind: JobKind,
        params: dict[str, Any],
        *,
        requested_by: str,
        data_fingerprint: str | None = None,
        running_here: bool = False,
    ) -> Job:
        """A new job, queued; or, with ``running_here``, already running in this process (a
        command-line training, which shows up beside the dashboard's)."""
        now = datetime.now(UTC)
        row: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "kind": kind,
            "state": "running" if running_here else "queued",
            "created_at": now,
            "started_at": now if running_here else None,
            "heartbeat_at": now if running_here else None,
            "requested_by": requested_by,
            "params": params,
            "data_fingerprint": data_fingerprint,
            "host": socket.gethostname() if running_here else None,
            "pid": os.getpid() if running_here else None,
            "progress": {},
            "cancel_requested": False,
        }
        self._run(lambda conn: conn.execute(jobs_table.insert(), [row]), write=True)
        return self.get(row["id"])

    def claim_next(self, max_running: int) -> Job | None:
        """The oldest queued job, now running and owned by the caller (host and pid set by
        :meth:`attach`), or None when none is queued or ``max_running`` already run."""
        t = jobs_table

        def claim(conn: Connection) -> str | None:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_CLAIM_LOCK_KEY)))
            running = conn.execute(
                sa.select(sa.func.count()).select_from(t).where(t.c.state == "running")
            ).scalar_one()
            if running >= max_running:
                return None
            job_id = conn.execute(
                sa.select(t.c.id)
                .where(t.c.state == "queued")
                .order_by(t.c.created_at, t.c.id)
                .limit(1)
            ).scalar_one_or_none()
            if job_id is None:
                return None
            now = datetime.now(UTC)
            conn.execute(
                t.update()
                .where(t.c.id == job_id, t.c.state == "queued")
                .values(state="running", started_at=now, heartbeat_at=now)
            )
            return str(job_id)

        claimed = self._run(claim, write=True)
        return None if claimed is None else self.get(claimed)

    def attach(
        self,
        job_id: str,
        pid: int,
        host: str | None = None,
        *,
        data_fingerprint: str | None = None,
    ) -> None:
        """Record the process that runs a claimed job (and the data it read, once known)."""
        values: dict[str, Any] = {"pid": pid, "host": host or socket.gethostname()}
        if data_fingerprint is not None:
            values["data_fingerprint"] = data_fingerprint
        self._update(job_id, values, only_running=True)

    def heartbeat(self, job_id: str, progress: dict[str, Any] | None = None) -> bool:
        """Beat the job's heartbeat (and store its progress); False once it is no longer
        running or a cancel was asked for: the worker should stop."""
        values: dict[str, Any] = {"heartbeat_at": datetime.now(UTC)}
        if progress is not None:
            values["progress"] = progress
        if not self._update(job_id, values, only_running=True):
            return False
        return not self.get(job_id).cancel_requested

    def finish(
        self,
        job_id: str,
        state: Literal["succeeded", "failed", "cancelled"],
        *,
        message: str | None = None,
        run_id: str | None = None,
        model_version: str | None = None,
        progress: dict[str, Any] | None = None,
    ) -> bool:
        """Move a running job to ``state``; False if it was not running (cancelled or reaped
        meanwhile: that verdict stands)."""
        values: dict[str, Any] = {
            "state": state,
            "finished_at": datetime.now(UTC),
            "message": message,
            "run_id": run_id,
            "model_version": model_version,
        }
        if progress is not None:
            values["progress"] = progress
        return self._update(job_id, values, only_running=True)

    def cancel(self, job_id: str, *, by: str) -> Job:
        """Cancel a queued job at once; ask a running one to stop (its worker sees it at its
        next heartbeat, and the caller may stop the process). A finished job is refused."""
        job = self.get(job_id)
        if job.finished:
            raise JobError(f"job {job_id} has already {job.state}")
        t = jobs_table
        now = datetime.now(UTC)
        message = f"cancelled by {by}"

        def cancel(conn: Connection) -> None:
            conn.execute(
                t.update()
                .where(t.c.id == job_id, t.c.state == "queued")
                .values(state="cancelled", finished_at=now, message=message)
            )
            conn.execute(
                t.update()
                .where(t.c.id == job_id, t.c.state == "running")
                .values(cancel_requested=True, message=message)
            )

        self._run(cancel, write=True)
        return self.get(job_id)

    def reap(self, *, heartbeat_timeout_s: float, host: str | None = None) -> list[Job]:
        """Mark failed the running jobs whose process is gone: on this host by pid, anywhere
        by a heartbeat older than ``heartbeat_timeout_s``. Returns them."""
        here = host or socket.gethostname()
        now = datetime.now(UTC)
        stale_before = now - timedelta(seconds=heartbeat_timeout_s)
        reaped = []
        for job in self.list(state="running", limit=1000):
            beat = job.heartbeat_at or job.started_at or job.created_at
            if job.host == here and job.pid is not None and not process_alive(job.pid):
                why = f"its process (pid {job.pid} on {here}) is gone"
            elif beat < stale_before:
                why = f"no heartbeat since {beat.isoformat(timespec='seconds')}"
            else:
                continue
            state: Literal["failed", "cancelled"] = (
                "cancelled" if job.cancel_requested else "failed"
            )
            message = (
                job.message
                if job.cancel_requested
                else f"{why}: the server restarted, it ran out of memory or it was killed"
            )
            if self.finish(job.id, state, message=message):
                reaped.append(self.get(job.id))
        return reaped

    def _update(self, job_id: str, values: dict[str, Any], *, only_running: bool) -> bool:
        t = jobs_table
        where = [t.c.id == job_id]
        if only_running:
            where.append(t.c.state == "running")

        def update(conn: Connection) -> int:
            return int(conn.execute(t.update().where(*where).values(**values)).rowcount)

        return self._run(update, write=True) > 0

    # -- reading ------------------------------------------------------------------------

    def get(self, job_id: str) -> Job:
        t = jobs_table
        row = self._run(
            lambda conn: conn.execute(sa.select(t).where(t.c.id == job_id)).mappings().first(),
            write=False,
        )
        if row is None:
            raise JobError(f"no job {job_id}")
        return Job.model_validate(dict(row))

    def list(
        self, *, state: JobState | None = None, kind: JobKind | None = None, limit: int = 50
    ) -> list[Job]:
        """Newest first."""
        t = jobs_table
        stmt = sa.select(t).order_by(t.c.created_at.desc(), t.c.id).limit(limit)
        if state is not None:
            stmt = stmt.where(t.c.state == state)
        if kind is not None:
            stmt = stmt.where(t.c.kind == kind)
        rows = self._run(lambda conn: conn.execute(stmt).mappings().all(), write=False)
        return [Job.model_validate(dict(row)) for row in rows]

    def running_count(self) -> int:
        t = jobs_table
        return int(
            self._run(
                lambda conn: conn.execute(
                    sa.select(sa.func.count()).select_from(t).where(t.c.state == "running")
                ).scalar_one(),
                write=False,
            )
        )
