"""The seeded, stratified 70/15/15 split, saved with each run so it can be reproduced."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from creditops.data.spec import ResolvedSpec
from creditops.data.validate import ValidatedDataset

SPLIT_FRACTIONS = {"train": 0.70, "validation": 0.15, "test": 0.15}


@dataclass(frozen=True)
class Split:
    """Row positions of each part, into the validated frame."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    seed: int

    def parts(self) -> dict[str, np.ndarray]:
        return {"train": self.train, "validation": self.validation, "test": self.test}

    def to_frame(self, ids: pd.Series | None = None) -> pd.DataFrame:
        """One row per data row: its position, its id when the data has one, and its part."""
        rows = []
        for part, index in self.parts().items():
            rows.append(pd.DataFrame({"row": index, "part": part}))
        table = pd.concat(rows).sort_values("row").reset_index(drop=True)
        if ids is not None:
            table.insert(1, "id", ids.to_numpy()[table["row"].to_numpy()])
        return table

    @classmethod
    def from_frame(cls, table: pd.DataFrame, seed: int) -> Split:
        part = table["part"].to_numpy()
        row = table["row"].to_numpy()
        return cls(
            train=row[part == "train"],
            validation=row[part == "validation"],
            test=row[part == "test"],
            seed=seed,
        )


@dataclass
class VersionData:
    """The validated data a model version was trained on, and its train/validation/test split."""

    frame: pd.DataFrame
    split: Split

    def part(self, name: str, spec: ResolvedSpec) -> tuple[pd.DataFrame, np.ndarray]:
        """The rows of one part and their 0/1 outcome."""
        rows = self.split.parts()[name]
        subset = self.frame.iloc[rows]
        y = (subset[spec.target].astype(str) == str(spec.positive)).to_numpy(dtype=np.int64)
        return subset, y


def split_dataset(dataset: ValidatedDataset, *, seed: int) -> Split:
    """Stratified on the target so every part keeps the default rate."""
    positions = np.arange(len(dataset.y))
    holdout = SPLIT_FRACTIONS["validation"] + SPLIT_FRACTIONS["test"]
    train, rest = train_test_split(
        positions, test_size=holdout, stratify=dataset.y, random_state=seed
    )
    validation, test = train_test_split(
        rest,
        test_size=SPLIT_FRACTIONS["test"] / holdout,
        stratify=dataset.y[rest],
        random_state=seed,
    )
    return Split(
        train=np.sort(train), validation=np.sort(validation), test=np.sort(test), seed=seed
    )
