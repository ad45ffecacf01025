"""What each registered version is, in one row: aliases, model kind, data, when, and the figures
its training measured (cross-validation, validation and test), for listing and comparing
versions without loading any model.

A version's metrics are those of the run that logged its model; a run's metrics never change
once training has finished. Its fairness verdict is the ``fairness_gate`` tag an evaluation
(``creditops evaluate`` or ``report``, or the dashboard's review) leaves on that run, and a later
evaluation under a new policy may change it, so a run is read again once its copy is a few
seconds old: one registry query per version per few seconds, however many pages ask.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from creditops.config import Settings
from creditops.registry.client import client

__all__ = ["NOT_EVALUATED", "VersionSummary", "version_summaries", "version_summary"]

#: The run tag an evaluation sets (``registry.review.log_evaluation``): pass, fail or not assessed.
FAIRNESS_TAG = "fairness_gate"
NOT_EVALUATED = "not evaluated yet"
_FRESH_S = 5.0
_RUNS: dict[tuple[str, str], tuple[float, dict[str, float], dict[str, str]]] = {}
_RUNS_LOCK = threading.Lock()


class VersionSummary(BaseModel):
    """One registered version as the dashboard and ``creditops models`` list it."""

    version: str
    aliases: list[str]
    candidate: str | None
    dataset: str | None
    created_at: datetime
    run_id: str | None
    cv_roc_auc: float | None = None
    cv_roc_auc_std: float | None = None
    validation_roc_auc: float | None = None
    test_roc_auc: float | None = None
    test_gini: float | None = None
    test_ks: float | None = None
    test_brier: float | None = None
    policy_approve_below: float | None = None
    policy_decline_at_or_above: float | None = None
    # The fairness gate of the version's stored evaluation: None when none was stored yet.
    fairness_verdict: str | None = None
    tags: dict[str, str]

    @property
    def fairness_shown(self) -> str:
        """The verdict as the list shows it."""
        return self.fairness_verdict or NOT_EVALUATED


def _run_data(settings: Settings, run_id: str | None) -> tuple[dict[str, float], dict[str, str]]:
    """The metrics and tags of a run, read again when the kept copy is stale."""
    if run_id is None:
        return {}, {}
    key = (settings.resolved_tracking_uri, run_id)
    now = time.monotonic()
    with _RUNS_LOCK:
        cached = _RUNS.get(key)
    if cached is None or now - cached[0] > _FRESH_S:
        data = client(settings).get_run(run_id).data
        cached = (now, dict(data.metrics), dict(data.tags))
        with _RUNS_LOCK:
            _RUNS[key] = cached
    return cached[1], cached[2]


def _float(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _summary(settings: Settings, version: Any, aliases: list[str]) -> VersionSummary:
    tags = dict(version.tags or {})
    metrics, run_tags = _run_data(settings, version.run_id)
    test_auc = _float(metrics.get("test_roc_auc", tags.get("test_roc_auc")))
    return VersionSummary(
        version=str(version.version),
        aliases=sorted(aliases),
        candidate=tags.get("candidate"),
        dataset=tags.get("dataset"),
        created_at=datetime.fromtimestamp(version.creation_timestamp / 1000, UTC),
        run_id=version.run_id,
        cv_roc_auc=_float(metrics.get("cv_roc_auc", tags.get("cv_roc_auc"))),
        cv_roc_auc_std=_float(metrics.get("cv_roc_auc_std")),
        validation_roc_auc=_float(
            metrics.get("validation_roc_auc", tags.get("validation_roc_auc"))
        ),
        test_roc_auc=test_auc,
        test_gini=_float(metrics.get("test_gini"))
        or (None if test_auc is None else 2 * test_auc - 1),
        test_ks=_float(metrics.get("test_ks")),
        test_brier=_float(metrics.get("test_brier")),
        policy_approve_below=_float(tags.get("policy_approve_below")),
        policy_decline_at_or_above=_float(tags.get("policy_decline_at_or_above")),
        fairness_verdict=run_tags.get(FAIRNESS_TAG),
        tags=tags,
    )


def version_summaries(settings: Settings) -> list[VersionSummary]:
    """Every registered version, newest first."""
    mlflow_client = client(settings)
    name = settings.registered_model_name
    versions = mlflow_client.search_model_versions(f"name = '{name}'")
    if not versions:
        return []
    aliases: dict[str, list[str]] = {}
    for alias, number in mlflow_client.get_registered_model(name).aliases.items():
        aliases.setdefault(str(number), []).append(alias)
    rows = [_summary(settings, v, aliases.get(str(v.version), [])) for v in versions]
    return sorted(rows, key=lambda row: -int(row.version))


def version_summary(settings: Settings, version: str) -> VersionSummary | None:
    """One version by number or alias, or None when there is no such version."""
    for row in version_summaries(settings):
        if row.version == version or version in row.aliases:
            return row
    return None
