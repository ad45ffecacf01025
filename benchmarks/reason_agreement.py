"""How often batch-speed reasons agree with the reasons single decisions give today.

For each offline credit dataset, an XGBoost pipeline is fitted on the training split (the zoo's
candidate, fixed moderate settings) and every test row is explained twice:

* ``interventional``: interventional TreeSHAP against 100 background rows (the method of
  decisions), from creditops's per-leaf tables, timed and compared beside shap's own
  ``TreeExplainer`` on the same background (the baseline);
* ``path_dependent``: XGBoost's own path-dependent TreeSHAP (``pred_contribs``).

Each row's adverse-action reasons (the up to four features that raise its risk most, protected
attributes left out: ``reasons_from_contributions``) are compared: the same set of reasons, the
same reasons in the same order, the same first reason. Rows the model would decline are counted
apart, since only they receive reasons. It also times both methods on all the test rows (rows/s,
one process) and checks that the native values add up to the margin and equal shap's own
path-dependent values.

Usage: ``python benchmarks/reason_agreement.py [--dataset NAME ...] [--max-rows 20000]``
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import shap

from credit_datasets import DATASETS, PackageMissingError, load
from creditops.data.split import split_dataset
from creditops.data.validate import validate_dataset
from creditops.evaluation.explain import build_explainer
from creditops.evaluation.reasons import reasons_from_contributions
from creditops.models.zoo import CANDIDATES, FeatureSet

PARAMS: dict[str, Any] = {"n_estimators": 300, "max_depth": 4, "learning_rate": 0.05}


def _reasons(explainer: Any, Xt: np.ndarray, spec: Any) -> tuple[list[list[str]], float]:
    started = time.perf_counter()
    values = explainer.contributions(Xt)
    seconds = time.perf_counter() - started
    names = explainer.features
    return [
        [r.feature for r in reasons_from_contributions(names, row, spec)] for row in values
    ], seconds


def measure(name: str, max_rows: int, seed: int) -> dict[str, Any]:
    frame, spec = load(name)
    validated = validate_dataset(frame, spec, dataset_name=name)
    split = split_dataset(validated, seed=seed)
    X, y = validated.X, validated.y
    X_train, y_train = X.iloc[split.train], y[split.train]
    features = FeatureSet(validated.spec.numeric, validated.spec.categorical)
    pos_weight = float((y_train == 0).sum() / y_train.sum())
    model = CANDIDATES["xgboost"].build(features, PARAMS, pos_weight, seed).fit(X_train, y_train)
    X_test = X.iloc[split.test].head(max_rows)
    explainers = {
        method: build_explainer(model, X_train, validated.spec, seed=seed, tree_perturbation=method)
        for method in ("interventional", "tree_path_dependent")
    }
    Xt = explainers["interventional"].transform(X_test)
    inter, inter_s = _reasons(explainers["interventional"], Xt, validated.spec)
    path, path_s = _reasons(explainers["tree_path_dependent"], Xt, validated.spec)

    # The baseline: shap's own interventional TreeSHAP on the same background.
    reference_shap = shap.TreeExplainer(
        model[-1], data=explainers["interventional"].background,
        feature_perturbation="interventional", model_output="raw",
    )  # fmt: skip
    started = time.perf_counter()
    shap_columns = np.asarray(reference_shap.shap_values(Xt, check_additivity=False))
    shap_s = time.perf_counter() - started
    tables_vs_shap = float(
        np.max(np.abs(explainers["interventional"].transformed_contributions(Xt) - shap_columns))
    )

    native = explainers["tree_path_dependent"]
    margin = model.predict(X_test, output_margin=True)
    per_column = native.transformed_contributions(Xt)
    additive = float(np.max(np.abs(native.base_value + per_column.sum(axis=1) - margin)))

    reference = shap.TreeExplainer(model[-1], feature_perturbation="tree_path_dependent")
    shap_values = np.asarray(reference.shap_values(Xt[:200], check_additivity=False))
    same_as_shap = float(np.max(np.abs(shap_values - per_column[:200])))

    declined = model.predict_proba(X_test)[:, 1] >= 0.5
    rows = len(inter)

    def share(pick: Any, mask: np.ndarray | None = None) -> float:
        hits = [pick(a, b) for a, b in zip(inter, path, strict=True)]
        chosen = [
            h for h, m in zip(hits, mask if mask is not None else [True] * rows, strict=True) if m
        ]
        return float(np.mean(chosen)) if chosen else float("nan")

    def same_set(a: list[str], b: list[str]) -> bool:
        return set(a) == set(b)

    def same_order(a: list[str], b: list[str]) -> bool:
        return a == b

    def same_first(a: list[str], b: list[str]) -> bool:
        return a[:1] == b[:1]

    return {
        "dataset": name,
        "rows": rows,
        "declined": int(declined.sum()),
        "set": share(same_set),
        "order": share(same_order),
        "first": share(same_first),
        "set_declined": share(same_set, declined),
        "order_declined": share(same_order, declined),
        "shap_rows_s": rows / shap_s,
        "tables_vs_shap": tables_vs_shap,
        "inter_rows_s": rows / inter_s,
        "path_rows_s": rows / path_s,
        "additivity": additive,
        "vs_shap": same_as_shap,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", action="append", help="a dataset (default: every one)")
    parser.add_argument("--max-rows", type=int, default=20_000, help="test rows per dataset")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    names = args.dataset or list(DATASETS)
    print(
        "| dataset | test rows | declined | same set | same order | same first | same set "
        "(declined) | same order (declined) | shap interventional rows/s | tables rows/s "
        "| max diff tables vs shap | path-dependent rows/s | path-dependent: max additivity "
        "error | max diff vs shap |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    rows = []
    for name in names:
        try:
            r = measure(name, args.max_rows, args.seed)
        except PackageMissingError as error:
            print(f"| {name} | not installed: {error} |")
            continue
        rows.append(r)
        print(
            f"| {r['dataset']} | {r['rows']:,} | {r['declined']:,} | {r['set']:.1%} | "
            f"{r['order']:.1%} | {r['first']:.1%} | {r['set_declined']:.1%} | "
            f"{r['order_declined']:.1%} | {r['shap_rows_s']:,.0f} | {r['inter_rows_s']:,.0f} | "
            f"{r['tables_vs_shap']:.1e} | {r['path_rows_s']:,.0f} | {r['additivity']:.1e} | "
            f"{r['vs_shap']:.1e} |",
            flush=True,
        )
    if rows:
        mean = {k: float(np.mean([r[k] for r in rows])) for k in ("set", "order", "first")}
        print(
            f"\nmean over {len(rows)} datasets: same set {mean['set']:.1%}, same order "
            f"{mean['order']:.1%}, same first reason {mean['first']:.1%}"
        )


if __name__ == "__main__":
    main()
