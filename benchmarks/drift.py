"""Benchmark ``creditops.monitoring.drift`` on real credit data, side by side with Evidently.

Prints four tables:

1. false alarms: random 50/50 splits of credit_data and lending_club at default thresholds
   (dataset-level alarms, per-feature flags, missing and unseen-category flags);
2. detection: shifts of increasing size injected into the current half of credit_data (a mean
   shift of Income in reference standard deviations, the share of Home == "rent" multiplied,
   missing Income values added), with the detection rate over seeds and the smallest shift
   caught in at least 90% of them;
   and, for creditops alone, the same checks for each method chosen by name;
3. agreement with Evidently's ``DataDriftPreset`` on the same reference/current pairs
   (dataset and column verdicts) and time per pair;
4. speed on 1,000,000 rows x 20 features (a synthetic scale-up of lending_club).

Evidently 0.7 does not import under pandas 3, so it runs in its own interpreter as a
subprocess of this script: pairs go to it in a temporary Parquet file, verdicts and timings come
back as JSON (telemetry off through ``DO_NOT_TRACK``). Without that interpreter the Evidently
columns are left out. Set it up once with::

    python3.11 -m venv .venv-evidently
    .venv-evidently/bin/pip install evidently==0.7.23 "pandas>=2.2,<3" scipy pyarrow

Usage: ``.venv/bin/python benchmarks/drift.py [--quick] [--evidently-python PATH]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_EVIDENTLY_PYTHON = ROOT / ".venv-evidently" / "bin" / "python"
PAIR, ROLE = "__pair__", "__role__"
DETECTED = 0.9  # a shift is "caught" when flagged in at least this share of seeds

MEAN_SHIFTS = [0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5]
SHARE_FACTORS = [1.25, 1.5, 1.75, 2.0]
MISSING_POINTS = [0.05, 0.10, 0.15, 0.20, 0.25, 0.30]


# --------------------------------------------------------------------------------------------
# Evidently side: runs in the Evidently interpreter, so it imports nothing from creditops.


def evidently_worker(data_path: str, spec_path: str, out_path: str) -> None:
    os.environ.setdefault("DO_NOT_TRACK", "1")
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    frame = pd.read_parquet(data_path)
    spec = json.loads(Path(spec_path).read_text())
    numeric, categorical = spec["numeric"], spec["categorical"]
    columns = [*numeric, *categorical]
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    results = []
    for pair, rows in frame.groupby(PAIR, sort=True):
        reference = rows.loc[rows[ROLE] == 0, columns].reset_index(drop=True)
        current = rows.loc[rows[ROLE] == 1, columns].reset_index(drop=True)
        start = time.perf_counter()
        snapshot = Report([DataDriftPreset(drift_share=spec["drift_share"])]).run(
            Dataset.from_pandas(current, data_definition=definition),
            Dataset.from_pandas(reference, data_definition=definition),
        )
        payload = snapshot.dict()
        seconds = time.perf_counter() - start
        verdicts: dict[str, dict[str, Any]] = {}
        count = share = None
        for metric in payload["metrics"]:
            config = metric["config"]
            if config["type"].endswith("DriftedColumnsCount"):
                count, share = metric["value"]["count"], metric["value"]["share"]
            elif config["type"].endswith("ValueDrift"):
                method, threshold, score = config["method"], config["threshold"], metric["value"]
                p_value = "p_value" in method
                drift = bool(score < threshold if p_value else score >= threshold)
                verdicts[config["column"]] = {
                    "method": method,
                    "score": float(score),
                    "drift": drift,
                }
        if count is not None and count != sum(v["drift"] for v in verdicts.values()):
            raise RuntimeError(f"pair {pair}: column verdicts disagree with DriftedColumnsCount")
        results.append(
            {
                "pair": int(pair),
                "seconds": seconds,
                "share": None if share is None else float(share),
                "dataset_drift": share is not None and share >= spec["drift_share"],
                "columns": verdicts,
            }
        )
    Path(out_path).write_text(json.dumps(results))


class Evidently:
    """Runs pairs through ``evidently_worker`` in another interpreter."""

    def __init__(self, python: Path) -> None:
        self.python = python

    @classmethod
    def find(cls, python: str | None) -> Evidently | None:
        path = Path(python) if python else DEFAULT_EVIDENTLY_PYTHON
        if not path.exists():
            return None
        probe = subprocess.run(
            [str(path), "-c", "import evidently; print(evidently.__version__)"],
            capture_output=True,
            text=True,
            env={**os.environ, "DO_NOT_TRACK": "1"},
            check=False,
        )
        if probe.returncode != 0:
            print(f"! Evidently interpreter {path} cannot import evidently:\n{probe.stderr[-500:]}")
            return None
        cls.version = probe.stdout.strip()
        return cls(path)

    def run(
        self,
        pairs: Sequence[tuple[pd.DataFrame, pd.DataFrame]],
        numeric: list[str],
        categorical: list[str],
    ) -> list[dict[str, Any]]:
        columns = [*numeric, *categorical]
        parts = []
        for i, (reference, current) in enumerate(pairs):
            for role, frame in ((0, reference), (1, current)):
                part = frame[columns].copy()
                part[PAIR], part[ROLE] = i, role
                parts.append(part)
        with tempfile.TemporaryDirectory(prefix="creditops-drift-") as tmp:
            data, spec, out = (Path(tmp) / name for name in ("pairs.parquet", "spec.json", "out"))
            pd.concat(parts, ignore_index=True).to_parquet(data, index=False)
            spec.write_text(
                json.dumps({"numeric": numeric, "categorical": categorical, "drift_share": 0.5})
            )
            command = [str(self.python), __file__, "--evidently-worker", str(data), str(spec)]
            subprocess.run(
                [*command, str(out)], check=True, env={**os.environ, "DO_NOT_TRACK": "1"}
            )
            return json.loads(out.read_text())


# --------------------------------------------------------------------------------------------
# creditops side


def _table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print(
            "  ".join(
                c.rjust(w) if i else c.ljust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def _features(frame: pd.DataFrame, spec: Any) -> tuple[list[str], list[str]]:
    skip = {spec.target, spec.id}
    columns = [c for c in frame.columns if c not in skip]
    numeric = [c for c in columns if pd.api.types.is_numeric_dtype(frame[c])]
    return numeric, [c for c in columns if c not in numeric]


def _split(frame: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    order = np.random.default_rng(seed).permutation(len(frame))
    half = len(frame) // 2
    return (
        frame.iloc[order[:half]].reset_index(drop=True),
        frame.iloc[order[half:]].reset_index(drop=True),
    )


def _ours(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    config: Any = None,
) -> tuple[Any, float]:
    """creditops verdict and seconds for fit + calculate on one pair."""
    from creditops.monitoring.drift import DataDriftCalculator

    start = time.perf_counter()
    result = DataDriftCalculator(config).fit(reference, numeric, categorical).calculate(current)
    return result, time.perf_counter() - start


def false_alarms(
    name: str, splits: int, evidently: Evidently | None, evidently_splits: int
) -> dict:
    from creditops.data.datasets import load_builtin
    from creditops.monitoring.drift import DriftConfig

    frame, spec = load_builtin(name)
    numeric, categorical = _features(frame, spec)
    pairs = [_split(frame, seed) for seed in range(splits)]
    ours = [_ours(ref, cur, numeric, categorical) for ref, cur in pairs]
    theirs = evidently.run(pairs[:evidently_splits], numeric, categorical) if evidently else None
    flags: dict[str, int] = {}
    for result, _ in ours:
        for feature in result.drifted_features:
            flags[feature] = flags.get(feature, 0) + 1
    worst = max(
        (
            (f.statistic / f.threshold, f.feature, f.method)
            for r, _ in ours
            for f in r.features
            if f.p_value is None and f.statistic is not None
        ),
        default=None,
    )
    summary = {
        "name": name,
        "splits": splits,
        "rows": f"{len(pairs[0][0])}/{len(pairs[0][1])}",
        "features": f"{len(numeric)}+{len(categorical)}",
        "dataset_alarms": sum(r.level != "ok" for r, _ in ours),
        "feature_flags": sum(r.n_drifted for r, _ in ours),
        "splits_with_flag": sum(r.n_drifted > 0 for r, _ in ours),
        "missing_flags": sum(len(r.missing_flags) for r, _ in ours),
        "unseen_flags": sum(len(r.unseen_flags) for r, _ in ours),
        "flagged": ", ".join(f"{k} x{v}" for k, v in sorted(flags.items(), key=lambda kv: -kv[1])),
        "worst": f"{worst[1]} {worst[0]:.2f}x" if worst else "-",
        "ms_ours": 1000 * float(np.mean([t for _, t in ours])),
        "override": "",
    }
    noisy = sorted(k for k, v in flags.items() if v >= 0.05 * splits)
    if noisy:
        # What a per-feature override buys on the features that flag on pure noise.
        config = DriftConfig(feature_methods=dict.fromkeys(noisy, "jensenshannon"))
        again = [_ours(ref, cur, numeric, categorical, config)[0] for ref, cur in pairs]
        count = sum(f in r.drifted_features for r in again for f in noisy)
        summary["override"] = (
            f"with feature_methods={{{', '.join(repr(f) + ': jensenshannon' for f in noisy)}}}"
            f": {count} flags on those features in {splits} splits"
        )
    if theirs is not None:
        summary |= _agreement([r for r, _ in ours[: len(theirs)]], theirs)
        summary["evidently_alarms"] = sum(t["dataset_drift"] for t in theirs)
        summary["evidently_flags"] = sum(
            sum(c["drift"] for c in t["columns"].values()) for t in theirs
        )
        summary["evidently_splits"] = len(theirs)
        summary["ms_ours_same"] = 1000 * float(np.mean([t for _, t in ours[: len(theirs)]]))
    return summary


def _agreement(ours: list[Any], theirs: list[dict[str, Any]]) -> dict[str, Any]:
    datasets = sum(
        (r.level != "ok") == t["dataset_drift"] for r, t in zip(ours, theirs, strict=True)
    )
    same = total = 0
    for result, their in zip(ours, theirs, strict=True):
        for feature in result.features:
            total += 1
            same += feature.drifted == their["columns"][feature.feature]["drift"]
    return {
        "dataset_agree": f"{datasets}/{len(ours)}",
        "column_agree": f"{same}/{total}",
        "ms_evidently": 1000 * float(np.mean([t["seconds"] for t in theirs])),
    }


# Shifts injected into the current half ---------------------------------------------------------


def _mean_shift(
    column: str,
) -> Callable[[pd.DataFrame, pd.DataFrame, float, np.random.Generator], pd.DataFrame]:
    def apply(
        ref: pd.DataFrame, cur: pd.DataFrame, size: float, rng: np.random.Generator
    ) -> pd.DataFrame:
        return cur.assign(**{column: cur[column] + size * ref[column].std(ddof=0)})

    return apply


def _share_factor(column: str, value: str):
    def apply(
        ref: pd.DataFrame, cur: pd.DataFrame, size: float, rng: np.random.Generator
    ) -> pd.DataFrame:
        out = cur.copy()
        share = (out[column] == value).mean()
        others = np.flatnonzero((out[column] != value) & out[column].notna())
        moved = rng.choice(others, round((size - 1) * share * len(out)), replace=False)
        out.loc[moved, column] = value
        return out

    return apply


def _more_missing(column: str):
    def apply(
        ref: pd.DataFrame, cur: pd.DataFrame, size: float, rng: np.random.Generator
    ) -> pd.DataFrame:
        out = cur.copy()
        present = np.flatnonzero(out[column].notna())
        out.loc[rng.choice(present, round(size * len(out)), replace=False), column] = np.nan
        return out

    return apply


SCENARIOS = [
    ("Income mean shift (std)", "Income", MEAN_SHIFTS, _mean_shift("Income"), "drift"),
    ("Home=rent share x", "Home", SHARE_FACTORS, _share_factor("Home", "rent"), "drift"),
    ("Income missing +pts", "Income", MISSING_POINTS, _more_missing("Income"), "missing"),
]


def detection(seeds: int, evidently: Evidently | None) -> None:
    from creditops.data.datasets import load_builtin

    frame, spec = load_builtin("credit_data")
    numeric, categorical = _features(frame, spec)
    rows, smallest = [], []
    for label, column, sizes, inject, signal in SCENARIOS:
        pairs, meta = [], []
        for size in sizes:
            for seed in range(seeds):
                reference, current = _split(frame, 1000 + seed)
                rng = np.random.default_rng(seed)
                pairs.append((reference, inject(reference, current, size, rng)))
                meta.append(size)
        ours = [_ours(ref, cur, numeric, categorical)[0] for ref, cur in pairs]
        kind = "numeric" if column in numeric else "categorical"
        theirs = (
            evidently.run(
                pairs,
                [column] if kind == "numeric" else [],
                [column] if kind == "categorical" else [],
            )
            if evidently
            else None
        )
        caught: dict[str, float | None] = {"ours": None, "evidently": None}
        for size in sizes:
            idx = [i for i, s in enumerate(meta) if s == size]
            features = [ours[i].feature(column) for i in idx]
            rate = float(
                np.mean(
                    [f.missing_increase if signal == "missing" else f.drifted for f in features]
                )
            )
            drift_rate = float(np.mean([f.drifted for f in features]))
            stat = float(np.mean([f.statistic or 0.0 for f in features]))
            their_rate = (
                float(np.mean([theirs[i]["columns"][column]["drift"] for i in idx]))
                if theirs
                else None
            )
            agree = (
                float(
                    np.mean(
                        [
                            theirs[i]["columns"][column]["drift"] == ours[i].feature(column).drifted
                            for i in idx
                        ]
                    )
                )
                if theirs
                else None
            )
            if caught["ours"] is None and rate >= DETECTED:
                caught["ours"] = size
            if their_rate is not None and caught["evidently"] is None and their_rate >= DETECTED:
                caught["evidently"] = size
            rows.append(
                [
                    label,
                    size,
                    f"{features[0].method} {stat:.3f}",
                    rate,
                    drift_rate if signal == "missing" else "",
                    their_rate,
                    agree,
                ]
            )
        smallest.append([label, signal, caught["ours"], caught["evidently"] if theirs else None])
    _table(
        f"2. Detection on credit_data ({seeds} seeds per size; rate = share of seeds flagged)",
        [
            "shift",
            "size",
            "creditops method, mean stat",
            "creditops rate",
            "(stat. drift)",
            "Evidently rate",
            "column agree",
        ],
        rows,
    )
    _table(
        f"   Smallest shift caught in >= {DETECTED:.0%} of seeds (creditops: missing-rate flag for"
        " missing values; Evidently's preset has none)",
        ["shift", "creditops signal", "creditops", "Evidently"],
        smallest,
    )


def methods(splits: int, seeds: int) -> None:
    """The same checks for each method chosen by name (creditops only): what a choice costs
    in false alarms and buys in sensitivity."""
    from creditops.data.datasets import load_builtin
    from creditops.monitoring.drift import DriftConfig

    frame, spec = load_builtin("credit_data")
    numeric, categorical = _features(frame, spec)
    configs = {
        "auto (wasserstein / jensenshannon here)": None,
        "psi (deciles / category shares)": DriftConfig(
            numeric_method="psi", categorical_method="psi"
        ),
        "jensenshannon (20 quantile bins)": DriftConfig(
            numeric_method="jensenshannon", categorical_method="jensenshannon"
        ),
        "ks / chi2 (p < 0.05)": DriftConfig(numeric_method="ks", categorical_method="chi2"),
    }
    rows = []
    for label, config in configs.items():
        flags = 0
        for seed in range(splits):
            reference, current = _split(frame, seed)
            flags += _ours(reference, current, numeric, categorical, config)[0].n_drifted
        caught = []
        for _, column, sizes, inject, signal in SCENARIOS:
            if signal != "drift":
                continue
            smallest = None
            for size in sizes:
                hits = 0
                for seed in range(seeds):
                    reference, current = _split(frame, 1000 + seed)
                    shifted = inject(reference, current, size, np.random.default_rng(seed))
                    result = _ours(reference, shifted, numeric, categorical, config)[0]
                    hits += result.feature(column).drifted
                if hits >= DETECTED * seeds:
                    smallest = size
                    break
            caught.append(smallest)
        rows.append([label, flags, flags / (splits * len(numeric + categorical)), *caught])
    _table(
        f"   Methods by name on credit_data (creditops): feature flags on {splits} random splits,"
        f" smallest shift caught in >= {DETECTED:.0%} of {seeds} seeds",
        ["method", "feature flags", "per feature-split", "Income mean shift", "Home=rent share"],
        rows,
    )


def speed(rows: int, evidently: Evidently | None) -> None:
    from creditops.data.datasets import load_builtin
    from creditops.data.synthetic import synthesize
    from creditops.monitoring.drift import DataDriftCalculator

    frame, spec = load_builtin("lending_club")
    numeric, categorical = _features(frame, spec)
    numeric = [c for c in numeric if c not in {"acc_now_delinq", "delinq_amnt"}]  # 15 + 5 = 20
    source = frame[[*numeric, *categorical]]
    start = time.perf_counter()
    reference = synthesize(source, rows, seed=0)
    current = synthesize(source, rows, seed=1)
    current["annual_inc"] = current["annual_inc"] * 1.1  # a real shift in one column
    made = time.perf_counter() - start
    calc = DataDriftCalculator()
    start = time.perf_counter()
    calc.fit(reference, numeric, categorical)
    fitted = time.perf_counter() - start
    times = []
    for _ in range(3):
        start = time.perf_counter()
        result = calc.calculate(current)
        times.append(time.perf_counter() - start)
    calculated = min(times)
    their = evidently.run([(reference, current)], numeric, categorical)[0] if evidently else None
    table = [
        [
            "creditops DataDriftCalculator",
            fitted,
            calculated,
            fitted + calculated,
            result.n_drifted,
            result.level,
            None if their is None else their["seconds"] / (fitted + calculated),
        ]
    ]
    if their is not None:
        agree = sum(f.drifted == their["columns"][f.feature]["drift"] for f in result.features)
        table.append(
            [
                f"Evidently {Evidently.version} DataDriftPreset",
                None,
                None,
                their["seconds"],
                sum(c["drift"] for c in their["columns"].values()),
                "drift" if their["dataset_drift"] else "ok",
                1.0,
            ]
        )
    _table(
        f"4. Speed: {rows:,} reference vs {rows:,} current rows x "
        f"{len(numeric) + len(categorical)} features (synthetic lending_club, made in "
        f"{made:.0f} s; seconds, calculate best of 3)",
        ["tool", "fit s", "calculate s", "total s", "drifted", "verdict", "Evidently / this"],
        table,
    )
    if their is not None:
        print(f"   column verdicts agree: {agree}/{len(result.features)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer splits, seeds and rows")
    parser.add_argument(
        "--evidently-python",
        help=f"interpreter with evidently (default {DEFAULT_EVIDENTLY_PYTHON})",
    )
    parser.add_argument("--no-evidently", action="store_true")
    parser.add_argument("--rows", type=int, help="rows for the speed test (default 1,000,000)")
    parser.add_argument(
        "--evidently-worker", nargs=3, metavar=("DATA", "SPEC", "OUT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.evidently_worker:
        evidently_worker(*args.evidently_worker)
        return

    splits, evidently_splits, lc_evidently, seeds = (
        (20, 20, 10, 5) if args.quick else (100, 100, 50, 20)
    )
    rows = args.rows or (200_000 if args.quick else 1_000_000)
    evidently = None if args.no_evidently else Evidently.find(args.evidently_python)
    began = time.perf_counter()
    print(
        f"creditops drift benchmark ({'quick' if args.quick else 'full'}); Evidently: "
        f"{Evidently.version + ' via ' + str(evidently.python) if evidently else 'not available'}"
    )

    summaries = [
        false_alarms("credit_data", splits, evidently, evidently_splits),
        false_alarms("lending_club", splits, evidently, lc_evidently),
    ]
    _table(
        "1. False alarms on random 50/50 splits (default thresholds; alarm: >= 50% of features)",
        [
            "dataset",
            "splits",
            "rows ref/cur",
            "features num+cat",
            "dataset alarms",
            "feature flags",
            "splits w/ flag",
            "missing flags",
            "unseen flags",
            "max statistic/threshold",
        ],
        [
            [
                s["name"],
                s["splits"],
                s["rows"],
                s["features"],
                s["dataset_alarms"],
                s["feature_flags"],
                s["splits_with_flag"],
                s["missing_flags"],
                s["unseen_flags"],
                s["worst"],
            ]
            for s in summaries
        ],
    )
    for s in summaries:
        if s["flagged"]:
            print(f"   {s['name']}: flagged features: {s['flagged']}")
        if s["override"]:
            print(f"   {s['name']}: {s['override']}")
    detection(seeds, evidently)
    methods(splits, seeds)
    if evidently:
        _table(
            "3. Agreement with Evidently DataDriftPreset on the pairs of table 1 (first N)",
            [
                "dataset",
                "pairs",
                "Evidently dataset alarms",
                "Evidently column flags",
                "dataset verdicts agree",
                "column verdicts agree",
                "creditops ms/pair",
                "Evidently ms/pair",
                "speed-up",
            ],
            [
                [
                    s["name"],
                    s["evidently_splits"],
                    s["evidently_alarms"],
                    s["evidently_flags"],
                    s["dataset_agree"],
                    s["column_agree"],
                    s["ms_ours_same"],
                    s["ms_evidently"],
                    s["ms_evidently"] / s["ms_ours_same"],
                ]
                for s in summaries
            ],
        )
    speed(rows, evidently)
    print(f"\ntotal {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
