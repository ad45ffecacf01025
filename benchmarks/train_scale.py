"""Training on a Dask cluster beside training in one process, on synthetic data of
credit_data's shape (``creditops.data.synthetic``):

* XGBoost's final fit on ``--rows`` rows (default 1,000,000): one process as creditops fits it
  (one thread, ``n_jobs=1``), one process with two threads, and ``xgboost.dask`` on a
  LocalCluster of two single-threaded workers (``creditops.scale.training.DaskOffload``), each
  with the same parameters; seconds, and ROC AUC on a held-out fifth of the rows.
* ``--trials`` (default 8) Optuna trials of the XGBoost candidate with 5-fold cross-validation
  on ``--tune-rows`` rows: in this process, and on the LocalCluster over one shared study
  (DaskStorage); seconds and the best cross-validated AUC.

Usage: ``python benchmarks/train_scale.py [--rows 1000000] [--tune-rows 50000] [--trials 8]``
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
from sklearn.base import clone
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from creditops.data.datasets import load_builtin
from creditops.data.synthetic import synthesize
from creditops.data.validate import validate_dataset
from creditops.models.zoo import FeatureSet, get_candidates
from creditops.scale.cluster import cluster_client
from creditops.scale.training import DaskOffload
from creditops.training.tune import tune


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--tune-rows", type=int, default=50_000)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    frame, spec = load_builtin("credit_data")
    started = time.perf_counter()
    data = synthesize(frame, args.rows, target=spec.target, seed=args.seed)
    validated = validate_dataset(data, spec, dataset_name="synthetic")
    X, y = validated.X, validated.y
    features = FeatureSet.from_spec(validated.spec)
    xgboost = get_candidates(["xgboost"])[0]
    print(f"{args.rows:,} synthetic rows in {time.perf_counter() - started:.0f} s")

    fit_idx, test_idx = train_test_split(
        np.arange(len(y)), test_size=0.2, stratify=y, random_state=args.seed
    )
    X_fit, y_fit, X_test, y_test = X.iloc[fit_idx], y[fit_idx], X.iloc[test_idx], y[test_idx]
    pos_weight = float((y_fit == 0).sum() / max(int(y_fit.sum()), 1))
    params = {**xgboost.first_trial, "n_estimators": 300}
    pipeline = xgboost.build(features, params, pos_weight, args.seed)

    print(f"\nXGBoost final fit, {len(y_fit):,} rows, {params['n_estimators']} trees")
    print("| where | seconds | test ROC AUC |")
    print("|---|---:|---:|")

    def report(label: str, fit: callable) -> None:
        began = time.perf_counter()
        model = fit()
        seconds = time.perf_counter() - began
        auc = roc_auc_score(y_test, model.predict_proba(X_test)[:, 1])
        print(f"| {label} | {seconds:.1f} | {auc:.4f} |", flush=True)

    report("one process, 1 thread (as creditops fits)", lambda: clone(pipeline).fit(X_fit, y_fit))
    two_threads = clone(pipeline).set_params(model__n_jobs=args.workers)
    report(f"one process, {args.workers} threads", lambda: two_threads.fit(X_fit, y_fit))
    with cluster_client(f"local:{args.workers}") as client:
        offload = DaskOffload(client, xgboost_rows=1, fit_timeout_s=3600)
        report(
            f"xgboost.dask, LocalCluster {args.workers} workers",
            lambda: offload.fit(pipeline, X_fit, y_fit),
        )

        sample, _ = train_test_split(
            np.arange(len(y)), train_size=args.tune_rows, stratify=y, random_state=args.seed
        )
        X_tune, y_tune = X.iloc[sample], y[sample]
        candidate = dataclasses.replace(xgboost, trials={"fast": args.trials, "full": args.trials})
        print(f"\n{args.trials} Optuna trials of XGBoost, 5-fold CV on {len(y_tune):,} rows")
        print("| where | seconds | trials | pruned | best CV ROC AUC |")
        print("|---|---:|---:|---:|---:|")
        for label, parallel in (
            ("this process", None),
            (f"LocalCluster {args.workers} workers, shared study", offload),
        ):
            began = time.perf_counter()
            result = tune(
                candidate,
                features,
                X_tune,
                y_tune,
                profile="fast",
                n_folds=5,
                seed=args.seed,
                n_jobs=1,
                parallel=parallel,
            )
            print(
                f"| {label} | {time.perf_counter() - began:.1f} | {result.n_trials} | "
                f"{result.n_pruned} | {result.cv_mean['roc_auc']:.4f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
