"""Adverse-action reason codes from a local SHAP explanation.

Regulation B (12 CFR 1002.9) asks for the specific principal reasons for a denial, usually no
more than four. The reasons are the features that pushed this applicant's risk of default up
the most (positive contributions only), worded in plain language from a configurable
:class:`ReasonMap`. A protected attribute is never given as a reason, even when a user made it a
model feature.

Codes are stable and hash-free: a feature in the map keeps the code written in the map (the
default map numbers credit_data's features ``R01``–``R11`` in the order listed below, and
:meth:`ReasonMap.from_texts` numbers a plain ``{feature: text}`` mapping in insertion order); a
feature not in the map gets ``X`` plus its 1-based position in the spec's features (``X03`` for
the third), so codes only change when the map or the spec's feature list does.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, Field, model_validator

from creditops.data.spec import ResolvedSpec
from creditops.evaluation.explain import LocalExplanation

MAX_REASONS = 4

# Sentences for the direction that raises the risk of default, in credit_data's terms.
CREDIT_DATA_REASONS: dict[str, str] = {
    "Debt": "Debt is high relative to income",
    "Records": "Record of arrears or defaults",
    "Seniority": "Short time with current employer",
    "Income": "Income is low",
    "Amount": "Loan amount is high",
    "Price": "Price of the financed purchase is high",
    "Home": "Housing situation",
    "Job": "Type of employment",
    "Time": "Loan term is long",
    "Expenses": "Expenses are high",
    "Assets": "Few assets",
}


class ReasonEntry(BaseModel):
    code: str = Field(min_length=1)
    text: str = Field(min_length=1)


class ReasonMap(BaseModel):
    """Plain-words reasons per feature; ``fallback`` words any feature the map lacks.

    Texts are templates: ``{feature}`` is replaced by the feature's name.
    """

    entries: dict[str, ReasonEntry] = Field(default_factory=dict)
    fallback: str = "{feature} contributed to the decision"

    @model_validator(mode="after")
    def _unique_codes(self) -> ReasonMap:
        codes = [entry.code for entry in self.entries.values()]
        duplicated = sorted({c for c in codes if codes.count(c) > 1})
        if duplicated:
            raise ValueError(f"reason codes must be unique; repeated: {', '.join(duplicated)}")
        return self

    @classmethod
    def from_texts(cls, texts: dict[str, str], *, fallback: str | None = None) -> ReasonMap:
        """Number a ``{feature: sentence}`` mapping R01, R02, ... in its order."""
        entries = {
            feature: ReasonEntry(code=f"R{i:02d}", text=text)
            for i, (feature, text) in enumerate(texts.items(), start=1)
        }
        return cls(entries=entries) if fallback is None else cls(entries=entries, fallback=fallback)

    def entry(self, feature: str, spec: ResolvedSpec) -> ReasonEntry:
        """The code and sentence for ``feature`` (mapped, or generic)."""
        if feature in self.entries:
            entry = self.entries[feature]
            return ReasonEntry(code=entry.code, text=entry.text.replace("{feature}", feature))
        features = spec.features
        position = features.index(feature) + 1 if feature in features else len(features) + 1
        text = self.fallback.replace("{feature}", feature)
        return ReasonEntry(code=f"X{position:02d}", text=text)


def default_reason_map() -> ReasonMap:
    """The credit_data wording; other datasets fall back to the generic sentence."""
    return ReasonMap.from_texts(CREDIT_DATA_REASONS)


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
        max_reasons=max_reasons,
    )


def reasons_from_contributions(
    features: Sequence[str],
    contributions: Sequence[float],
    spec: ResolvedSpec,
    reason_map: ReasonMap | None = None,
    *,
    max_reasons: int = MAX_REASONS,
) -> list[ReasonCode]:
    """:func:`reason_codes` from one row of attributions (per feature, in ``features`` order),
    for callers that need the reasons and not the whole explanation (serving)."""
    if not 1 <= max_reasons <= MAX_REASONS:
        raise ValueError(f"max_reasons must be between 1 and {MAX_REASONS}, got {max_reasons}")
    reason_map = reason_map or default_reason_map()
    protected = set(spec.protected)
    risky = [
        (float(value), feature)
        for feature, value in zip(features, contributions, strict=True)
        if feature not in protected and value > 0.0
    ]
    risky.sort(key=lambda item: (-item[0], item[1]))
    reasons = []
    for contribution, feature in risky[:max_reasons]:
        entry = reason_map.entry(feature, spec)
        reasons.append(
            ReasonCode(code=entry.code, feature=feature, text=entry.text, contribution=contribution)
        )
    return reasons
