"""The production topology of compose.yaml, run for real as local processes (``make
topology-test``; ``make test`` runs it too).

PostgreSQL with two databases → ``mlflow server`` on one of them, serving the artifacts →
``creditops db upgrade`` on the other → ``creditops train --profile fast`` against the MLflow
server over HTTP → ``creditops serve --workers 2`` logging to PostgreSQL → Pushgateway,
Prometheus (the service and the Pushgateway scraped, ``deploy/prometheus/alerts.yml`` loaded)
and Alertmanager (``deploy/alertmanager/alertmanager.yml``, its receivers pointed at a local
webhook). Then traffic from the simulator, and the checks: every decision is in PostgreSQL and
in Prometheus's decision counter; after shifted traffic and one ``creditops monitor`` run a drift
alert goes monitor → Pushgateway → Prometheus's rules → Alertmanager → webhook; a promotion made
through the API moves the alias on the MLflow server and every worker follows it.

Two things differ from compose, for time alone: Prometheus scrapes and evaluates every second,
and the rules' ``for:`` (up to 30 minutes before a firing alert is sent) is set to 0 in the copy
Prometheus loads; the expressions, labels and routes are the committed ones. Every process is
stopped at the end, and both databases dropped. The report of what was checked is printed
(``pytest -s``) and written to ``topology-report.txt`` in the test's directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import yaml
from sqlalchemy.engine import make_url

from helpers import free_port, tool

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
ALERTMANAGER_CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
POSTGRES_URL = os.environ.get("CREDITOPS_TEST_POSTGRES_URL")
API_KEY = "topology-admin-key-0123456789abcdef"
BIN = Path(sys.executable).parent
DRIFT_ALERTS = {
    "CreditopsDataDriftWarning",
    "CreditopsDataDriftCritical",
    "CreditopsPredictionDriftWarning",
    "CreditopsPredictionDriftCritical",
}


class Report:
    """What was checked, with the figures seen, in the order it happened."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.lines: list[str] = []

    def add(self, line: str) -> None:
        self.lines.append(f"[{time.monotonic() - self.started:6.1f} s] {line}")

    def text(self) -> str:
        return "production topology\n" + "\n".join(self.lines) + "\n"


class Processes:
    """Long-running processes of the topology, each in its own process group with its output
    in a log file; a step that fails shows the end of the log that explains it."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.running: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = (self.logs / f"{name}.log").open("wb")
        process = subprocess.Popen(
            argv, env=env, cwd=self.logs, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        self.running.append((name, process))
        return process

    def tail(self, name: str, chars: int = 3000) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")[-chars:]

    def run(self, name: str, argv: list[str], env: dict[str, str], timeout: float) -> str:
        """A one-shot step: its stdout, or the test fails with its log."""
        with (self.logs / f"{name}.log").open("wb") as log:
            result = subprocess.run(
                argv, env=env, cwd=self.logs, stdout=subprocess.PIPE, stderr=log, timeout=timeout
            )
        if result.returncode != 0:
            pytest.fail(f"{name} exited {result.returncode}:\n{self.tail(name)}")
        return result.stdout.decode()

    def wait_http(
        self,
        name: str,
        url: str,
        timeout: float,
        ok: Callable[[httpx.Response], bool] | None = None,
    ) -> httpx.Response:
        """Until ``url`` answers as ``ok`` says (200 by default) while ``name`` keeps running."""
        process = dict(self.running)[name]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"{name} exited {process.returncode}:\n{self.tail(name)}")
            with contextlib.suppress(httpx.HTTPError):
                response = httpx.get(url, timeout=5)
                if (ok or (lambda r: r.status_code == 200))(response):
                    return response
            time.sleep(0.3)
        pytest.fail(f"{name} did not answer {url} in {timeout:.0f} s:\n{self.tail(name)}")

    def stop_all(self) -> None:
        for _, process in reversed(self.running):
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        for _, process in reversed(self.running):
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=30)
            with contextlib.suppress(ProcessLookupError):  # whatever a group left behind
                os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)


class Webhook:
    """The receiver Alertmanager posts to: every notification body, kept."""

    def __init__(self) -> None:
        received: list[dict[str, Any]] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def alertnames(self) -> set[str]:
        return {a["labels"]["alertname"] for body in self.received for a in body["alerts"]}


@contextlib.contextmanager
def _databases(*names: str) -> Iterator[dict[str, str]]:
    """Fresh PostgreSQL databases on the test server (URL by name), dropped afterwards."""
    if not POSTGRES_URL:
        pytest.fail("set CREDITOPS_TEST_POSTGRES_URL (`make test` starts a local PostgreSQL)")
    server = make_url(POSTGRES_URL).set(drivername="postgresql+psycopg")
    suffix = uuid.uuid4().hex[:8]
    databases = {name: f"topology_{name}_{suffix}" for name in names}
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            for database in databases.values():
                conn.exec_driver_sql(f'CREATE DATABASE "{database}"')
        yield {
            name: server.set(database=database).render_as_string(hide_password=False)
            for name, database in databases.items()
        }
    finally:
        with admin.connect() as conn:
            for database in databases.values():
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.dispose()


def _prometheus_files(directory: Path, api: str, pushgateway: str, alertmanager: str) -> Path:
    """Prometheus's config for the topology and the committed rules with ``for:`` set to 0."""
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = "0s"
    (directory / "alerts.yml").write_text(yaml.safe_dump(rules, sort_keys=False))
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": ["alerts.yml"],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
        "scrape_configs": [
            {"job_name": "creditops", "static_configs": [{"targets": [api]}]},
            {
                "job_name": "pushgateway",
                "honor_labels": True,
                "static_configs": [{"targets": [pushgateway]}],
            },
        ],
    }
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _alertmanager_file(directory: Path, webhook: str) -> Path:
    """The committed routing, its receivers' relay addresses replaced by the local webhook."""
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = f"{webhook}/{receiver['name']}"
    path = directory / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _ready_workers(url: str, workers: int, version: str, timeout: float) -> dict[int, str]:
    """Ask /ready on fresh connections (spread over the workers) until ``workers`` distinct
    processes have answered and the latest answer of each names ``version``."""
    seen: dict[int, str] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            response = httpx.get(f"{url}/ready", timeout=5)
            if response.status_code == 200:
                body = response.json()
                seen[body["pid"]] = body["model_version"]
                if len(seen) >= workers and set(seen.values()) == {version}:
                    return seen
        time.sleep(0.1)
    pytest.fail(f"the workers did not all serve version {version}: {seen}")


def _prometheus_value(prometheus: str, query: str) -> float | None:
    response = httpx.get(f"{prometheus}/api/v1/query", params={"query": query}, timeout=5)
    result = response.json()["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def _wait(what: str, probe: Callable[[], Any], timeout: float, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            value = probe()
            if value:
                return value
        time.sleep(interval)
    pytest.fail(f"{what}: not seen within {timeout:.0f} s")


def test_the_production_topology_runs_for_real(tmp_path: Path) -> None:
    debian = "`make test` installs it from Debian's packages"
    prometheus_bin = tool("prometheus", debian)
    alertmanager_bin = tool("prometheus-alertmanager", debian)
    pushgateway_bin = tool("prometheus-pushgateway", debian)
    report = Report()
    logs = tmp_path / "logs"
    logs.mkdir()
    processes = Processes(logs)
    webhook = Webhook()
    ports = {name: free_port() for name in ("mlflow", "api", "pushgateway", "prom", "am")}
    mlflow_url = f"http://127.0.0.1:{ports['mlflow']}"
    api = f"http://127.0.0.1:{ports['api']}"
    prometheus = f"http://127.0.0.1:{ports['prom']}"
    alertmanager = f"http://127.0.0.1:{ports['am']}"
    pushgateway = f"http://127.0.0.1:{ports['pushgateway']}"
    home = tmp_path / "home"
    monitoring_config = tmp_path / "monitoring.yml"
    # The window the monitor judges: the shifted decisions sent below.
    monitoring_config.write_text(yaml.safe_dump({"monitor": {"last_n": 600}}))
    try:
        with _databases("creditops", "mlflow") as databases:
            report.add(
                "PostgreSQL: databases "
                + ", ".join(make_url(u).database for u in databases.values())
            )
            env = {
                **os.environ,
                "CREDITOPS_HOME": str(home),
                "CREDITOPS_DATABASE_URL": databases["creditops"],
                "MLFLOW_TRACKING_URI": mlflow_url,
                "CREDITOPS_API_KEY": API_KEY,
                "CREDITOPS_CHAMPION_POLL_SECONDS": "1",
                "CREDITOPS_MONITORING_CONFIG": str(monitoring_config),
                "CREDITOPS_ALERT_PUSHGATEWAY_URL": pushgateway,
            }
            for name in ("PROMETHEUS_MULTIPROC_DIR", "CREDITOPS_TRACKING_URI"):
                env.pop(name, None)

            # MLflow's tracking server on PostgreSQL, serving its artifacts from a directory.
            artifacts = tmp_path / "mlflow-artifacts"
            processes.start(
                "mlflow",
                [str(BIN / "mlflow"), "server", "--host", "127.0.0.1",
                 "--port", str(ports["mlflow"]), "--workers", "1",
                 "--backend-store-uri", databases["mlflow"], "--serve-artifacts",
                 "--artifacts-destination", str(artifacts)],
                env,
            )  # fmt: skip
            processes.wait_http("mlflow", f"{mlflow_url}/health", timeout=180)
            report.add(f"mlflow server up at {mlflow_url} (backend PostgreSQL, artifacts served)")

            creditops = [str(BIN / "creditops")]
            processes.run("db-upgrade", [*creditops, "db", "upgrade"], env, timeout=120)
            with sa.create_engine(databases["creditops"]).connect() as conn:
                tables = set(sa.inspect(conn).get_table_names())
            assert {"predictions", "alembic_version"} <= tables
            report.add(f"creditops db upgrade: {len(tables)} tables in the creditops database")

            trained = json.loads(
                processes.run(
                    "train",
                    # two candidates: what is tested here is where training writes, not the zoo
                    [
                        *creditops,
                        "train",
                        "--profile",
                        "fast",
                        "--model",
                        "logistic_regression",
                        "--model",
                        "xgboost",
                        "--json",
                    ],
                    env,
                    timeout=600,
                )
            )
            champion = next(c for c in trained["candidates"] if c["champion"])
            version = trained["registered_version"]
            assert not (home / "mlflow.db").exists(), "training wrote a local MLflow store"
            stored = sorted(p.name for p in artifacts.rglob("MLmodel"))
            assert stored, "no model artifact reached the MLflow server's artifact store"
            report.add(
                f"creditops train --profile fast: {len(trained['candidates'])} candidates, "
                f"champion {champion['name']} registered as version {version} on the MLflow "
                f"server; {len(stored)} model(s) in its served artifact store, none in "
                "CREDITOPS_HOME"
            )

            processes.start(
                "pushgateway",
                [pushgateway_bin, f"--web.listen-address=127.0.0.1:{ports['pushgateway']}"],
                env,
            )
            am_config = _alertmanager_file(tmp_path, webhook.url)
            processes.start(
                "alertmanager",
                [alertmanager_bin, f"--config.file={am_config}",
                 f"--storage.path={tmp_path / 'alertmanager'}",
                 f"--web.listen-address=127.0.0.1:{ports['am']}", "--cluster.listen-address="],
                env,
            )  # fmt: skip
            prom_config = _prometheus_files(
                tmp_path, f"127.0.0.1:{ports['api']}", f"127.0.0.1:{ports['pushgateway']}",
                f"127.0.0.1:{ports['am']}",
            )  # fmt: skip
            processes.start(
                "prometheus",
                [prometheus_bin, f"--config.file={prom_config}",
                 f"--storage.tsdb.path={tmp_path / 'prometheus'}",
                 f"--web.listen-address=127.0.0.1:{ports['prom']}"],
                env,
            )  # fmt: skip
            processes.start(
                "serve",
                [*creditops, "serve", "--host", "127.0.0.1", "--port", str(ports["api"]),
                 "--workers", "2"],
                env,
            )  # fmt: skip
            processes.wait_http("pushgateway", f"{pushgateway}/-/ready", timeout=60)
            processes.wait_http("alertmanager", f"{alertmanager}/-/ready", timeout=60)
            processes.wait_http("prometheus", f"{prometheus}/-/ready", timeout=60)
            processes.wait_http("serve", f"{api}/ready", timeout=240)
            workers = _ready_workers(api, 2, version, timeout=120)
            rules = httpx.get(f"{prometheus}/api/v1/rules", timeout=5).json()["data"]["groups"]
            report.add(
                f"serve --workers 2: workers {sorted(workers)} ready with version {version}; "
                f"Prometheus loaded {sum(len(g['rules']) for g in rules)} rules; "
                "Pushgateway and Alertmanager ready"
            )

            simulate = [*creditops, "simulate", "--url", api, "--json", "--seed", "1"]
            steady = json.loads(
                processes.run("simulate", [*simulate, "--rows", "300"], env, timeout=180)
            )
            assert steady["rows_decided"] > 0, steady
            assert not steady["errors"], steady
            with sa.create_engine(databases["creditops"]).connect() as conn:
                logged = conn.execute(sa.text("SELECT count(*) FROM predictions")).scalar_one()
                labelled = conn.execute(sa.text("SELECT count(*) FROM outcomes")).scalar_one()
            assert logged == steady["rows_decided"]
            assert labelled == steady["feedback_sent"]
            report.add(
                f"simulator: {steady['rows_decided']} decisions and {steady['feedback_sent']} "
                f"outcomes; PostgreSQL holds {logged} decisions and {labelled} outcomes"
            )
            counted = _wait(
                "the decision counter in Prometheus",
                lambda: (
                    (
                        _prometheus_value(
                            prometheus, 'sum(creditops_predictions_total{job="creditops"})'
                        )
                        == steady["rows_decided"]
                    )
                    and steady["rows_decided"]
                ),
                timeout=60,
            )
            report.add(
                f"Prometheus query sum(creditops_predictions_total) = {counted} "
                "(both workers' counters, scraped from /metrics)"
            )

            shifted = json.loads(
                processes.run(
                    "simulate-shifted",
                    [*simulate, "--rows", "600", "--drift", "new_segment", "--no-feedback"],
                    env,
                    timeout=180,
                )
            )
            assert shifted["rows_decided"] >= 600 * 0.9, shifted
            monitored = json.loads(
                processes.run("monitor", [*creditops, "monitor", "--json"], env, timeout=300)
            )
            report.add(
                f"simulator, drift new_segment: {shifted['rows_decided']} decisions; creditops "
                f"monitor on the last 600: {len(monitored.get('alerts', []))} alert(s) stored, "
                "gauges pushed to the Pushgateway"
            )
            drift_share = _wait(
                "creditops_drift_share in Prometheus (from the Pushgateway)",
                lambda: (
                    _prometheus_value(prometheus, "creditops_drift_share") is not None
                    and _prometheus_value(prometheus, "creditops_drift_share")
                ),
                timeout=60,
            )

            def drift_alerts() -> set[str]:
                response = httpx.get(f"{alertmanager}/api/v2/alerts", timeout=5)
                return {a["labels"]["alertname"] for a in response.json()} & DRIFT_ALERTS

            in_alertmanager = _wait("a drift alert in Alertmanager", drift_alerts, timeout=90)
            notified = _wait(
                "the drift alert at the webhook",
                lambda: webhook.alertnames() & DRIFT_ALERTS,
                timeout=90,  # the routes' group_wait (10 s critical, 30 s warning) first
            )
            report.add(
                f"Prometheus: creditops_drift_share = {float(drift_share):.2f}; Alertmanager "
                f"holds {sorted(in_alertmanager)}; its webhook received {sorted(notified)}"
            )

            # A second version (another candidate of the same run), registered without an
            # alias, then promoted through the API of the running service.
            other = next(c for c in trained["candidates"] if not c["champion"])
            register = (
                "import sys; from creditops.config import Settings; "
                "from creditops.registry import register_model; "
                "s = Settings(); print(register_model(sys.argv[1], s, alias=None, tags={"
                "'parent_run_id': sys.argv[2], 'candidate': sys.argv[3], 'seed': s.seed}))"
            )
            new_version = processes.run(
                "register",
                [
                    sys.executable,
                    "-c",
                    register,
                    other["model_uri"],
                    trained["parent_run_id"],
                    other["name"],
                ],
                env,
                timeout=120,
            ).strip()
            promoted = httpx.post(
                f"{api}/models/{new_version}/promote",
                params={"force": "true", "reason": "topology test"},
                headers={"X-API-Key": API_KEY},
                timeout=120,
            )
            assert promoted.status_code == 200, promoted.text
            alias = httpx.get(
                f"{mlflow_url}/api/2.0/mlflow/registered-models/alias",
                params={"name": trained["registered_model"], "alias": "champion"},
                timeout=10,
            ).json()["model_version"]["version"]
            assert alias == new_version
            following = _ready_workers(api, 2, new_version, timeout=60)
            decided = httpx.post(
                f"{api}/predict/batch",
                json={"applications": [_one_application()] * 20},
                timeout=30,
                headers={"X-API-Key": API_KEY},
            )
            assert decided.status_code == 200, decided.text
            answered = {d["model_version"] for d in decided.json()["decisions"]}
            assert answered == {new_version}
            report.add(
                f"POST /models/{new_version}/promote ({other['name']}): the champion alias on "
                f"the MLflow server names version {alias}; workers {sorted(following)} all serve "
                f"it, and decisions since carry it"
            )
    finally:
        processes.stop_all()
        webhook.server.shutdown()
        left = [name for name, process in processes.running if process.poll() is None]
        report.add(f"still running: {left}" if left else "every process stopped")
        text = report.text()
        (tmp_path / "topology-report.txt").write_text(text)
        print("\n" + text)
    assert not left, f"still running after the test: {left}"


def _one_application() -> dict[str, Any]:
    from creditops.data.datasets import load_builtin

    frame, spec = load_builtin("credit_data")
    record = json.loads(
        frame.drop(columns=[spec.target, spec.id]).head(1).to_json(orient="records")
    )[0]
    return {k: v for k, v in record.items() if v is not None}
