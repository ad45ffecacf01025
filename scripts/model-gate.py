"""The model gate CI runs: a freshly trained champion against the benchmark scorecard.

    python scripts/model-gate.py CHAMPION.json --benchmark SCORECARD.json [--min-auc 0.80]

Both files are ``creditops evaluate --json`` of versions trained on the same data and split (CI
trains the WoE scorecard alone, then every candidate). The champion must pass the promotion gates
a retrain must pass (``creditops.retraining.evaluate_gates``) with the benchmark in the champion's
seat and the test split as the holdout: ROC AUC not below the benchmark's minus ``auc_tolerance``,
Brier not above the benchmark's plus ``calibration_tolerance``, and fairness by the ``fairness``
rule (``not_worse``: no protected attribute's disparate impact ratio more than
``fairness_tolerance`` below the benchmark's; ``pass``: every one at least 0.80). The numbers
are the ``retrain`` section of the monitoring YAML (``CREDITOPS_MONITORING_CONFIG``) over its
defaults, the same that gate a promotion. The evaluation's own fairness gate (the limits of
``FairnessConfig``) is printed beside them. ``--min-auc`` adds an absolute floor on the
champion's test ROC AUC, so a change that makes every model worse, the benchmark included, still
fails (CI sets it in the workflow's ``MODEL_GATE_MIN_AUC``).

Prints every figure it checked; exits 1 when a gate fails, 2 when the files cannot be compared.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from creditops.config import get_settings
from creditops.retraining import evaluate_gates, retrain_config


def _scores(evaluation: dict[str, Any]) -> dict[str, Any]:
    """The figures a promotion gate compares, as the retrain pipeline collects them."""
    fairness = evaluation.get("fairness") or {"attributes": []}
    return {
        "roc_auc": evaluation["metrics"]["roc_auc"],
        "brier": evaluation["metrics"]["brier"],
        "disparate_impact": {
            a["attribute"]: a["disparate_impact_ratio"]["value"]
            for a in fairness["attributes"]
            if a["kind"] == "attribute" and a["disparate_impact_ratio"] is not None
        },
    }


def _name(evaluation: dict[str, Any]) -> str:
    return f"v{evaluation['model_version']} ({evaluation['candidate']})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("evaluation", type=Path, help="creditops evaluate --json of the champion")
    parser.add_argument("--benchmark", type=Path, required=True, help="the same, of the benchmark")
    parser.add_argument("--min-auc", type=float, default=None, help="absolute test ROC AUC floor")
    args = parser.parse_args(argv)
    champion = json.loads(args.evaluation.read_text())
    benchmark = json.loads(args.benchmark.read_text())

    same = ("dataset", "data")
    if (
        any(champion[k] != benchmark[k] for k in same)
        or champion["metrics"]["n"] != (benchmark["metrics"]["n"])
    ):
        print("model gate: the two versions were not evaluated on the same data and split")
        return 2

    config = retrain_config(get_settings())
    rows = champion["metrics"]["n"]
    gates = evaluate_gates(_scores(benchmark), _scores(champion), rows, config)
    auc = champion["metrics"]["roc_auc"]
    floor_line = None
    if args.min_auc is not None:
        floor_passed = auc >= args.min_auc
        floor_line = (
            f"  [{'pass' if floor_passed else 'FAIL'}] minimum_auc: ROC AUC {auc:.4f} "
            f"(floor {args.min_auc:g})"
        )
    lines = [
        f"model gate: {_name(champion)} against the benchmark {_name(benchmark)}, "
        f"{champion['dataset']} test split ({rows} rows)",
        f"  ROC AUC {champion['metrics']['roc_auc']:.4f} (95% interval "
        f"{champion['metrics']['roc_auc_ci'][0]:.4f}-{champion['metrics']['roc_auc_ci'][1]:.4f}); "
        f"benchmark {benchmark['metrics']['roc_auc']:.4f}",
        f"  configured: auc_tolerance {config.auc_tolerance:g}, calibration_tolerance "
        f"{config.calibration_tolerance:g}, fairness {config.fairness} "
        f"(fairness_tolerance {config.fairness_tolerance:g}); in the gates below the "
        "benchmark sits in the champion's seat and this version in the challenger's",
    ]
    for attribute, ratio in _scores(champion)["disparate_impact"].items():
        before = _scores(benchmark)["disparate_impact"].get(attribute)
        shown = "-" if before is None else f"{before:.3f}"
        lines.append(f"  disparate impact {attribute}: {ratio:.3f} (benchmark {shown})")
    if floor_line is not None:
        lines.append(floor_line)
    for gate in gates:
        lines.append(f"  [{'pass' if gate.passed else 'FAIL'}] {gate.name}: {gate.message}")
    verdict = champion.get("fairness_gate")
    if verdict is not None:
        word = "passes" if verdict["passed"] else "fails"
        lines.append(f"  fairness report's own gate (FairnessConfig limits) {word}, reported only:")
        lines.extend(f"    - {failure}" for failure in verdict["failures"])
    passed = all(g.passed for g in gates) and (args.min_auc is None or auc >= args.min_auc)
    lines.append(f"model gate: {'PASSED' if passed else 'FAILED'}")
    print("\n".join(lines))
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as handle:
            handle.write("### Model gate\n\n```text\n" + "\n".join(lines) + "\n```\n")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
