"""Helpers shared by test modules (on the test path through ``pythonpath`` in pyproject.toml)."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import sqlalchemy as sa
import uvicorn
from sqlalchemy.engine import URL, make_url

from creditops.config import Settings
from creditops.data.datasets import load_builtin
from creditops.registry import load_model
from creditops.serving.app import create_app
from creditops.store.alerts import Alert, MonitorRun
from creditops.store.predlog import PredictionLog, PredictionRecord

#: A PostgreSQL server for the database tests (``make test`` starts one and names it here).
POSTGRES_URL = os.environ.get("CREDITOPS_TEST_POSTGRES_URL")
#: The databases every store test runs on. Without a server the PostgreSQL case does not exist,
#: except in CI, where it must run: there a missing server fails it instead of hiding it.
DATABASES = ["sqlite", *(["postgres"] if POSTGRES_URL or os.environ.get("CI") == "true" else [])]


@contextmanager
def database_url(backend: str, directory: Path) -> Iterator[str]:
    """A URL of an empty database: a SQLite file in ``directory``, or a schema of its own on
    the PostgreSQL server (dropped afterwards, with all it holds)."""
    if backend == "sqlite":
        yield URL.create("sqlite", database=str(directory / "predictions.db")).render_as_string()
        return
    if not POSTGRES_URL:
        pytest.fail("CI=true: set CREDITOPS_TEST_POSTGRES_URL to test on PostgreSQL")
    server = make_url(POSTGRES_URL).set(drivername="postgresql+psycopg")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    url = server.update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


#: The fixed "now" of tests that place monitor runs and decisions in time.
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def tool(name: str, installed_by: str = "`make test` installs it") -> str:
    """A command-line tool the tests run: on PATH, or beside this interpreter (a tool from a
    wheel in the virtual environment); the test fails, never skips, when it is missing."""
    found = shutil.which(name) or str(Path(sys.executable).parent / name)
    if not Path(found).exists():
        pytest.fail(f"{name} is not installed: {installed_by}")
    return found


def free_port() -> int:
    """A loopback port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving(settings: Settings, *, start_timeout_s: float = 120.0) -> Iterator[str]:
    """The decision service for ``settings`` under a real uvicorn server on loopback, in a
    thread of this process; yields its base URL and stops it afterwards."""
    port = free_port()
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + start_timeout_s
    while not server.started:
        assert thread.is_alive(), "the server stopped while starting"
        assert time.time() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def served_process(
    settings: Settings, *, ready: bool = False, start_timeout_s: float = 240.0
) -> Iterator[str]:
    """``creditops serve`` for ``settings`` in a process of its own (MLflow's store is global
    to a process, so a server with another home must not share this one); yields its URL once
    it answers ``/health`` (with ``ready``: ``/ready``, its model loaded), and stops it (its
    whole process group) afterwards."""
    port = free_port()
    env = {
        "CREDITOPS_DRAIN_SECONDS": "0",  # stopped with the tests, not behind a load balancer
        **os.environ,
        "CREDITOPS_HOME": str(settings.home),
        "CREDITOPS_DATABASE_URL": settings.resolved_database_url,
        "CREDITOPS_CHAMPION_POLL_SECONDS": str(settings.champion_poll_seconds),
        "CREDITOPS_SHADOW_SHARE": str(settings.shadow_share),
        "CREDITOPS_CANARY_SHARE": str(settings.canary_share),
        "CREDITOPS_CANARY_MIN_DECISIONS": str(settings.canary_min_decisions),
    }
    for name, value in (("API_KEY", settings.api_key), ("READER_KEYS", settings.reader_keys)):
        if value:
            env[f"CREDITOPS_{name}"] = value
    env.pop("MLFLOW_TRACKING_URI", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "creditops.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    probe = f"{url}/ready" if ready else f"{url}/health"
    try:
        deadline = time.time() + start_timeout_s
        while True:
            assert process.poll() is None, process.stderr.read().decode()[-2000:]
            assert time.time() < deadline, "the server did not start"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(probe, timeout=2).status_code == 200:
                    break
            time.sleep(0.2)
        yield url
    finally:
        stop_process_group(process, timeout_s=60)


class ClientThreads:
    """``clients`` threads, each running :meth:`client` (given its index) until :attr:`stop`
    is set, recording what they see with :meth:`record`; a context manager that starts them
    and, on leaving, stops and joins them. Subclasses say what one client does."""

    def __init__(self, clients: int) -> None:
        self.stop = threading.Event()
        self.answers: list[Any] = []
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self.client, args=(n,)) for n in range(clients)]

    def client(self, n: int) -> None:
        raise NotImplementedError

    def record(self, answer: Any) -> None:
        with self._lock:
            self.answers.append(answer)

    def recorded(self) -> list[Any]:
        """A copy of what was recorded so far (safe while the clients run)."""
        with self._lock:
            return list(self.answers)

    def __enter__(self) -> Any:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(timeout=60)


def stop_process_group(process: subprocess.Popen, timeout_s: float = 30.0) -> None:
    """SIGTERM to ``process``'s group (started with ``start_new_session``), SIGKILL if it has
    not exited within ``timeout_s``; nothing if it already exited."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


_SERVE = (sys.executable, "-m", "creditops.cli", "serve")


def start_server(
    home: Path, api_key: str, *, workers: int = 1, timeout_s: float = 240.0, **env: str
) -> tuple[subprocess.Popen, str]:
    """``creditops serve`` on ``home`` (with ``env`` added to the environment) in a process
    group of its own; returns the process and its URL once every worker answers ``/ready``
    (fresh connections: ``SO_REUSEPORT`` spreads them, so every worker is asked). The caller
    stops it. Its stderr goes to a file (a pipe nobody reads could fill and stall it), shown
    when it exits early."""
    with tempfile.TemporaryFile() as stderr:  # the server writes to its own copy
        port = free_port()
        variables = {**os.environ, "CREDITOPS_HOME": str(home), "CREDITOPS_API_KEY": api_key, **env}
        variables.pop("MLFLOW_TRACKING_URI", None)
        process = subprocess.Popen(
            [*_SERVE, "--port", str(port), "--workers", str(workers)],
            env=variables,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + timeout_s
        ready: set[int] = set()
        while len(ready) < workers:
            if process.poll() is not None:
                stderr.seek(0)
                raise AssertionError(stderr.read().decode()[-2000:])
            if time.time() > deadline:
                os.killpg(process.pid, signal.SIGKILL)
                raise AssertionError(f"{workers} workers did not become ready (saw {ready})")
            with contextlib.suppress(httpx.HTTPError):
                answer = httpx.get(f"{url}/ready", timeout=2)
                if answer.status_code == 200:
                    ready.add(answer.json()["pid"])
            time.sleep(0.1)
        return process, url


def applications(n: int = 200) -> list[dict[str, Any]]:
    """The first ``n`` applications of credit_data as a client sends them (no target, no id,
    missing values left out)."""
    frame, spec = load_builtin("credit_data")
    rows = frame.drop(columns=[spec.target, spec.id]).head(n)
    records = json.loads(rows.to_json(orient="records"))
    return [{k: v for k, v in r.items() if v is not None} for r in records]


def monitor_run(
    hours_ago: float,
    level: str | None = "ok",
    *,
    share: float | None = 0.0,
    drop: float | None = None,
) -> MonitorRun:
    """A monitor run ``hours_ago`` before NOW with this drift level, drifted share and relative
    realised-AUC drop."""
    started = NOW - timedelta(hours=hours_ago)
    return MonitorRun(
        id=f"run-{hours_ago}",
        started_at=started,
        finished_at=started + timedelta(seconds=5),
        rows=500,
        drift_level=level,
        drift_share=share,
        realised_auc_drop_relative=drop,
        level="info",
    )


def _plain(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def log_labelled_decisions(settings: Settings, rows: pd.DataFrame, outcomes: Sequence[int]) -> None:
    """Log each row as an approval by the champion, one an hour up to NOW (features and
    protected attributes from the row), then record its outcome."""
    loaded = load_model(settings)
    spec = loaded.spec
    n = len(rows)
    records = [
        PredictionRecord(
            created_at=NOW - timedelta(hours=n - i),
            model_name=loaded.name,
            model_version=loaded.version,
            features={f: _plain(row[f]) for f in spec.features},
            protected={p: _plain(row[p]) for p in spec.protected},
            probability=0.2,
            points=500,
            decision="approve",
            latency_ms=1.0,
        )
        for i, (_, row) in enumerate(rows.iterrows())
    ]
    with PredictionLog(settings.resolved_database_url) as log:
        log.write_many(records)
        log.record_outcomes(
            [(r.prediction_id, int(y)) for r, y in zip(records, outcomes, strict=True)]
        )


#: When make_alert's alert was raised.
ALERT_TIME = datetime(2025, 6, 1, 9, 0, tzinfo=UTC)


def make_alert(**overrides: Any) -> Alert:
    """A critical drift alert at ALERT_TIME; ``overrides`` change any field."""
    values: dict[str, Any] = {
        "created_at": ALERT_TIME,
        "check": "data_drift",
        "level": "critical",
        "metric": "drift_share",
        "value": 0.75,
        "threshold": 0.7,
        "message": "75% of features drifted (critical at 70%).",
        "model_name": "credit-default",
        "model_version": "3",
        "run_id": "run-1",
        "details": {"drifted": ["Income", "Debt"], "method": {"Income": "psi"}},
    }
    values.update(overrides)
    return Alert(**values)


class PrivatePostgres:
    """A PostgreSQL cluster of one test's own, on a free port with its socket in its own
    directory, for tests that stop and start the server (the shared test server never stops:
    other tests use it meanwhile). Run as the ``postgres`` user when the tests run as root
    (PostgreSQL refuses root)."""

    def __init__(self, bin_dir: Path, root: Path, port: int) -> None:
        self.bin_dir = bin_dir
        self.root = root
        self.port = port
        self.data = root / "data"
        self.log = root / "server.log"
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/creditops"

    def run(self, tool_name: str, *args: str, timeout: float = 60) -> None:
        """One of the server's programs, as its owner; the test fails with its log if it does."""
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        argv = [*as_postgres, str(self.bin_dir / tool_name), *args]
        result = subprocess.run(
            argv, cwd=self.root, capture_output=True, text=True, timeout=timeout, check=False
        )
        if result.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            pytest.fail(f"{tool_name} {' '.join(args)}: {result.stderr.strip()}\n{log}")

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        self.run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: ``fast`` (clients disconnected, a clean shutdown) or ``immediate``
        (every process killed: crash recovery at the next start)."""
        self.run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A fresh cluster with an empty database ``creditops`` (see :class:`PrivatePostgres`),
    started; stopped and removed afterwards. Fails, never skips, when PostgreSQL's server
    binaries (Debian's ``/usr/lib/postgresql/<version>/bin``) are missing."""
    found = sorted(  # the newest major version (Debian's directories are named 15, 16, ...)
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda path: int(path.parts[-3]) if path.parts[-3].isdigit() else 0,
    )
    if not found:
        pytest.fail(
            "PostgreSQL's server binaries are not installed (/usr/lib/postgresql/*/bin): "
            "`make test` installs them (scripts/system-packages.sh test)"
        )
    # Not under pytest's tmp_path: its parents are private to root, and the server runs as
    # postgres.
    root = Path(tempfile.mkdtemp(prefix="creditops-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    server = PrivatePostgres(found[-1].parent, root, free_port())
    try:
        server.run(
            "initdb", "-D", str(server.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
            "--no-locale", "--no-sync",
        )  # fmt: skip
        server.start()
        server.run(
            "createdb", "-h", str(root), "-p", str(server.port), "-U", "postgres", "creditops"
        )
        yield server
    finally:
        if server.running():
            with contextlib.suppress(Exception, pytest.fail.Exception):
                server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


def copy_with_challenger(trained: tuple[Settings, Any], home: Path, *, declining: bool) -> str:
    """A copy of the suite's trained store at ``home`` (empty decision log) with another of its
    candidates registered as the challenger; ``declining``: with a policy that declines every
    application (a challenger that departs from the champion). Returns its version."""
    from creditops.registry import CHALLENGER, register_model, set_alias
    from creditops.registry.policy import save_policy, version_policy

    source, result = trained
    shutil.copytree(source.home, home)
    (home / "predictions.db").unlink(missing_ok=True)
    settings = Settings(home=home)
    other = next(c for c in result.candidates if not c.champion)
    tags = {"parent_run_id": result.parent_run_id, "candidate": other.name, "seed": 42}
    version = register_model(other.model_uri, settings, alias=None, tags=tags)
    set_alias(settings, CHALLENGER, version)
    if declining:
        policy = version_policy(settings, load_model(settings, version))
        update = {"approve_below": 0.0, "decline_at_or_above": 0.0}
        save_policy(settings, version, policy.model_copy(update=update))
    return version


def cleared_by_a_retrain(settings: Settings, version: str, champion: str = "1") -> None:
    """Record in the audit that a retrain cleared ``version`` (every gate passed, awaiting
    approval), as `creditops retrain` would: what a promotion needs before its other checks."""
    from creditops.store.audit import AuditEntry, AuditLog

    with AuditLog.from_settings(settings) as audit:
        audit.record(
            AuditEntry(
                started_at=datetime.now(UTC),
                action="retrain",
                outcome="awaiting_approval",
                champion_version=champion,
                challenger_version=version,
                message="passed every gate",
            )
        )
