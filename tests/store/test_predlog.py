"""The prediction log on real databases: SQLite files in tmp_path, and PostgreSQL when
``CREDITOPS_TEST_POSTGRES_URL`` names a server (each test then gets its own schema).

Child processes are fresh interpreters (``subprocess`` running ``sys.executable``, i.e. spawn,
never fork) that print each id only after ``write`` returned, so what the parent reads is
exactly what was acknowledged.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pydantic import ValidationError
from sqlalchemy.engine import make_url

from creditops.config import Settings
from creditops.exceptions import (
    ConfigurationError,
    DuplicatePredictionError,
    OutcomeConflictError,
    PredictionLogError,
    RecordRejectedError,
    UnknownPredictionError,
)
from creditops.store.predlog import PredictionLog, PredictionRecord

T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


# ---------------------------------------------------------------------------------------------
# Fixtures and helpers
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def log(db_url: str) -> Iterator[PredictionLog]:
    with PredictionLog(db_url) as opened:
        yield opened


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    return tmp_path / "home" / "predictions.db"


@pytest.fixture
def sqlite_log(sqlite_path: Path) -> Iterator[PredictionLog]:
    with PredictionLog.for_home(sqlite_path.parent) as opened:
        yield opened


def record(**overrides: Any) -> PredictionRecord:
    values: dict[str, Any] = {
        "model_name": "credit-default",
        "model_version": "3",
        "features": {"Income": 131.0, "Home": "rent", "Debt": None},
        "protected": {"Age": 41, "Marital": "married"},
        "imputed": ["Debt"],
        "probability": 0.25,
        "points": 612,
        "grade": "B",
        "decision": "approve",
        "reasons": [],
        "latency_ms": 0.8,
    }
    values.update(overrides)
    return PredictionRecord(**values)


def assert_identical(got: Any, expected: Any, where: str = "value") -> None:
    """Equal, of the same type, floats bit for bit (−0.0 ≠ 0.0), dict keys in the same order."""
    assert type(got) is type(expected), f"{where}: {type(got).__name__}"
    if isinstance(expected, float):
        assert got.hex() == expected.hex(), f"{where}: {got!r} != {expected!r}"
    elif isinstance(expected, dict):
        assert list(got) == list(expected), f"{where}: keys {list(got)}"
        for key in expected:
            assert_identical(got[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert len(got) == len(expected), f"{where}: length"
        for index, (a, b) in enumerate(zip(got, expected, strict=True)):
            assert_identical(a, b, f"{where}[{index}]")
    else:
        assert got == expected, f"{where}: {got!r} != {expected!r}"


def logged_ids(opened: PredictionLog) -> list[str]:
    return opened.window()["prediction_id"].tolist()


# A child process that writes decisions and reports each one on stdout: "begin IDS" before
# the write, "ack IDS" only after write()/write_many() returned. Arguments: URL, seconds to
# write (0: until killed), threads. It waits for a line on stdin before writing, so that
# several children start together.
CHILD = r"""
import sys, threading, time, uuid
from creditops.store.predlog import PredictionLog, PredictionRecord

url, seconds, threads = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
log = PredictionLog(url)
out = threading.Lock()

def emit(kind, ids):
    with out:
        sys.stdout.write(kind + " " + ",".join(ids) + "\n")
        sys.stdout.flush()

def make():
    return PredictionRecord(
        model_name="m", model_version="1", features={"Income": 100.0, "Home": "rent"},
        probability=0.5, points=600, decision="refer", latency_ms=1.0,
    )

emit("ready", [])
sys.stdin.readline()
deadline = time.monotonic() + seconds

def work(k):
    n = 0
    while seconds <= 0 or time.monotonic() < deadline:
        n += 1
        if k == 0 and n % 5 == 0:
            batch = [make() for _ in range(20)]
            ids = [str(r.prediction_id) for r in batch]
            emit("begin", ids)
            log.write_many(batch)
        else:
            rec = make()
            ids = [str(rec.prediction_id)]
            emit("begin", ids)
            log.write(rec)
        emit("ack", ids)

workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
for w in workers:
    w.start()
for w in workers:
    w.join()
emit("done", [])
"""


class Child:
    """A writer process and the lines it printed, read by a background thread."""

    def __init__(self, url: str, seconds: float, threads: int, stderr: Path) -> None:
        self._stderr = stderr.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-c", CHILD, url, str(seconds), str(threads)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self.stderr = stderr
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self.lines.append("<eof>")
            self._changed.notify_all()

    def wait_for(self, condition: Callable[[list[str]], bool], timeout: float = 60.0) -> None:
        with self._changed:
            ok = self._changed.wait_for(
                lambda: condition(self.lines) or "<eof>" in self.lines, timeout
            )
        assert ok, f"child timed out; stderr:\n{self.stderr.read_text()[-3000:]}"
        assert condition(self.lines), f"child stopped; stderr:\n{self.stderr.read_text()[-3000:]}"

    def go(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()

    def finish(self, timeout: float = 60.0) -> None:
        self.process.wait(timeout=timeout)
        self._reader.join(timeout=timeout)
        self._stderr.close()

    def groups(self, kind: str) -> list[list[str]]:
        return [line.split(" ", 1)[1].split(",") for line in self.lines if line.startswith(kind)]


def acknowledged(lines_groups: list[list[str]]) -> list[str]:
    return [key for group in lines_groups for key in group]


# ---------------------------------------------------------------------------------------------
# Writing and reading decisions
# ---------------------------------------------------------------------------------------------


def test_round_trip_preserves_every_field_exactly(log: PredictionLog) -> None:
    original = record(
        created_at=datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=5.5))),
        features={
            "Income": 0.1 + 0.2,
            "Tiny": 5e-324,
            "Huge": 1.7976931348623157e308,
            "Negative zero": -0.0,
            "Seniority": 12,
            "Home": "ünïcødé 信用 🏦 \"quoted\" \\ 'x'",
            "Job": None,
        },
        protected={"Age": 23, "Marital": "séparé", "Score": 1 / 3},
        imputed=["Job", "Price"],
        probability=0.1 + 0.7,
        points=-17,
        grade=None,
        decision="decline",
        reasons=[
            {
                "code": "R01",
                "text": "Débt too high ↑",
                "feature": "Debt",
                "contribution": 0.12345678901234568,
                "detail": {"values": [1, 2.5, None, "x", True], "nested": {"deep": [[-0.0]]}},
            },
            {"code": "R02", "text": "", "feature": "Home", "contribution": -1e-300},
        ],
        latency_ms=2.0 / 3.0,
    )
    log.write(original)
    got = log.get(original.prediction_id)
    assert got is not None
    assert got == original
    for field in PredictionRecord.model_fields:
        assert_identical(getattr(got, field), getattr(original, field), field)
    assert got.created_at.utcoffset() == timedelta(0)
    assert got.created_at == datetime(2025, 1, 1, 21, 34, 5, 678901, tzinfo=UTC)
    # the string form of the id works as well; an unknown id is None, a malformed one refused
    assert log.get(str(original.prediction_id)) == original
    assert log.get(uuid.uuid4()) is None
    with pytest.raises(ValueError, match=r"UUID"):
        log.get("not-a-uuid")


def test_write_many_is_atomic(log: PredictionLog) -> None:
    first = record()
    log.write(first)
    fresh = [record(), record()]
    clash = record(prediction_id=first.prediction_id, decision="decline")
    with pytest.raises(DuplicatePredictionError, match=r"already logged") as caught:
        log.write_many([*fresh, clash])
    assert caught.value.ids == [str(first.prediction_id)]
    assert log.count() == 1
    assert all(log.get(item.prediction_id) is None for item in fresh)
    assert log.get(first.prediction_id) == first  # the original was not touched

    repeated = record()
    with pytest.raises(DuplicatePredictionError, match=r"repeated"):
        log.write_many([repeated, record(), repeated])
    assert log.count() == 1

    log.write_many(fresh)
    log.write_many([])
    assert log.count() == 3
    assert sorted(logged_ids(log)) == sorted(str(item.prediction_id) for item in [first, *fresh])
    with pytest.raises(DuplicatePredictionError):
        log.write(first)
    assert log.count() == 3


def test_outcomes_are_idempotent_and_conflicts_refused(log: PredictionLog) -> None:
    a, b, c = record(), record(), record()
    log.write_many([a, b, c])
    observed = datetime(2025, 9, 1, 8, 0, tzinfo=UTC)

    assert log.record_outcome(a.prediction_id, 1, observed_at=observed) == "recorded"
    assert log.record_outcome(str(a.prediction_id), True) == "unchanged"
    stored = log.get_outcome(a.prediction_id)
    assert stored is not None
    assert stored["outcome"] == 1
    assert stored["observed_at"] == observed  # the first observation is kept
    with pytest.raises(OutcomeConflictError, match=r"already has outcome 1") as conflict:
        log.record_outcome(a.prediction_id, 0)
    assert (conflict.value.recorded, conflict.value.requested) == (1, 0)
    assert log.get_outcome(a.prediction_id)["outcome"] == 1  # type: ignore[index]

    unknown = uuid.uuid4()
    with pytest.raises(UnknownPredictionError, match=r"unknown prediction_id") as missing:
        log.record_outcome(unknown, 1)
    assert missing.value.ids == [str(unknown)]
    assert isinstance(missing.value, LookupError)
    with pytest.raises(ValueError, match=r"outcome must be"):
        log.record_outcome(b.prediction_id, 2)
    with pytest.raises(ValueError, match=r"time zone"):
        log.record_outcome(b.prediction_id, 0, observed_at=datetime(2025, 1, 1))

    # batches are all or nothing: an unknown id, or a conflict at the end, records nothing
    with pytest.raises(UnknownPredictionError):
        log.record_outcomes([(b.prediction_id, 0), (unknown, 1)])
    with pytest.raises(OutcomeConflictError):
        log.record_outcomes([(b.prediction_id, 0), (c.prediction_id, 1), (a.prediction_id, 0)])
    with pytest.raises(OutcomeConflictError):
        log.record_outcomes([(b.prediction_id, 0), (b.prediction_id, 1)])
    assert log.get_outcome(b.prediction_id) is None
    assert log.get_outcome(c.prediction_id) is None

    statuses = log.record_outcomes(
        [(b.prediction_id, 0), (a.prediction_id, 1), (c.prediction_id, False, observed),
         (b.prediction_id, 0)]
    )  # fmt: skip
    assert statuses == ["recorded", "unchanged", "recorded", "unchanged"]
    assert log.record_outcomes([]) == []
    frame = log.window().set_index("prediction_id")
    assert frame.loc[str(b.prediction_id), "outcome"] == 0
    assert frame.loc[str(c.prediction_id), "observed_at"] == observed


def test_concurrent_feedback_records_each_outcome_once(log: PredictionLog) -> None:
    items = [record() for _ in range(15)]
    log.write_many(items)
    results: dict[int, list[str]] = {}
    failures: list[BaseException] = []
    start = threading.Barrier(8)

    def work(k: int) -> None:
        start.wait()
        statuses = []
        for item in items:
            try:
                statuses.append(log.record_outcome(item.prediction_id, k % 2))
            except OutcomeConflictError:
                statuses.append("conflict")
            except BaseException as exc:
                failures.append(exc)
                return
        results[k] = statuses

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures[:3]
    for index, item in enumerate(items):
        stored = log.get_outcome(item.prediction_id)
        assert stored is not None
        winner = stored["outcome"]
        seen = Counter((k % 2 == winner, results[k][index]) for k in range(8))
        # one writer recorded it; the others who agreed saw "unchanged", the rest a conflict
        assert seen == Counter(
            {(True, "recorded"): 1, (True, "unchanged"): 3, (False, "conflict"): 4}
        )


def test_sixteen_threads_every_acknowledged_write_present_once(log: PredictionLog) -> None:
    existing = record()
    log.write(existing)
    acknowledged_ids: list[list[str]] = [[] for _ in range(16)]
    failures: list[BaseException] = []
    duplicates_refused = []
    deadline = time.monotonic() + 2.0

    def work(k: int) -> None:
        try:
            n = 0
            while time.monotonic() < deadline:
                n += 1
                if k == 0 and n % 7 == 0:
                    # a duplicate among concurrent writers fails alone; the others commit
                    try:
                        log.write(record(prediction_id=existing.prediction_id))
                    except DuplicatePredictionError:
                        duplicates_refused.append(n)
                    continue
                if k == 1 and n % 3 == 0:
                    batch = [record() for _ in range(5)]
                    log.write_many(batch)
                    acknowledged_ids[k].extend(str(item.prediction_id) for item in batch)
                    continue
                item = record(probability=(k * 1000 + n) / 1e9)
                log.write(item)
                acknowledged_ids[k].append(str(item.prediction_id))
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures[:3]
    assert all(ids for ids in acknowledged_ids), [len(ids) for ids in acknowledged_ids]
    assert duplicates_refused
    everything = [str(existing.prediction_id), *acknowledged(acknowledged_ids)]
    assert len(set(everything)) == len(everything)
    assert log.count() == len(everything)
    stored = logged_ids(log)
    assert len(stored) == len(set(stored))
    assert set(stored) == set(everything)


def test_processes_share_one_database(db_url: str, tmp_path: Path) -> None:
    PredictionLog(db_url).close()  # the schema exists before the children race
    children = [Child(db_url, 1.5, 2, tmp_path / f"child{i}.err") for i in range(3)]
    for child in children:
        child.wait_for(lambda lines: "ready " in lines)
    for child in children:
        child.go()
    for child in children:
        child.finish()
        assert child.process.returncode == 0, child.stderr.read_text()[-3000:]
    acks = [acknowledged(child.groups("ack ")) for child in children]
    assert all(acks), [len(ids) for ids in acks]  # every child wrote while the others did
    everything = [key for ids in acks for key in ids]
    with PredictionLog(db_url) as reopened:
        stored = logged_ids(reopened)
        assert reopened.count() == len(everything)
    assert len(set(everything)) == len(everything)
    assert len(stored) == len(set(stored))
    assert set(stored) == set(everything)


def test_acknowledged_writes_survive_sigkill(db_url: str, tmp_path: Path) -> None:
    PredictionLog(db_url).close()
    child = Child(db_url, 0, 3, tmp_path / "child.err")
    child.wait_for(lambda lines: "ready " in lines)
    child.go()

    def enough(lines: list[str]) -> bool:
        acks = [line for line in lines if line.startswith("ack ")]
        return len(acks) >= 150 and any("," in line for line in acks)

    child.wait_for(enough)
    os.kill(child.process.pid, signal.SIGKILL)  # mid-stream: it never stops writing by itself
    child.finish()
    assert child.process.returncode == -signal.SIGKILL

    acked = acknowledged(child.groups("ack "))
    begun = child.groups("begin ")
    if db_url.startswith("sqlite"):
        path = Path(make_url(db_url).database or "")
        assert Path(f"{path}-wal").exists()  # a crash left the WAL behind: recovery is tested
    with PredictionLog(db_url) as reopened:
        stored = set(logged_ids(reopened))
        assert reopened.count() == len(stored)
        assert reopened.is_writable() == (True, "ok")
    assert set(acked) <= stored, f"lost {len(set(acked) - stored)} acknowledged decisions"
    # each write, acknowledged or cut short, is all there or not at all; nothing else appears
    for group in begun:
        present = [key in stored for key in group]
        assert all(present) or not any(present), group
    assert stored <= set(acknowledged(begun))
    if db_url.startswith("sqlite"):
        with sqlite3.connect(path) as raw:
            assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


# ---------------------------------------------------------------------------------------------
# Monitoring windows and exports
# ---------------------------------------------------------------------------------------------


def _history(log: PredictionLog) -> list[PredictionRecord]:
    """Ten decisions a minute apart, written out of order; even ones get an outcome."""
    items = [
        record(
            created_at=T0 + timedelta(minutes=i),
            model_version="3" if i < 8 else "4",
            features={
                "Income": 1000.0 * i + 0.1,
                "Home": "rent" if i % 2 else "owner",
                "points": i,
                "Debt": None if i == 4 else float(i),
            },
            protected={"Age": 20 + i, "Income": "high" if i > 5 else "low"},
            imputed=["Debt"] if i == 4 else [],
            probability=i / 10 + 1e-12,
            points=600 + i,
            decision="decline" if i > 6 else "approve",
            reasons=[{"code": f"R0{i}", "contribution": i / 3}] if i > 6 else [],
        )
        for i in range(10)
    ]
    order = [3, 9, 0, 7, 1, 8, 2, 6, 4, 5]
    for i in order[:5]:
        log.write(items[i])
    log.write_many([items[i] for i in order[5:]])
    log.record_outcomes(
        [(items[i].prediction_id, i % 4 == 0, T0 + timedelta(days=90 + i)) for i in (0, 2, 4, 6, 8)]
    )
    return items


def test_window_filters_by_time_and_count_and_flattens(log: PredictionLog) -> None:
    items = _history(log)
    ids = [str(item.prediction_id) for item in items]

    frame = log.window()
    assert frame["prediction_id"].tolist() == ids  # oldest first, whatever the write order
    assert str(frame["created_at"].dt.tz) == "UTC"
    assert frame["created_at"].tolist() == [item.created_at for item in items]
    assert frame.attrs["feature_columns"] == {
        "Income": "Income", "Home": "Home", "points": "feature.points", "Debt": "Debt"
    }  # fmt: skip
    assert frame.attrs["protected_columns"] == {"Age": "Age", "Income": "protected.Income"}
    assert frame["Income"].tolist() == [1000.0 * i + 0.1 for i in range(10)]
    assert frame["feature.points"].tolist() == list(range(10))
    assert frame["points"].tolist() == [600 + i for i in range(10)]
    assert frame["protected.Income"].tolist() == ["low"] * 6 + ["high"] * 4
    assert frame["Age"].tolist() == [20 + i for i in range(10)]
    assert frame["Debt"].isna().tolist() == [i == 4 for i in range(10)]
    assert [p.hex() for p in frame["probability"]] == [(i / 10 + 1e-12).hex() for i in range(10)]
    assert frame["imputed"].tolist()[4] == ["Debt"]
    assert frame["reasons"].tolist()[9] == [{"code": "R09", "contribution": 3.0}]
    assert str(frame["outcome"].dtype) == "Int64"
    assert frame["outcome"].tolist()[:5] == [1, pd.NA, 0, pd.NA, 1]
    assert frame["observed_at"].iloc[2] == T0 + timedelta(days=92)
    assert frame["observed_at"].isna().tolist() == [i % 2 == 1 for i in range(10)]

    between = log.window(since=T0 + timedelta(minutes=3), until=T0 + timedelta(minutes=7))
    assert between["prediction_id"].tolist() == ids[3:7]  # since inclusive, until exclusive
    assert log.window(last_n=3)["prediction_id"].tolist() == ids[7:]
    assert (
        log.window(until=T0 + timedelta(minutes=5), last_n=2)["prediction_id"].tolist()
        == (ids[3:5])
    )
    labelled = log.window(with_outcomes_only=True)
    assert labelled["prediction_id"].tolist() == ids[::2]
    assert labelled["outcome"].tolist() == [1, 0, 1, 0, 1]
    assert log.window(model_version="4")["prediction_id"].tolist() == ids[8:]
    # an aware bound in another zone means the same instant
    local = (T0 + timedelta(minutes=8)).astimezone(timezone(timedelta(hours=-7)))
    assert log.window(since=local)["prediction_id"].tolist() == ids[8:]

    empty = log.window(since=T0 + timedelta(days=1))
    assert len(empty) == 0
    assert {"prediction_id", "created_at", "probability", "outcome"} <= set(empty.columns)
    assert log.window(last_n=0).empty
    with pytest.raises(ValueError, match=r"time zone"):
        log.window(since=datetime(2025, 1, 1))


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_round_trips_rows_with_outcomes(
    log: PredictionLog, tmp_path: Path, fmt: str
) -> None:
    items = _history(log)
    path = tmp_path / f"export.{fmt}"
    assert log.export(path) == 10
    if fmt == "csv":
        back = pd.read_csv(path)
        back["created_at"] = pd.to_datetime(back["created_at"], utc=True)
    else:
        back = pd.read_parquet(path)
    assert back["prediction_id"].tolist() == [str(item.prediction_id) for item in items]
    assert back["created_at"].tolist() == [item.created_at for item in items]
    assert [p.hex() for p in back["probability"]] == [item.probability.hex() for item in items]
    assert back["Income"].tolist() == [item.features["Income"] for item in items]
    assert back["Home"].tolist() == [item.features["Home"] for item in items]
    assert back["decision"].tolist() == [item.decision for item in items]
    assert back["outcome"].astype("Int64").tolist()[:5] == [1, pd.NA, 0, pd.NA, 1]
    assert [json.loads(text) for text in back["reasons"]] == [item.reasons for item in items]
    assert [json.loads(text) for text in back["imputed"]] == [item.imputed for item in items]
    assert list(tmp_path.glob(".*.tmp")) == []

    assert log.export(tmp_path / "labelled.data", fmt=fmt) == 10  # fmt overrides the suffix
    with pytest.raises(ValueError, match=r"cannot tell the format"):
        log.export(tmp_path / "export.txt")
    assert log.export(path, since=T0 + timedelta(minutes=8)) == 2  # replaces the old file


# ---------------------------------------------------------------------------------------------
# Durability settings, readiness and failures
# ---------------------------------------------------------------------------------------------


def test_sqlite_runs_in_wal_with_full_sync(sqlite_log: PredictionLog, sqlite_path: Path) -> None:
    sqlite_log.write(record())
    info = sqlite_log.describe()
    assert info["backend"] == "sqlite"
    assert (info["journal_mode"], info["synchronous"]) == ("wal", "FULL")
    assert info["busy_timeout_ms"] == 5000
    assert info["foreign_keys"] is True
    with sqlite3.connect(sqlite_path) as raw:  # WAL is a property of the file itself
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_is_writable_on_a_healthy_log(log: PredictionLog) -> None:
    assert log.is_writable() == (True, "ok")
    assert log.count() == 0  # the probe row was rolled back


def test_read_only_database_is_not_writable(sqlite_log: PredictionLog, sqlite_path: Path) -> None:
    # chmod cannot make a file read-only for root (which bypasses permission bits, and these
    # tests may run as root in a container), so the database is opened read-only instead.
    kept = record()
    sqlite_log.write(kept)
    sqlite_log.close()
    read_only = PredictionLog(f"sqlite:///file:{sqlite_path}?mode=ro&uri=true")
    try:
        writable, reason = read_only.is_writable()
        assert writable is False
        assert "readonly" in reason
        assert read_only.get(kept.prediction_id) == kept  # reads still work
        with pytest.raises(PredictionLogError, match=r"readonly"):
            read_only.write(record())
        assert read_only.count() == 1
    finally:
        read_only.close()


def test_removed_or_replaced_file_is_not_writable(
    sqlite_log: PredictionLog, sqlite_path: Path
) -> None:
    sqlite_log.write(record())
    assert sqlite_log.is_writable() == (True, "ok")
    moved = sqlite_path.with_name("moved.db")
    sqlite_path.rename(moved)
    writable, reason = sqlite_log.is_writable()
    assert (writable, "missing" in reason) == (False, True)
    sqlite_path.write_bytes(moved.read_bytes())  # a different file at the same path
    writable, reason = sqlite_log.is_writable()
    assert (writable, "replaced" in reason) == (False, True)


def test_unusable_location_fails_at_start(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    with pytest.raises(PredictionLogError, match=r"cannot create"):
        PredictionLog.for_home(blocker / "home")
    with pytest.raises(PredictionLogError, match=r"cannot open"):
        PredictionLog(f"sqlite:///{blocker}/predictions.db")


def test_a_write_waits_for_another_writer_then_commits(
    sqlite_log: PredictionLog, sqlite_path: Path
) -> None:
    sqlite_log.write(record())
    # busy_timeout kept short so that the retry loop, not SQLite's handler, does the waiting
    patient = PredictionLog(f"sqlite:///{sqlite_path}", busy_timeout_ms=20, timeout_s=10)
    holder = sqlite3.connect(sqlite_path, isolation_level=None, check_same_thread=False)
    try:
        holder.execute("BEGIN IMMEDIATE")
        assert patient.is_writable(timeout_s=0.1)[0] is False
        threading.Timer(0.5, holder.execute, args=("COMMIT",)).start()
        started = time.monotonic()
        item = record()
        patient.write(item)
        assert time.monotonic() - started >= 0.4
        assert patient.get(item.prediction_id) == item
        assert patient.is_writable() == (True, "ok")
    finally:
        patient.close()
        holder.close()


def test_a_write_that_cannot_get_the_lock_in_time_raises(
    sqlite_log: PredictionLog, sqlite_path: Path
) -> None:
    sqlite_log.write(record())
    impatient = PredictionLog(f"sqlite:///{sqlite_path}", busy_timeout_ms=20, timeout_s=0.3)
    holder = sqlite3.connect(sqlite_path, isolation_level=None)
    item = record()
    try:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(PredictionLogError, match=r"locked"):
            impatient.write(item)
        holder.execute("COMMIT")
        assert impatient.get(item.prediction_id) is None  # never pretended
        impatient.write(item)  # and the log works again once the lock is free
        assert impatient.get(item.prediction_id) == item
    finally:
        impatient.close()
        holder.close()


def test_unserialisable_record_is_rejected_alone(log: PredictionLog) -> None:
    bad = record(features={"Income": float("nan")})
    with pytest.raises(RecordRejectedError, match=r"refused"):
        log.write(bad)
    good = record()
    log.write(good)
    assert logged_ids(log) == [str(good.prediction_id)]


def test_records_are_validated() -> None:
    with pytest.raises(ValidationError, match=r"probability"):
        record(probability=float("nan"))
    with pytest.raises(ValidationError, match=r"probability"):
        record(probability=1.5)
    with pytest.raises(ValidationError, match=r"timezone"):
        record(created_at=datetime(2025, 1, 1))
    with pytest.raises(ValidationError, match=r"decision"):
        record(decision="maybe")
    with pytest.raises(ValidationError, match=r"extra"):
        PredictionRecord(**record().model_dump(), outcome=1)


def test_urls_are_checked_and_passwords_hidden(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"in-memory"):
        PredictionLog("sqlite://")
    with pytest.raises(ConfigurationError, match=r"in-memory"):
        PredictionLog("sqlite:///:memory:")
    with pytest.raises(ConfigurationError, match=r"unsupported"):
        PredictionLog("mysql://user:pw@localhost/db")
    opened = PredictionLog.for_home(tmp_path / "home")
    opened.close()
    assert "predictions.db" in opened.url
    with pytest.raises(PredictionLogError, match=r"closed"):
        opened.write(record())
    # nothing is opened for a server URL until it is used, and the password never shows
    lazy = PredictionLog("postgresql://user:s3cret@127.0.0.1:1/db", create=False)
    assert "s3cret" not in lazy.url
    assert "s3cret" not in repr(lazy)
    writable, reason = lazy.is_writable()
    assert writable is False
    assert "s3cret" not in reason
    lazy.close()


def test_from_settings_uses_home_unless_a_url_is_set(tmp_path: Path) -> None:
    with PredictionLog.from_settings(Settings(home=tmp_path / "h")) as default:
        default.write(record())
    assert (tmp_path / "h" / "predictions.db").is_file()
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    with PredictionLog.from_settings(Settings(home=tmp_path / "h", database_url=url)) as other:
        assert other.count() == 0
    assert (tmp_path / "elsewhere.db").is_file()


def test_bulk_writes_store_what_an_insert_stores(log: PredictionLog, db_url: str) -> None:
    """The log's writes (COPY on PostgreSQL, one executemany on SQLite) leave the same stored
    text as SQLAlchemy's insert(): dates, JSON and numbers compare and sort alike."""
    import sqlalchemy as sa

    from creditops.store.chain import CHAIN_COLUMNS
    from creditops.store.database import dumps_json
    from creditops.store.schema import predictions

    logged = record(features={"Income": 0.1 + 0.2, "Home": "ünï 🏦", "Job": None})
    log.write(logged)
    inserted = record(prediction_id=uuid.uuid4(), features=logged.features)
    row = {**_stored_row(logged), "id": str(inserted.prediction_id)}
    engine = sa.create_engine(make_url(db_url), json_serializer=dumps_json)
    try:
        with engine.begin() as conn:
            conn.execute(predictions.insert(), [{**row, "created_at": logged.created_at}])
        with engine.connect() as conn:
            # The chain's columns differ by design (insert() wrote no chain): audit verify's.
            as_text = [
                sa.cast(column, sa.Text)
                for column in predictions.columns
                if column.name not in CHAIN_COLUMNS
            ]
            stored = conn.execute(sa.select(*as_text).order_by(predictions.c.id)).all()
    finally:
        engine.dispose()
    by_id = {values[0]: values[1:] for values in stored}
    assert by_id[str(logged.prediction_id)] == by_id[str(inserted.prediction_id)]


def _stored_row(item: PredictionRecord) -> dict[str, Any]:
    dumped = item.model_dump()
    return {
        "id": str(item.prediction_id),
        "created_at": item.created_at,
        **{k: dumped[k] for k in ("model_name", "model_version", "features", "protected")},
        **{k: dumped[k] for k in ("imputed", "probability", "points", "grade", "decision")},
        "reasons": dumped["reasons"],
        "latency_ms": item.latency_ms,
    }
