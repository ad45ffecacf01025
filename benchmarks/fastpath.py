"""Benchmark the compiled fast path (``creditops.serving.fastpath``) against the pipeline.

Per model kind, in-process, on this machine:

* one application: ``model.predict_proba(one-row DataFrame)`` (the baseline; the frame is built
  beforehand, so this is the model's own cost) against ``FastScorer.score_one(dict)`` (from the
  request dict, parsing included): median and p99 over many calls on different test rows;
* a batch of 10,000 rows: rows/s of ``predict_proba(DataFrame)``, of ``score_many(dicts)`` and
  of the final estimator alone on rows already preprocessed (the floor neither can beat; for
  the scorecard, whose estimator bins and transforms to WoE itself, its logistic regression on
  rows already transformed to WoE);
* the largest difference between the fast path and the pipeline on the batch.

The candidates are built with the zoo's default parameters (the network capped at 20 epochs)
on the credit_data training split; calibrated variants as training wraps them.

Usage: ``python benchmarks/fastpath.py [--calls 3000] [--baseline-calls 300] [--rows 10000]
[--only CANDIDATE ...]`` (``--only scorecard logistic_regression``: those candidates' rows only)
"""

from __future__ import annotations

import argparse
import gc
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

# (label, candidate, calibration method or None)
KINDS: list[tuple[str, str, str | None]] = [
    ("logistic", "logistic_regression", None),
    ("WoE scorecard", "scorecard", None),
    ("pca→logistic", "pca_logistic", None),
    ("random forest", "random_forest", None),
    ("xgboost", "xgboost", None),
    ("network", "neural_network", None),
    ("logistic+sigmoid", "logistic_regression", "sigmoid"),
    ("forest+isotonic", "random_forest", "isotonic"),
    ("xgboost+isotonic", "xgboost", "isotonic"),
]
PARAMS: dict[str, dict[str, Any]] = {"neural_network": {"max_epochs": 20}}


def _requests(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as a JSON request carries them: whole numbers as ints, missing as null."""
    records = []
    for row in frame.to_dict("records"):
        record: dict[str, Any] = {}
        for key, value in row.items():
            if isinstance(value, float):
                value = None if np.isnan(value) else (int(value) if value.is_integer() else value)
            record[key] = value
        records.append(record)
    return records


def _timings_us(call: Callable[[int], object], n: int, warmup: int = 30) -> np.ndarray:
    for i in range(warmup):
        call(i)
    out = np.empty(n)
    for i in range(n):
        start = time.perf_counter_ns()
        call(i)
        out[i] = time.perf_counter_ns() - start
    return out / 1e3


def _best_seconds(call: Callable[[], object], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000, help="score_one calls per model")
    parser.add_argument("--baseline-calls", type=int, default=300, help="pipeline calls")
    parser.add_argument("--rows", type=int, default=10_000, help="batch size")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--only", nargs="*", default=None, help="candidate names to measure")
    args = parser.parse_args()

    from sklearn.calibration import CalibratedClassifierCV

    from creditops.data.datasets import load_builtin
    from creditops.data.split import split_dataset
    from creditops.data.validate import validate_dataset
    from creditops.models.zoo import CANDIDATES, FeatureSet
    from creditops.serving.fastpath import FastScorer

    frame, spec = load_builtin("credit_data")
    validated = validate_dataset(frame, spec, dataset_name="credit_data")
    split = split_dataset(validated, seed=args.seed)
    features = list(validated.spec.features)
    X, y = validated.X, validated.y
    X_train, y_train = X.iloc[split.train], y[split.train]
    pos_weight = float((y_train == 0).sum() / y_train.sum())
    feature_set = FeatureSet(validated.spec.numeric, validated.spec.categorical)

    test_records = _requests(X.iloc[split.test])
    one_row_frames = [pd.DataFrame([r], columns=features) for r in test_records]
    rng = np.random.default_rng(args.seed)
    batch_frame = X.iloc[rng.integers(len(X), size=args.rows)].reset_index(drop=True)
    batch_records = _requests(batch_frame)
    batch_frame = pd.DataFrame.from_records(batch_records, columns=features)

    frame_build = _timings_us(
        lambda i: pd.DataFrame([test_records[i % len(test_records)]], columns=features), 500
    )
    print(
        f"credit_data: {len(X_train)} training rows; {len(test_records)} test rows cycled for "
        f"single calls; batch of {args.rows:,} rows. CPUs: {os.cpu_count()}."
    )
    print(
        f"Building the one-row DataFrame from the request dict (not in the baseline below): "
        f"median {np.median(frame_build):.0f} µs.\n"
    )

    header = (
        f"{'model':<18} {'pipeline 1 row':>17} {'score_one(dict)':>17} {'speed-up':>8}"
        f" {'estimator':>9} | {'predict_proba':>13} {'score_many':>11} {'estimator':>11}"
        f"  {'max |Δp|':>8}"
    )
    print(
        f"{'':<18} {'median / p99 µs':>17} {'median / p99 µs':>17} {'(median)':>8}"
        f" {'1 row µs':>9} | {'rows/s, batch of ' + format(args.rows, ','):>37}"
    )
    print(header)
    print("-" * len(header))
    for label, candidate, method in KINDS:
        if args.only and candidate not in args.only:
            continue
        pipeline = CANDIDATES[candidate].build(
            feature_set, PARAMS.get(candidate, {}), pos_weight, args.seed
        )
        model: Any = (
            pipeline
            if method is None
            else CalibratedClassifierCV(pipeline, method=method, cv=3, ensemble=False)
        )
        model.fit(X_train, y_train)
        scorer = FastScorer.compile(model, validated.spec)
        inner = model if method is None else model.calibrated_classifiers_[0].estimator
        estimator = inner[-1]
        preprocessed = inner[:-1].transform(pd.DataFrame(test_records, columns=features))
        if candidate == "scorecard":  # the floor: its regression on rows already in WoE
            preprocessed = estimator.woe(preprocessed)
            estimator = estimator.logistic_

        gc.collect()
        base = _timings_us(
            lambda i, m=model, f=one_row_frames: m.predict_proba(f[i % len(f)]),
            args.baseline_calls,
        )
        fast = _timings_us(
            lambda i, s=scorer, r=test_records: s.score_one(r[i % len(r)]), args.calls
        )
        floor = _timings_us(
            lambda i, e=estimator, t=preprocessed: e.predict_proba(t[i % len(t)][None, :]),
            args.baseline_calls,
        )

        expected = model.predict_proba(batch_frame)[:, 1]
        gap = float(np.max(np.abs(scorer.score_many(batch_records) - expected)))
        t_pipe = _best_seconds(lambda m=model: m.predict_proba(batch_frame))
        t_fast = _best_seconds(lambda s=scorer: s.score_many(batch_records))
        transformed = inner[:-1].transform(batch_frame)
        if candidate == "scorecard":
            transformed = inner[-1].woe(transformed)
        t_raw = _best_seconds(lambda e=estimator, t=transformed: e.predict_proba(t))

        print(
            f"{label:<18} {np.median(base):>8.0f} / {np.percentile(base, 99):>6.0f}"
            f" {np.median(fast):>8.1f} / {np.percentile(fast, 99):>6.0f}"
            f" {np.median(base) / np.median(fast):>7.0f}x {np.median(floor):>9.0f}"
            f" | {args.rows / t_pipe:>13,.0f} {args.rows / t_fast:>11,.0f}"
            f" {args.rows / t_raw:>11,.0f}  {gap:>8.1e}"
        )
    print(
        "\nestimator: the final (uncalibrated) estimator's own predict_proba on rows already"
        " preprocessed (after PCA\nfor pca→logistic): one numpy row, and the whole batch."
        "\nxgboost: the pipeline's estimator uses n_jobs=2; the fast path a 1-thread booster copy."
    )


if __name__ == "__main__":
    main()
