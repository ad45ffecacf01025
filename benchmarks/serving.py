"""Benchmark the decision service against ``mlflow models serve`` on the same model version.

In one run, on this machine:

1. HTTP, one application per request, loaded by ``wrk`` over loopback for a fixed duration at
   1 and 16 concurrent connections (keep-alive), cycling through real credit_data rows:
   ``creditops serve`` (every decision logged durably, SQLite with fsync) and
   ``mlflow models serve --env-manager local`` (scores only), each with 1 and 2 workers.
   Printed: requests/s, p50/p95/p99 latency, non-2xx responses.
2. In-process, one application: the compiled fast path (``FastScorer.score_one`` on the request
   dict) against the scikit-learn pipeline (``predict_proba`` on a one-row DataFrame).
3. Batches of ``--batch-rows`` rows: the raw booster (``inplace_predict`` on rows already
   preprocessed: the floor), the fast path's ``score_many`` on request dicts, the pipeline on a
   DataFrame, ``creditops predict`` on a CSV file, and ``POST /predict/batch``.
4. The stages a logged, explained batch cannot skip (parsing, validation, ids, SHAP reasons for
   the non-approvals, the durable log), each timed alone at its cheapest on the same rows: the
   ceiling any batch implementation has, beside the raw booster.

The model is an XGBoost champion trained on credit_data (fast profile) in a temporary store,
unless ``--home`` points at a store whose champion to use.

Usage: ``python benchmarks/serving.py [--duration 10] [--home DIR] [--skip-mlflow]``
(``make bench-serving``). Needs ``wrk`` (Debian package ``wrk``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
_RESULT = re.compile(r"^RESULT (\d+) (\d+) (\d+) ([\d.]+) ([\d.]+) ([\d.]+) ([\d.]+)$", re.M)

_LUA = """
local bodies = {%(bodies)s}
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-API-Key"] = "%(key)s"
request = function()
  i = i %% #bodies + 1
  return wrk.format(nil, nil, nil, bodies[i])
end
local non2xx = 0
response = function(status, headers, body)
  if status < 200 or status > 299 then non2xx = non2xx + 1 end
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %%d %%d %%d %%.3f %%.3f %%.3f %%.3f\\n", summary.requests,
    e.connect + e.read + e.write + e.timeout, e.status, latency:percentile(50) / 1000,
    latency:percentile(95) / 1000, latency:percentile(99) / 1000, summary.duration / 1e6))
end
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _lua_string(text: str) -> str:
    return "[==[" + text + "]==]"


def _wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before it was ready")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} not ready after {timeout} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _wrk(url: str, script: Path, connections: int, duration: int) -> dict[str, float]:
    threads = 1 if connections == 1 else 2
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "-s", str(script), url]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    match = _RESULT.search(output)
    if match is None:
        raise RuntimeError(f"wrk printed no result:\n{output}")
    requests, socket_errors, non2xx, p50, p95, p99, seconds = match.groups()
    return {
        "requests_per_s": int(requests) / float(seconds),
        "p50_ms": float(p50),
        "p95_ms": float(p95),
        "p99_ms": float(p99),
        "errors": int(socket_errors) + int(non2xx),
    }


def _timings(fn: Any, calls: int) -> tuple[float, float]:
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    samples.sort()
    return statistics.median(samples) * 1e3, samples[int(0.99 * (len(samples) - 1))] * 1e3


def _best_rate(fn: Any, rows: int, repeats: int = 5) -> float:
    best = min(_time(fn) for _ in range(repeats))
    return rows / best


def _time(fn: Any) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def train_store(home: Path) -> None:
    env = {**os.environ, "CREDITOPS_HOME": str(home)}
    command = [str(BIN / "creditops"), "train", "--profile", "fast", "--model", "xgboost"]
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)


def in_process(home: Path, batch_rows: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Latency of one decision's scoring and throughput of batches, in this process."""
    os.environ["CREDITOPS_HOME"] = str(home)
    import numpy as np
    import pandas as pd

    from creditops.config import get_settings
    from creditops.registry import load_model, load_version_data

    settings = get_settings()
    loaded = load_model(settings)
    from creditops.serving.fastpath import compile_scorer

    scorer = compile_scorer(loaded.model, loaded.spec)
    data = load_version_data(settings, loaded)
    spec = loaded.spec
    test = data.frame.iloc[data.split.test][spec.features].reset_index(drop=True)
    records = [
        {k: (None if pd.isna(v) else (v.item() if hasattr(v, "item") else v)) for k, v in r.items()}
        for r in test.to_dict(orient="records")
    ]
    frames = [test.iloc[[i]] for i in range(len(test))]
    counter = iter(range(10**9))

    def fast_one() -> None:
        scorer.score_one(records[next(counter) % len(records)])

    def pipeline_one() -> None:
        loaded.model.predict_proba(frames[next(counter) % len(frames)])

    fast = _timings(fast_one, 3000)
    pipeline_ms = _timings(pipeline_one, 300)

    big = [records[i % len(records)] for i in range(batch_rows)]
    big_frame = pd.DataFrame.from_records(big, columns=spec.features)
    preprocessed = np.ascontiguousarray(scorer.transform_many(big), dtype=np.float32)
    pipeline = loaded.model
    if hasattr(pipeline, "calibrated_classifiers_"):  # calibration wraps the fitted pipeline
        pipeline = pipeline.calibrated_classifiers_[0].estimator
    gap = np.max(np.abs(scorer.score_many(big) - loaded.model.predict_proba(big_frame)[:, 1]))
    batch = {}
    final = pipeline.steps[-1][1] if hasattr(pipeline, "steps") else None
    if hasattr(final, "get_booster"):  # an XGBoost champion: its booster alone, the floor
        raw = final.get_booster()
        batch["raw booster (preprocessed float32 rows)"] = _best_rate(
            lambda: raw.inplace_predict(preprocessed, predict_type="value"), batch_rows
        )
    batch |= {
        "fast path score_many (request dicts)": _best_rate(
            lambda: scorer.score_many(big), batch_rows
        ),
        "pipeline predict_proba (DataFrame)": _best_rate(
            lambda: loaded.model.predict_proba(big_frame), batch_rows, repeats=3
        ),
    }
    single = {
        "fast_path_ms": fast,
        "pipeline_ms": pipeline_ms,
        "batch_rows_per_s": batch,
        "stage_rows_per_s": stage_ceilings(settings, big, batch_rows),
        "max_gap": float(gap),
    }
    return single, records


def stage_ceilings(settings: Any, big: list[dict[str, Any]], rows: int) -> dict[str, float]:
    """Each stage a logged, explained batch cannot skip, timed alone on the same rows at its
    cheapest: no batch can run faster than its slowest stage."""
    import sqlite3
    import tempfile
    import uuid

    import numpy as np

    from creditops.serving.schemas import build_batch_model
    from creditops.serving.served import build_served_model

    served = build_served_model(settings)
    body = json.dumps({"applications": big}).encode()
    batch_model = build_batch_model(served.application_model, rows)
    probabilities = served.probabilities(big)
    labels = served.policy.decide_many(probabilities)
    explained = [r for r, label in zip(big, labels, strict=True) if label != "approve"]
    assert served.scorer is not None
    preprocessed = served.scorer.transform_many(explained)
    inputs = [json.dumps(r) for r in big]
    stamp = "2026-01-01 00:00:00.000000"
    log_rows = [
        (str(uuid.uuid4()), stamp, "m", "1", x, "{}", "[]", 0.5, 600, "C", "refer", "[]", 1.0)
        for x in inputs
    ]

    def bare_sqlite_insert() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            db = sqlite3.connect(Path(tmp) / "log.db", isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            columns = ", ".join(f"c{i}" for i in range(12))
            db.execute(f"CREATE TABLE p (id TEXT PRIMARY KEY, {columns})")
            db.execute("BEGIN IMMEDIATE")
            db.executemany(f"INSERT INTO p VALUES ({', '.join('?' * 13)})", log_rows)
            db.execute("COMMIT")
            db.close()

    share = f"{len(explained) / rows:.0%} of rows"
    return {
        "parse the JSON body (json.loads)": _best_rate(lambda: json.loads(body), rows),
        "validate (the pydantic batch model)": _best_rate(
            lambda: batch_model.model_validate({"applications": big}), rows, repeats=3
        ),
        "a UUID per decision (uuid4)": _best_rate(
            lambda: [uuid.uuid4() for _ in range(rows)], rows
        ),
        f"SHAP reasons for refer/decline ({share})": _best_rate(
            lambda: served.explainer.contributions(preprocessed), rows, repeats=2
        ),
        "durable log: bare sqlite3, 1 commit": _best_rate(bare_sqlite_insert, rows),
        "serialise inputs for the log (json.dumps)": _best_rate(
            lambda: [json.dumps(r) for r in big], rows
        ),
        "probabilities to decisions (policy)": _best_rate(
            lambda: np.asarray(served.policy.decide_many(probabilities)), rows
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per load test")
    parser.add_argument("--home", type=Path, help="store with a champion (default: train one)")
    parser.add_argument("--batch-rows", type=int, default=10_000)
    parser.add_argument("--skip-mlflow", action="store_true")
    parser.add_argument(
        "--baseline",
        help="a git revision of creditops to serve beside this one, for a before/after in one "
        "run (e.g. the commit before keys and the decision chain)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="serve each server this many times, the order reversed every round (baseline "
        "first, then this creditops first ...), and report each load's median: the first "
        "server of a round meets a colder machine, so one round favours the second",
    )
    parser.add_argument(
        "--shadow",
        action="store_true",
        help="also serve with a challenger scoring every decision in shadow "
        "(CREDITOPS_SHADOW_SHARE=1): the cost of shadow scoring beside the plain service",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk (or `make bench-serving`)")

    work = Path(tempfile.mkdtemp(prefix="creditops-bench-"))
    try:
        source = args.home
        if source is None:
            source = work / "store"
            print("training an XGBoost champion on credit_data (fast profile)...", flush=True)
            train_store(source)
        single, records = in_process(source, args.batch_rows)
        bodies = [json.dumps(r) for r in records[:200]]
        creditops_lua = work / "creditops.lua"
        key_holder = work / "key-store"
        key = _stored_key(key_holder)  # a key from the key store, as a client would hold
        creditops_lua.write_text(
            _LUA % {"bodies": ",".join(_lua_string(b) for b in bodies), "key": key}
        )
        mlflow_lua = work / "mlflow.lua"
        mlflow_bodies = [json.dumps({"dataframe_records": [r]}) for r in records[:200]]
        mlflow_lua.write_text(
            _LUA % {"bodies": ",".join(_lua_string(b) for b in mlflow_bodies), "key": ""}
        )
        baseline_src = _baseline(args.baseline, work) if args.baseline else None

        rows: list[tuple[str, int, int, dict[str, float]]] = []
        http_batch: dict[str, float] = {}
        # The baseline first, then this creditops, each from the same store and wrk script;
        # with several rounds, every other round in the reverse order.
        compared = (["baseline"] if baseline_src else []) + ["creditops"]
        if args.shadow:
            _register_challenger(source)  # the champion's model again: the same cost to score
            compared.append("shadow")
        order: list[str] = []
        for round_ in range(max(1, args.rounds)):
            order += compared if round_ % 2 == 0 else compared[::-1]
        order += [] if args.skip_mlflow else ["mlflow"]
        for position, server in enumerate(order):
            for workers in (1, 2):
                home = work / f"{position}-{server}-{workers}"
                shutil.copytree(source, home)
                port = _free_port()
                env = {**os.environ, "CREDITOPS_HOME": str(home)}
                if server in ("creditops", "shadow"):
                    shutil.copy(key_holder / "predictions.db", home / "predictions.db")
                    if server == "shadow":
                        env["CREDITOPS_SHADOW_SHARE"] = "1.0"
                    command = [str(BIN / "creditops"), "serve", "--port", str(port)]
                    command += ["--workers", str(workers)]
                    ready, url, script = "/ready", "/predict", creditops_lua
                elif server == "baseline":  # the same command, from the older source
                    # a decision log of its own schema (the trained store's is this one's)
                    (home / "predictions.db").unlink(missing_ok=True)
                    env["PYTHONPATH"] = str(baseline_src)
                    command = [sys.executable, "-m", "creditops.cli", "serve", "--port", str(port)]
                    command += ["--workers", str(workers)]
                    ready, url, script = "/ready", "/predict", creditops_lua
                else:
                    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{home / 'mlflow.db'}"
                    env["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "true"
                    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"  # it execs uvicorn
                    command = [str(BIN / "mlflow"), "models", "serve", "-m"]
                    command += ["models:/credit-default@champion", "--env-manager", "local"]
                    command += ["-p", str(port), "-h", "127.0.0.1", "-w", str(workers)]
                    ready, url, script = "/ping", "/invocations", mlflow_lua
                base = f"http://127.0.0.1:{port}"
                process = subprocess.Popen(
                    command,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
                try:
                    _wait_ready(base + ready, process)
                    _wrk(base + url, script, 16, 3)  # warm-up: every worker, every path
                    for connections in (1, 16):
                        print(f"  {server}, {workers} worker(s), {connections} client(s)...")
                        result = _wrk(base + url, script, connections, args.duration)
                        rows.append((server, workers, connections, result))
                    if server == "creditops" and workers == 1 and not http_batch:
                        http_batch = _http_batch(base, records, args.batch_rows, key)
                        http_batch.update(_cli_batch(home, records, args.batch_rows, work))
                finally:
                    _stop(process)

        _print_report(single, _medians(rows), http_batch, args)
        if args.rounds > 1:
            print(
                "\nEach round (req/s at 1 worker 1 client / 2 workers 16 clients, p50 ms at 1/1):"
            )
            for server in compared:
                runs = [r for r in rows if r[0] == server]
                one = [r[3] for r in runs if r[1:3] == (1, 1)]
                many = [r[3] for r in runs if r[1:3] == (2, 16)]
                print(
                    f"  {server:<10}"
                    + "  ".join(
                        f"{a['requests_per_s']:.0f}/{b['requests_per_s']:.0f} p50 {a['p50_ms']:.2f}"
                        for a, b in zip(one, many, strict=False)
                    )
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if args.baseline:  # the baseline's checkout is gone: forget it in git too
            subprocess.run(["git", "-C", str(ROOT), "worktree", "prune"], check=False)


def _medians(
    rows: list[tuple[str, int, int, dict[str, float]]],
) -> list[tuple[str, int, int, dict[str, float]]]:
    """One row per (server, workers, clients): each figure's median over the rounds."""
    import statistics

    grouped: dict[tuple[str, int, int], list[dict[str, float]]] = {}
    for server, workers, connections, result in rows:
        grouped.setdefault((server, workers, connections), []).append(result)
    return [
        (*key, {name: statistics.median(r[name] for r in results) for name in results[0]})
        for key, results in grouped.items()
    ]


def _register_challenger(home: Path) -> None:
    """Register the champion's model again under ``home`` and point ``challenger`` at it."""
    from creditops.config import Settings
    from creditops.registry import CHALLENGER, get_version, register_model, set_alias

    settings = Settings(home=home)
    champion = get_version(settings)
    version = register_model(
        f"models:/{settings.registered_model_name}/{champion.version}",
        settings,
        alias=None,
        tags=dict(champion.tags or {}),
    )
    set_alias(settings, CHALLENGER, version)


def _stored_key(home: Path) -> str:
    """A new key with the decide role in a fresh decision database under ``home``, copied into
    each creditops server's home (the baseline serves without keys)."""
    from creditops.store.keys import KeyStore

    home.mkdir(parents=True, exist_ok=True)
    with KeyStore(f"sqlite:///{home / 'predictions.db'}") as store:
        return store.create("bench", ["decide"], created_by="benchmark").key


def _baseline(revision: str, work: Path) -> Path:
    """The source of creditops at ``revision``, checked out beside this one."""
    tree = work / "baseline"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), revision],
        check=True,
        capture_output=True,
    )
    return tree / "src"


def _http_batch(base: str, records: list[dict[str, Any]], rows: int, key: str) -> dict[str, float]:
    batch = [records[i % len(records)] for i in range(rows)]
    body = json.dumps({"applications": batch})
    with httpx.Client(timeout=120) as client:
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            response = client.post(
                base + "/predict/batch",
                content=body,
                headers={"content-type": "application/json", "X-API-Key": key},
            )
            elapsed = time.perf_counter() - started
            response.raise_for_status()
            best = min(best, elapsed)
    return {"POST /predict/batch (JSON, logged)": rows / best}


def _cli_batch(
    home: Path, records: list[dict[str, Any]], rows: int, work: Path
) -> dict[str, float]:
    import pandas as pd

    source = work / "applications.csv"
    pd.DataFrame.from_records([records[i % len(records)] for i in range(rows)]).to_csv(
        source, index=False
    )
    env = {**os.environ, "CREDITOPS_HOME": str(home)}
    results = {}
    for label, extra in (
        ("creditops predict (CSV file, logged)", []),
        ("creditops predict (CSV file, --no-log)", ["--no-log"]),
    ):
        command = [str(BIN / "creditops"), "predict", str(source), "--out", str(work / "out.csv")]
        completed = subprocess.run(
            [*command, *extra, "--json"], env=env, capture_output=True, text=True, check=True
        )
        summary = json.loads(completed.stdout)
        results[label] = rows / summary["scoring_seconds"]
    return results


def _print_report(
    single: dict[str, Any],
    rows: list[tuple[str, int, int, dict[str, float]]],
    batch: dict[str, float],
    args: argparse.Namespace,
) -> None:
    cpu = os.cpu_count()
    print(f"\nHTTP, one application per request ({args.duration} s each, wrk, {cpu} cores)")
    print(
        f"{'server':<42}{'workers':>8}{'clients':>8}{'req/s':>9}{'p50 ms':>8}"
        f"{'p95 ms':>8}{'p99 ms':>8}{'errors':>8}"
    )
    for server, workers, connections, r in rows:
        label = {
            "creditops": "creditops serve (key, logged, fsync)",
            "baseline": f"creditops serve at {args.baseline} (before)",
            "shadow": "creditops serve + challenger in shadow (100%)",
        }.get(server, "mlflow models serve --env-manager local")
        print(
            f"{label:<42}{workers:>8}{connections:>8}{r['requests_per_s']:>9.0f}"
            f"{r['p50_ms']:>8.2f}{r['p95_ms']:>8.2f}{r['p99_ms']:>8.2f}{r['errors']:>8}"
        )
    by_key = {(s, w, c): r["requests_per_s"] for s, w, c, r in rows}
    for workers, connections in ((1, 1), (2, 16)):
        now = by_key.get(("creditops", workers, connections))
        before = by_key.get(("baseline", workers, connections))
        if now and before:
            print(
                f"now / before at {workers} worker(s), {connections} client(s): {now / before:.2f}x"
            )
    p50 = {(s, w, c): r["p50_ms"] for s, w, c, r in rows}
    for workers, connections in ((1, 1), (2, 16)):
        plain = p50.get(("creditops", workers, connections))
        shadowed = p50.get(("shadow", workers, connections))
        if plain and shadowed:
            print(
                f"shadow scoring at {workers} worker(s), {connections} client(s): p50 "
                f"{shadowed:.2f} vs {plain:.2f} ms ({shadowed / plain - 1:+.1%})"
            )
    for workers, connections in ((1, 1), (2, 16)):
        ours = by_key.get(("creditops", workers, connections))
        theirs = by_key.get(("mlflow", workers, connections))
        if ours and theirs:
            print(
                f"creditops / mlflow at {workers} worker(s), {connections} client(s): "
                f"{ours / theirs:.1f}x"
            )

    fast, pipeline = single["fast_path_ms"], single["pipeline_ms"]
    print("\nIn-process scoring of one application (median / p99 ms)")
    print(f"  fast path (request dict)          {fast[0]:.3f} / {fast[1]:.3f}")
    print(
        f"  pipeline (one-row DataFrame)      {pipeline[0]:.3f} / {pipeline[1]:.3f}"
        f"   ({pipeline[0] / fast[0]:.0f}x slower)"
    )
    print(
        f"  largest |fast path - pipeline| on the {args.batch_rows} batch rows: "
        f"{single['max_gap']:.1e}"
    )

    rates = {**single["batch_rows_per_s"], **batch}
    floor = rates["raw booster (preprocessed float32 rows)"]
    print(f"\nBatches of {args.batch_rows} rows (rows/s, best of several runs; vs raw booster)")
    for label, rate in rates.items():
        print(f"  {label:<44}{rate:>12,.0f}{rate / floor:>8.0%}")
    print(
        "\nStages a logged, explained batch cannot skip, each timed alone at its cheapest on the "
        "same rows\n(rows/s; vs raw booster): a batch is slower than its slowest stage"
    )
    for label, rate in single["stage_rows_per_s"].items():
        print(f"  {label:<44}{rate:>12,.0f}{rate / floor:>8.0%}")


if __name__ == "__main__":
    main()
