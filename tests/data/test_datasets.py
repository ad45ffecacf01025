import pytest

from creditops.data.datasets import CATALOG, DEFAULT_DATASET, describe_catalog, load_builtin
from creditops.exceptions import DatasetNotFoundError


def test_catalog_describes_real_data():
    rows = {row["name"]: row for row in describe_catalog()}
    assert rows["credit_data"]["rows"] == 4454
    assert rows["credit_data"]["target"] == "Status"
    assert rows["credit_data"]["positive"] == "bad"
    assert rows["credit_data"]["protected"] == ["Age", "Marital"]
    assert 0.27 < rows["credit_data"]["positive_rate"] < 0.29
    assert rows["lending_club"]["rows"] == 9857
    assert rows["lending_club"]["target"] == "Class"
    assert 0.04 < rows["lending_club"]["positive_rate"] < 0.06
    assert DEFAULT_DATASET == "credit_data"
    assert rows["credit_data"]["default"] is True


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_builtin_has_binary_target_and_unique_ids(name):
    frame, spec = load_builtin(name)
    assert set(frame[spec.target].unique()) == {"good", "bad"}
    assert frame[spec.id].is_unique
    assert all(column in frame for column in spec.protected)


def test_unknown_dataset_is_named():
    with pytest.raises(DatasetNotFoundError, match=r"unknown dataset 'nope'.*credit_data"):
        load_builtin("nope")
