"""The MLflow model registry: register versions, move the ``champion`` alias, load by alias or
version together with the dataset spec stored inside the model."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from creditops.config import Settings
from creditops.data.spec import ResolvedSpec
from creditops.data.split import Split
from creditops.exceptions import ModelNotFoundError
from creditops.training.tracking import (
    SPEC_FILE,
    SPLIT_FILE,
    TRAINING_DATA_FILE,
    configure_tracking,
    download_artifact,
)

CHAMPION = "champion"
CHALLENGER = "challenger"


@dataclass
class VersionData:
    """The validated data a version was trained on, and its train/validation/test split."""

    frame: pd.DataFrame
    split: Split

    def part(self, name: str, spec: ResolvedSpec) -> tuple[pd.DataFrame, np.ndarray]:
        rows = self.split.parts()[name]
        subset = self.frame.iloc[rows]
        y = (subset[spec.target].astype(str) == str(spec.positive)).to_numpy(dtype=np.int64)
        return subset, y


@dataclass
class LoadedModel:
    """A registered model version ready to predict: the fitted pipeline and its spec."""

    name: str
    version: str
    model: Any
    spec: ResolvedSpec
    run_id: str | None
    tags: dict[str, str]


def _client(settings: Settings) -> Any:
    import mlflow

    configure_tracking(settings)
    return mlflow.MlflowClient()


def register_model(
    model_uri: str,
    settings: Settings,
    *,
    alias: str | None = CHAMPION,
    tags: dict[str, Any] | None = None,
) -> str:
    """Register ``model_uri`` under the configured name; point ``alias`` at the new version."""
    import mlflow

    client = _client(settings)
    name = settings.registered_model_name
    version = mlflow.register_model(
        model_uri, name, tags={k: str(v) for k, v in (tags or {}).items()}
    )
    if alias:
        client.set_registered_model_alias(name, alias, version.version)
    return str(version.version)


def get_version(settings: Settings, ref: str = CHAMPION) -> Any | None:
    """The model version behind an alias or a version number, or None when there is none."""
    from mlflow.exceptions import MlflowException

    client = _client(settings)
    name = settings.registered_model_name
    try:
        if ref.isdigit():
            return client.get_model_version(name, ref)
        return client.get_model_version_by_alias(name, ref)
    except MlflowException:
        return None


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
    uri = f"models:/{settings.registered_model_name}/{version.version}"
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
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
    configure_tracking(settings)
    parent = loaded.tags.get("parent_run_id")
    if not parent:
        raise ModelNotFoundError(
            f"version {loaded.version} of {loaded.name!r} has no training run recorded"
        )
    frame = pd.read_parquet(download_artifact(parent, TRAINING_DATA_FILE))
    table = pd.read_csv(download_artifact(parent, SPLIT_FILE))
    seed = int(loaded.tags.get("seed", 0))
    return VersionData(frame=frame, split=Split.from_frame(table, seed=seed))


def load_version_artifact(settings: Settings, loaded: LoadedModel, path: str) -> str | None:
    """A text artifact of the version's own run (e.g. its decision policy), or None if absent."""
    from mlflow.exceptions import MlflowException

    configure_tracking(settings)
    if loaded.run_id is None:
        return None
    try:
        return download_artifact(loaded.run_id, path).read_text(encoding="utf-8")
    except (MlflowException, OSError):
        return None


PREVIOUS_CHAMPION_TAG = "previous_champion"


# The champions a rollback returns to, oldest first, kept in one registered-model tag.
_ROLLBACK_DEPTH = 20


def _rollback_history(client: Any, name: str) -> list[str]:
    tag = (client.get_registered_model(name).tags or {}).get(PREVIOUS_CHAMPION_TAG, "")
    return [v for v in tag.split(",") if v]


def promote(
    settings: Settings, version: str, *, alias: str = CHAMPION, rollback: bool = False
) -> tuple[str | None, str]:
    """Point ``alias`` at ``version``. A promotion remembers the version it replaces; a
    ``rollback`` (to :func:`previous_champion`) forgets it instead, so a second rollback goes
    further back rather than returning to the version just rolled back from."""
    client = _client(settings)
    name = settings.registered_model_name
    if get_version(settings, version) is None:
        raise ModelNotFoundError(f"no version {version!r} of model {name!r} is registered")
    current = get_version(settings, alias)
    previous = str(current.version) if current is not None else None
    history = _rollback_history(client, name)
    if rollback:
        if history and history[-1] == str(version):
            history.pop()
    elif previous is not None and previous != str(version):
        history = [*history, previous][-_ROLLBACK_DEPTH:]
    client.set_registered_model_alias(name, alias, str(version))
    if history:
        client.set_registered_model_tag(name, PREVIOUS_CHAMPION_TAG, ",".join(history))
    elif PREVIOUS_CHAMPION_TAG in (client.get_registered_model(name).tags or {}):
        client.delete_registered_model_tag(name, PREVIOUS_CHAMPION_TAG)
    return previous, str(version)


def set_alias(settings: Settings, alias: str, version: str) -> None:
    """Point ``alias`` (e.g. ``challenger``) at ``version`` without touching the rollback tag
    that :func:`promote` keeps for the champion."""
    if get_version(settings, version) is None:
        raise ModelNotFoundError(
            f"no version {version!r} of model {settings.registered_model_name!r} is registered"
        )
    _client(settings).set_registered_model_alias(
        settings.registered_model_name, alias, str(version)
    )


def previous_champion(settings: Settings) -> str | None:
    """The version a rollback returns to (the champion before the current one), or None."""
    client = _client(settings)
    history = _rollback_history(client, settings.registered_model_name)
    return history[-1] if history else None
