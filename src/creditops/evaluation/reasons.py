"""Adverse-action reason codes from a local SHAP explanation.

Regulation B (12 CFR 1002.9) asks for the specific principal reasons for a denial, usually no
more than four. The reasons are the features that pushed this applicant's risk of default up
the most (positive contributions only), worded in plain language from a configurable
:class:`ReasonMap`. A protected attribute is never given as a reason, even when a user made it a
model feature.

The sentences come from the dataset spec stored with the model version (``reasons:``); a
feature the spec gives no sentence gets one generated from its name and the applicant's value
("Monthly income is too low", "Home ownership (rent)", "Debt ratio is missing").

Codes are stable and hash-free: a feature in the map keeps the code written in the map
(:meth:`ReasonMap.from_texts` numbers a plain ``{feature: text}`` mapping, such as the spec's,
``R01``, ``R02``, ... in its order); a feature not in the map gets ``X`` plus its 1-based
position in the spec's features (``X03`` for the third). Codes therefore depend only on the
version's spec (or an explicit map), never on the applicant.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from pydantic import BaseModel, Field, model_validator

from creditops.data.datasets import CATALOG, DEFAULT_DATASET, reason_texts
from creditops.data.spec import ResolvedSpec
from creditops.evaluation.explain import LocalExplanation

MAX_REASONS = 4
_UNKNOWN: Any = object()  # the applicant's value was not given (as opposed to missing)


class ReasonEntry(BaseModel):
    code: str = Field(min_length=1)
    text: str = Field(min_length=1)


class ReasonMap(BaseModel):
    """Plain-words reasons per feature; ``fallback`` words any feature the map lacks.

    Texts are templates: ``{feature}`` is replaced by the feature's name.
    """

    entries: dict[str, ReasonEntry] = Field(default_factory=dict)
    fallback: str = "{feature} contributed to the decision"
    # True: a feature the map lacks gets a sentence generated from its name and value
    # (:func:`generated_reason`) instead of ``fallback``.
    generate: bool = False

    @model_validator(mode="after")
    def _unique_codes(self) -> ReasonMap:
        codes = [entry.code for entry in self.entries.values()]
        duplicated = sorted({c for c in codes if codes.count(c) > 1})
        if duplicated:
            raise ValueError(f"reason codes must be unique; repeated: {', '.join(duplicated)}")
        return self

    @classmethod
    def from_texts(
        cls, texts: dict[str, str], *, fallback: str | None = None, generate: bool = False
    ) -> ReasonMap:
        """Number a ``{feature: sentence}`` mapping R01, R02, ... in its order."""
        entries = {
            feature: ReasonEntry(code=f"R{i:02d}", text=text)
            for i, (feature, text) in enumerate(texts.items(), start=1)
        }
        if fallback is None:
            return cls(entries=entries, generate=generate)
        return cls(entries=entries, fallback=fallback, generate=generate)

    def entry(self, feature: str, spec: ResolvedSpec, value: Any = _UNKNOWN) -> ReasonEntry:
        """The code and sentence for ``feature`` (mapped, generated or generic); ``value`` is
        the applicant's, when known, for generated sentences."""
        if feature in self.entries:
            entry = self.entries[feature]
            return ReasonEntry(code=entry.code, text=entry.text.replace("{feature}", feature))
        features = spec.features
        position = features.index(feature) + 1 if feature in features else len(features) + 1
        if self.generate:
            text = generated_reason(feature, spec, value)
        else:
            text = self.fallback.replace("{feature}", feature)
        return ReasonEntry(code=f"X{position:02d}", text=text)


def reason_map_for(spec: ResolvedSpec) -> ReasonMap:
    """The reasons a model version gives: its spec's sentences, generated ones for the rest.

    A spec stored before specs carried reasons keeps the wording it was served with (see
    :func:`creditops.data.datasets.reason_texts`), so its codes do not change.
    """
    return ReasonMap.from_texts(reason_texts(spec), generate=spec.reasons is not None)


def default_reason_map() -> ReasonMap:
    """The default dataset's wording with the generic sentence for other features: what a
    spec without reasons of its own is served with."""
    return ReasonMap.from_texts(dict(CATALOG[DEFAULT_DATASET].spec.reasons))


def feature_words(name: str) -> str:
    """A column name as words: ``monthly_income`` and ``MonthlyIncome`` → "Monthly income";
    all-capital words (acronyms) keep their case."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", name)
    words = [w for w in re.split(r"[\s_]+", spaced) if w]
    if not words:
        return name
    words = [w if w.isupper() and len(w) > 1 else w.lower() for w in words]
    return " ".join(words)[0].upper() + " ".join(words)[1:]


def generated_reason(feature: str, spec: ResolvedSpec, value: Any = _UNKNOWN) -> str:
    """A sentence for a feature whose spec gives none, in the direction that raised the risk.

    Numeric: "is too high" / "is too low" by the applicant's value against the training median
    (or, without a value, the spec's monotone expectation); categorical: the name and the
    applicant's category; a missing value: "is missing".
    """
    words = feature_words(feature)
    schema = next((s for s in spec.schema_ if s.name == feature), None)
    known = value is not _UNKNOWN
    if known and _is_missing(value):
        return f"{words} is missing"
    if schema is not None and schema.kind == "categorical":
        return f"{words} ({str(value).strip()})" if known else words
    direction = None
    number = _as_number(value) if known else None
    median = schema.median if schema is not None else None
    if number is not None and median is not None and number != median:
        direction = "high" if number > median else "low"
    if direction is None and feature in spec.monotone.increasing:
        direction = "high"
    elif direction is None and feature in spec.monotone.decreasing:
        direction = "low"
    return f"{words} is too {direction}" if direction else f"{words} raised the risk"


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return isinstance(value, str) and not value.strip()


def _as_number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


class ReasonCode(BaseModel):
    code: str
    feature: str
    text: str
    contribution: float  # toward default, in the explanation's output space (> 0)


def reason_codes(
    explanation: LocalExplanation,
    spec: ResolvedSpec,
    reason_map: ReasonMap | None = None,
    *,
    max_reasons: int = MAX_REASONS,
) -> list[ReasonCode]:
    """Up to ``max_reasons`` (at most four) principal reasons, largest contribution first.

    Only contributions that raise the risk of default count; protected attributes are dropped
    before ranking, so they can never appear, nor push a real reason off the list.
    """
    return reasons_from_contributions(
        [c.feature for c in explanation.contributions],
        [c.contribution for c in explanation.contributions],
        spec,
        reason_map,
        values={c.feature: c.value for c in explanation.contributions},
        max_reasons=max_reasons,
    )


def reasons_from_contributions(
    features: Sequence[str],
    contributions: Sequence[float],
    spec: ResolvedSpec,
    reason_map: ReasonMap | None = None,
    *,
    values: Mapping[str, Any] | None = None,
    max_reasons: int = MAX_REASONS,
) -> list[ReasonCode]:
    """:func:`reason_codes` from one row of attributions (per feature, in ``features`` order),
    for callers that need the reasons and not the whole explanation (serving). ``values``: the
    applicant's (as sent), which generated sentences use; ``reason_map`` defaults to the spec's
    (:func:`reason_map_for`)."""
    if not 1 <= max_reasons <= MAX_REASONS:
        raise ValueError(f"max_reasons must be between 1 and {MAX_REASONS}, got {max_reasons}")
    reason_map = reason_map or reason_map_for(spec)
    protected = set(spec.protected)
    risky = [
        (float(value), feature)
        for feature, value in zip(features, contributions, strict=True)
        if feature not in protected and value > 0.0
    ]
    risky.sort(key=lambda item: (-item[0], item[1]))
    reasons = []
    for contribution, feature in risky[:max_reasons]:
        value = values.get(feature) if values is not None else _UNKNOWN
        entry = reason_map.entry(feature, spec, value)
        reasons.append(
            ReasonCode(code=entry.code, feature=feature, text=entry.text, contribution=contribution)
        )
    return reasons


class RankedReason(NamedTuple):
    """A reason as plain values, for batches that build no object per reason."""

    code: str
    text: str
    feature: str
    contribution: float


def rank_reasons(
    features: Sequence[str],
    contributions: np.ndarray,
    spec: ResolvedSpec,
    reason_map: ReasonMap | None = None,
    *,
    value_of: Callable[[int, str], Any] | None = None,
    max_reasons: int = MAX_REASONS,
) -> list[list[RankedReason]]:
    """:func:`reasons_from_contributions` for every row of ``contributions`` (rows ×
    ``features``) at once: the same reasons in the same order (tested), ranked with whole-array
    operations. ``value_of(row, feature)``: the applicant's value, which generated sentences
    use (only features without a sentence in the map ask for it)."""
    if not 1 <= max_reasons <= MAX_REASONS:
        raise ValueError(f"max_reasons must be between 1 and {MAX_REASONS}, got {max_reasons}")
    reason_map = reason_map or reason_map_for(spec)
    values = np.asarray(contributions, dtype=np.float64).reshape(-1, len(features))
    # Columns in name order, so a stable sort on the contribution breaks ties by name.
    order = sorted(range(len(features)), key=lambda j: features[j])
    names = [features[j] for j in order]
    ranked = values[:, order]
    protected = set(spec.protected)
    keep = np.array([name not in protected for name in names], dtype=bool)
    risky = (ranked > 0.0) & keep  # NaN is never a reason
    ranked = np.where(risky, ranked, -np.inf)
    k = min(max_reasons, len(names))
    top = np.argsort(-ranked, axis=1, kind="stable")[:, :k]
    top_values = np.take_along_axis(ranked, top, axis=1)
    counts = (top_values > -np.inf).sum(axis=1)
    mapped = {
        name: (entry.code, entry.text.replace("{feature}", name))
        for name, entry in reason_map.entries.items()
    }
    out: list[list[RankedReason]] = []
    for row, (columns, numbers, n) in enumerate(
        zip(top.tolist(), top_values.tolist(), counts.tolist(), strict=True)
    ):
        reasons = []
        for column, contribution in zip(columns[:n], numbers[:n], strict=True):
            name = names[column]
            known = mapped.get(name)
            if known is None:
                value = value_of(row, name) if value_of is not None else _UNKNOWN
                entry = reason_map.entry(name, spec, value)
                known = (entry.code, entry.text)
            reasons.append(RankedReason(known[0], known[1], name, contribution))
        out.append(reasons)
    return out
