"""Model registry: versions, the ``champion``/``challenger`` aliases, loading for serving."""

from creditops.registry.registry import (
    CHALLENGER,
    CHAMPION,
    LoadedModel,
    champion_exists,
    get_version,
    load_model,
    register_model,
)

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "LoadedModel",
    "champion_exists",
    "get_version",
    "load_model",
    "register_model",
]
