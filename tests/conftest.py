"""Shared fixtures: every test gets its own CREDITOPS_HOME, so the MLflow store, artifacts and
registry are real but isolated and thrown away afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from creditops.config import Settings, get_settings, reset_settings
from creditops.data.datasets import load_builtin


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    monkeypatch.setenv("CREDITOPS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    reset_settings()
    yield get_settings()
    reset_settings()


@pytest.fixture(scope="session")
def credit_data() -> pd.DataFrame:
    frame, _ = load_builtin("credit_data")
    return frame


@pytest.fixture(scope="session")
def lending_club() -> pd.DataFrame:
    frame, _ = load_builtin("lending_club")
    return frame
