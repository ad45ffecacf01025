import numpy as np
import pandas as pd

from creditops.data.datasets import load_builtin
from creditops.data.split import Split, split_dataset
from creditops.data.validate import validate_dataset


def _validated():
    frame, spec = load_builtin("credit_data")
    return validate_dataset(frame, spec, dataset_name="credit_data")


def test_split_is_70_15_15_disjoint_and_complete():
    dataset = _validated()
    split = split_dataset(dataset, seed=7)
    n = len(dataset.y)
    sizes = {part: len(index) for part, index in split.parts().items()}
    assert abs(sizes["train"] / n - 0.70) < 0.005
    assert abs(sizes["validation"] / n - 0.15) < 0.005
    assert abs(sizes["test"] / n - 0.15) < 0.005
    everything = np.concatenate(list(split.parts().values()))
    assert len(everything) == n
    assert len(np.unique(everything)) == n


def test_split_is_stratified():
    dataset = _validated()
    split = split_dataset(dataset, seed=7)
    overall = dataset.y.mean()
    for index in split.parts().values():
        assert abs(dataset.y[index].mean() - overall) < 0.01


def test_split_is_seeded():
    dataset = _validated()
    first, again, other = (split_dataset(dataset, seed=s) for s in (1, 1, 2))
    assert np.array_equal(first.test, again.test)
    assert not np.array_equal(first.test, other.test)


def test_saved_split_reproduces_the_parts():
    dataset = _validated()
    split = split_dataset(dataset, seed=3)
    table = split.to_frame(dataset.frame["applicant_id"])
    assert list(table.columns) == ["row", "id", "part"]
    restored = Split.from_frame(pd.read_csv(pd.io.common.StringIO(table.to_csv(index=False))), 3)
    for part, index in split.parts().items():
        assert np.array_equal(restored.parts()[part], index)
    ids = table.set_index("row")["id"]
    assert ids.loc[split.test].tolist() == dataset.frame["applicant_id"].iloc[split.test].tolist()
