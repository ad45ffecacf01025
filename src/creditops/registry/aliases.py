"""Moving the aliases: the champion (with the rollback history a promotion keeps) and the
challenger. The gated, audited promotion built on these lives in retraining."""

from __future__ import annotations

from typing import Any

from creditops.config import Settings
from creditops.exceptions import ModelNotFoundError
from creditops.registry.client import CHAMPION, get_version
from creditops.registry.client import client as registry_client

PREVIOUS_CHAMPION_TAG = "previous_champion"


# The champions a rollback returns to, oldest first, kept in one registered-model tag.
_ROLLBACK_DEPTH = 20


def _rollback_history(client: Any, name: str) -> list[str]:
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(name)
    except MlflowException:  # nothing registered yet: nothing to roll back to
        return []
    tag = (model.tags or {}).get(PREVIOUS_CHAMPION_TAG, "")
    return [v for v in tag.split(",") if v]


def promote(
    settings: Settings, version: str, *, alias: str = CHAMPION, rollback: bool = False
) -> tuple[str | None, str]:
    """Point ``alias`` at ``version``. A promotion remembers the version it replaces; a
    ``rollback`` (to :func:`previous_champion`) forgets it instead, so a second rollback goes
    further back rather than returning to the version just rolled back from."""
    client = registry_client(settings)
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
    registry_client(settings).set_registered_model_alias(
        settings.registered_model_name, alias, str(version)
    )


def previous_champion(settings: Settings) -> str | None:
    """The version a rollback returns to (the champion before the current one), or None."""
    client = registry_client(settings)
    history = _rollback_history(client, settings.registered_model_name)
    return history[-1] if history else None
