"""Batch decisions at scale: decide + explain + log, rows/s and peak memory, for

* ``file``: today's single-file path (``creditops predict FILE --out FILE``), the baseline;
* ``partitioned``: ``creditops predict DIR --out DIR`` in this process;
* ``local:1`` and ``local:2``: the same on a Dask LocalCluster of 1 and 2 worker processes.

The data is synthetic, of credit_data's shape (``creditops.data.synthetic``), written as
Parquet files; the champion is an XGBoost model trained with the fast profile on credit_data
(``--home`` reuses a store that has one). Each configuration runs in a process of its own, so
its peak RSS is its own: the client's and each worker's (VmHWM, read in each process). The
decision log is SQLite in the store unless ``CREDITOPS_DATABASE_URL`` says otherwise.

Usage: ``python benchmarks/scale.py --rows 200000 [--files 16] [--home DIR] [--no-log]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIGS = ["file", "partitioned", "local:1", "local:2"]


def _prepare(home: Path, data: Path, rows: int, files: int, seed: int) -> None:
    from creditops.config import Settings
    from creditops.data.datasets import load_builtin
    from creditops.data.synthetic import synthesize
    from creditops.registry import champion_exists, train_and_register

    settings = Settings(home=home)
    frame, spec = load_builtin("credit_data")
    if not champion_exists(settings):
        train_and_register(
            settings,
            frame=frame,
            spec=spec,
            dataset_name="credit_data",
            profile="fast",
            models=["xgboost"],
        )
    synthetic = synthesize(frame, rows, target=spec.target, seed=seed)
    synthetic = synthetic.drop(columns=[spec.target])
    synthetic[spec.id] = range(1, len(synthetic) + 1)
    data.mkdir(parents=True, exist_ok=True)
    per_file = -(-rows // files)
    for i in range(files):
        part = synthetic.iloc[i * per_file : (i + 1) * per_file]
        part.to_parquet(data / f"applications-{i:03d}.parquet", index=False)
    synthetic.to_parquet(data.parent / "all.parquet", index=False)


def _peak_rss_mib() -> float:
    """This process's peak RSS since it started (VmHWM). Not ``ru_maxrss``: Linux carries that
    across fork and exec, so a child would report its parent's peak (here, the parent that
    built the synthetic data)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _one(config: str, home: Path, data: Path, out: Path, log: bool) -> dict:
    from creditops.config import Settings

    settings = Settings(home=home)
    out.mkdir(parents=True, exist_ok=True) if config == "file" else None
    workers: list[float] = []
    started = time.perf_counter()
    if config == "file":
        from creditops.serving.batch import predict_file

        summary = predict_file(settings, data.parent / "all.parquet", out / "all.parquet", log=log)
    elif config == "partitioned":
        from creditops.scale import predict_partitioned

        summary = predict_partitioned(settings, str(data), out, log=log)
    else:
        # The same LocalCluster creditops starts for local:N, started here so that each
        # worker's own peak can be read before it stops.
        from distributed import Client, LocalCluster

        from creditops.scale import predict_partitioned

        n = int(config.split(":")[1])
        with (
            LocalCluster(n_workers=n, threads_per_worker=1, dashboard_address=":0") as cluster,
            Client(cluster) as client,
        ):
            address = cluster.scheduler_address
            summary = predict_partitioned(settings, str(data), out, log=log, cluster=address)
            workers = list(client.run(_peak_rss_mib).values())
    seconds = time.perf_counter() - started
    return {
        "config": config,
        "rows": summary.rows,
        "seconds": seconds,
        "rows_s": summary.rows / seconds,
        # the decide pass alone: no start-up, model loading or validation pass
        "decide_rows_s": summary.rows / summary.decide_seconds
        if getattr(summary, "decide_seconds", None)
        else None,
        "client_rss_mib": _peak_rss_mib(),
        "worker_rss_mib": max(workers, default=0.0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--files", type=int, default=16)
    parser.add_argument("--home", type=Path, help="a store whose champion is XGBoost")
    parser.add_argument("--no-log", dest="log", action="store_false")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--configs", nargs="*", default=CONFIGS)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.one:  # a child: one configuration, its figures as JSON
        out = args.work / "out" / args.one.replace(":", "-")
        print(json.dumps(_one(args.one, args.home, args.work / "data", out, args.log)))
        return

    work = Path(tempfile.mkdtemp(prefix="creditops-scale-"))
    home = args.home or work / "home"
    try:
        started = time.perf_counter()
        _prepare(home, work / "data", args.rows, args.files, args.seed)
        print(
            f"prepared {args.rows:,} rows in {args.files} Parquet files and an XGBoost "
            f"champion in {time.perf_counter() - started:.0f} s; log: {args.log}"
        )
        print(
            "| configuration | rows | seconds | rows/s | rows/s in the decide pass "
            "| client peak RSS MiB | largest worker peak RSS MiB |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|")
        for config in args.configs:
            command = [
                sys.executable,
                __file__,
                "--one",
                config,
                "--work",
                str(work),
                "--home",
                str(home),
                "--rows",
                str(args.rows),
            ]
            if not args.log:
                command.append("--no-log")
            env = {**os.environ, "CREDITOPS_HOME": str(home)}
            result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
            if result.returncode != 0:
                print(f"| {config} | failed: {result.stderr.strip().splitlines()[-1]} |")
                continue
            r = json.loads(result.stdout.strip().splitlines()[-1])
            worker = "-" if config in ("file", "partitioned") else f"{r['worker_rss_mib']:,.0f}"
            decide = "-" if r["decide_rows_s"] is None else f"{r['decide_rows_s']:,.0f}"
            print(
                f"| {config} | {r['rows']:,} | {r['seconds']:.1f} | {r['rows_s']:,.0f} | "
                f"{decide} | {r['client_rss_mib']:,.0f} | {worker} |",
                flush=True,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
