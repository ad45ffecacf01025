"""Benchmark the latency of explaining one applicant (``explain_local``) per model type.

For each model, times single-row calls on different test rows and prints the median and p95 of:

* ``predict_proba``: the model's own ``predict_proba`` on one row (the floor: every explanation
  preprocesses the row once too);
* ``explain_local``: SHAP for one applicant with an explainer built once (the serving path);
* ``rebuild``: the naive way, a fresh explainer (background preprocessed, shap explainer
  constructed) for every call; fewer calls, as it is slow.

By default the candidates are trained on credit_data with small, fast settings; with
``--from-registry`` the registered champion is loaded instead (with its stored data).

Usage: ``python benchmarks/shap_latency.py --calls 500``
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from creditops.data.spec import ResolvedSpec
from creditops.evaluation.explain import build_explainer, explain_local

# Small settings, as in the evaluation tests: seconds to train, same model families.
FAST_PARAMS: dict[str, dict[str, Any]] = {
    "logistic_regression": {},
    "pca_logistic": {"n_components": 0.9},
    "random_forest": {"n_estimators": 100, "max_depth": 8, "min_samples_leaf": 5},
    "xgboost": {"n_estimators": 200, "max_depth": 4},
    "neural_network": {"max_epochs": 20},
}


def _train(
    seed: int, names: list[str]
) -> tuple[dict[str, Any], ResolvedSpec, pd.DataFrame, pd.DataFrame]:
    from sklearn.calibration import CalibratedClassifierCV

    from creditops.data.datasets import load_builtin
    from creditops.data.split import split_dataset
    from creditops.data.validate import validate_dataset
    from creditops.models.zoo import CANDIDATES, FeatureSet

    frame, spec = load_builtin("credit_data")
    validated = validate_dataset(frame, spec, dataset_name="credit_data")
    split = split_dataset(validated, seed=seed)
    features = FeatureSet(validated.spec.numeric, validated.spec.categorical)
    X, y = validated.X, validated.y
    X_train, y_train = X.iloc[split.train], y[split.train]
    pos_weight = float((y_train == 0).sum() / y_train.sum())
    models: dict[str, Any] = {}
    for name in names:
        if name == "calibrated_xgboost":
            pipeline = CANDIDATES["xgboost"].build(
                features, FAST_PARAMS["xgboost"], pos_weight, seed
            )
            models[name] = CalibratedClassifierCV(
                pipeline, method="sigmoid", cv=3, ensemble=False
            ).fit(X_train, y_train)
        else:
            pipeline = CANDIDATES[name].build(features, FAST_PARAMS[name], pos_weight, seed)
            models[name] = pipeline.fit(X_train, y_train)
    return models, validated.spec, X_train, X.iloc[split.test]


def _from_registry() -> tuple[dict[str, Any], ResolvedSpec, pd.DataFrame, pd.DataFrame]:
    from creditops.config import get_settings
    from creditops.registry import load_model, load_version_data

    settings = get_settings()
    loaded = load_model(settings)
    data = load_version_data(settings, loaded)
    X_train, _ = data.part("train", loaded.spec)
    X_test, _ = data.part("test", loaded.spec)
    features = loaded.spec.features
    label = f"champion v{loaded.version}"
    return {label: loaded.model}, loaded.spec, X_train[features], X_test[features]


def _times(call: Callable[[int], object], calls: int, warm: int = 3) -> np.ndarray:
    for i in range(warm):
        call(i)
    out = np.empty(calls)
    for i in range(calls):
        start = time.perf_counter()
        call(i)
        out[i] = time.perf_counter() - start
    return out * 1000.0


def _cell(ms: np.ndarray) -> str:
    return f"{np.median(ms):7.2f} / {np.percentile(ms, 95):7.2f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500, help="timed single-row calls")
    parser.add_argument("--naive-calls", type=int, default=20, help="calls rebuilding per call")
    parser.add_argument("--background-size", type=int, default=100)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--models",
        nargs="*",
        default=[*FAST_PARAMS, "calibrated_xgboost"],
        help="candidates to train (ignored with --from-registry)",
    )
    parser.add_argument(
        "--from-registry", action="store_true", help="explain the registered champion"
    )
    args = parser.parse_args(argv)

    if args.from_registry:
        models, spec, X_train, X_test = _from_registry()
    else:
        models, spec, X_train, X_test = _train(args.seed, args.models)
    rows = [X_test.iloc[[i % len(X_test)]] for i in range(max(args.calls, args.naive_calls) + 3)]

    print(
        f"{spec.dataset}: {len(X_train)} training rows, {len(X_test)} test rows; "
        f"background {args.background_size}; {args.calls} calls "
        f"({args.naive_calls} for rebuild); {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    header = (
        f"{'model':<20} {'method':<20} {'build ms':>9}  {'predict_proba ms':>17}  "
        f"{'explain_local ms':>17}  {'rebuild ms':>17}"
    )
    print(header)
    print(
        f"{'':<20} {'':<20} {'':>9}  {'median /     p95':>17}  {'median /     p95':>17}  "
        f"{'median /     p95':>17}"
    )
    print("-" * len(header))
    for name, model in models.items():
        start = time.perf_counter()
        explainer = build_explainer(
            model, X_train, spec, seed=args.seed, background_size=args.background_size
        )
        build_ms = (time.perf_counter() - start) * 1000.0
        proba_ms = _times(lambda i, m=model: m.predict_proba(rows[i]), args.calls)
        local_ms = _times(lambda i, e=explainer: explain_local(e, rows[i]), args.calls)
        naive_ms = _times(
            lambda i, m=model: explain_local(
                build_explainer(
                    m,
                    X_train,
                    spec,
                    seed=args.seed,
                    background_size=args.background_size,
                    warm_up=False,
                ),
                rows[i],
            ),
            args.naive_calls,
            warm=1,
        )
        print(
            f"{name:<20} {explainer.method:<20} {build_ms:9.1f}  {_cell(proba_ms)}  "
            f"{_cell(local_ms)}  {_cell(naive_ms)}"
        )


if __name__ == "__main__":
    main()
