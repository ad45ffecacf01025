"""Benchmark the dashboard over a large decision log.

In one run, for each backend (SQLite, and PostgreSQL when a URL is given):

1. Fill a fresh decision log with ``--rows`` synthetic decisions (default 1,000,000) spread over
   the last 52 weeks: inputs drawn from real credit_data rows, decisions from the champion's
   policy on a synthetic probability, three model versions, ~40% with an outcome. Then run
   the monitor once (``creditops monitor``, its timeline over 52 weekly windows) and report its
   time and peak memory: the monitoring pages read what it stored.
2. Start the real server (``creditops serve``, one worker) on that log and a champion trained on
   credit_data (fast profile) with a logistic-regression challenger on the same split (the
   models comparison), in a temporary store unless ``--home`` names one, log in, and
   request every dashboard page (every GET route under ``/ui`` found on the app, path parameters
   filled with real values), plus audit searches with filters and a deep page, ``--repeat``
   times each after two warm-up requests.
3. Print per page: requests, p50 / p95 / max milliseconds, against ``/health`` (the floor of a
   request to this server) in the same table, and the server's peak resident memory (VmHWM).

Goals: p95 ≤ 300 ms per page (the monitoring pages included), peak RSS < 1 GiB.

Usage: ``python benchmarks/dashboard.py [--rows 1000000] [--repeat 30] [--postgres URL]
[--home DIR]`` (``make bench-dashboard``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import sqlalchemy as sa

from creditops.config import Settings
from creditops.data.datasets import load_builtin
from creditops.evaluation.review import EvaluationConfig
from creditops.registry import (
    CHALLENGER,
    load_model,
    register_trained,
    train_and_register,
    version_policy,
)
from creditops.registry.review import review_and_store
from creditops.serving.app import create_app
from creditops.store.predlog import PredictionLog
from creditops.store.schema import outcomes, predictions
from creditops.training.train import train

ADMIN_KEY = "dashboard-benchmark-admin-key"
CHUNK = 20_000
WEEKS = 52


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _trained_home(home: Path | None) -> Path:
    if home is not None:
        return home
    home = Path(tempfile.mkdtemp(prefix="creditops-bench-dashboard-"))
    settings = Settings(home=home)
    frame, spec = load_builtin("credit_data")
    print("training the champion (fast profile)...", file=sys.stderr)
    train_and_register(settings, frame=frame, spec=spec, dataset_name="credit_data", profile="fast")
    # A second version on the same split, for the comparison page.
    challenger = train(
        settings,
        frame=frame,
        spec=spec,
        dataset_name="credit_data",
        profile="fast",
        models=["logistic_regression"],
    )
    register_trained(settings, challenger, alias=CHALLENGER)
    # The version page reads a stored review; computing one (a minute) is not a page request.
    review_and_store(settings, "1", config=EvaluationConfig(n_boot=200))
    print(f"trained store: {home} (reuse it with --home)", file=sys.stderr)
    return home


def fill(url: str, rows: int, home: Path, seed: int = 0) -> None:
    """A fresh log with ``rows`` decisions (the schema by the store itself, then bulk inserts)."""
    settings = Settings(home=home)
    loaded = load_model(settings, "champion")
    policy = version_policy(settings, loaded)
    frame, spec = load_builtin("credit_data")
    records = frame.drop(columns=[c for c in (spec.target, spec.id) if c]).to_dict("records")
    inputs = [
        (
            {f: (None if r[f] != r[f] else r[f]) for f in loaded.spec.features},
            {p: (None if r[p] != r[p] else r[p]) for p in loaded.spec.protected},
        )
        for r in records
    ]
    PredictionLog(url).close()  # creates the schema at head
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(outcomes.delete())
        conn.execute(predictions.delete())
    rng = np.random.default_rng(seed)
    now = datetime.now(UTC)
    started = time.perf_counter()
    written = 0
    while written < rows:
        n = min(CHUNK, rows - written)
        ages = np.sort(rng.uniform(0, WEEKS * 7 * 86400, n))[::-1]
        proba = rng.beta(2, 5, n)
        decisions = policy.decide_many(proba)
        points = policy.points(proba)
        grades = policy.grade(proba)
        versions = rng.choice(["1", "2", "3"], n, p=[0.8, 0.15, 0.05])
        picks = rng.integers(0, len(inputs), n)
        batch, labels = [], []
        for i in range(n):
            features, protected = inputs[picks[i]]
            created = now - timedelta(seconds=float(ages[i]))
            identifier = str(uuid.uuid4())
            decision = str(decisions[i])
            batch.append(
                {
                    "id": identifier,
                    "created_at": created,
                    "model_name": "credit-default",
                    "model_version": str(versions[i]),
                    "features": features,
                    "protected": protected,
                    "imputed": [],
                    "probability": float(proba[i]),
                    "points": int(points[i]),
                    "grade": str(grades[i]),
                    "decision": decision,
                    "reasons": []
                    if decision == "approve"
                    else [{"code": "R01", "text": "Debt is high", "feature": "Debt"}],
                    "latency_ms": float(rng.gamma(2.0, 1.5)),
                }
            )
            if ages[i] > 30 * 86400 and rng.random() < 0.45:  # older decisions have outcomes
                labels.append(
                    {
                        "prediction_id": identifier,
                        "outcome": int(rng.random() < proba[i]),
                        "observed_at": created + timedelta(days=30),
                        "recorded_at": now,
                        "decided_at": created,
                    }
                )
        with engine.begin() as conn:
            conn.execute(predictions.insert(), batch)
            if labels:
                conn.execute(outcomes.insert(), labels)
        written += n
        print(f"  {written:,} / {rows:,} decisions", end="\r", file=sys.stderr)
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
    else:
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    engine.dispose()
    print(f"\n  filled in {time.perf_counter() - started:.0f} s", file=sys.stderr)


def _pages(url: str) -> tuple[list[str], list[str]]:
    """Every GET page of the dashboard, parameters filled; and the routes left out, with why."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        newest = conn.execute(
            sa.select(predictions.c.id, predictions.c.created_at)
            .order_by(predictions.c.created_at.desc())
            .limit(1)
        ).one()
        deep = conn.execute(
            sa.select(predictions.c.id, predictions.c.created_at)
            .order_by(predictions.c.created_at.desc(), predictions.c.id.desc())
            .offset(conn.execute(sa.select(sa.func.count()).select_from(predictions)).scalar() // 2)
            .limit(1)
        ).one()
    engine.dispose()
    values = {"version": "1", "prediction_id": newest.id, "name": "credit_data"}
    pages, skipped = [], []
    for route in create_app(Settings(home=Path(tempfile.gettempdir())), load_model=False).routes:
        path = getattr(route, "path", "")
        methods = getattr(route, "methods", set()) or set()
        if not path.startswith("/ui") or "GET" not in methods or "static" in path:
            continue
        if path in ("/ui/login",) or path.endswith((".html", ".md")):
            skipped.append(f"{path} (a login form or a file download)")
            continue
        names = re.findall(r"{(\w+)}", path)
        if any(n not in values for n in names):
            skipped.append(f"{path} (needs {', '.join(names)}: made per session)")
            continue
        filled = path
        for name in names:
            filled = filled.replace("{" + name + "}", values[name])
        if filled == "/ui/models/compare":
            filled += "?a=1&b=2"  # computed once per pair, then kept: warm-up pays for it
        if filled == "/ui/monitoring/distribution":
            filled += f"?feature=Income&window={WEEKS - 1}"  # one cell of the heatmap
        pages.append(filled)
    cursor = f"{deep.created_at.replace(tzinfo=UTC).isoformat()}|{deep.id}"
    pages += [
        "/ui/audit?decision=decline",
        "/ui/audit?model_version=3",
        "/ui/audit?outcome=known",
        "/ui/audit?decision=refer&model_version=2&outcome=unknown",
        f"/ui/audit?prediction_id={deep.id}",
        "/ui/audit?" + httpx.QueryParams({"after": cursor}).__str__(),
        "/ui/monitoring?level=warning&open=true",
        "/ui/monitoring/alerts?metric=Income",
    ]
    return pages, skipped


def _peak_rss_mib(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", text)[1]) / 1024


def run_monitor(url: str, home: Path) -> tuple[float, float, int]:
    """``creditops monitor`` once with a timeline of ``WEEKS`` weekly windows: seconds, its
    peak RSS (VmHWM, read until it exits) and how many windows it stored."""
    config = home / "bench-monitoring.yaml"
    config.write_text(f"monitor:\n  timeline:\n    windows: {WEEKS}\n    window: 7D\n")
    env = {
        **os.environ,
        "CREDITOPS_HOME": str(home),
        "CREDITOPS_DATABASE_URL": url,
        "CREDITOPS_MONITORING_CONFIG": str(config),
    }
    output_path = home / "bench-monitor.json"
    started = time.perf_counter()
    with open(output_path, "wb") as output_file:  # a file: a full pipe would stall the child
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "creditops"), "monitor", "--json"],
            env=env,
            stdout=output_file,
            stderr=subprocess.DEVNULL,
        )
        peak = 0.0
        while process.poll() is None:
            with contextlib.suppress(OSError, TypeError):
                peak = max(peak, _peak_rss_mib(process.pid))
            time.sleep(0.1)
    seconds = time.perf_counter() - started
    output = output_path.read_text()
    if process.returncode != 0:
        raise SystemExit(f"creditops monitor failed ({process.returncode}): {output[-500:]}")
    report = json.loads(output)
    return seconds, peak, len((report.get("timeline") or {}).get("windows") or [])


def measure(url: str, home: Path, repeat: int) -> tuple[list[tuple[str, list[float]]], float]:
    port = _free_port()
    env = {
        **os.environ,
        "CREDITOPS_HOME": str(home),
        "CREDITOPS_DATABASE_URL": url,
        "CREDITOPS_API_KEY": ADMIN_KEY,
    }
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "creditops"), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while True:
            try:
                if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.time() > deadline:
                raise SystemExit(f"the server did not start: {server.stderr.read().decode()}")
            time.sleep(0.5)
        client = httpx.Client(base_url=base, timeout=120, follow_redirects=False)
        login = client.get("/ui/login").text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', login)[1]
        answer = client.post(
            "/ui/login", data={"csrf_token": csrf, "key": ADMIN_KEY, "next": "/ui"}
        )
        assert answer.status_code == 303, answer.text
        pages, skipped = _pages(url)
        for line in skipped:
            print(f"  not requested: {line}", file=sys.stderr)
        results = []
        for page in ["/health", *pages]:
            times = []
            for i in range(repeat + 2):
                started = time.perf_counter()
                response = client.get(page)
                elapsed = (time.perf_counter() - started) * 1000
                if response.status_code != 200:
                    raise SystemExit(
                        f"{page} answered {response.status_code}: {response.text[:300]}"
                    )
                if i >= 2:  # two warm-up requests: first-use caches are not what users wait on
                    times.append(elapsed)
            results.append((page, times))
        return results, _peak_rss_mib(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)


def _table(backend: str, rows: int, results: list[tuple[str, list[float]]], rss: float) -> None:
    print(f"\n### {backend}: {rows:,} decisions\n")
    print("| page | n | p50 ms | p95 ms | max ms | p95 ≤ 300 ms |")
    print("|---|---:|---:|---:|---:|:---:|")
    for page, times in results:
        p95 = float(np.percentile(times, 95))
        verdict = "baseline" if page == "/health" else ("yes" if p95 <= 300 else "NO")
        print(
            f"| `{page[:80]}` | {len(times)} | {statistics.median(times):.1f} | {p95:.1f} "
            f"| {max(times):.1f} | {verdict} |"
        )
    print(f"\nserver peak RSS (VmHWM): {rss:.0f} MiB (goal < 1024 MiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--home", type=Path, default=None, help="a store with a champion")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("CREDITOPS_TEST_POSTGRES_URL"),
        help="PostgreSQL URL (its decision log is emptied); default CREDITOPS_TEST_POSTGRES_URL",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    home = _trained_home(args.home)
    backends = [("SQLite", f"sqlite:///{home / 'bench-dashboard.db'}")]
    if args.postgres:
        backends.append(("PostgreSQL", args.postgres))
    figures: dict[str, Any] = {}
    for name, url in backends:
        print(f"{name}: filling {args.rows:,} decisions...", file=sys.stderr)
        fill(url, args.rows, home)
        monitor_s, monitor_rss, windows = run_monitor(url, home)
        results, rss = measure(url, home, args.repeat)
        _table(name, args.rows, results, rss)
        print(
            f"monitor run (timeline of {windows} weekly windows): {monitor_s:.1f} s, "
            f"peak RSS {monitor_rss:.0f} MiB"
        )
        figures[name] = {
            "rows": args.rows,
            "monitor_seconds": monitor_s,
            "monitor_peak_rss_mib": monitor_rss,
            "timeline_windows": windows,
            "peak_rss_mib": rss,
            "pages": {p: {"p50": statistics.median(t), "p95": float(np.percentile(t, 95))}
                      for p, t in results},
        }  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
