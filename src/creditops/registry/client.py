"""The registry connection: an MLflow client on the configured stores, the alias names, and
looking a version up by alias or number.

A registry that does not answer is not a registry without versions: :func:`get_version` raises
:class:`RegistryUnavailableError` naming the tracking server, so a command fails with that
reason (not "run `creditops train` first") and a server keeps the version it serves.
"""

from __future__ import annotations

import os
import re
from typing import Any
from urllib.parse import urlsplit

from creditops.config import Settings
from creditops.exceptions import RegistryUnavailableError
from creditops.training.tracking import quiet_mlflow_output

CHAMPION = "champion"
CHALLENGER = "challenger"

#: MLflow's answers that mean "no such model, version or alias" (the registry did answer).
_NOT_FOUND = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"})

#: The user name and password of a URL (``scheme://user:password@``).
_CREDENTIALS = re.compile(r"(\w+://)[^/\s@]+@")

#: Set by `creditops serve` (its workers inherit them), `monitor` and `retrain` unless the user
#: has set them. MLflow's defaults (7 retries with pauses growing to 2 minutes, 120 s per
#: request) hold a command, or a worker's champion check, for about 4 minutes on a tracking
#: server that is down; with these a refused connection fails in about 5 s (3 tries, pauses of
#: 0 and 4 s), and a server that accepts but never answers in under a minute (3 × 15 s).
MLFLOW_HTTP_LIMITS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "15"}


def registry_uri(settings: Settings) -> str:
    return settings.registry_uri or settings.resolved_tracking_uri


def _without_credentials(text: str) -> str:
    """``text`` with the user name and password of every URL in it left out (MLflow's own
    messages quote the URL as configured)."""
    return _CREDENTIALS.sub(r"\1", text)


def registry_location(settings: Settings) -> str:
    """Where the registry is, for messages ("MLflow tracking server http://host:5000"), with
    no user name or password."""
    uri = _without_credentials(registry_uri(settings))
    if urlsplit(uri).scheme not in ("http", "https"):
        return f"MLflow store {uri}"
    return f"MLflow tracking server {uri}"


def bound_registry_requests() -> None:
    """Make MLflow's HTTP client give up on an unreachable tracking server within a bounded
    time (:data:`MLFLOW_HTTP_LIMITS`), leaving any value the user set alone."""
    for name, value in MLFLOW_HTTP_LIMITS.items():
        os.environ.setdefault(name, value)


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


def is_not_found(error: Exception) -> bool:
    """Whether an MLflow error is the registry answering "no such model, version or alias"
    (rather than not answering, or failing)."""
    return getattr(error, "error_code", None) in _NOT_FOUND


def unavailable(settings: Settings, error: Exception) -> RegistryUnavailableError:
    """An MLflow client's failure as :class:`RegistryUnavailableError`, naming the registry
    (without credentials)."""
    detail = getattr(error, "message", None) or str(error)
    return RegistryUnavailableError(
        f"the model registry ({registry_location(settings)}) is unreachable or failing: "
        f"{_without_credentials(detail)}"
    )


def get_version(settings: Settings, ref: str = CHAMPION) -> Any | None:
    """The model version behind an alias or a version number, or None when there is none.

    Raises :class:`RegistryUnavailableError` when the registry does not answer or fails."""
    from mlflow.exceptions import MlflowException

    mlflow_client = client(settings)
    name = settings.registered_model_name
    try:
        if ref.isdigit():
            return mlflow_client.get_model_version(name, ref)
        return mlflow_client.get_model_version_by_alias(name, ref)
    except MlflowException as error:
        if is_not_found(error):
            return None
        raise unavailable(settings, error) from error


def champion_and_challenger(settings: Settings) -> tuple[str | None, str | None]:
    """The versions holding the champion and challenger aliases (a challenger that is also
    the champion is no challenger). Raises :class:`RegistryUnavailableError` like
    :func:`get_version`."""
    champion, challenger = get_version(settings, CHAMPION), get_version(settings, CHALLENGER)
    first = str(champion.version) if champion is not None else None
    second = str(challenger.version) if challenger is not None else None
    return first, (second if second != first else None)


def prepare_registry(settings: Settings) -> None:
    """Create a local registry's database now, in this one process: server workers started
    together on a fresh home would otherwise race to create the same tables (a remote
    tracking server needs nothing)."""
    if settings.uses_local_store:
        client(settings).search_registered_models(max_results=1)
