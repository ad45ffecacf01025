"""The registry connection: an MLflow client on the configured stores, the alias names, and
looking a version up by alias or number."""

from __future__ import annotations

from typing import Any

from creditops.config import Settings
from creditops.training.tracking import configure_tracking

CHAMPION = "champion"
CHALLENGER = "challenger"


def client(settings: Settings) -> Any:
    """An MLflow client on the configured tracking and registry stores."""
    import mlflow

    configure_tracking(settings)
    return mlflow.MlflowClient()


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
