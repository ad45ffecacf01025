"""The parts SHAP needs from a fitted pipeline: which preprocessed columns belong to which
original feature, the affine map of a linear model in the preprocessed space, a masker that
hides whole features, and a seeded global RNG for shap's permutation sampler."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder


def affine_map(pipeline: Pipeline, background: np.ndarray) -> tuple[np.ndarray, float] | None:
    """(coef, intercept) of the log-odds in the preprocessed space, or None if not affine.

    The steps between preprocessing and the logistic regression (PCA) are probed at 0 and at
    each unit vector; the map is accepted only if it reproduces ``decision_function`` on the
    background, so a non-linear step falls back to the permutation explainer.
    """
    final = pipeline.steps[-1][1]
    middle = pipeline[1:-1]
    width = background.shape[1]
    if len(middle):
        probe = middle.transform(np.vstack([np.zeros(width), np.eye(width)]))
        origin, basis = probe[0], probe[1:] - probe[0]
    else:
        origin, basis = np.zeros(width), np.eye(width)
    weights = np.asarray(final.coef_, dtype=float).ravel()
    coef = basis @ weights
    intercept = float(origin @ weights + np.ravel(final.intercept_)[0])
    expected = np.asarray(pipeline[1:].decision_function(background), dtype=float).ravel()
    if not np.allclose(background @ coef + intercept, expected, rtol=1e-9, atol=1e-9):
        return None
    return coef, intercept


def column_groups(preprocess: ColumnTransformer, features: list[str]) -> np.ndarray:
    """The original feature (index into ``features``) behind each preprocessed column.

    Walks each fitted sub-pipeline: one-to-one steps keep the columns, ``SimpleImputer`` appends
    one indicator per flagged feature (``indicator_.features_``), ``OneHotEncoder`` expands each
    feature into its kept categories (plus one infrequent column, minus a dropped one).
    """
    index = {f: i for i, f in enumerate(features)}
    width = sum(_slice_len(s) for s in preprocess.output_indices_.values())
    groups = np.full(width, -1, dtype=int)
    names_in = list(getattr(preprocess, "feature_names_in_", []))
    for name, transformer, columns in preprocess.transformers_:
        where = preprocess.output_indices_.get(name, slice(0, 0))
        if _slice_len(where) == 0 or transformer == "drop":
            continue
        cols = [names_in[c] if isinstance(c, int | np.integer) else c for c in columns]
        unknown = [c for c in cols if c not in index]
        if unknown:
            raise ValueError(f"preprocessed columns come from non-features: {unknown}")
        current = [index[c] for c in cols]
        steps = transformer.steps if isinstance(transformer, Pipeline) else [("", transformer)]
        for _, step in steps:
            if step == "passthrough" or step is None:
                continue
            current = _step_groups(step, current)
        if len(current) != _slice_len(where):
            raise ValueError(f"cannot map the columns of transformer {name!r} to features")
        groups[where] = current
    if (groups < 0).any():
        raise ValueError("some preprocessed columns could not be mapped to a feature")
    return groups


def _step_groups(step: Any, current: list[int]) -> list[int]:
    if isinstance(step, SimpleImputer):
        out = list(current)
        if step.add_indicator and step.indicator_ is not None:
            out += [current[j] for j in step.indicator_.features_]
        return out
    if isinstance(step, OneHotEncoder):
        out = []
        infrequent = getattr(step, "infrequent_categories_", [None] * len(current))
        drop = step.drop_idx_
        for j, categories in enumerate(step.categories_):
            rare = infrequent[j]
            count = len(categories)
            if rare is not None and len(rare):
                count -= len(rare) - 1
            if drop is not None and drop[j] is not None:
                count -= 1
            out += [current[j]] * count
        return out
    n_out = len(step.get_feature_names_out())
    if n_out != len(current):
        raise ValueError(f"cannot map the columns of {type(step).__name__} to features")
    return current


def _slice_len(where: slice) -> int:
    return max(0, where.stop - where.start)


class GroupMasker:
    """shap masker whose players are original features: masking feature j replaces all its
    preprocessed columns by the background's, keeping every masked row a valid encoding."""

    def __init__(self, background: np.ndarray, groups: np.ndarray, n_features: int) -> None:
        self.data = background
        self.shape = (background.shape[0], n_features)
        self.clustering = None
        self.immutable_outputs = True  # each call returns a new array: shap need not copy it
        self._columns = np.zeros((n_features, background.shape[1]), dtype=bool)
        self._columns[groups, np.arange(background.shape[1])] = True

    def __call__(self, mask: Any, x: np.ndarray) -> tuple[np.ndarray]:
        mask = self._standard(mask)
        take = self._columns[mask].any(axis=0)
        return (np.where(take, np.asarray(x).reshape(-1), self.data),)

    def _standard(self, mask: Any) -> np.ndarray:
        if mask is True or mask is False:
            return np.full(self.shape[1], bool(mask))
        return np.asarray(mask, dtype=bool)

    def mask_shapes(self, *args: Any) -> list[tuple[int]]:
        return [(self.shape[1],)]

    def invariants(self, x: np.ndarray) -> np.ndarray:
        """(background rows, features): True where the row already equals the background."""
        same = self.data == np.asarray(x).reshape(1, -1)
        return np.stack([same[:, c].all(axis=1) for c in self._columns], axis=1)


@contextmanager
def seeded_global_numpy(seed: int) -> Iterator[None]:
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


__all__ = ["GroupMasker", "affine_map", "column_groups", "seeded_global_numpy"]
