"""Shared fixtures: every test gets its own CREDITOPS_HOME, so the MLflow store, artifacts and
registry are real but isolated and thrown away afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from creditops.config import Settings, get_settings, reset_settings
from creditops.data.datasets import load_builtin
from helpers import DATABASES, database_url


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    monkeypatch.setenv("CREDITOPS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    reset_settings()
    yield get_settings()
    reset_settings()


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, Any]:
    """One fast-profile training of all six candidates on credit_data in a real MLflow SQLite
    store, shared by the training, evaluation and report tests (it costs about a minute)."""
    from creditops.registry import train_and_register

    settings = Settings(home=tmp_path_factory.mktemp("trained-home"))
    frame, spec = load_builtin("credit_data")
    result = train_and_register(
        settings, frame=frame, spec=spec, dataset_name="credit_data", profile="fast"
    )
    return settings, result


@pytest.fixture(scope="session")
def credit_data() -> pd.DataFrame:
    frame, _ = load_builtin("credit_data")
    return frame


@pytest.fixture(scope="session")
def lending_club() -> pd.DataFrame:
    frame, _ = load_builtin("lending_club")
    return frame


@pytest.fixture(params=DATABASES)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each kind the store tests run on (see helpers.DATABASES)."""
    with database_url(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def trained_store(trained, tmp_path: Path) -> Settings:
    """A copy of the trained store with an empty decision log, for a test to log into."""
    import shutil

    source, _ = trained
    home = tmp_path / "home"
    shutil.copytree(source.home, home)
    (home / "predictions.db").unlink(missing_ok=True)
    return Settings(home=home)
