"""A served model version: everything needed to decide, explain and judge one application,
built once and never changed afterwards.

:func:`build_served_model` loads a version with its policy, spec and reference rows, compiles
its fast path and checks it; the decision service (:mod:`creditops.serving.service`) swaps
whole :class:`ServedModel` objects, so every request sees one version from start to end.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from creditops.config import Settings
from creditops.data.experience import OUT_OF_RANGE_CODE, Experience
from creditops.data.spec import ACCEPTED_MARGIN, ResolvedSpec
from creditops.evaluation.explain import Explainer, LocalExplanation, build_explainer, explain_rows
from creditops.evaluation.policy import DecisionPolicy
from creditops.evaluation.reasons import (
    RankedReason,
    ReasonCode,
    ReasonMap,
    rank_reasons,
    reason_map_for,
)
from creditops.exceptions import (
    ModelCheckError,
)
from creditops.registry import (
    CHAMPION,
    LoadedModel,
    load_model,
    load_version_data,
    version_policy,
)
from creditops.serving.fastpath import CompiledScorer, compile_or_none
from creditops.serving.schemas import (
    ApplicationModel,
    ModelInfo,
    Reason,
    build_application_model,
    example_application,
)

_REFERENCE_ROWS = 200


@dataclass(frozen=True)
class ServedModel:
    """One model version, ready to decide: never mutated once built."""

    loaded: LoadedModel
    policy: DecisionPolicy
    scorer: CompiledScorer | None
    explainer: Explainer
    application_model: type[ApplicationModel]
    reference: pd.DataFrame  # training rows (features + protected), for checks and monitoring
    loaded_at: str
    reason_map: ReasonMap  # the version's own reason texts and codes, built once
    experience: Experience  # the training ranges and categories: what is "out of range"
    out_of_range: str = "refer"  # what an application outside them gets: refer, decide, reject
    # Numbers are scored within the training range widened by ACCEPTED_MARGIN: past it a
    # linear model's score would run away (up to overflow); trees are flat there anyway.
    scoring_ranges: Mapping[str, tuple[float, float]] | None = None

    @property
    def name(self) -> str:
        return self.loaded.name

    @property
    def version(self) -> str:
        return self.loaded.version

    @property
    def spec(self) -> ResolvedSpec:
        return self.loaded.spec

    def info(self) -> ModelInfo:
        """What this version is: tags and metrics, decision policy and dataset spec."""
        return ModelInfo(
            model_name=self.name,
            model_version=self.version,
            loaded_at=self.loaded_at,
            fast_path=self.scorer is not None,
            tags=self.loaded.tags,
            policy=self.policy.model_dump(mode="json"),
            spec=self.spec.model_dump(mode="json", by_alias=True),
        )

    def probabilities(self, records: list[dict[str, Any]]) -> np.ndarray:
        """Probability of default per record: the compiled fast path, else the pipeline."""
        if self.scorer is not None:
            return self.scorer.score_many(records)
        frame = pd.DataFrame.from_records(records, columns=self.spec.features)
        return self.loaded.model.predict_proba(frame)[:, 1]

    def explain_one(
        self, features: dict[str, Any], probability: float | None = None
    ) -> LocalExplanation:
        """SHAP for one application, reusing the fast path's preprocessing (and its probability,
        when the caller has it) where there is a fast path."""
        return self.explain_many([features], None if probability is None else [probability])[0]

    def explain_many(
        self, features: list[dict[str, Any]], probabilities: Any = None
    ) -> list[LocalExplanation]:
        if self.scorer is None:
            return explain_rows(self.explainer, features)
        transformed = self.scorer.transform_many(features)
        raw = None
        if probabilities is not None and self.explainer.output_space == "log_odds":
            raw = self.scorer.margin(transformed)  # the explained log-odds, when exact and cheap
        return explain_rows(self.explainer, features, transformed, proba=probabilities, raw=raw)

    def reason_codes(
        self, features: dict[str, Any], reason_map: ReasonMap | None = None
    ) -> list[ReasonCode]:
        """The adverse-action reasons for one application (all of them; the caller decides
        whether the decision needs them)."""
        return self.reason_codes_many([features], reason_map)[0]

    def reason_codes_many(
        self, features: list[dict[str, Any]], reason_map: ReasonMap | None = None
    ) -> list[list[ReasonCode]]:
        """The reasons of several applications from one batched SHAP call: the attributions
        alone, without the rest of a :class:`LocalExplanation` (the same reasons as
        ``reason_codes(explain_one(...))``, tested)."""
        if self.scorer is not None:
            transformed = self.scorer.transform_many(features)
        else:
            transformed = self.explainer.transform(
                pd.DataFrame.from_records(features, columns=self.spec.features)
            )
        ranked = self.rank_reasons(transformed, features, reason_map)
        return [
            [
                ReasonCode.model_construct(  # plain values already checked: no validation
                    code=r.code, feature=r.feature, text=r.text, contribution=r.contribution
                )
                for r in reasons
            ]
            for reasons in ranked
        ]

    def rank_reasons(
        self,
        transformed: np.ndarray,
        features: Sequence[Mapping[str, Any]],
        reason_map: ReasonMap | None = None,
    ) -> list[list[RankedReason]]:
        """The reasons of preprocessed rows (``features``: the same applications as sent),
        ranked for all of them at once."""
        return rank_reasons(
            self.explainer.features,
            self.explainer.contributions(transformed),
            self.spec,
            reason_map or self.reason_map,
            value_of=lambda row, name: features[row].get(name),
        )

    def probability(self, record: dict[str, Any]) -> float:
        if self.scorer is not None:
            return float(self.scorer.score_one(record))
        return float(self.probabilities([record])[0])

    def screen(self, features: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """The features to score, and the ones outside the model's experience (in spec
        order). Outside ones are scored held within the range the service trusts; the log keeps
        the values as sent."""
        outside = self.experience.outside(features)
        if not outside or not self.scoring_ranges:
            return features, outside
        scored = dict(features)
        for name in outside:
            bounds = self.scoring_ranges.get(name)
            if bounds is not None:
                scored[name] = min(max(scored[name], bounds[0]), bounds[1])
        return scored, outside

    def label(self, probability: float, outside: Sequence[str]) -> str:
        """The decision for ``probability``: the policy's, or refer when an input is outside
        the model's experience and the service refers such applications."""
        if outside and self.out_of_range == "refer":
            return "refer"
        return self.policy.decide(probability)

    def out_of_range_reasons(self, outside: Sequence[str]) -> list[Reason]:
        """One OUT_OF_RANGE reason per feature outside the model's experience."""
        return [
            Reason.model_construct(
                code=OUT_OF_RANGE_CODE,
                text=f"{name} is outside the range the model was trained on "
                f"({self.experience.describe(name)})",
                feature=name,
                contribution=0.0,
            )
            for name in outside
        ]


def build_served_model(
    settings: Settings, ref: str = CHAMPION, *, current: ServedModel | None = None
) -> ServedModel:
    """Load a version with its policy and reference data, compile it, and check it (against
    ``current``, the version it would replace, when there is one)."""
    loaded = load_model(settings, ref)
    # Stored at registration and read here; only a version registered by an older creditops
    # gets it written, once, by the first process that meets it (see registry.policy).
    policy = version_policy(settings, loaded)
    data = load_version_data(settings, loaded)
    spec = loaded.spec
    train = data.frame.iloc[data.split.train]
    reference = train[[*spec.features, *[c for c in spec.protected if c not in spec.features]]]
    served = ServedModel(
        loaded=loaded,
        policy=policy,
        scorer=compile_or_none(loaded.model, spec),
        explainer=build_explainer(
            loaded.model, train[spec.features], spec, tree_perturbation=settings.tree_shap
        ),
        application_model=build_application_model(
            spec,
            example=example_application(spec, train),
            # reject: refused exactly past what refer and decide would flag
            margin=0.0 if settings.out_of_range == "reject" else ACCEPTED_MARGIN,
            lenient=settings.out_of_range != "reject",
        ),
        reference=reference.reset_index(drop=True),
        loaded_at=datetime.now(UTC).isoformat(timespec="seconds"),
        reason_map=reason_map_for(spec),
        experience=Experience.from_schema(spec.schema_, spec.features),
        out_of_range=settings.out_of_range,
        scoring_ranges={
            item.name: item.accepted_range(ACCEPTED_MARGIN)
            for item in spec.schema_
            if item.kind == "numeric" and item.name in spec.features
        },
    )
    check_served_model(served, current)
    return served


def check_served_model(served: ServedModel, current: ServedModel | None = None) -> None:
    """Refuse a version that cannot serve: non-finite probabilities on reference rows, a fast
    path that disagrees with the pipeline, or features that differ from the serving version."""
    spec = served.spec
    sample = served.reference[spec.features].head(_REFERENCE_ROWS)
    pipeline = served.loaded.model.predict_proba(sample)[:, 1]
    if not np.all(np.isfinite(pipeline)) or np.any((pipeline < 0) | (pipeline > 1)):
        raise ModelCheckError(f"version {served.version} predicts non-finite probabilities")
    records = [
        {k: (None if pd.isna(v) else v) for k, v in row.items()}
        for row in sample.to_dict(orient="records")
    ]
    fast = served.probabilities(records)
    if not np.allclose(fast, pipeline, rtol=0, atol=1e-6):
        raise ModelCheckError(
            f"version {served.version}: the fast path disagrees with the pipeline "
            f"(max gap {float(np.max(np.abs(fast - pipeline))):.2e})"
        )
    if current is not None and current.spec.features != spec.features:
        raise ModelCheckError(
            f"version {served.version} expects features {spec.features}, but clients send "
            f"{current.spec.features} to version {current.version}"
        )
