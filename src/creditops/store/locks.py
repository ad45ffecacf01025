"""Locks that keep two retrains, or two changes of champion, from running at once.

Each lock is a file in ``CREDITOPS_HOME`` (``flock``: one host's processes) and, when the
creditops database is on PostgreSQL, a session advisory lock on it (every host sharing that
database). They live with the store because the database is what the hosts share.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from creditops.config import Settings
from creditops.exceptions import CreditOpsError, RetrainInProgressError
from creditops.store.database import create_store_engine, normalise_url

__all__ = [
    "CHAMPION_LOCK",
    "CHAMPION_LOCK_KEY",
    "RETRAIN_LOCK",
    "RETRAIN_LOCK_KEY",
    "Lock",
    "database_lock",
    "exclusive",
]

# PostgreSQL advisory-lock keys held while a retrain runs ("crrt") and while the champion
# alias moves ("crch").
RETRAIN_LOCK_KEY = 0x63727274
CHAMPION_LOCK_KEY = 0x63726368


@dataclass(frozen=True)
class Lock:
    """A lock that one host's processes share through a file in ``CREDITOPS_HOME``, and every
    host sharing a PostgreSQL decision log through a session advisory lock on it."""

    file: str
    key: int
    busy: str  # what the holder is doing, for the error
    error: type[CreditOpsError]
    wait_s: float = 0.0  # 0: fail at once when held


RETRAIN_LOCK = Lock(
    "retrain.lock", RETRAIN_LOCK_KEY, "another retrain is running", RetrainInProgressError
)
# Promotions and rollbacks read the alias and its history, move it and audit the move: two at
# once could both roll back from the same champion. They queue for a short while instead.
CHAMPION_LOCK = Lock(
    "champion.lock",
    CHAMPION_LOCK_KEY,
    "another promotion or rollback is under way",
    CreditOpsError,
    wait_s=60.0,
)


def _retrying(attempt: Callable[[], bool], wait_s: float) -> bool:
    """``attempt`` until it succeeds or ``wait_s`` has passed."""
    deadline = time.monotonic() + wait_s
    while not attempt():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


@contextlib.contextmanager
def exclusive(settings: Settings, lock: Lock) -> Iterator[None]:
    """Hold ``lock``: the host's lock file, then the database's advisory lock; raises
    ``lock.error`` when it is still held by another after ``lock.wait_s``."""
    settings.ensure_home()
    fd = os.open(settings.home / lock.file, os.O_RDWR | os.O_CREAT, 0o600)

    def take_file() -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    try:
        if not _retrying(take_file, lock.wait_s):
            raise lock.error(f"{lock.busy} (it holds CREDITOPS_HOME/{lock.file})")
        with database_lock(settings.resolved_database_url, lock):
            yield
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def database_lock(url: str, lock: Lock) -> Iterator[None]:
    """A PostgreSQL session advisory lock, so holders on different hosts sharing the database
    exclude each other too (SQLite is one host's file: the lock file covers it). The session
    is held idle, outside any transaction, and the lock goes with it if the process dies."""
    parsed = normalise_url(url, "the retraining lock", "lock")
    if parsed.get_backend_name() != "postgresql":
        yield
        return
    # One connection, held for the lock's lifetime; no tables are touched, so no schema check.
    engine = create_store_engine(
        parsed, timeout_s=10.0, busy_timeout_ms=5000, pool_size=1, max_overflow=0
    )
    try:
        with engine.connect() as conn:
            key = {"key": lock.key}

            def take() -> bool:
                held = conn.execute(sa.text("SELECT pg_try_advisory_lock(:key)"), key)
                taken = bool(held.scalar_one())
                conn.commit()
                return taken

            if not _retrying(take, lock.wait_s):
                raise lock.error(
                    f"{lock.busy} (it holds the advisory lock {lock.file!r} of the "
                    "decision-log database)"
                )
            try:
                yield
            finally:
                # Best effort: if the idle session was dropped, its lock went with it, and the
                # holder's own outcome (already audited) must not turn into a crash here.
                with contextlib.suppress(SQLAlchemyError):
                    conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), key)
                    conn.commit()
    finally:
        engine.dispose()
