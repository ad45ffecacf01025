"""How long the data profile takes on a large file, and how much memory it needs.

(Named ``data_profile``, not ``profile``: a script's folder comes first on ``sys.path``, and a
``profile.py`` there would stand in for the standard library's, which ``cProfile`` imports.)

Writes a seeded credit-like file of ``--rows`` rows × 30 columns (20 numeric with missing values
and outliers, 9 categorical of 3 to 400 levels, the outcome), as CSV and as Parquet, then profiles
each in a fresh process (so the peak resident memory is the profile's own) with
``creditops.data.profile.profile_file``, beside a baseline written the way one would with pandas
(read the whole file, then per feature ``qcut`` into deciles and ``groupby``) for the same IV
table. Prints one row per (engine, format): seconds and peak RSS.

Goal: 1,000,000 rows × 30 columns profiled in ≤ 60 s on 2 cores with peak RSS < 2 GiB.

Usage: ``python benchmarks/data_profile.py [--rows N] [--keep DIR] [--skip-baseline]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

NUMERIC = 20
CATEGORICAL = 9


def write_files(rows: int, folder: Path) -> tuple[Path, Path, Path]:
    rng = np.random.default_rng(0)
    risk = rng.normal(size=rows)
    columns: dict[str, np.ndarray] = {}
    for i in range(NUMERIC):
        signal = (i % 5) * 0.3
        values = np.round(np.exp(rng.normal(6, 1, rows) + signal * risk), 2)
        values[rng.random(rows) < 0.03 * (i % 4)] = np.nan
        columns[f"num_{i:02d}"] = values
    for j in range(CATEGORICAL):
        levels = [3, 5, 8, 12, 20, 40, 80, 200, 400][j]
        codes = np.clip(
            (rng.normal(size=rows) + 0.4 * risk) * levels / 4 + levels / 2, 0, levels - 1
        )
        labels = np.array([f"c{j}_{k}" for k in range(levels)], dtype=object)
        values = labels[codes.astype(int)]
        values[rng.random(rows) < 0.01] = None
        columns[f"cat_{j}"] = values
    bad = rng.random(rows) < 1 / (1 + np.exp(-(risk * 1.2 - 1.5)))
    columns["status"] = np.where(bad, "bad", "good")
    frame = pd.DataFrame(columns)
    csv, parquet = folder / "applications.csv", folder / "applications.parquet"
    frame.to_csv(csv, index=False)
    frame.to_parquet(parquet, index=False)
    spec = folder / "spec.yaml"
    spec.write_text("target: status\npositive: bad\n")
    return csv, parquet, spec


# Each measurement runs in a child process that reports its own peak RSS: VmHWM of its own
# address space (getrusage's ru_maxrss would carry the parent's over the fork and exec).
_PEAK = """
def peak_rss_mib():
    with open("/proc/self/status") as status:
        line = next(l for l in status if l.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024
"""
_CREDITOPS = """
import json, sys, time
from creditops.data.profile import profile_file
from creditops.data.spec import DatasetSpec
started = time.perf_counter()
result = profile_file(sys.argv[1], DatasetSpec.from_yaml(sys.argv[2]))
top = result.by_information_value()[0]
print(json.dumps({"seconds": time.perf_counter() - started, "features": len(result.features),
                  "top": [top.name, round(top.information_value, 4)],
                  "peak_rss_mib": peak_rss_mib()}))
"""

_PANDAS = """
import json, sys, time
import numpy as np, pandas as pd
started = time.perf_counter()
path = sys.argv[1]
frame = pd.read_parquet(path) if path.endswith(".parquet") else pd.read_csv(path)
bad = (frame.pop("status") == "bad").astype(int)
ivs = {}
for column in frame.columns:
    values = frame[column]
    if values.dtype.kind == "f":
        deciles = pd.qcut(values, 10, duplicates="drop")
        groups = deciles.cat.add_categories("Missing").fillna("Missing")
    else:
        groups = values.fillna("Missing")
    table = bad.groupby(groups, observed=True).agg(["sum", "count"])
    bads, goods = table["sum"].clip(lower=0.5), (table["count"] - table["sum"]).clip(lower=0.5)
    woe = np.log((goods / goods.sum()) / (bads / bads.sum()))
    ivs[column] = float(((goods / goods.sum() - bads / bads.sum()) * woe).sum())
top = max(ivs, key=ivs.get)
print(json.dumps({"seconds": time.perf_counter() - started, "features": len(ivs),
                  "top": [top, round(ivs[top], 4)],
                  "peak_rss_mib": peak_rss_mib()}))
"""


def measure(script: str, *args: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", _PEAK + script, *args], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, default=None, help="write the files here")
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()

    folder = args.keep or Path(tempfile.mkdtemp(prefix="creditops-profile-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    csv, parquet, spec = write_files(args.rows, folder)
    print(
        f"{args.rows:,} rows × {NUMERIC + CATEGORICAL + 1} columns written in "
        f"{time.perf_counter() - started:.0f} s: CSV {csv.stat().st_size / 2**20:.0f} MiB, "
        f"Parquet {parquet.stat().st_size / 2**20:.0f} MiB"
    )
    rows = []
    for engine, script in (("creditops (DuckDB)", _CREDITOPS), ("pandas baseline", _PANDAS)):
        if engine.startswith("pandas") and args.skip_baseline:
            continue
        for path in (parquet, csv):
            result = measure(script, str(path), str(spec))
            rows.append((engine, path.suffix[1:], result))
    print()
    print("| engine | format | seconds | peak RSS (MiB) | features | top IV |")
    print("|---|---|---:|---:|---:|---|")
    for engine, kind, r in rows:
        print(
            f"| {engine} | {kind} | {r['seconds']:.1f} | {r['peak_rss_mib']:.0f} | "
            f"{r['features']} | {r['top'][0]} {r['top'][1]} |"
        )
    print("\nGoal: ≤ 60 s and < 2,048 MiB for 1,000,000 rows × 30 columns on 2 cores.")


if __name__ == "__main__":
    main()
