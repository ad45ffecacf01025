"""`creditops serve --workers 2` as a user runs it: two processes share the port, every
decision is logged once, /metrics adds up both workers, and a promotion (then a rollback) made
through one worker in the middle of load fails no request and reaches every worker, each
response's version matching its log row. The same service on PostgreSQL, and a version that
fails its checks is refused while the old one keeps serving."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from creditops.config import Settings
from creditops.data.datasets import load_builtin
from creditops.registry import register_model
from helpers import ClientThreads, free_port

pytestmark = pytest.mark.slow

API_KEY = "workers-test-key-0123456789"
KEYED = {"X-API-Key": API_KEY}
POSTGRES_URL = os.environ.get("CREDITOPS_TEST_POSTGRES_URL")


def _applications(n: int = 200) -> list[dict]:
    frame, spec = load_builtin("credit_data")
    rows = frame.drop(columns=[spec.target, spec.id]).head(n)
    records = json.loads(rows.to_json(orient="records"))
    return [{k: v for k, v in r.items() if v is not None} for r in records]


def _start(home: Path, workers: int, **env_extra: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {
        **os.environ,
        "CREDITOPS_HOME": str(home),
        "CREDITOPS_API_KEY": API_KEY,
        "CREDITOPS_CHAMPION_POLL_SECONDS": "0.5",
        **env_extra,
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    command = [sys.executable, "-m", "creditops.cli", "serve", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--workers", str(workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 240
    ready_pids: set[int] = set()
    while time.time() < deadline:
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        try:
            # Fresh connections: SO_REUSEPORT spreads them, so every worker is asked.
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                ready_pids.add(httpx.get(f"{url}/health", timeout=2).json()["pid"])
                if len(ready_pids) >= workers:
                    return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    _stop(process)
    raise AssertionError(f"{workers} workers did not become ready (saw {ready_pids})")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    with contextlib.suppress(ProcessLookupError):  # any worker left behind by a failed test
        os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture
def home(trained, tmp_path) -> tuple[Path, str]:
    """A copy of the trained store with a second registered version (not yet champion)."""
    source, result = trained
    target = tmp_path / "home"
    shutil.copytree(source.home, target)
    (target / "predictions.db").unlink(missing_ok=True)
    settings = Settings(home=target)
    other = next(c for c in result.candidates if not c.champion)
    tags = {"parent_run_id": result.parent_run_id, "candidate": other.name, "seed": 42}
    version = register_model(other.model_uri, settings, alias=None, tags=tags)
    return target, version


class _Load(ClientThreads):
    """``clients`` threads posting applications until stopped; records every response (a
    failure in ``failures``)."""

    def __init__(self, url: str, clients: int) -> None:
        self.url = url
        self.failures: list[str] = []
        super().__init__(clients)

    @property
    def responses(self) -> list[dict]:
        return self.answers

    def client(self, n: int) -> None:
        applications = _applications()
        with httpx.Client(base_url=self.url, timeout=60, headers=KEYED) as client:
            i = 0
            while not self.stop.is_set():
                try:
                    response = client.post("/predict", json=applications[i % len(applications)])
                except httpx.HTTPError as error:
                    with self._lock:
                        self.failures.append(type(error).__name__)
                    return
                if response.status_code == 200:
                    self.record(response.json())
                else:
                    with self._lock:
                        self.failures.append(f"{response.status_code}: {response.text[:200]}")
                i += 1

    def versions_since(self, start: int) -> Counter:
        with self._lock:
            return Counter(r["model_version"] for r in self.responses[start:])

    def wait_until_all(self, version: str, *, at_least: int = 200, timeout: float = 60) -> None:
        """Until ``at_least`` consecutive responses came from ``version`` (every worker)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self._lock:
                tail = self.responses[-at_least:]
            if len(tail) == at_least and all(r["model_version"] == version for r in tail):
                return
            time.sleep(0.2)
        raise AssertionError(f"not every worker serves version {version}")


def _logged(home: Path) -> dict[str, tuple[str, float]]:
    with sqlite3.connect(home / "predictions.db") as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = connection.execute("SELECT id, model_version, probability FROM predictions")
        return {pid: (version, probability) for pid, version, probability in rows}


def _metric_sum(text: str, name: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    )


def test_two_workers_share_the_port_log_everything_and_sum_their_metrics(home, tmp_path):
    store, _ = home
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    process, url = _start(store, 2, PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
    try:
        pids = {httpx.get(f"{url}/health", timeout=5).json()["pid"] for _ in range(40)}
        with _Load(url, 16) as load:
            time.sleep(8)
        metrics = httpx.get(f"{url}/metrics", timeout=10).text
        # A supervisor killed outright takes its workers with it: nothing keeps the port.
        process.kill()
        process.wait(timeout=10)
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                httpx.get(f"{url}/health", timeout=1)
            except httpx.ConnectError:
                break
            except httpx.TransportError:
                # A worker part-way through its shutdown resets (or leaves unanswered) what its
                # listening socket had queued; only a refused connection means nothing holds
                # the port any more.
                pass
            time.sleep(0.5)
        else:
            raise AssertionError("workers still answer after their supervisor was killed")
    finally:
        _stop(process)
    assert len(pids) == 2
    assert process.pid not in pids
    assert load.failures == []
    ids = [r["prediction_id"] for r in load.responses]
    assert len(ids) > 200
    assert len(set(ids)) == len(ids)
    logged = _logged(store)
    assert set(logged) == set(ids)
    # Both workers' counts, added up by /metrics.
    assert _metric_sum(metrics, "creditops_predictions_total") == len(ids)
    assert _metric_sum(metrics, "creditops_model_info") >= 1


def test_promotion_and_rollback_under_load_fail_no_request(home):
    store, new = home
    process, url = _start(store, 2)
    headers = {"X-API-Key": API_KEY}
    try:
        with _Load(url, 8) as load:
            time.sleep(2)
            before = len(load.responses)
            promoted = httpx.post(
                f"{url}/models/{new}/promote?force=true", headers=headers, timeout=120
            )
            assert promoted.status_code == 200, promoted.text
            assert promoted.json()["previous"] == "1"
            assert promoted.json()["champion"] == new
            load.wait_until_all(new)  # the other worker followed the alias
            rolled = httpx.post(f"{url}/models/rollback", headers=headers, timeout=120)
            assert rolled.status_code == 200, rolled.text
            assert rolled.json()["champion"] == "1"
            load.wait_until_all("1")
    finally:
        _stop(process)
    assert load.failures == []
    seen = load.versions_since(0)
    assert set(seen) == {"1", new}, seen  # only ever the old or the new version
    assert load.versions_since(before)[new] > 0
    logged = _logged(store)
    assert len(logged) == len(load.responses)
    for response in load.responses:  # every answer is the logged decision of its version
        version, probability = logged[response["prediction_id"]]
        assert version == response["model_version"]
        assert probability == response["probability_of_default"]


def test_a_version_that_fails_its_checks_is_refused_and_the_old_one_serves(trained, tmp_path):
    from creditops.training.train import train

    source, _ = trained
    store = tmp_path / "home"
    shutil.copytree(source.home, store)
    settings = Settings(home=store)
    frame, spec = load_builtin("credit_data")
    # Trained without Price: clients of version 1 send a field it does not know.
    result = train(
        settings,
        frame=frame.drop(columns=["Price"]),
        spec=spec,
        dataset_name="credit_data",
        profile="fast",
        models=["logistic_regression"],
    )
    version = register_model(
        result.candidates[0].model_uri,
        settings,
        alias=None,
        tags={"parent_run_id": result.parent_run_id, "candidate": "logistic_regression"},
    )
    process, url = _start(store, 1)
    try:
        refused = httpx.post(
            f"{url}/models/{version}/promote?force=true",
            headers={"X-API-Key": API_KEY},
            timeout=120,
        )
        model = httpx.get(f"{url}/model", timeout=10, headers=KEYED).json()
        decided = httpx.post(f"{url}/predict", json=_applications(1)[0], timeout=10, headers=KEYED)
    finally:
        _stop(process)
    assert refused.status_code == 409
    assert "Price" in refused.json()["detail"] or "features" in refused.json()["detail"]
    assert model["model_version"] == "1"
    assert decided.status_code == 200
    assert decided.json()["model_version"] == "1"


def test_the_service_logs_to_postgresql(home):
    if not POSTGRES_URL:  # `make test` always starts one: its absence fails, never skips
        pytest.fail("set CREDITOPS_TEST_POSTGRES_URL (`make test` starts a local PostgreSQL)")
    store, _ = home
    schema = f"serve_{uuid.uuid4().hex[:12]}"
    admin_url = sa.make_url(POSTGRES_URL).set(drivername="postgresql+psycopg")
    admin = sa.create_engine(admin_url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    url = admin_url.update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        process, base = _start(
            store, 2, CREDITOPS_DATABASE_URL=url.render_as_string(hide_password=False)
        )
        try:
            with _Load(base, 8) as load:
                time.sleep(4)
            outcome = httpx.post(
                f"{base}/feedback",
                json={"prediction_id": load.responses[0]["prediction_id"], "outcome": "repaid"},
                timeout=10,
                headers=KEYED,
            )
        finally:
            _stop(process)
        assert load.failures == []
        assert len(load.responses) > 50
        assert outcome.status_code == 200, outcome.text
        with admin.connect() as conn:
            rows = conn.exec_driver_sql(
                f'SELECT id, model_version FROM "{schema}".predictions'
            ).all()
            outcomes = conn.exec_driver_sql(f'SELECT count(*) FROM "{schema}".outcomes').scalar()
        assert {row[0] for row in rows} == {r["prediction_id"] for r in load.responses}
        assert outcomes == 1
        assert not (store / "predictions.db").exists()  # nothing went to the SQLite default
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()
