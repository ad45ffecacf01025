"""Reproducing logged decisions for an audit: each logged input re-scored with the model
version that decided it, beside what was logged."""

from dataclasses import dataclass

from creditops.config import Settings
from creditops.data.experience import OUT_OF_RANGE_CODE
from creditops.evaluation.reasons import (
    ReasonMap,
)
from creditops.serving.served import ServedModel, build_served_model
from creditops.store.predlog import PredictionRecord


@dataclass
class Reproduction:
    """A logged decision re-scored with its own model version, beside what was logged."""

    prediction_id: str
    model_version: str
    logged_probability: float
    probability: float
    logged_decision: str
    decision: str
    logged_reasons: list[str]
    reasons: list[str]

    @property
    def identical(self) -> bool:
        return (
            self.probability == self.logged_probability
            and self.decision == self.logged_decision
            and self.reasons == self.logged_reasons
        )


def reproduce_decisions(
    settings: Settings,
    records: list[PredictionRecord],
    reason_map: ReasonMap | None = None,
    *,
    models: dict[str, ServedModel] | None = None,
) -> list[Reproduction]:
    """Re-score each logged input with the model version that decided it (audit). ``models``:
    versions already built, by number; the ones built here are added to it, so a caller that
    keeps it builds each version once."""
    served: dict[str, ServedModel] = models if models is not None else {}
    reasons = reason_map  # None: the version's spec, as when it decided
    results = []
    for record in records:
        if record.model_version not in served:
            served[record.model_version] = build_served_model(settings, record.model_version)
        model = served[record.model_version]
        features, outside = model.screen({f: record.features.get(f) for f in model.spec.features})
        probability = model.probability(features)
        decision = model.label(probability, outside)
        codes: list[str] = []
        if decision != "approve":
            codes = [r.code for r in model.reason_codes(features, reasons)]
            if model.out_of_range == "refer":
                codes = [OUT_OF_RANGE_CODE] * len(outside) + codes
        results.append(
            Reproduction(
                prediction_id=str(record.prediction_id),
                model_version=record.model_version,
                logged_probability=record.probability,
                probability=probability,
                logged_decision=record.decision,
                decision=decision,
                logged_reasons=[r["code"] for r in record.reasons],
                reasons=codes,
            )
        )
    return results
