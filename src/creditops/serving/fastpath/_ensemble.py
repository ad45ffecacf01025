"""EnsembleScorer: a stacked ensemble compiled as its members' FastScorers, stacked exactly as
:class:`~creditops.models.ensemble.StackedEnsembleClassifier` stacks them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import Any

import numpy as np
from scipy.special import expit

from creditops.data.spec import ResolvedSpec
from creditops.models.ensemble import member_log_odds, stack
from creditops.serving.fastpath._scorer import FastScorer, verify_against


class EnsembleScorer:
    """The compiled members side by side: a preprocessed row is the members' preprocessed rows
    one after the other (the space the ensemble's explainer works in), and the probability is
    ``expit(intercept + Σ weight_i · logit(p_i))`` over the members' compiled probabilities."""

    def __init__(
        self,
        *,
        members: Sequence[FastScorer],
        names: Sequence[str],
        weights: np.ndarray,
        intercept: float,
        spec: ResolvedSpec,
    ) -> None:
        self._members = tuple(members)
        self._weights = np.asarray(weights, dtype=np.float64)
        self._intercept = float(intercept)
        bounds = np.cumsum([0, *(m.width for m in members)])
        self._slices = [slice(int(a), int(b)) for a, b in pairwise(bounds)]
        read = {c for m in members for c in m.features}
        self.features = tuple(c for c in spec.features if c in read)
        """The request fields any member reads, in the spec's order."""
        self.feature_names = tuple(
            f"{name}:{column}"
            for name, member in zip(names, members, strict=True)
            for column in member.feature_names
        )
        """Names of the preprocessed columns: each member's, prefixed with its name."""
        self.kind = "ensemble[" + ",".join(m.kind for m in members) + "]"

    @classmethod
    def compile(cls, model: Any, spec: ResolvedSpec, *, verify: bool = True) -> EnsembleScorer:
        """Compile every member (UnsupportedModel if one cannot be) and, with ``verify``, check
        the whole against the ensemble on probe rows."""
        scorer = cls(
            members=[FastScorer.compile(m, spec, verify=False) for m in model.members_],
            names=model.member_names_,
            weights=model.weights_,
            intercept=model.intercept_,
            spec=spec,
        )
        if verify:
            verify_against(scorer, model, spec)
        return scorer

    @property
    def width(self) -> int:
        return self._slices[-1].stop

    def member_slices(self) -> list[slice]:
        """Where each member's columns sit in a preprocessed row."""
        return list(self._slices)

    def transform_many(self, records: Sequence[Mapping[str, object]]) -> np.ndarray:
        return np.hstack([m.transform_many(records) for m in self._members])

    def transform_columns(self, columns: Mapping[str, np.ndarray], n: int) -> np.ndarray:
        """:meth:`transform_many` of rows given as columns (``FastScorer.transform_columns``)."""
        return np.hstack([m.transform_columns(columns, n) for m in self._members])

    def score_columns(self, columns: Mapping[str, np.ndarray], n: int) -> np.ndarray:
        """:meth:`score_many` of rows given as columns."""
        if n == 0:
            return np.zeros(0)
        return self._score(self.transform_columns(columns, n))

    def transform_one(self, record: Mapping[str, object]) -> np.ndarray:
        return self.transform_many([record])[0]

    def margin(self, X: np.ndarray) -> np.ndarray | None:
        return None  # the explainer computes the stacked log-odds from its members

    def _score(self, X: np.ndarray) -> np.ndarray:
        parts = zip(self._members, self._slices, strict=True)
        log_odds = np.column_stack([member_log_odds(m._score(X[:, at])) for m, at in parts])
        return expit(stack(self._intercept, self._weights, log_odds))

    def score_many(self, records: Sequence[Mapping[str, object]]) -> np.ndarray:
        if len(records) == 0:
            return np.zeros(0)
        return self._score(self.transform_many(records))

    def score_one(self, record: Mapping[str, object]) -> float:
        return float(self._score(self.transform_many([record]))[0])

    def imputed_fields(self, record: Mapping[str, object]) -> list[str]:
        missing = {c for m in self._members for c in m.imputed_fields(record)}
        return [c for c in self.features if c in missing]

    def known_categories(self, column: str) -> tuple[set[str], bool]:
        known: set[str] = set()
        unseen_ok = True
        for member in self._members:
            if column in member.features:
                categories, ok = member.known_categories(column)
                known |= categories
                unseen_ok = unseen_ok and ok
        return known, unseen_ok

    def _input_kinds(self) -> tuple[list[str], list[str]]:
        numeric: set[str] = set()
        text: set[str] = set()
        for member in self._members:
            member_numeric, member_text = member._input_kinds()
            numeric |= set(member_numeric)
            text |= set(member_text)
        return (
            [c for c in self.features if c in numeric],
            [c for c in self.features if c in text and c not in numeric],
        )
