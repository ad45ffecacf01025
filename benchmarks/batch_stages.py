"""Where a logged, explained batch decision spends its time, per row, stage by stage, in one
process: what a partition of ``creditops predict DIR --out DIR`` does to its rows.

The champion is an XGBoost model trained with the fast profile on credit_data; the rows are
synthetic applications of credit_data's shape. Each stage is timed alone on the same rows:

* ``read``: a Parquet block's rows as request dicts (``typed_rows``);
* ``validate``: the rows validated as the API validates one application (done twice per
  partitioned run: the validation pass, then the partition as it is decided);
* ``split``: features and protected attributes apart;
* ``score``: probabilities of default (the compiled fast path);
* ``explain``: TreeSHAP contributions and the reason codes of the declined and referred rows
  (also shown per explained row);
* ``decide``: ``decide_batch`` without the log, which includes score and explain;
* ``log``: the decision records built and written to a SQLite decision log in transactions
  of ``CREDITOPS_MAX_BATCH`` rows.

Beside it, the same rows through the path a partition takes now (``serving.bulk``), stage by
stage: ``read`` (a Parquet file into a frame), ``validate`` (the column checks), ``records``
(features and protected attributes per row), ``score``, ``explain`` (the declined and referred
rows' reasons, ranked together), and ``decide + log`` (``decide_records``, which includes
score and explain, logging into SQLite).

Usage: ``python benchmarks/batch_stages.py [--rows 60000] [--home DIR]``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=60_000)
    parser.add_argument("--home", type=Path, help="a store whose champion is XGBoost")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from creditops.config import Settings
    from creditops.data.datasets import load_builtin
    from creditops.data.synthetic import synthesize
    from creditops.registry import champion_exists, train_and_register
    from creditops.serving.batch import split_inputs, typed_rows, validate_applications
    from creditops.serving.schemas import split_application
    from creditops.serving.service import DecisionService, _record
    from creditops.store.predlog import PredictionLog

    home = args.home or Path(tempfile.mkdtemp(prefix="creditops-stages-"))
    settings = Settings(home=home)
    frame, spec = load_builtin("credit_data")
    if not champion_exists(settings):
        train_and_register(
            settings, frame=frame, spec=spec, dataset_name="credit_data", profile="fast",
            models=["xgboost"],
        )  # fmt: skip
    data = synthesize(frame, args.rows, target=spec.target, seed=args.seed)
    data = data.drop(columns=[spec.target])
    log = PredictionLog(settings.resolved_database_url)
    service = DecisionService(settings, log)
    served = service.load("champion")
    n = len(data)
    per_row: dict[str, float] = {}
    # Warm up (the first call builds what is cached per version), so each stage is timed alone.
    warm, _ = split_inputs(typed_rows(data.head(500)), served.spec)
    service.decide_batch(
        validate_applications(warm, served.application_model, "w"), served, log=False
    )

    def timed(name: str, work: Callable[[], Any], rows: int = n) -> Any:
        started = time.perf_counter()
        result = work()
        per_row[name] = (time.perf_counter() - started) / rows * 1e6
        return result

    rows, _ = split_inputs(timed("read", lambda: typed_rows(data)), served.spec)
    applications = timed(
        "validate", lambda: validate_applications(rows, served.application_model, "rows")
    )
    parts = timed("split", lambda: [split_application(a) for a in applications])
    features = [f for f, _, _ in parts]
    probabilities = timed("score", lambda: served.probabilities(features))
    labels = [str(label) for label in served.policy.decide_many(probabilities)]
    declined = [features[i] for i, label in enumerate(labels) if label != "approve"]
    timed("explain", lambda: service.reasons_many(served, declined))
    per_explained = per_row["explain"] * n / max(len(declined), 1)
    decisions = timed("decide", lambda: service.decide_batch(applications, served, log=False))
    chunk = settings.max_batch

    def write() -> None:
        records = [_record(d, f, p) for d, (f, p, _) in zip(decisions, parts, strict=True)]
        for start in range(0, len(records), chunk):
            log.write_many(records[start : start + chunk])

    timed("log", write)
    print(f"{n:,} rows, {len(declined) / n:.0%} declined or referred and explained")
    print("\nrow by row (a model, a Decision and a record per row):\n")
    print("| stage | µs per row |")
    print("|---|---:|")
    for name, value in per_row.items():
        print(f"| {name} | {value:.1f} |")
    print(f"| explain, per explained row | {per_explained:.1f} |")
    total = 2 * per_row["read"] + 2 * per_row["validate"] + per_row["split"]
    total += per_row["decide"] + per_row["log"]
    print(f"\npartitioned run, per row: {total:.0f} µs, a ceiling of {1e6 / total:,.0f} rows/s "
          "per process")  # fmt: skip

    bulk = _bulk_stages(data, served, service, home, chunk)
    print("\nin bulk (serving.bulk: columns checked, no object per row):\n")
    print("| stage | µs per row |")
    print("|---|---:|")
    for name, value in bulk.items():
        print(f"| {name} | {value:.1f} |")
    total = 2 * (bulk["read"] + bulk["validate"]) + bulk["records"] + bulk["decide + log"]
    print(f"\npartitioned run, per row: {total:.0f} µs, a ceiling of {1e6 / total:,.0f} rows/s "
          "per process")  # fmt: skip
    log.close()


def _bulk_stages(data: Any, served: Any, service: Any, home: Path, chunk: int) -> dict[str, float]:
    import pandas as pd

    from creditops.scale.batch import run_prediction_ids
    from creditops.serving.bulk import column_rules, decide_records, table_is_valid, table_rows

    path = home / "stages.parquet"
    data.to_parquet(path, index=False)
    n = len(data)
    per_row: dict[str, float] = {}

    def timed(name: str, work: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        result = work()
        per_row[name] = (time.perf_counter() - started) / n * 1e6
        return result

    frame = timed("read", lambda: pd.read_parquet(path))
    inputs = frame.drop(columns=[served.spec.id], errors="ignore")
    rules = column_rules(served.application_model)
    assert timed("validate", lambda: table_is_valid(inputs, rules))
    rows = timed("records", lambda: table_rows(inputs, served))
    features = rows.features
    probabilities = timed("score", lambda: served.scorer.score_columns(rows.columns, n))
    labels = served.policy.decide_many(probabilities)
    declined = [features[i] for i in range(n) if labels[i] != "approve"]

    def explain() -> None:
        for start in range(0, len(declined), 2_000):
            part = declined[start : start + 2_000]
            columns = {name: values[start : start + 2_000] for name, values in picked.items()}
            served.rank_reasons(served.scorer.transform_columns(columns, len(part)), part)

    picked = {name: values[labels != "approve"] for name, values in rows.columns.items()}

    timed("explain", explain)
    ids = run_prediction_ids(str(time.time()), str(path), 0, n)  # as a partitioned run numbers them
    timed(
        "decide + log",
        lambda: decide_records(
            service,
            served,
            features,
            rows.protected,
            prediction_ids=ids,
            log=True,
            chunk=chunk,
            columns=rows.columns,
        ),
    )
    return per_row


if __name__ == "__main__":
    main()
