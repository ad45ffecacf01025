"""Counterfactual hints: the smallest change of actionable features that would approve a
declined applicant.

The search only needs the model's ``predict_proba`` and the dataset spec (observed ranges and
the actionable directions), so it stands apart from the SHAP explainer; protected attributes are
never levers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from itertools import combinations, product
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from creditops.data.datasets import actionable_directions
from creditops.data.spec import Direction, ResolvedSpec
from creditops.exceptions import ConfigurationError

__all__ = ["Counterfactual", "FeatureChange", "counterfactual"]


class FeatureChange(BaseModel):
    feature: str
    original: float
    proposed: float
    direction: Direction


class Counterfactual(BaseModel):
    """The smallest change of actionable features that brings a declined applicant below the
    threshold, or ``found=False`` and why."""

    schema_version: int = 1
    found: bool
    reason: str | None = None
    threshold: float
    original_proba: float
    new_proba: float | None = None
    best_proba: float | None = None  # lowest probability reached by any candidate tried
    distance: float | None = None  # Σ |change| / observed range
    changes: list[FeatureChange] = Field(default_factory=list)
    actionable: dict[str, Direction]
    candidates_evaluated: int = 0


def counterfactual(
    model: Any,
    row: pd.DataFrame,
    spec: ResolvedSpec,
    *,
    threshold: float,
    actionable: Mapping[str, Direction] | None = None,
    steps: int = 20,
    max_changes: int = 2,
) -> Counterfactual:
    """The smallest change of one or two actionable features that brings ``row`` below
    ``threshold``.

    A grid search: each actionable feature moves from its current value in its allowed
    direction in steps of ``(max − min) / steps`` of its observed range (``spec.schema_``),
    clipped to that range; every single change and every pair is scored in one batch, and the
    approved candidate with the smallest normalised L1 distance wins (ties: fewer changes, then
    lower probability). ``actionable`` defaults to the spec's actionable features, restricted to the
    spec's numeric features; protected attributes can never be actionable.
    """
    if len(row) != 1:
        raise ValueError(f"counterfactual takes one row, got {len(row)}")
    features = list(spec.features)
    levers = _actionable(spec, actionable)
    base_row = row[features].reset_index(drop=True)
    original = float(model.predict_proba(base_row)[0, 1])
    result = Counterfactual(
        found=False, threshold=threshold, original_proba=original, actionable=levers
    )
    if original < threshold:
        result.reason = "the applicant is not declined: probability already below the threshold"
        return result
    schema = {s.name: s for s in spec.schema_}
    moves: dict[str, np.ndarray] = {}
    spans: dict[str, float] = {}
    for feature, direction in levers.items():
        value = base_row.at[0, feature]
        info = schema.get(feature)
        current = math.nan if pd.isna(value) else float(value)  # missing: imputed, not moved
        if math.isnan(current) or info is None or info.minimum is None or info.maximum is None:
            continue
        low, high = float(info.minimum), float(info.maximum)
        if high <= low:
            continue
        grid = _grid(current, low, high, direction, steps, info.integer)
        if grid.size:
            moves[feature], spans[feature] = grid, high - low
    if not moves:
        result.reason = "no actionable feature has a known value and an observed range to move in"
        return result

    candidates: list[dict[str, float]] = []
    for size in range(1, max(1, max_changes) + 1):
        for combo in combinations(moves, size):
            for values in product(*(moves[f] for f in combo)):
                candidates.append(dict(zip(combo, (float(v) for v in values), strict=True)))
    batch = base_row.loc[np.zeros(len(candidates), dtype=int)].reset_index(drop=True)
    for feature in moves:
        column = batch[feature].to_numpy(dtype=float, copy=True)
        for i, change in enumerate(candidates):
            if feature in change:
                column[i] = change[feature]
        batch[feature] = column
    proba = np.asarray(model.predict_proba(batch)[:, 1], dtype=float)
    result.candidates_evaluated = len(candidates)
    result.best_proba = float(proba.min())
    current = {f: float(base_row.at[0, f]) for f in moves}
    distance = np.array(
        [sum(abs(v - current[f]) / spans[f] for f, v in c.items()) for c in candidates]
    )
    approved = np.flatnonzero(proba < threshold)
    if approved.size == 0:
        result.reason = (
            f"no change of at most {max_changes} actionable feature(s) within the observed range "
            f"brings the probability below {threshold:g} (lowest reached {proba.min():.3f})"
        )
        return result
    best = min(approved, key=lambda i: (round(distance[i], 12), len(candidates[i]), proba[i]))
    result.found = True
    result.new_proba = float(proba[best])
    result.distance = float(distance[best])
    result.changes = [
        FeatureChange(feature=f, original=current[f], proposed=v, direction=levers[f])
        for f, v in candidates[best].items()
    ]
    return result


def _actionable(
    spec: ResolvedSpec, actionable: Mapping[str, Direction] | None
) -> dict[str, Direction]:
    protected = set(spec.protected)
    if actionable is None:
        directions = actionable_directions(spec).items()
        return {f: d for f, d in directions if f in spec.numeric and f not in protected}
    levers: dict[str, Direction] = {}
    for feature, direction in actionable.items():
        if feature in protected:
            raise ConfigurationError(f"{feature!r} is a protected attribute: never actionable")
        if feature not in spec.numeric:
            raise ConfigurationError(f"actionable feature {feature!r} is not a numeric feature")
        if direction not in ("decrease", "increase", "any"):
            raise ConfigurationError(
                f"direction for {feature!r} must be decrease, increase or any, got {direction!r}"
            )
        levers[feature] = direction
    return levers


def _grid(
    current: float, low: float, high: float, direction: Direction, steps: int, integer: bool
) -> np.ndarray:
    """Values reachable from ``current`` in ``steps``-ths of the range, inside [low, high]."""
    step = (high - low) / max(1, steps)
    offsets = step * np.arange(1, steps + 1)
    values = []
    if direction in ("decrease", "any"):
        values.append(np.clip(current - offsets, low, high))
    if direction in ("increase", "any"):
        values.append(np.clip(current + offsets, low, high))
    grid = np.concatenate(values)
    if integer:
        grid = np.clip(np.round(grid), math.ceil(low), math.floor(high))
    grid = np.unique(grid)
    if direction == "decrease":
        grid = grid[grid < current]
    elif direction == "increase":
        grid = grid[grid > current]
    else:
        grid = grid[grid != current]
    return grid
