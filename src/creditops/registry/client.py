"""The registry connection: an MLflow client on the configured stores, the alias names, and
looking a version up by alias or number."""

from __future__ import annotations

from typing import Any

from creditops.config import Settings
from creditops.training.tracking import quiet_mlflow_output

CHAMPION = "champion"
CHALLENGER = "challenger"


def registry_uri(settings: Settings) -> str:
    return settings.registry_uri or settings.resolved_tracking_uri


def client(settings: Settings) -> Any:
    """An MLflow client on the configured tracking and registry stores, named explicitly: it
    leaves MLflow's process-wide store alone, so threads reading the registry (a server's
    champion poll, its pages) never move where another thread's run is being written."""
    import mlflow

    if settings.uses_local_store:
        settings.ensure_home()
    quiet_mlflow_output()
    return mlflow.MlflowClient(
        tracking_uri=settings.resolved_tracking_uri, registry_uri=registry_uri(settings)
    )


def get_version(settings: Settings, ref: str = CHAMPION) -> Any | None:
    """The model version behind an alias or a version number, or None when there is none."""
    from mlflow.exceptions import MlflowException

    mlflow_client = client(settings)
    name = settings.registered_model_name
    try:
        if ref.isdigit():
            return mlflow_client.get_model_version(name, ref)
        return mlflow_client.get_model_version_by_alias(name, ref)
    except MlflowException:
        return None


def prepare_registry(settings: Settings) -> None:
    """Create a local registry's database now, in this one process: server workers started
    together on a fresh home would otherwise race to create the same tables (a remote
    tracking server needs nothing)."""
    if settings.uses_local_store:
        client(settings).search_registered_models(max_results=1)
