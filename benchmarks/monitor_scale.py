"""The monitor over a large decision log: seconds and peak RSS of one monitor run on the whole
log as one window, chunked (``creditops monitor`` today) beside the old frame path (the window
read as one frame with ``PredictionLog.window`` and every check calculated on it).

The log is SQLite in a ``CREDITOPS_HOME``, filled quickly with N synthetic decisions of
credit_data's shape (bulk inserts straight into the decision and outcome tables; a third of the
decisions have an outcome); the champion is an XGBoost model trained with the fast profile on
credit_data (``--home`` reuses a store that has one, and its log when it already holds N
decisions). Each configuration runs in a process of its own, so its peak RSS
(VmHWM) is its own. The timeline is left out of both, so they read the window once.

Usage: ``python benchmarks/monitor_scale.py --rows 1000000 [--baseline-rows 1000000]
[--home DIR] [--chunk-rows 50000]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path


def _champion(home: Path) -> None:
    from creditops.config import Settings
    from creditops.data.datasets import load_builtin
    from creditops.registry import champion_exists, train_and_register

    settings = Settings(home=home)
    if not champion_exists(settings):
        frame, spec = load_builtin("credit_data")
        train_and_register(
            settings,
            frame=frame,
            spec=spec,
            dataset_name="credit_data",
            profile="fast",
            models=["xgboost"],
        )


def _peak_rss_mib() -> float:
    """This process's peak RSS since it started (VmHWM). Not ``ru_maxrss``: Linux carries that
    across fork and exec, so a run would report the peak of the process that filled the log."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _fill(home: Path, rows: int, seed: int) -> float:
    """``rows`` decisions of the champion over the last five days; returns the seconds taken."""
    import numpy as np

    from creditops.config import Settings
    from creditops.data.datasets import load_builtin
    from creditops.data.synthetic import synthesize
    from creditops.registry import load_model
    from creditops.store.predlog import PredictionLog

    settings = Settings(home=home)
    loaded = load_model(settings)
    name, number = loaded.name, loaded.version
    path = home / "predictions.db"
    PredictionLog.for_home(home).close()  # the schema
    db = sqlite3.connect(path)
    if db.execute("SELECT count(*) FROM predictions").fetchone()[0] == rows:
        db.close()
        return 0.0
    db.execute("DELETE FROM outcomes")
    db.execute("DELETE FROM predictions")
    db.commit()
    db.execute("PRAGMA synchronous = OFF")
    frame, _ = load_builtin("credit_data")
    spec = loaded.spec
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    now = datetime.now(UTC).replace(tzinfo=None)
    batch = 200_000
    for offset in range(0, rows, batch):
        n = min(batch, rows - offset)
        data = synthesize(frame, n, target=spec.target, seed=seed + offset)
        features = data[spec.features]
        protected = data[[p for p in spec.protected if p in data]].astype(object)
        proba = rng.beta(2.0, 6.0, n)
        ages = rng.uniform(0, 5 * 86400, n)
        ids = [str(uuid.uuid4()) for _ in range(n)]
        created = [(now - timedelta(seconds=float(a))).isoformat(" ") for a in ages]
        db.executemany(
            "INSERT INTO predictions (id, created_at, model_name, model_version, features, "
            "protected, imputed, probability, points, grade, decision, reasons, latency_ms) "
            "VALUES (?, ?, ?, ?, ?, ?, '[]', ?, 500, NULL, ?, '[]', 1.0)",
            (
                (
                    ids[i],
                    created[i],
                    name,
                    number,
                    json.dumps({k: (None if v != v else v) for k, v in f.items()}),
                    json.dumps({k: (None if v != v else v) for k, v in p.items()}),
                    float(proba[i]),
                    "approve" if proba[i] < 0.3 else "decline",
                )
                for i, (f, p) in enumerate(
                    zip(
                        features.to_dict(orient="records"),
                        protected.to_dict(orient="records"),
                        strict=True,
                    )
                )
            ),
        )
        outcome = rng.binomial(1, proba)
        db.executemany(
            "INSERT INTO outcomes (prediction_id, outcome, observed_at, recorded_at, decided_at)"
            " VALUES (?, ?, NULL, ?, ?)",
            ((ids[i], int(outcome[i]), created[i], created[i]) for i in range(0, n, 3)),
        )
        db.commit()
    db.close()
    return time.perf_counter() - started


def _one(config: str, home: Path) -> dict:
    from creditops.config import Settings
    from creditops.monitoring.monitor import MonitorConfig, run_monitor

    settings = Settings(home=home)
    monitor = MonitorConfig.model_validate({"window_hours": 24 * 30, "timeline": {"windows": 0}})
    started = time.perf_counter()
    if config == "chunked":
        report = run_monitor(settings, config=monitor)
        rows, checks = report.rows, {k: v.status for k, v in report.checks.items()}
    else:  # the old path: one frame of every decision of the window, every check on it
        from creditops.monitoring.base import CurrentData, calculators
        from creditops.monitoring.monitor import _champion_reference
        from creditops.store.predlog import PredictionLog

        loaded, champion = _champion_reference(settings)
        log = PredictionLog(settings.resolved_database_url)
        now = datetime.now(UTC)
        frame = log.window(
            since=now - timedelta(hours=monitor.window_hours),
            until=now,
            model_name=loaded.name,
            model_version=loaded.version,
        )
        log.close()
        current = CurrentData(frame=frame, source="window", min_rows=monitor.min_rows)
        checks = {}
        for name, cls in calculators().items():
            section = None if cls.config_section is None else monitor.section(cls.config_section)
            champion.calculator(cls, section).calculate_current(current)
            checks[name] = "ran"
        rows = len(frame)
    return {
        "config": config,
        "rows": rows,
        "seconds": round(time.perf_counter() - started, 1),
        "peak_rss_mib": round(_peak_rss_mib()),
        "checks": checks,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--baseline-rows", type=int, default=1_000_000)
    parser.add_argument("--home", type=Path, help="a store whose champion is XGBoost")
    parser.add_argument("--chunk-rows", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run", choices=["chunked", "frame"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="creditops-monitor-bench-"))
    if args.run:
        print(json.dumps(_one(args.run, home)))
        return
    _champion(home)
    env = {**os.environ, "CREDITOPS_HOME": str(home),
           "CREDITOPS_MONITOR_CHUNK_ROWS": str(args.chunk_rows)}  # fmt: skip
    env.pop("CREDITOPS_DATABASE_URL", None)
    sizes = sorted({min(args.baseline_rows, args.rows), args.rows})
    print(f"{'rows':>12} {'path':>8} {'seconds':>8} {'peak RSS MiB':>13}  (fill s)")
    for rows in sizes:
        fill = _fill(home, rows, args.seed)
        configs = ["chunked", "frame"] if rows <= args.baseline_rows else ["chunked"]
        for config in configs:
            out = subprocess.run(
                [sys.executable, __file__, "--run", config, "--home", str(home)],
                env=env, capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
            result = json.loads(out.strip().splitlines()[-1])
            print(
                f"{result['rows']:>12,} {config:>8} {result['seconds']:>8} "
                f"{result['peak_rss_mib']:>13}  ({fill:.0f})",
                flush=True,
            )


if __name__ == "__main__":
    main()
