"""Model registry: register a trained champion with its spec and policy, move the
``champion``/``challenger`` aliases, load a version with its data, read its decision policy.

Reviewing a registered version (:mod:`creditops.registry.review`) is imported on its own: it
brings the whole evaluation stack with it.
"""

from creditops.registry.aliases import previous_champion, promote, set_alias
from creditops.registry.client import (
    CHALLENGER,
    CHAMPION,
    champion_and_challenger,
    get_version,
    prepare_registry,
)
from creditops.registry.load import (
    LoadedModel,
    VersionData,
    champion_exists,
    load_model,
    load_version_artifact,
    load_version_data,
    registered_versions,
    training_reference,
)
from creditops.registry.policy import stored_policy, version_policy
from creditops.registry.register import register_model, register_trained, train_and_register

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "LoadedModel",
    "VersionData",
    "champion_and_challenger",
    "champion_exists",
    "get_version",
    "load_model",
    "load_version_artifact",
    "load_version_data",
    "prepare_registry",
    "previous_champion",
    "promote",
    "register_model",
    "register_trained",
    "registered_versions",
    "set_alias",
    "stored_policy",
    "train_and_register",
    "training_reference",
    "version_policy",
]
