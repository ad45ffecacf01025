"""How good is the champion creditops picks, against what a data scientist types in five lines?

For each dataset (the built-ins, the offline public credit datasets of
``benchmarks/credit_datasets.py``, and any ``--data CSV --spec YAML`` pairs given), in one run:

1. ``creditops``'s training (``--profile``, default full) on the seeded 70/15/15 split, tracked in
   a throw-away store, nothing registered: every candidate's CV, validation and test AUC, the
   champion the selection rule chose, and the training time.
2. A default ``sklearn.ensemble.HistGradientBoostingClassifier`` (native categorical support,
   nothing tuned) fitted on the same training rows and scored on the same test rows.
3. The miss of the selection: the best candidate's test AUC minus the champion's, and the WoE
   scorecard's test AUC (the validator's benchmark).

Printed as one table, with how often the champion had the best test AUC. The goals: the
champion at least as good as the default HistGradientBoosting on every dataset, and within
0.002 of the best candidate's test AUC.

Usage: ``python benchmarks/quality.py [--profile fast|full] [--dataset NAME ...] [--all]
[--data CSV --spec YAML ...] [--time-budget S] [--json OUT]`` (``--all``: the built-ins and
every offline dataset; default: the built-ins).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

from creditops.config import Settings
from creditops.data.datasets import load_builtin
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
    for column in X.columns:
        if not pd.api.types.is_numeric_dtype(X[column]):
            X[column] = X[column].astype("category")
    model = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=seed)
    model.fit(X.iloc[split.train], validated.y[split.train])
    proba = model.predict_proba(X.iloc[split.test])[:, 1]
    return float(roc_auc_score(validated.y[split.test], proba))


def measure(
    name: str,
    frame: pd.DataFrame,
    spec: DatasetSpec,
    profile: str,
    time_budget: float | None = None,
) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="creditops-quality-"))
    settings = Settings(home=home, time_budget=time_budget)
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
        "rows": len(frame),
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


def main() -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from credit_datasets import DATASETS

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", choices=["fast", "full"], default="full")
    parser.add_argument(
        "--dataset", action="append", default=None, help="built-in or offline dataset name(s)"
    )
    parser.add_argument("--all", action="store_true", help="every built-in and offline dataset")
    parser.add_argument("--data", action="append", default=[], type=Path)
    parser.add_argument("--spec", action="append", default=[], type=Path)
    parser.add_argument("--time-budget", type=float, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if len(args.data) != len(args.spec):
        parser.error("give one --spec per --data")
    names = args.dataset or ["credit_data", "lending_club"]
    if args.all:
        names = ["credit_data", "lending_club", *DATASETS]
    sets: list[tuple[str, pd.DataFrame, DatasetSpec]] = []
    for name in names:
        frame, spec = DATASETS[name]() if name in DATASETS else load_builtin(name)
        sets.append((name, frame, spec))
    for data, spec_path in zip(args.data, args.spec, strict=True):
        sets.append((data.stem, read_table(data), DatasetSpec.from_yaml(spec_path)))
    rows = []
    for name, frame, spec in sets:
        print(f"{name}: training ({args.profile} profile)...", file=sys.stderr)
        rows.append(measure(name, frame, spec, args.profile, args.time_budget))
        if args.json:  # after every dataset: a long run keeps what it measured
            args.json.write_text(json.dumps(rows, indent=2))
    print(
        "\n| dataset | rows | champion | champion test AUC | default HGB test AUC | best candidate"
        " (test AUC) | selection miss | best by CV | scorecard test AUC | train s |"
    )
    print("|---|---:|---|---:|---:|---|---:|---|---:|---:|")
    for r in rows:
        scorecard = r["scorecard_test_auc"]
        print(
            f"| {r['dataset']} | {r['rows']:,} | {r['champion']} | {r['champion_test_auc']:.4f} "
            f"| {r['baseline_hgb_test_auc']:.4f} | {r['best_candidate']} ({r['best_test_auc']:.4f})"
            f" | {r['selection_miss']:.4f} | {r['best_cv_candidate']} | "
            f"{'–' if scorecard is None else f'{scorecard:.4f}'} | {r['train_seconds']:.0f} |"
        )
    hits = sum(r["selection_miss"] == 0 for r in rows)
    misses = [r["selection_miss"] for r in rows if r["selection_miss"] > 0]
    beat = sum(r["champion_test_auc"] >= r["baseline_hgb_test_auc"] for r in rows)
    print(
        f"\nThe champion had the best test AUC on {hits} of {len(rows)} datasets"
        + (
            f"; when not, it missed by {sum(misses) / len(misses):.4f} on average "
            f"(at most {max(misses):.4f})"
            if misses
            else ""
        )
        + f". It matched or beat the default HistGradientBoosting on {beat} of {len(rows)}."
    )


if __name__ == "__main__":
    main()
