"""How writers share the decision log's database: group commit, and one SQLite writer at a time
across threads and processes.

Both exist for latency under load: group commit lets one fsync acknowledge every decision that
arrived while the previous transaction committed; the writer lock hands the SQLite write lock
over the moment it is free instead of SQLite's sleeping busy handler.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: SQLite's busy handler serialises writers
    fcntl = None  # type: ignore[assignment]

from creditops.exceptions import PredictionLogError, RecordRejectedError

__all__ = ["GroupCommit", "WriterLock"]


# ---------------------------------------------------------------------------------------------
# Group commit
# ---------------------------------------------------------------------------------------------


class _Ticket:
    __slots__ = ("done", "error", "ok", "promoted", "rows")

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.done = threading.Event()
        self.ok = False
        self.error: BaseException | None = None
        self.promoted = False


class GroupCommit:
    """Leader/follower group commit.

    The first writer to arrive becomes the leader and commits its rows; writers that arrive
    meanwhile queue. When the leader's transaction is done it hands leadership to the oldest
    queued writer, who commits every queued ticket in one transaction. Each caller returns only
    after the transaction holding its rows committed (or raises), so durability is that of a
    single write, while one fsync serves many writers. A ticket is atomic: when a shared
    transaction is refused because of one ticket's rows, each ticket is retried on its own.
    """

    def __init__(self, flush: Callable[[list[dict[str, Any]]], None], max_rows: int) -> None:
        self._flush = flush
        self._max_rows = max_rows
        self._mutex = threading.Lock()
        self._queue: deque[_Ticket] = deque()
        self._leading = False

    def submit(self, rows: list[dict[str, Any]]) -> None:
        ticket = _Ticket(rows)
        with self._mutex:
            follow = self._leading
            if follow:
                self._queue.append(ticket)
            else:
                self._leading = True
        if follow:
            try:
                ticket.done.wait()
            except BaseException:  # e.g. KeyboardInterrupt: never strand the queue
                self._abandon(ticket)
                raise
        if not follow or ticket.promoted:
            self._lead(ticket)
        if not ticket.ok:
            raise ticket.error or PredictionLogError("the write was interrupted")

    def _abandon(self, ticket: _Ticket) -> None:
        with self._mutex:
            if ticket in self._queue:
                self._queue.remove(ticket)
            elif ticket.promoted:
                self._hand_over()
            # else a leader took it into its batch and will finish it

    def _hand_over(self) -> None:
        """Wake the oldest queued writer as the next leader, or stand down (mutex held)."""
        if self._queue:
            successor = self._queue.popleft()
            successor.promoted = True
            successor.done.set()
        else:
            self._leading = False

    def _lead(self, own: _Ticket) -> None:
        batch = [own]
        try:
            total = len(own.rows)
            with self._mutex:
                while self._queue and total + len(self._queue[0].rows) <= self._max_rows:
                    ticket = self._queue.popleft()
                    batch.append(ticket)
                    total += len(ticket.rows)
            self._commit(batch)
        finally:
            with self._mutex:
                self._hand_over()
            for ticket in batch[1:]:
                ticket.done.set()

    def _commit(self, batch: list[_Ticket]) -> None:
        try:
            self._flush([row for ticket in batch for row in ticket.rows])
        except RecordRejectedError as exc:
            if len(batch) == 1:
                batch[0].error = exc
                return
            for ticket in batch:  # isolate the offending ticket; the others still commit
                try:
                    self._flush(ticket.rows)
                    ticket.ok = True
                except PredictionLogError as single:
                    ticket.error = single
        except PredictionLogError as exc:
            for ticket in batch:  # one exception object per caller (tracebacks are per raise)
                error = type(exc)(str(exc)) if ticket is not batch[0] else exc
                error.__cause__ = exc.__cause__
                ticket.error = error
        else:
            for ticket in batch:
                ticket.ok = True


class WriterLock:
    """One SQLite writer at a time across threads and processes.

    SQLite's own busy handler makes a waiting process sleep in steps of up to 100 ms, which with
    several server workers turns into tail latency of hundreds of milliseconds. Writers here
    queue on an in-process lock and then on ``flock`` of a file beside the database, which the
    kernel hands over the moment it is released (and frees if its holder dies).
    """

    def __init__(self, database: Path | None) -> None:
        self._thread_lock = threading.Lock()
        self._fd: int | None = None
        if database is not None and fcntl is not None:
            try:
                self._fd = os.open(f"{database}-writer.lock", os.O_RDWR | os.O_CREAT, 0o600)
            except OSError:  # e.g. a read-only directory: SQLite's busy handler still serialises
                self._fd = None

    def acquire(self, timeout: float, *, wait_for_processes: bool = True) -> bool:
        if not self._thread_lock.acquire(timeout=max(0.0, timeout)):
            return False
        if self._fd is None:
            return True
        try:
            if wait_for_processes:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
                return True
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return True
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        self._thread_lock.release()
                        return False
                    time.sleep(0.001)
        except OSError:
            self._thread_lock.release()
            raise

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._thread_lock.release()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
