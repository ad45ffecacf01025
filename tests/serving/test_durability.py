"""Nothing acknowledged is ever lost: a real `creditops serve` process under concurrent load,
and the same process killed with SIGKILL in the middle of it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from creditops.data.datasets import load_builtin
from helpers import free_port

pytestmark = pytest.mark.slow

# The soak is 60 s; CREDITOPS_SOAK_SECONDS shortens it for a quick local run.
SOAK_SECONDS = float(os.environ.get("CREDITOPS_SOAK_SECONDS", "20"))
CLIENTS = 16


API_KEY = "durability-test-key-0123456789"


def _applications(n: int = 200) -> list[dict]:
    frame, spec = load_builtin("credit_data")
    rows = frame.drop(columns=[spec.target, spec.id]).head(n)
    records = json.loads(rows.to_json(orient="records"))
    return [{k: v for k, v in r.items() if v is not None} for r in records]


def _start(home: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "CREDITOPS_HOME": str(home), "CREDITOPS_API_KEY": API_KEY}
    env.pop("MLFLOW_TRACKING_URI", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "creditops.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while time.time() < deadline:
        assert process.poll() is None, "server exited during start-up"
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    process.kill()
    raise AssertionError("server did not become ready")


def _load(url: str, stop: threading.Event, acknowledged: list[str], errors: list[str]) -> None:
    applications = _applications()
    with httpx.Client(base_url=url, timeout=30, headers={"X-API-Key": API_KEY}) as client:
        i = 0
        while not stop.is_set():
            try:
                response = client.post("/predict", json=applications[i % len(applications)])
            except httpx.HTTPError as error:  # the server was killed: nothing was acknowledged
                errors.append(type(error).__name__)
                return
            if response.status_code == 200:
                acknowledged.append(response.json()["prediction_id"])
            else:
                errors.append(f"{response.status_code}: {response.text[:200]}")
            i += 1


def _logged_ids(home: Path) -> Counter:
    with sqlite3.connect(home / "predictions.db") as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return Counter(row[0] for row in connection.execute("SELECT id FROM predictions"))


@pytest.fixture
def home(trained, tmp_path) -> Path:
    source, _ = trained
    target = tmp_path / "home"
    shutil.copytree(source.home, target)
    (target / "predictions.db").unlink(missing_ok=True)
    return target


def _run_load(url: str, seconds: float, clients: int, kill=None) -> tuple[list[str], list[str]]:
    stop = threading.Event()
    acknowledged: list[str] = []
    errors: list[str] = []
    threads = [
        threading.Thread(target=_load, args=(url, stop, acknowledged, errors))
        for _ in range(clients)
    ]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    if kill is not None:
        kill()
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    return acknowledged, errors


def test_every_acknowledged_decision_is_logged_exactly_once_under_load(home):
    process, url = _start(home)
    try:
        acknowledged, errors = _run_load(url, SOAK_SECONDS, CLIENTS)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    assert errors == []
    assert len(acknowledged) > 100
    logged = _logged_ids(home)
    assert len(set(acknowledged)) == len(acknowledged)  # ids are unique
    assert all(logged[pid] == 1 for pid in acknowledged)
    assert sum(logged.values()) == len(acknowledged)  # and nothing unacknowledged appeared


def test_sigkill_during_load_loses_no_acknowledged_decision(home):
    process, url = _start(home)
    acknowledged, errors = _run_load(url, 5.0, 8, kill=lambda: os.kill(process.pid, signal.SIGKILL))
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert len(acknowledged) > 20
    # Before the kill every request succeeded; after it, only transport errors (no answers).
    assert all(not error[:3].isdigit() for error in errors), errors
    logged = _logged_ids(home)
    missing = [pid for pid in acknowledged if logged[pid] != 1]
    assert missing == []
    # A row may exist whose response never arrived (killed between commit and reply), never
    # the other way round.
    assert sum(logged.values()) >= len(acknowledged)
