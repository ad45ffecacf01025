"""Soak: `creditops serve --workers 2` for a long run at a fixed share of its measured capacity.

What it shows, minute by minute (a segment):

* the rate achieved and the latency percentiles of that minute (p99 over time: a leak or a
  growing queue shows as a rising p99 long before it shows as errors);
* each worker's resident memory (RSS, from /proc), so its growth over the run is read per
  worker, beside the first minute's;
* at the end, acknowledged = logged: every decision a client received (its ``prediction_id``,
  recorded by the load generator) is in the decision log exactly once; decisions logged but
  never acknowledged can only be requests in flight when a segment's load generator stopped
  (at most one per connection per segment).

The load is ``wrk`` with a per-connection pause (its ``delay()`` hook) tuned each minute so the
achieved rate stays at ``--share`` (default 70%) of the capacity measured first with the same
connections and no pause. Not part of the test suite: ``python benchmarks/soak.py`` (30
minutes by default; ``--minutes 3`` for a quick look). Needs ``wrk`` (Debian package).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from serving import (  # noqa: E402
    _RESULT,
    _free_port,
    _lua_string,
    _stop,
    _stored_key,
    _wait_ready,
    train_store,
)

# Each wrk thread appends the prediction_id of every 200 it receives to its own file.
_LUA = """
local bodies = {%(bodies)s}
local i = 0
local pause = %(pause)s
local counter = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-API-Key"] = "%(key)s"
function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
end
function init(args)
  ids = io.open("%(prefix)s" .. id, "a")
  ids:setvbuf("line")  -- a thread's file is never closed: nothing may wait in a buffer
end
request = function()
  i = i %% #bodies + 1
  return wrk.format(nil, nil, nil, bodies[i])
end
delay = function()
  return pause
end
response = function(status, headers, body)
  if status == 200 then
    local found = string.match(body, '"prediction_id":"([0-9a-f-]+)"')
    if found then ids:write(found, "\\n") end
  end
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %%d %%d %%d %%.3f %%.3f %%.3f %%.3f\\n", summary.requests,
    e.connect + e.read + e.write + e.timeout, e.status, latency:percentile(50) / 1000,
    latency:percentile(95) / 1000, latency:percentile(99) / 1000, summary.duration / 1e6))
end
"""


def _workers(supervisor: int) -> list[int]:
    """The worker processes of a ``creditops serve --workers N`` supervisor."""
    pids: list[int] = []
    for task in Path(f"/proc/{supervisor}/task").iterdir():
        children = (task / "children").read_text().split()
        pids += [int(pid) for pid in children]
    return sorted(pid for pid in pids if _is_worker(pid))


def _is_worker(pid: int) -> bool:
    try:
        return b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _run_wrk(url: str, script: Path, connections: int, seconds: int) -> dict[str, float]:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    match = _RESULT.search(output)
    if match is None:
        raise RuntimeError(f"wrk printed no result:\n{output}")
    requests, socket_errors, non2xx, p50, p95, p99, duration = match.groups()
    return {
        "requests": int(requests),
        "rate": int(requests) / float(duration),
        "socket_errors": int(socket_errors),
        "non2xx": int(non2xx),
        "p50_ms": float(p50),
        "p95_ms": float(p95),
        "p99_ms": float(p99),
    }


def _script(work: Path, bodies: str, key: str, pause_ms: float, prefix: Path) -> Path:
    script = work / "soak.lua"
    script.write_text(
        _LUA % {"bodies": bodies, "key": key, "pause": f"{pause_ms:.3f}", "prefix": prefix}
    )
    return script


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--share", type=float, default=0.7, help="of the measured capacity")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--segment", type=int, default=60, help="seconds per reported segment")
    parser.add_argument("--home", type=Path, help="a trained CREDITOPS_HOME (else one is trained)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")
    from creditops.data.datasets import load_builtin

    with tempfile.TemporaryDirectory(prefix="creditops-soak-") as tmp:
        work = Path(tmp)
        source = args.home
        if source is None:
            source = work / "store"
            print("training an XGBoost champion on credit_data (fast profile)...", flush=True)
            train_store(source)
        home = work / "home"
        shutil.copytree(source, home)
        (home / "predictions.db").unlink(missing_ok=True)
        key = _stored_key(home)
        frame, spec = load_builtin("credit_data")
        rows = frame.drop(columns=[spec.target, spec.id]).head(200)
        records = json.loads(rows.to_json(orient="records"))
        bodies = ",".join(_lua_string(json.dumps(r)) for r in records)
        ids = work / "ids"
        ids.mkdir()

        port = _free_port()
        env = {**os.environ, "CREDITOPS_HOME": str(home), "CREDITOPS_CHAMPION_POLL_SECONDS": "5"}
        command = [
            sys.executable, "-m", "creditops.cli", "serve", "--port", str(port),
            "--workers", str(args.workers),
        ]  # fmt: skip
        server = subprocess.Popen(command, env=env, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(f"{url}/ready", server)
            time.sleep(2.0)
            workers = _workers(server.pid)
            post = f"{url}/predict"
            # Their decisions are logged too: their acknowledgements are counted with the rest.
            _run_wrk(post, _script(work, bodies, key, 0, ids / "warm-"), args.connections, 5)
            capacity = _run_wrk(
                post, _script(work, bodies, key, 0, ids / "capacity-"), args.connections, 15
            )
            target = args.share * capacity["rate"]
            print(
                f"capacity with {args.workers} workers and {args.connections} connections: "
                f"{capacity['rate']:.0f} req/s (p99 {capacity['p99_ms']:.1f} ms); "
                f"soak target {target:.0f} req/s for {args.minutes:g} min",
                flush=True,
            )
            # Connections each wait for the answer, then pause: C / rate = latency + pause.
            pause = max(0.0, args.connections / target * 1000 - capacity["p50_ms"])
            rss0 = {pid: _rss_mib(pid) for pid in workers}
            segments = []
            started = time.monotonic()
            print(
                "\nsegment  rate/s  p50 ms  p95 ms  p99 ms  non-2xx  socket-err  "
                + "  ".join(f"RSS {pid} MiB" for pid in workers),
                flush=True,
            )
            while time.monotonic() - started < args.minutes * 60:
                script = _script(work, bodies, key, pause, ids / f"{len(segments):03d}-")
                result = _run_wrk(post, script, args.connections, args.segment)
                rss = {pid: _rss_mib(pid) for pid in workers}
                result["rss"] = rss
                segments.append(result)
                print(
                    f"{len(segments):6d}  {result['rate']:6.0f}  {result['p50_ms']:6.2f}  "
                    f"{result['p95_ms']:6.2f}  {result['p99_ms']:6.2f}  {result['non2xx']:7d}  "
                    f"{result['socket_errors']:10d}  "
                    + "  ".join(f"{(rss[pid] or 0):>12.1f}" for pid in workers),
                    flush=True,
                )
                # Steer the pause toward the target rate for the next minute.
                if result["rate"] > 0:
                    per_request = args.connections / result["rate"] * 1000
                    pause = max(0.0, pause + args.connections / target * 1000 - per_request)
            alive = _workers(server.pid)
        finally:
            _stop(server)
        acknowledged = Counter(
            line for path in ids.iterdir() for line in path.read_text().split() if line
        )
        with sqlite3.connect(home / "predictions.db") as conn:
            logged = Counter(row[0] for row in conn.execute("SELECT id FROM predictions"))
        _report(args, segments, workers, alive, rss0, acknowledged, logged)


def _report(
    args: Any,
    segments: list[dict[str, Any]],
    workers: list[int],
    alive: list[int],
    rss0: dict[int, float | None],
    acknowledged: Counter[str],
    logged: Counter[str],
) -> None:
    print(f"\nsoak: {len(segments)} segments of {args.segment} s, {args.workers} workers")
    rates = [s["rate"] for s in segments]
    p99 = [s["p99_ms"] for s in segments]
    print(
        f"rate: median {statistics.median(rates):.0f} req/s; p99 first / median / max / last: "
        f"{p99[0]:.2f} / {statistics.median(p99):.2f} / {max(p99):.2f} / {p99[-1]:.2f} ms"
    )
    for pid in workers:
        first = segments[0]["rss"][pid]
        last = segments[-1]["rss"][pid]
        start = rss0.get(pid)
        if first is None or last is None:
            print(f"worker {pid}: gone during the soak (restarted workers now: {alive})")
            continue
        print(
            f"worker {pid}: RSS {start or 0:.1f} MiB before load, {first:.1f} after the first "
            f"minute, {last:.1f} at the end: growth after the first minute "
            f"{last - first:+.1f} MiB ({(last - first) / len(segments):+.2f} MiB/min)"
        )
    errors = sum(s["non2xx"] + s["socket_errors"] for s in segments)
    twice = [i for i, n in logged.items() if n > 1]
    missing = [i for i in acknowledged if i not in logged]
    unacknowledged = len(set(logged) - set(acknowledged))
    print(
        f"acknowledged {sum(acknowledged.values()):,} (distinct {len(acknowledged):,}), logged "
        f"{sum(logged.values()):,}; acknowledged but not logged: {len(missing)}; logged twice: "
        f"{len(twice)}; logged but never acknowledged (in flight when a load run ended, at most "
        f"{args.connections} per run): {unacknowledged}; non-2xx or socket errors: {errors}"
    )
    runs = len(segments) + 2  # with the warm-up and the capacity measurement
    ok = not missing and not twice and unacknowledged <= args.connections * runs
    print("acknowledged = logged: " + ("yes" if ok else "NO"))


if __name__ == "__main__":
    main()
