"""Replacing a version's decision policy by hand (the dashboard's what-if, the API): written to
the registry, audited with the reason, and applied by the serving workers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from creditops.config import Settings
from creditops.evaluation.policy import DecisionPolicy
from creditops.registry.policy import save_policy
from creditops.store.audit import AuditEntry, AuditLog, record_everywhere
from creditops.store.locks import CHAMPION_LOCK, exclusive

__all__ = ["change_policy"]


def change_policy(
    settings: Settings,
    version: str,
    policy: DecisionPolicy,
    *,
    before: DecisionPolicy | None,
    reason: str,
    via: str,
    apply: Callable[[], object] | None = None,
) -> AuditEntry:
    """Make ``policy`` the policy of ``version`` (a number) and record who asked why; ``apply``
    then makes the calling worker serve it at once (the others follow the registry tag)."""
    if not reason.strip():
        raise ValueError("reason: give a reason, it is kept in the audit trail")
    started = datetime.now(UTC)
    with exclusive(settings, CHAMPION_LOCK), AuditLog.from_settings(settings) as audit:
        save_policy(settings, version, policy)
        entry = record_everywhere(
            settings,
            audit,
            AuditEntry(
                started_at=started,
                action="policy",
                outcome="saved",
                champion_version=version,
                reasons=[reason.strip()],
                message=f"version {version}: approve below {policy.approve_below:.4f}, "
                f"decline from {policy.decline_at_or_above:.4f}; reason: {reason.strip()}",
                details={
                    "via": via,
                    "reason": reason.strip(),
                    "before": before.model_dump(mode="json") if before else None,
                    "after": policy.model_dump(mode="json"),
                },
            ),
        )
    if apply is not None:
        apply()
    return entry
