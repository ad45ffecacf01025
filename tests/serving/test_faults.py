"""Faults with real components, under load: a real `creditops serve` process answering clients
while its database stops, its disk fills or its model registry dies, and recovering by itself.

Each fault test prints (``pytest -s``) what the clients saw before, during and after the
fault (requests sent, acknowledged, acknowledged and logged exactly once, 503s, other 5xx,
connection errors) and asserts the promise the service makes: a decision is acknowledged only
once it is logged (so a fault in the log costs 503s, never a lost decision, never a 500), and
the service recovers when the fault ends, without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
import sqlalchemy as sa

from creditops.config import Settings
from creditops.exceptions import RegistryUnavailableError
from creditops.registry.client import MLFLOW_HTTP_LIMITS, bound_registry_requests, get_version
from creditops.serving import app as app_module
from creditops.serving.access import CACHE_SECONDS
from creditops.serving.app import create_app, next_check_in
from creditops.serving.prometheus import ServiceMetrics
from creditops.store import predlog
from creditops.store.keys import KeyStore
from creditops.store.predlog import MIN_FREE_BYTES, PredictionLog
from helpers import (
    ClientThreads,
    applications,
    free_port,
    private_postgres,
    served_process,
    start_server,
    stop_process_group,
    tool,
)

API_KEY = "faults-test-key-0123456789"
CLIENTS = 6
BIN = Path(sys.executable).parent
# Each fault test's limit (they take 10 to 45 s); func_only: the session's shared training, set
# up by whichever test asks first, is not the test.
bounded = pytest.mark.timeout(120, func_only=True)


# ------------------------------------------------------------------------------ the load


@dataclass(frozen=True)
class Answer:
    sent: float  # monotonic
    status: int | str  # the HTTP status, or "connection" when no answer came
    prediction_id: str | None = None
    detail: str = ""  # a refusal's reason


class Load(ClientThreads):
    """Clients posting decisions on keep-alive connections until stopped, each pausing
    ``pause_s`` between requests, the clients taking ``keys`` in turn; a connection error is
    recorded and the client tries again after a short pause."""

    def __init__(
        self,
        url: str,
        clients: int = CLIENTS,
        pause_s: float = 0.0,
        keys: tuple[str, ...] = (API_KEY,),
    ) -> None:
        self.url, self.pause_s, self.keys = url, pause_s, keys
        super().__init__(clients)

    def client(self, n: int) -> None:
        bodies = applications(50)
        key = self.keys[n % len(self.keys)]
        with httpx.Client(base_url=self.url, timeout=30, headers={"X-API-Key": key}) as client:
            i = 0
            while not self.stop.is_set():
                sent = time.monotonic()
                try:
                    response = client.post("/predict", json=bodies[i % len(bodies)])
                except httpx.TransportError:
                    self.record(Answer(sent, "connection"))
                    time.sleep(0.05)
                    continue
                body = response.json()
                if response.status_code == 200:
                    self.record(Answer(sent, 200, body["prediction_id"]))
                else:
                    self.record(Answer(sent, response.status_code, detail=body.get("detail", "")))
                i += 1
                if self.pause_s:
                    time.sleep(self.pause_s)

    def since(self, moment: float) -> list[Answer]:
        return [a for a in self.recorded() if a.sent >= moment]

    def wait_for(self, status: int | str, after: float, timeout: float) -> float:
        """When the first answer with ``status`` to a request sent after ``after`` came; fails
        after ``timeout`` seconds without one."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for answer in self.since(after):
                if answer.status == status:
                    return answer.sent
            time.sleep(0.05)
        pytest.fail(
            f"no {status} within {timeout:g} s (saw {Counter(a.status for a in self.since(after))})"
        )


def _row(label: str, answers: list[Answer], logged: Counter) -> str:
    statuses = Counter(a.status for a in answers)
    acknowledged = [a.prediction_id for a in answers if a.status == 200]
    once = sum(logged[pid] == 1 for pid in acknowledged)
    other_5xx = sum(n for s, n in statuses.items() if isinstance(s, int) and s >= 500 and s != 503)
    return (
        f"{label:<14} {len(answers):>6} {len(acknowledged):>6} {once:>7} {statuses[503]:>6} "
        f"{other_5xx:>10} {statuses['connection']:>12}"
    )


def report(
    title: str, answers: list[Answer], phases: list[tuple[str, float]], logged: Counter
) -> dict[str, list[Answer]]:
    """Print the table of what the clients saw in each phase (a label and the moment it
    began, in order), and assert what must hold whatever the fault: every acknowledged
    decision logged exactly once, no 5xx but 503, decisions again in the last phase. Returns
    the answers of each phase."""
    bounds = [*(moment for _, moment in phases[1:]), float("inf")]
    split = {
        label: [a for a in answers if (i == 0 or moment <= a.sent) and a.sent < bounds[i]]
        for i, (label, moment) in enumerate(phases)
    }
    rows = [_row(label, part, logged) for label, part in split.items()]
    refusals = Counter(a.detail for a in answers if a.status == 503)
    print(
        f"\n{title}\n"
        f"{'phase':<14} {'sent':>6} {'200':>6} {'logged':>7} {'503':>6} {'other 5xx':>10} "
        f"{'conn errors':>12}\n" + "\n".join([*rows, _row("total", answers, logged)])
    )
    for detail, n in refusals.most_common(2):
        print(f"503 ({n}x): {detail[:200]}")
    acknowledged = [a.prediction_id for a in answers if a.status == 200]
    assert len(set(acknowledged)) == len(acknowledged)
    missing = [pid for pid in acknowledged if logged[pid] != 1]
    assert missing == [], f"{len(missing)} acknowledged decisions not logged exactly once"
    other = Counter(a.status for a in answers if a.status not in (200, 503, "connection"))
    assert other == Counter(), other  # no 500, no 4xx: answers or honest refusals only
    assert any(a.status == 200 for a in split[phases[-1][0]]), "no decision after the fault"
    return split


@contextmanager
def serving(home: Path, **env: str) -> Iterator[str]:
    """`creditops serve` (one worker) on ``home``, stopped (its process group) afterwards."""
    process, url = start_server(home, API_KEY, CREDITOPS_DRAIN_SECONDS="0", **env)
    try:
        yield url
    finally:
        stop_process_group(process)


def _ready(url: str) -> tuple[int, str]:
    response = httpx.get(f"{url}/ready", timeout=10)
    return response.status_code, response.json().get("detail", "")


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> float:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:g} s")
        time.sleep(0.1)
    return time.monotonic()


# --------------------------------------------------------------------- PostgreSQL stopped


def _logged_postgres(url: str) -> Counter:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return Counter(conn.exec_driver_sql("SELECT id FROM predictions").scalars())
    finally:
        engine.dispose()


@pytest.mark.slow
@bounded
def test_postgres_stopped_and_restarted_under_load(trained_store: Settings) -> None:
    """A clean stop (clients disconnected) and then a crash (every server process killed,
    crash recovery at the start): 503s while it is down, /ready saying why, and decisions
    again once it is back, with the pool reconnecting by itself."""
    with private_postgres() as postgres:
        with serving(trained_store.home, CREDITOPS_DATABASE_URL=postgres.url) as url:
            # Half the clients hold a key from the key store, read from the same database
            # (cached for CACHE_SECONDS): the outages outlast the cache, so its reads fail too.
            with KeyStore(postgres.url) as store:
                stored = store.create("faults-client", ["decide"], created_by="test").key
            with Load(url, keys=(API_KEY, stored)) as load:
                phases = [("before", time.monotonic())]
                time.sleep(1.5)
                reasons, recovery = [], []
                for mode in ("fast", "immediate"):
                    stopped = time.monotonic()
                    postgres.stop(mode)
                    phases.append((f"down {mode}", stopped))
                    load.wait_for(503, stopped, timeout=10)
                    _wait(lambda: _ready(url)[0] == 503, 10, "/ready 503 while PostgreSQL is down")
                    reasons.append(_ready(url)[1])
                    time.sleep(max(0.0, stopped + CACHE_SECONDS + 1.0 - time.monotonic()))
                    postgres.start()
                    restarted = time.monotonic()
                    phases.append(("back" if mode == "fast" else "after", restarted))
                    recovery.append(load.wait_for(200, restarted, timeout=20) - restarted)
                    _wait(lambda: _ready(url)[0] == 200, 20, "/ready 200 once PostgreSQL is back")
                    time.sleep(1.5)
        logged = _logged_postgres(postgres.url)
    split = report(
        "PostgreSQL stopped (-m fast), restarted, then killed (-m immediate), restarted; "
        f"{CLIENTS} clients (half with the bootstrap key, half with a stored key); decisions "
        f"again {recovery[0]:.2f} s and {recovery[1]:.2f} s after each restart\n"
        + "\n".join(f"/ready said: {reason[:200]}" for reason in reasons),
        load.answers,
        phases,
        logged,
    )
    for mode in ("fast", "immediate"):
        assert any(a.status == 503 for a in split[f"down {mode}"])
    for reason in reasons:
        assert "decision log not writable" in reason, reason


# ------------------------------------------------------------------------ the disk fills up


@contextmanager
def small_filesystem(directory: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on ``directory`` (the tests run as root), unmounted
    afterwards."""
    directory.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs (the fault tests run as root): {mounted.stderr}")
    try:
        yield directory
    finally:
        if subprocess.run(["umount", str(directory)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(directory)], check=False)


def fill(path: Path) -> int:
    """Write ``path`` until the filesystem is full; its size in bytes."""
    chunk = b"\0" * (1 << 20)
    written = 0
    with path.open("wb", buffering=0) as handle:
        while True:
            try:
                written += handle.write(chunk)
            except OSError as error:
                if error.errno != errno.ENOSPC:
                    raise
                chunk = chunk[: len(chunk) // 2]
                if len(chunk) < 512:
                    return written


def _logged_sqlite(path: Path) -> Counter:
    with contextlib.closing(sqlite3.connect(path)) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return Counter(row[0] for row in connection.execute("SELECT id FROM predictions"))


@pytest.mark.slow
@bounded
def test_sqlite_disk_full_under_load(trained_store: Settings, tmp_path: Path) -> None:
    """The decision log alone on a small filesystem that fills up: 503s and /ready saying
    why while it is full, an intact database, and decisions again once space returns."""
    with small_filesystem(tmp_path / "small", "64m") as disk:
        database = disk / "predictions.db"
        filler = disk / "filler"
        url_of_log = f"sqlite:///{database}"
        with (
            serving(trained_store.home, CREDITOPS_DATABASE_URL=url_of_log) as url,
            Load(url) as load,
        ):
            phases = [("before", time.monotonic())]
            time.sleep(1.5)
            full = time.monotonic()
            filled = fill(filler)
            phases.append(("disk full", full))
            load.wait_for(503, full, timeout=15)
            _wait(lambda: _ready(url)[0] == 503, 10, "/ready 503 while the disk is full")
            reason = _ready(url)[1]
            time.sleep(1.0)
            filler.unlink()
            freed = time.monotonic()
            phases.append(("space back", freed))
            recovered = load.wait_for(200, freed, timeout=20) - freed
            _wait(lambda: _ready(url)[0] == 200, 20, "/ready 200 once space is back")
            time.sleep(1.5)
        logged = _logged_sqlite(database)  # integrity_check: ok
    split = report(
        f"SQLite on a 64 MiB tmpfs filled up ({filled / 2**20:.1f} MiB of filler), then "
        f"freed; {CLIENTS} clients; decisions again {recovered:.2f} s after; /ready said: "
        f"{reason}",
        load.answers,
        phases,
        logged,
    )
    assert any(a.status == 503 for a in split["disk full"])
    assert "decision log not writable" in reason, reason


# ------------------------------------------------------------- the model registry dies


class MlflowServer:
    """``mlflow server`` on the trained store's own backend, in a process group of its own,
    killed (SIGKILL: no goodbye) and started again on the same port."""

    def __init__(self, home: Path, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.argv = [
            tool("mlflow", "it comes with the project's dependencies"),
            "server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
            "--backend-store-uri", f"sqlite:///{home / 'mlflow.db'}",
        ]  # fmt: skip
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> None:
        log = (self.workdir / "mlflow.log").open("ab")
        # Without its job runner (not used here), which starts seven processes: a start in 6 s
        # instead of 20.
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        self.process = subprocess.Popen(
            self.argv, cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        log.close()
        process = self.process

        def healthy() -> bool:
            assert process.poll() is None, (self.workdir / "mlflow.log").read_text()[-2000:]
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(f"{self.url}/health", timeout=2).status_code == 200
            return False

        _wait(healthy, timeout, "mlflow server answering /health")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)


def _registry_up(url: str) -> float:
    """``creditops_registry_up`` over the server's workers (the lowest: 0 if any is cut off)."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    values = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("creditops_registry_up")
    ]
    assert values, "no creditops_registry_up in /metrics"
    return min(values)


class Command:
    """A `creditops` command run against ``tracking`` in the background, with creditops' own
    bounds on MLflow's HTTP client (not a caller's); :meth:`result` waits for it."""

    def __init__(self, args: list[str], home: Path, tracking: str) -> None:
        env = {**os.environ, "CREDITOPS_HOME": str(home), "MLFLOW_TRACKING_URI": tracking}
        for name in MLFLOW_HTTP_LIMITS:
            env.pop(name, None)
        started = time.monotonic()
        self.outcome: tuple[float, int, str] | None = None

        def run() -> None:
            done = subprocess.run(
                [str(BIN / "creditops"), *args], env=env, capture_output=True, text=True,
                timeout=120, check=False,
            )  # fmt: skip
            self.outcome = (time.monotonic() - started, done.returncode, done.stderr.strip())

        self._thread = threading.Thread(target=run)
        self._thread.start()

    def result(self) -> tuple[float, int, str]:
        """Seconds it ran, its exit status, its stderr."""
        self._thread.join(timeout=130)
        assert self.outcome is not None, "the command did not finish"
        return self.outcome


@pytest.mark.slow
@bounded
def test_registry_unreachable_under_load(trained_store: Settings, tmp_path: Path) -> None:
    """The MLflow tracking server killed mid-load: the loaded version keeps deciding, the
    champion check backs off and ``creditops_registry_up`` drops to 0; the server returns and
    the gauge goes back to 1."""
    home = trained_store.home
    registry = MlflowServer(home, tmp_path)
    env = {
        "CREDITOPS_TRACKING_URI": registry.url,
        "CREDITOPS_CHAMPION_POLL_SECONDS": "0.5",
        "CREDITOPS_CHAMPION_POLL_MAX_SECONDS": "2",
    }
    try:
        registry.start()
        # Lighter load than the others: the restarted MLflow server shares the cores with it.
        with serving(home, **env) as url, Load(url, clients=4, pause_s=0.01) as load:
            phases = [("before", time.monotonic())]
            assert _registry_up(url) == 1
            time.sleep(1.5)
            killed = time.monotonic()
            registry.kill()
            phases.append(("registry down", killed))
            gauge_down = _wait(lambda: _registry_up(url) == 0, 20, "registry_up 0") - killed
            time.sleep(1.0)  # decisions go on, checks back off
            restarted = time.monotonic()
            registry.start()
            back = time.monotonic()
            phases.append(("registry back", back))
            gauge_up = _wait(lambda: _registry_up(url) == 1, 20, "registry_up 1") - back
            time.sleep(1.0)
    finally:
        registry.kill()
    split = report(
        f"MLflow tracking server killed (SIGKILL) mid-load, started again after "
        f"{back - killed:.1f} s ({back - restarted:.1f} s of it starting); 4 clients; "
        f"creditops_registry_up 0 after {gauge_down:.1f} s, back to 1 {gauge_up:.1f} s after "
        "the server answered",
        load.answers,
        phases,
        _logged_sqlite(home / "predictions.db"),
    )
    assert all(a.status == 200 for a in load.answers), "the loaded version stopped serving"
    assert len(split["registry down"]) > 100, "too few decisions while the registry was down"


@pytest.mark.slow
@bounded
def test_without_the_registry_commands_fail_fast_and_a_new_worker_waits(
    trained_store: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Against a tracking server that was killed, `creditops monitor`, `retrain` and
    `rollback` exit 1 within seconds (MLflow alone would retry for about 4 minutes), saying
    which server, without a traceback; a server started meanwhile answers /ready (and a route
    that reads the registry) 503 with that reason, and serves the champion once the registry
    is back, without a restart."""
    home = trained_store.home
    registry = MlflowServer(home, tmp_path)
    try:
        registry.start()
    finally:
        registry.kill()
    commands = {
        "monitor": Command(["monitor"], home, registry.url),
        "retrain --force": Command(["retrain", "--force"], home, registry.url),
        "rollback": Command(["rollback", "--reason", "fault test"], home, registry.url),
    }
    monkeypatch.setenv("CREDITOPS_TRACKING_URI", registry.url)  # the server's environment
    monkeypatch.setenv("CREDITOPS_CHAMPION_POLL_MAX_SECONDS", "2")
    monkeypatch.setenv("CREDITOPS_API_KEY", API_KEY)
    settings = Settings(home=home, champion_poll_seconds=0.5)
    try:
        with served_process(settings) as url:
            status, reason = _ready(url)
            down = _registry_up(url)
            models = httpx.get(f"{url}/models", headers={"X-API-Key": API_KEY}, timeout=30)
            finished = {name: command.result() for name, command in commands.items()}
            registry.start()
            back = time.monotonic()
            serving_after = _wait(lambda: _ready(url)[0] == 200, 20, "/ready 200") - back
            up = _registry_up(url)
    finally:
        registry.kill()
    print(
        "\n"
        + "\n".join(
            f"creditops {name}: exit {code} after {seconds:.1f} s: {stderr[:160]}…"
            for name, (seconds, code, stderr) in finished.items()
        )
        + f"\nserver started without the registry: /ready {status} ({reason[:120]}…), "
        f"creditops_registry_up {down:g}; /ready 200 {serving_after:.1f} s after the registry "
        f"returned, creditops_registry_up {up:g}; GET /models meanwhile: {models.status_code}"
    )
    for name, (seconds, code, stderr) in finished.items():
        assert code == 1, (name, code, stderr)
        assert stderr.startswith(
            f"error: the model registry (MLflow tracking server {registry.url}) is unreachable"
        ), (name, stderr)
        assert "Traceback" not in stderr, (name, stderr)
        # MLflow's own retries would take about 4 minutes; these three run at once, each
        # importing its whole stack on a machine that also runs the server.
        assert seconds < 60, (name, seconds)
    assert status == 503
    assert f"MLflow tracking server {registry.url}" in reason
    assert (down, up) == (0, 1)
    assert models.status_code == 503, models.text  # not a 500
    assert f"MLflow tracking server {registry.url}" in models.json()["detail"]


# ------------------------------------------------------------ the pieces, without load


class _ScriptEndedError(Exception):
    """Ends the champion follower of a test after its scripted checks."""


def test_the_champion_check_backs_off_while_the_registry_is_down(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Exponential (0.5, 1, 2, 4 s), capped (4 s), back to the poll interval at the first
    answer; the gauge follows each check, and each outage is logged once, with its end."""
    down = RegistryUnavailableError("the model registry (MLflow tracking server x) is down")
    script: list[Exception | None] = [down] * 5 + [None] * 2 + [down]

    class Service:
        shadow = None
        canary = None
        ready = True
        served = SimpleNamespace(version="3")

        def follow_champion(self) -> None:
            outcome = script.pop(0)
            if outcome is not None:
                raise outcome

        def follow_challenger(self) -> None:  # neither shadow nor canary: nothing to follow
            return None

    metrics = ServiceMetrics()
    waits: list[float] = []
    gauge: list[float | None] = []
    real_sleep = asyncio.sleep

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        gauge.append(metrics.registry.get_sample_value("creditops_registry_up"))
        if not script:
            raise _ScriptEndedError
        await real_sleep(0)

    app = SimpleNamespace(state=SimpleNamespace(service=Service(), metrics=metrics))
    monkeypatch.setattr(asyncio, "sleep", sleep)
    with pytest.raises(_ScriptEndedError):
        asyncio.run(app_module._follow_champion(app, 0.5, 4.0))  # type: ignore[arg-type]
    assert waits == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 0.5, 0.5, 1.0]
    assert gauge == [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0]
    messages = [r.getMessage() for r in caplog.records if r.name == app_module.__name__]
    assert sum("is down; still serving version 3" in m for m in messages) == 2
    assert sum("answers again" in m for m in messages) == 1
    assert next_check_in(8.0, 5.0, 1.0, failed=True) == 5.0  # a cap below the poll: the poll


def test_an_unreachable_registry_is_not_an_empty_one(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No version registered: None. No answer: an error naming the tracking server, without
    the password its URL holds."""
    assert get_version(settings) is None  # a fresh local store
    port = free_port()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://alice:s3cret@127.0.0.1:{port}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    unreachable = Settings(home=settings.home)
    with pytest.raises(RegistryUnavailableError) as raised:
        get_version(unreachable)
    assert f"MLflow tracking server http://127.0.0.1:{port}" in str(raised.value)
    assert "s3cret" not in str(raised.value)


def test_a_route_that_meets_a_failing_registry_answers_503(settings: Settings) -> None:
    """Not a 500: 503 naming the registry, without its credentials; an MLflow "no such
    version" escaping a route is a bug, and stays a 500."""
    from fastapi.testclient import TestClient
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST

    app = create_app(settings, load_model=False)

    @app.get("/down")
    def down() -> None:
        raise MlflowException("API request to http://alice:s3cret@mlflow:5000/x failed")

    @app.get("/missing")
    def missing() -> None:
        raise MlflowException("no such version", error_code=RESOURCE_DOES_NOT_EXIST)

    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.get("/down")
        assert answer.status_code == 503
        assert answer.json()["detail"].startswith("the model registry (MLflow store sqlite:")
        assert "s3cret" not in answer.text
        assert client.get("/missing").status_code == 500


def test_mlflow_http_limits_are_defaults_the_user_overrides(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in MLFLOW_HTTP_LIMITS:
        monkeypatch.setenv(name, "0")  # restored afterwards, whatever the test sets
        monkeypatch.delenv(name)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "300")
    bound_registry_requests()
    assert (
        os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]
        == MLFLOW_HTTP_LIMITS["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]
    )
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "300"


def test_a_sqlite_log_on_a_full_disk_is_not_writable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A probe row rolled back writes nothing, so it passes on a full disk: the free space
    decides."""
    with PredictionLog(f"sqlite:///{tmp_path / 'predictions.db'}") as log:
        assert log.is_writable() == (True, "ok")
        real = os.statvfs

        def statvfs(path: str | Path) -> os.statvfs_result:
            found = real(path)
            fields = list(found)
            fields[4] = (MIN_FREE_BYTES - 1) // found.f_frsize  # f_bavail
            return os.statvfs_result(fields)

        monkeypatch.setattr(predlog.os, "statvfs", statvfs)
        writable, reason = log.is_writable()
    assert not writable
    assert reason.startswith("disk full: ")
    assert "MiB free on the filesystem of" in reason
