"""When to retrain, and on what evidence: each trigger that fires is a reason with its numbers.

Triggers (all configurable, ``retrain`` section of the monitoring YAML):

* ``forced``: ``creditops retrain --force``;
* ``auc_drop``: the realised ROC AUC of the latest monitor run is more than 5% (relative) below
  the champion's test AUC;
* ``drift_critical``: every monitor run of the last 24 hours found critical data drift, and
  the critical streak is at least that old (one bad run is not a trend);
* ``features_drifted``: the latest run found more than 30% of the features drifted;
* ``schedule``: the champion is older than 7 days.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from creditops.monitoring.alerts import MonitorRun

TriggerName = Literal["forced", "auc_drop", "drift_critical", "features_drifted", "schedule"]


class RetrainConfig(BaseModel):
    """Triggers, data and promotion gates of a retrain."""

    model_config = ConfigDict(extra="forbid")

    # triggers
    auc_drop_relative: float = Field(default=0.05, gt=0, lt=1)
    drift_critical_hours: float = Field(default=24.0, gt=0)
    drifted_share: float = Field(default=0.30, gt=0, le=1)
    schedule_days: float | None = Field(default=7.0, gt=0)
    # data
    outcome_window_days: float = Field(default=365.0, gt=0)
    holdout_share: float = Field(default=0.3, gt=0, lt=1)
    profile: Literal["fast", "full"] = "fast"
    models: list[str] | None = None
    # promotion gates
    min_labelled_rows: int = Field(default=200, ge=10)
    auc_tolerance: float = Field(default=0.005, ge=0, description="AUC the challenger may lose")
    calibration_tolerance: float = Field(default=0.005, ge=0, description="Brier it may add")
    fairness: Literal["pass", "not_worse", "off"] = Field(
        default="not_worse",
        description="pass: the fairness gate must pass outright; not_worse: no attribute's "
        "disparate impact ratio more than fairness_tolerance below the champion's",
    )
    fairness_tolerance: float = Field(default=0.02, ge=0)
    auto_promote: bool = False


class Trigger(BaseModel):
    name: TriggerName
    value: float | None = None
    threshold: float | None = None
    message: str


class RetrainDecision(BaseModel):
    retrain: bool
    reasons: list[Trigger]

    @property
    def summary(self) -> str:
        return "; ".join(r.message for r in self.reasons) or "no trigger fired"


def _critical_streak_start(runs: Sequence[MonitorRun]) -> datetime | None:
    """When the current run of consecutive critical-drift monitor runs began (None if the
    latest run was not critical)."""
    start = None
    for run in reversed(runs):  # newest first
        if run.drift_level != "critical":
            break
        start = run.started_at
    return start


def should_retrain(
    config: RetrainConfig,
    *,
    now: datetime,
    runs: Sequence[MonitorRun] = (),
    champion_created_at: datetime | None = None,
    force: bool = False,
) -> RetrainDecision:
    """Which triggers fire, given the monitor runs (oldest first) and the champion's age."""
    reasons: list[Trigger] = []
    if force:
        reasons.append(Trigger(name="forced", message="retraining was forced (--force)"))
    latest = runs[-1] if runs else None
    drop = None if latest is None else latest.realised_auc_drop_relative
    if drop is not None and drop > config.auc_drop_relative:
        reasons.append(
            Trigger(
                name="auc_drop",
                value=drop,
                threshold=config.auc_drop_relative,
                message=f"realised ROC AUC is {drop:.1%} below the champion's test AUC "
                f"(limit {config.auc_drop_relative:.0%})",
            )
        )
    start = _critical_streak_start(runs)
    if start is not None:
        hours = (now - start).total_seconds() / 3600
        if hours >= config.drift_critical_hours:
            reasons.append(
                Trigger(
                    name="drift_critical",
                    value=hours,
                    threshold=config.drift_critical_hours,
                    message=f"data drift has been critical in every monitor run for {hours:.0f} "
                    f"hours (limit {config.drift_critical_hours:g})",
                )
            )
    share = None if latest is None else latest.drift_share
    if share is not None and share > config.drifted_share:
        reasons.append(
            Trigger(
                name="features_drifted",
                value=share,
                threshold=config.drifted_share,
                message=f"{share:.0%} of the features drifted in the latest monitor run "
                f"(limit {config.drifted_share:.0%})",
            )
        )
    if config.schedule_days is not None and champion_created_at is not None:
        age = now - champion_created_at
        if age >= timedelta(days=config.schedule_days):
            days = age.total_seconds() / 86400
            reasons.append(
                Trigger(
                    name="schedule",
                    value=days,
                    threshold=config.schedule_days,
                    message=f"the champion is {days:.1f} days old (retrain every "
                    f"{config.schedule_days:g} days)",
                )
            )
    return RetrainDecision(retrain=bool(reasons), reasons=reasons)
