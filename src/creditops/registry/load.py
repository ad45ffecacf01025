"""Reading the registry: a version by alias or number, loaded with the dataset spec stored
inside the model, the data it was trained on, and its run's artifacts."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from creditops.config import Settings
from creditops.data.spec import ResolvedSpec
from creditops.data.split import Split, VersionData
from creditops.exceptions import ModelNotFoundError
from creditops.registry.client import CHAMPION, get_version
from creditops.registry.client import client as registry_client
from creditops.training.tracking import (
    SPEC_FILE,
    SPLIT_FILE,
    TRAINING_DATA_FILE,
    download_artifact,
)


@dataclass
class LoadedModel:
    """A registered model version ready to predict: the fitted pipeline and its spec."""

    name: str
    version: str
    model: Any
    spec: ResolvedSpec
    run_id: str | None
    tags: dict[str, str]


def champion_exists(settings: Settings) -> bool:
    return get_version(settings, CHAMPION) is not None


@contextmanager
def _trusted_store() -> Iterator[None]:
    # MLflow refuses to unpickle any model unless told the store is trusted. The store is the
    # one creditops wrote to, so allow it for this load only and restore the caller's setting.
    key = "MLFLOW_ALLOW_PICKLE_DESERIALIZATION"
    previous = os.environ.get(key)
    os.environ[key] = "true"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = previous


def load_model(settings: Settings, ref: str = CHAMPION) -> LoadedModel:
    """Load a registered version (by alias or number) with the spec it was trained on."""
    import mlflow.artifacts
    import mlflow.sklearn

    version = get_version(settings, ref)
    if version is None:
        raise ModelNotFoundError(
            f"no version {ref!r} of model {settings.registered_model_name!r} is registered; "
            "run `creditops train` first"
        )
    # Where the version's files are, asked of this store's own client (a models:/ URI would be
    # resolved against MLflow's process-wide store).
    uri = registry_client(settings).get_model_version_download_uri(
        settings.registered_model_name, str(version.version)
    )
    local = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=uri, tracking_uri=settings.resolved_tracking_uri
        )
    )
    with _trusted_store():
        model = mlflow.sklearn.load_model(str(local))
    spec = ResolvedSpec.from_json((local / "extra_files" / SPEC_FILE).read_text(encoding="utf-8"))
    return LoadedModel(
        name=settings.registered_model_name,
        version=str(version.version),
        model=model,
        spec=spec,
        run_id=version.run_id,
        tags=dict(version.tags or {}),
    )


def load_version_data(settings: Settings, loaded: LoadedModel) -> VersionData:
    """The training data and split stored with the training run that produced ``loaded``."""
    parent = loaded.tags.get("parent_run_id")
    if not parent:
        raise ModelNotFoundError(
            f"version {loaded.version} of {loaded.name!r} has no training run recorded"
        )
    store = settings.resolved_tracking_uri
    frame = pd.read_parquet(download_artifact(parent, TRAINING_DATA_FILE, tracking_uri=store))
    table = pd.read_csv(download_artifact(parent, SPLIT_FILE, tracking_uri=store))
    seed = int(loaded.tags.get("seed", 0))
    return VersionData(frame=frame, split=Split.from_frame(table, seed=seed))


def load_version_artifact(settings: Settings, loaded: LoadedModel, path: str) -> str | None:
    """A text artifact of the version's own run (e.g. its decision policy), or None if absent."""
    from mlflow.exceptions import MlflowException

    if loaded.run_id is None:
        return None
    try:
        found = download_artifact(loaded.run_id, path, tracking_uri=settings.resolved_tracking_uri)
        return found.read_text(encoding="utf-8")
    except (MlflowException, OSError):
        return None


def registered_versions(settings: Settings) -> list[dict[str, Any]]:
    """Every registered version with its aliases, candidate and test AUC, newest first."""
    client = registry_client(settings)
    name = settings.registered_model_name
    versions = client.search_model_versions(f"name = '{name}'")
    model = client.get_registered_model(name) if versions else None
    aliases: dict[str, list[str]] = {}
    for alias, version in (model.aliases if model else {}).items():
        aliases.setdefault(str(version), []).append(alias)
    return sorted(
        (
            {
                "version": str(v.version),
                "aliases": sorted(aliases.get(str(v.version), [])),
                "candidate": (v.tags or {}).get("candidate"),
                "test_roc_auc": (v.tags or {}).get("test_roc_auc"),
                "created_at": datetime.fromtimestamp(v.creation_timestamp / 1000, UTC).isoformat(),
            }
            for v in versions
        ),
        key=lambda v: -int(v["version"]),
    )


def training_reference(settings: Settings, ref: str = CHAMPION) -> tuple[LoadedModel, Any, str]:
    """The version ``ref`` (a number or an alias), the rows it was trained on (what recent
    data is compared with, e.g. each feature's PSI) and a name for them."""
    loaded = load_model(settings, ref)
    data = load_version_data(settings, loaded)
    rows = data.frame.iloc[data.split.train]
    return loaded, rows, f"{loaded.name} v{loaded.version} (training rows)"
