"""Data: the built-in catalog, user files, the dataset spec, validation, splitting and a
synthetic generator for scale tests."""

from creditops.data.datasets import CATALOG, DEFAULT_DATASET, describe_catalog, load_builtin
from creditops.data.io import read_table
from creditops.data.spec import DatasetSpec, FeatureSchema, ResolvedSpec
from creditops.data.split import Split, split_dataset
from creditops.data.validate import DataWarning, ValidatedDataset, validate_dataset

__all__ = [
    "CATALOG",
    "DEFAULT_DATASET",
    "DataWarning",
    "DatasetSpec",
    "FeatureSchema",
    "ResolvedSpec",
    "Split",
    "ValidatedDataset",
    "describe_catalog",
    "load_builtin",
    "read_table",
    "split_dataset",
    "validate_dataset",
]
