"""Registering: a trained champion becomes a registry version carrying its model, its dataset
spec (inside the model) and its decision policy (an artifact of its run and tags on the
version), in one step."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from creditops import __version__
from creditops.config import Profile, Settings
from creditops.data.spec import DatasetSpec
from creditops.evaluation.business import PolicyConfig
from creditops.registry.client import CHAMPION, client
from creditops.training import tracking
from creditops.training.offload import Offload
from creditops.training.train import Progress, TrainingResult, train


def register_model(
    model_uri: str,
    settings: Settings,
    *,
    alias: str | None = CHAMPION,
    tags: dict[str, Any] | None = None,
) -> str:
    """Register ``model_uri`` under the configured name; point ``alias`` at the new version."""
    import mlflow

    tracking.configure_tracking(settings)  # mlflow.register_model writes where it points
    mlflow_client = client(settings)
    name = settings.registered_model_name
    version = mlflow.register_model(
        model_uri, name, tags={k: str(v) for k, v in (tags or {}).items()}
    )
    if alias:
        mlflow_client.set_registered_model_alias(name, alias, version.version)
    return str(version.version)


def register_trained(
    settings: Settings,
    result: TrainingResult,
    *,
    alias: str | None = CHAMPION,
    tags: dict[str, Any] | None = None,
) -> str:
    """Register the champion of ``result`` with its policy; ``tags`` add to (or override) the
    standard ones. Fills in ``result.registered_model`` / ``registered_version``."""
    champion = result.champion_result
    version_tags: dict[str, Any] = {
        "candidate": champion.name,
        "dataset": result.dataset,
        "validation_roc_auc": round(champion.validation["roc_auc"], 6),
        "test_roc_auc": round(champion.test["roc_auc"], 6),
        "cv_roc_auc": round(champion.cv_auc_mean, 6),
        "calibration": champion.calibration,
        "parent_run_id": result.parent_run_id,
        "seed": settings.seed,
        "creditops_version": __version__,
        **result.policy.tags(),
        **(tags or {}),
    }
    version = register_model(champion.model_uri, settings, alias=alias, tags=version_tags)
    with tracking.start_run("train", run_id=result.parent_run_id):
        tracking.set_tags({"registered_version": version})
    result.registered_model = settings.registered_model_name
    result.registered_version = version
    return version


def train_and_register(
    settings: Settings,
    *,
    frame: pd.DataFrame,
    spec: DatasetSpec,
    dataset_name: str,
    profile: Profile | None = None,
    models: Sequence[str] | None = None,
    register: bool = True,
    progress: Progress | None = None,
    policy_config: PolicyConfig | None = None,
    alias: str | None = CHAMPION,
    parallel: Offload | None = None,
) -> TrainingResult:
    """Train and compare the candidates, then register the best with its policy under
    ``alias`` (``champion`` by default; None: no alias; ``register=False``: track only);
    ``parallel``: where Optuna's trials run (:func:`~creditops.training.train.train`)."""
    result = train(
        settings,
        frame=frame,
        spec=spec,
        dataset_name=dataset_name,
        profile=profile,
        models=models,
        progress=progress,
        policy_config=policy_config,
        parallel=parallel,
    )
    if register:
        register_trained(settings, result, alias=alias)
    return result
