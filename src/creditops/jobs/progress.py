"""A training job's progress, written to its row in the job store as training reports it: each
candidate's steps done of its total, its latest note, elapsed time and an estimate of what is
left; the same writes beat the job's heartbeat and carry back a request to cancel."""

from __future__ import annotations

import threading
import time
from typing import Any

from creditops.exceptions import JobCancelledError
from creditops.store.jobs import JobStore
from creditops.training.candidate import Progress

# Writes at most this often while steps stream in (every start and finish is written).
_WRITE_EVERY_S = 0.5
# A beat this often from a thread of its own, so one long step does not look like a death.
HEARTBEAT_EVERY_S = 15.0


class JobProgress:
    """Training's :class:`~creditops.training.candidate.Progress`, kept in the job's row."""

    def __init__(self, store: JobStore, job_id: str) -> None:
        self._store = store
        self._job_id = job_id
        self._started = time.monotonic()
        self._steps: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._written = 0.0
        self._stop = threading.Event()
        self.cancelled = False
        self._beat = threading.Thread(target=self._beat_loop, daemon=True, name="job-heartbeat")
        self._beat.start()

    def snapshot(self) -> dict[str, Any]:
        """The progress as stored: steps per candidate, elapsed and estimated seconds left."""
        with self._lock:
            steps = {name: dict(step) for name, step in self._steps.items()}
        elapsed = time.monotonic() - self._started
        done = sum(s["done"] for s in steps.values())
        total = sum(s["total"] for s in steps.values())
        finished = sum(1 for s in steps.values() if s["finished"])
        left = None
        if done and total > done:
            left = elapsed / done * (total - done)
        return {
            "steps": steps,
            "elapsed_s": round(elapsed, 1),
            "estimated_left_s": None if left is None else round(left, 1),
            "candidates_finished": finished,
        }

    # -- Progress ----------------------------------------------------------------------

    def start(self, name: str, label: str, total: int) -> None:
        with self._lock:
            self._steps[name] = {
                "label": label,
                "total": int(total),
                "done": 0,
                "note": "",
                "finished": False,
            }
        self._write(force=True)

    def advance(self, name: str, note: str) -> None:
        with self._lock:
            step = self._steps.setdefault(
                name, {"label": name, "total": 0, "done": 0, "note": "", "finished": False}
            )
            step["done"] += 1
            step["total"] = max(step["total"], step["done"])
            step["note"] = note
        self._write()

    def finish(self, name: str, note: str) -> None:
        with self._lock:
            step = self._steps.setdefault(
                name, {"label": name, "total": 0, "done": 0, "note": "", "finished": False}
            )
            step["done"] = step["total"] = max(step["total"], step["done"])
            step["note"] = note
            step["finished"] = True
        self._write(force=True)

    # -- writing -----------------------------------------------------------------------

    def _write(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._written < _WRITE_EVERY_S:
            self._check()
            return
        self._written = now
        if not self._store.heartbeat(self._job_id, self.snapshot()):
            self.cancelled = True
        self._check()

    def _check(self) -> None:
        if self.cancelled:
            raise JobCancelledError(f"job {self._job_id} was cancelled")

    def _beat_loop(self) -> None:
        while not self._stop.wait(HEARTBEAT_EVERY_S):
            try:
                if not self._store.heartbeat(self._job_id):
                    self.cancelled = True  # the next step stops the training
            except Exception:  # a missed beat must not kill the job; the next one may land
                continue

    def close(self) -> None:
        self._stop.set()


class TeeProgress:
    """Several progress reporters as one (the command line's bars and the job's row)."""

    def __init__(self, *reporters: Progress) -> None:
        self._reporters = reporters

    def start(self, name: str, label: str, total: int) -> None:
        for reporter in self._reporters:
            reporter.start(name, label, total)

    def advance(self, name: str, note: str) -> None:
        for reporter in self._reporters:
            reporter.advance(name, note)

    def finish(self, name: str, note: str) -> None:
        for reporter in self._reporters:
            reporter.finish(name, note)


__all__ = ["HEARTBEAT_EVERY_S", "JobProgress", "TeeProgress"]
