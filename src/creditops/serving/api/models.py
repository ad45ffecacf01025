"""Models: the serving version, the registered versions, and the admin routes that change the
champion (promote, rollback) under the same rules as the CLI."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from creditops.exceptions import (
    AuditLogError,
    CanaryStateError,
    CreditOpsError,
    ModelNotFoundError,
)
from creditops.registry import registered_versions
from creditops.retraining import promote_challenger
from creditops.retraining import rollback as rollback_champion
from creditops.serving.api.deps import (
    ADMIN_TAG,
    AdminPrincipal,
    Analyst,
    ServiceDep,
    SettingsDep,
)
from creditops.serving.api.errors import error_response, errors
from creditops.serving.canary import CanaryStatus
from creditops.serving.schemas import ChampionChange, ModelInfo, RegisteredVersion
from creditops.serving.service import DecisionService
from creditops.store.audit import AuditEntry

router = APIRouter(tags=["models"])

Reason = Annotated[
    str | None,
    Query(max_length=1000, description="Why the change is made: kept in the audit entry."),
]


@router.get(
    "/model", dependencies=[Analyst], response_model=ModelInfo, responses=errors(401, 403, 503)
)
def model(service: ServiceDep) -> ModelInfo:
    """The serving version: its tags and metrics, decision policy and dataset spec."""
    return service.served.info()


@router.get(
    "/models",
    dependencies=[Analyst],
    response_model=list[RegisteredVersion],
    responses=errors(401, 403),
)
def models(settings: SettingsDep) -> list[dict[str, Any]]:
    """Registered versions and their aliases."""
    return registered_versions(settings)


@router.post(
    "/models/{version}/promote",
    tags=[ADMIN_TAG],
    response_model=ChampionChange,
    response_model_exclude_unset=True,
    responses=errors(401, 403, 404, 409, 422, 503),
)
def promote(
    version: Annotated[str, Path(pattern=r"^[0-9]{1,18}$", description="a registered version")],
    service: ServiceDep,
    settings: SettingsDep,
    principal: AdminPrincipal,
    force: bool = False,
    reason: Reason = None,
) -> Any:
    """Make `version` the champion, under the same rules as `creditops promote`: it must
    come from a retrain whose gates passed and must not have been rolled back, unless
    `force=true`. It is loaded and checked first, then swapped in. Audited, refusals
    included, with the `reason` when given."""
    return _change(
        lambda: promote_challenger(
            settings,
            version=version,
            force=force,
            move=_move(service),
            via=f"api: {principal.name}",
            reason=reason,
        )
    )


@router.post(
    "/models/rollback",
    tags=[ADMIN_TAG],
    response_model=ChampionChange,
    response_model_exclude_unset=True,
    responses=errors(401, 403, 404, 409, 422, 503),
)
def rollback(
    service: ServiceDep, settings: SettingsDep, principal: AdminPrincipal, reason: Reason = None
) -> Any:
    """Return to the previous champion (checked before the swap). Audited, with the
    `reason` when given."""
    return _change(
        lambda: rollback_champion(
            settings, move=_move(service), via=f"api: {principal.name}", reason=reason
        )
    )


def _move(service: DecisionService) -> Callable[[str, bool], tuple[str | None, str]]:
    """Move the champion through this worker's service: built and checked, then swapped."""
    return lambda ref, rollback: service.promote(ref, rollback=rollback)


def _change(change: Callable[[], AuditEntry]) -> Any:
    """Run an audited promotion or rollback; a refusal answers the status that says why."""
    try:
        return ChampionChange.from_audit(change())
    except ModelNotFoundError as error:
        return error_response(404, str(error))
    except AuditLogError as error:
        return error_response(503, str(error))
    except CreditOpsError as error:  # not cleared, already champion, failed its check
        return error_response(409, str(error))


@router.get(
    "/models/canary",
    dependencies=[Analyst],
    response_model=CanaryStatus,
    responses=errors(401, 403, 503),
)
def canary(service: ServiceDep) -> Any:
    """The canary: the share of live single decisions the challenger makes
    (`CREDITOPS_CANARY_SHARE`), its state and its audit entries (started, halted with the
    figures that stopped it, resumed)."""
    try:
        return service.canary_status()
    except AuditLogError as error:
        return error_response(503, str(error))


@router.post(
    "/models/canary/halt",
    tags=[ADMIN_TAG],
    response_model=CanaryStatus,
    responses=errors(401, 403, 409, 422, 503),
)
def halt_canary(service: ServiceDep, principal: AdminPrincipal, reason: Reason = None) -> Any:
    """Stop the canary: every worker answers with the champion alone from its next check of
    the aliases (this one at once). Audited, with the `reason` when given."""
    return _switch(service, "halted", f"api: {principal.name}", reason)


@router.post(
    "/models/canary/resume",
    tags=[ADMIN_TAG],
    response_model=CanaryStatus,
    responses=errors(401, 403, 409, 422, 503),
)
def resume_canary(service: ServiceDep, principal: AdminPrincipal, reason: Reason = None) -> Any:
    """Let a halted canary decide its share again (its watch starts from fresh figures).
    Audited, with the `reason` when given."""
    return _switch(service, "resumed", f"api: {principal.name}", reason)


def _switch(service: DecisionService, outcome: Any, by: str, reason: str | None) -> Any:
    try:
        return service.switch_canary(outcome, by=by, reason=reason)
    except CanaryStateError as error:
        return error_response(409, str(error))
    except AuditLogError as error:
        return error_response(503, str(error))
