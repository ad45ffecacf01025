"""The figures of one feature computed from its distinct values and their counts of goods and
bads: bins with their bad rate, weight of evidence and information value, the single-feature
ROC AUC, the distribution by outcome and the population stability index. Exact, whatever the
number of rows behind the counts (:mod:`creditops.data.profile` gets them from one grouped
query per feature).

Weight of evidence follows the scorecard's convention, ``ln(share of goods / share of bads)``:
negative is riskier than average. A bin without goods or without bads counts half a row of
them, so its WoE stays finite.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel

from creditops.data.stability import population_stability_index

# Information value bands, as credit scoring texts give them (Siddiqi).
IV_BANDS = (
    (0.02, "not predictive"),
    (0.1, "weak"),
    (0.3, "medium"),
    (0.5, "strong"),
    (math.inf, "suspicious: check for leakage"),
)
HISTOGRAM_BINS = 20


class BinRow(BaseModel):
    """One bin of a feature: its rows, bads, bad rate (of the rows with a known outcome), WoE
    and IV (None without outcomes)."""

    label: str
    count: int
    bads: int
    bad_rate: float | None
    woe: float | None
    iv: float | None


class Histogram(BaseModel):
    """A numeric feature's distribution by outcome: counts per equal-width bin between its 1st
    and 99th percentiles (values beyond them in the end bins)."""

    edges: list[float]
    goods: list[int]
    bads: list[int]


def iv_strength(iv: float) -> str:
    return next(label for bound, label in IV_BANDS if iv < bound)


def weighted_quantile(x: np.ndarray, weights: np.ndarray, q: float) -> float:
    """The ``q`` quantile of values ``x`` (sorted) repeated ``weights`` times (lower value)."""
    cumulative = np.cumsum(weights)
    position = q * (cumulative[-1] - 1)
    return float(x[int(np.searchsorted(cumulative, position, side="right"))])


def interval_labels(edges: Sequence[float]) -> list[str]:
    bounds = ["-inf", *(f"{e:g}" for e in edges), "inf"]
    labels = []
    for i in range(len(bounds) - 1):
        close = ")" if i == len(bounds) - 2 else "]"
        labels.append(f"({bounds[i]}, {bounds[i + 1]}{close}")
    return labels


def bin_table(
    labels: list[str], counts: np.ndarray, goods: np.ndarray, bads: np.ndarray
) -> tuple[list[BinRow], float | None]:
    """The bins with their WoE and IV, and the feature's IV (None without both outcomes)."""
    total_goods, total_bads = float(goods.sum()), float(bads.sum())
    judged = total_goods > 0 and total_bads > 0
    rows, iv = [], 0.0
    for label, count, good, bad in zip(labels, counts, goods, bads, strict=True):
        woe = part = None
        if judged:
            good_share = (good or 0.5) / total_goods
            bad_share = (bad or 0.5) / total_bads
            woe = math.log(good_share / bad_share)
            part = (good / total_goods - bad / total_bads) * woe
            iv += part
        known = good + bad
        rows.append(
            BinRow(
                label=label,
                count=int(count),
                bads=int(bad),
                bad_rate=float(bad / known) if known else None,
                woe=woe,
                iv=part,
            )
        )
    return rows, iv if judged else None


def scored_auc(scores: np.ndarray, goods: np.ndarray, bads: np.ndarray) -> float | None:
    """ROC AUC of groups of rows scored ``scores`` (equal scores tie), as max(AUC, 1 − AUC)."""
    levels, where = np.unique(scores, return_inverse=True)
    return ranked_auc(
        np.bincount(where, weights=goods, minlength=len(levels)),
        np.bincount(where, weights=bads, minlength=len(levels)),
    )


def ranked_auc(goods: np.ndarray, bads: np.ndarray) -> float | None:
    """ROC AUC of a score that orders the groups as given (ties within a group count half),
    as max(AUC, 1 − AUC); None without both outcomes."""
    total_goods, total_bads = float(goods.sum()), float(bads.sum())
    if total_goods == 0 or total_bads == 0:
        return None
    goods_below = np.cumsum(goods) - goods
    wins = float(np.sum(bads * (goods_below + 0.5 * goods)))
    auc = wins / (total_goods * total_bads)
    return max(auc, 1.0 - auc)


def histogram(
    x: np.ndarray, goods: np.ndarray, bads: np.ndarray, stats: dict[str, float | None]
) -> Histogram:
    p01, p99 = stats.get("p01"), stats.get("p99")
    low = float(x[0] if p01 is None else p01)
    high = float(x[-1] if p99 is None else p99)
    if high <= low:
        low, high = float(x[0]), float(x[-1]) if x[-1] > x[0] else float(x[0]) + 1.0
    edges = np.linspace(low, high, HISTOGRAM_BINS + 1)
    index = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, HISTOGRAM_BINS - 1)
    return Histogram(
        edges=[float(e) for e in edges],
        goods=[int(v) for v in np.bincount(index, weights=goods, minlength=HISTOGRAM_BINS)],
        bads=[int(v) for v in np.bincount(index, weights=bads, minlength=HISTOGRAM_BINS)],
    )


def numeric_psi(
    reference: pd.Series, x: np.ndarray, n: np.ndarray, missing: int, bins: int
) -> float:
    """PSI over the reference's deciles, with missing values as one more bin."""
    ref = pd.to_numeric(reference, errors="coerce").to_numpy(dtype=float)
    ref_present = ref[~np.isnan(ref)]
    probs = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    edges = np.unique(np.quantile(ref_present, probs)) if len(ref_present) else np.array([])
    ref_counts = np.bincount(
        np.searchsorted(edges, ref_present, side="left"), minlength=len(edges) + 1
    ).astype(float)
    cur_counts = np.bincount(
        np.searchsorted(edges, x, side="left"), weights=n, minlength=len(edges) + 1
    )
    ref_counts = np.append(ref_counts, float(np.isnan(ref).sum()))
    cur_counts = np.append(cur_counts, float(missing))
    return population_stability_index(
        ref_counts / max(ref_counts.sum(), 1.0), cur_counts / max(cur_counts.sum(), 1.0)
    )


def category_key(value: Any) -> str | None:
    """A category as text, numbers written alike on both sides (1, 1.0 and " 1 " are "1")."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    text = str(value).strip()
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if math.isfinite(number) and number.is_integer() else text


def categorical_psi(reference: pd.Series, values: np.ndarray, rows: np.ndarray) -> float:
    ref_shares: dict[str | None, int] = {}
    for value, count in reference.value_counts(dropna=False).items():
        key = category_key(value)
        ref_shares[key] = ref_shares.get(key, 0) + int(count)
    current: dict[str | None, int] = {}
    for value, count in zip(values.tolist(), rows.tolist(), strict=True):
        key = category_key(value)
        current[key] = current.get(key, 0) + int(count)
    levels = sorted(set(ref_shares) | set(current), key=lambda v: (v is None, str(v)))
    ref_total, cur_total = sum(ref_shares.values()) or 1, sum(current.values()) or 1
    return population_stability_index(
        [ref_shares.get(level, 0) / ref_total for level in levels],
        [current.get(level, 0) / cur_total for level in levels],
    )


__all__ = [
    "HISTOGRAM_BINS",
    "IV_BANDS",
    "BinRow",
    "Histogram",
    "bin_table",
    "categorical_psi",
    "category_key",
    "histogram",
    "interval_labels",
    "iv_strength",
    "numeric_psi",
    "ranked_auc",
    "scored_auc",
    "weighted_quantile",
]
