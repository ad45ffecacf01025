"""Model registry: versions, the ``champion``/``challenger`` aliases, loading for serving."""

from creditops.registry.registry import (
    CHALLENGER,
    CHAMPION,
    LoadedModel,
    VersionData,
    champion_exists,
    get_version,
    load_model,
    load_version_data,
    register_model,
)

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "LoadedModel",
    "VersionData",
    "champion_exists",
    "get_version",
    "load_model",
    "load_version_data",
    "register_model",
]
