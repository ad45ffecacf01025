"""When to retrain, and on what evidence: each trigger that fires is a reason with its numbers.

Triggers (all configurable, ``retrain`` section of the monitoring YAML):

* ``forced``: ``creditops retrain --force``;
* ``auc_drop``: the realised ROC AUC of the latest monitor run is more than 5% (relative) below
  the champion's test AUC;
* ``drift_critical``: every monitor run of the last 24 hours found critical data drift, the
  critical streak (two runs at least) is at least that old, and its newest run lies within
  those 24 hours (one bad run is not a trend, and a stale one is not news);
* ``features_drifted``: the latest run found more than 30% of the features drifted;
* ``schedule``: the champion is older than 7 days, and so is the last retrain that trained.

After a retrain that trained a challenger, the evidence triggers (not ``forced``) wait
``min_hours_between_retrains``: drift that the last challenger could not fix would otherwise
start a retrain at every cron tick.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from creditops.monitoring.shadow import ShadowGates
from creditops.store.alerts import MonitorRun

TriggerName = Literal["forced", "auc_drop", "drift_critical", "features_drifted", "schedule"]


class RetrainConfig(BaseModel):
    """Triggers, data and promotion gates of a retrain."""

    model_config = ConfigDict(extra="forbid")

    # triggers
    auc_drop_relative: float = Field(default=0.05, gt=0, lt=1)
    drift_critical_hours: float = Field(default=24.0, gt=0)
    drifted_share: float = Field(default=0.30, gt=0, le=1)
    schedule_days: float | None = Field(default=7.0, gt=0)
    min_hours_between_retrains: float = Field(default=24.0, ge=0)
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
    # what a promotion requires of the challenger's shadow decisions on live traffic
    shadow: ShadowGates = Field(default_factory=ShadowGates)

    @property
    def needs_shadow(self) -> bool:
        """Whether promotion waits for shadow decisions (auto_promote then never applies)."""
        gates = self.shadow
        return gates.min_decisions > 0 or any(
            v is not None for v in (gates.min_agreement, gates.max_psi, gates.max_approval_gap)
        )


class Trigger(BaseModel):
    name: TriggerName
    value: float | None = None
    threshold: float | None = None
    message: str


class RetrainDecision(BaseModel):
    retrain: bool
    reasons: list[Trigger]
    notes: list[str] = Field(default_factory=list)

    @property
    def summary(self) -> str:
        text = "; ".join(r.message for r in self.reasons) or "no trigger fired"
        return "; ".join([text, *self.notes])


def _critical_streak(runs: Sequence[MonitorRun]) -> tuple[datetime | None, int]:
    """When the current run of consecutive critical-drift monitor runs began, and how many runs
    it holds ((None, 0) if the latest run was not critical)."""
    start, count = None, 0
    for run in reversed(runs):  # newest first
        if run.drift_level != "critical":
            break
        start, count = run.started_at, count + 1
    return start, count


class TriggerStatus(BaseModel):
    """One evidence trigger now: its current value (None: nothing to judge yet) against its
    threshold, whether it fires, and a sentence saying so."""

    name: TriggerName
    value: float | None
    threshold: float | None
    fired: bool
    message: str


def trigger_status(
    config: RetrainConfig,
    *,
    now: datetime,
    runs: Sequence[MonitorRun] = (),
    champion_created_at: datetime | None = None,
    last_retrain_at: datetime | None = None,
) -> list[TriggerStatus]:
    """Every trigger but ``forced``, fired or not, from the monitor runs (oldest first), the
    champion's age and when the last retrain that trained a challenger started."""
    latest = runs[-1] if runs else None
    statuses: list[TriggerStatus] = []

    drop = None if latest is None else latest.realised_auc_drop_relative
    limit = config.auc_drop_relative
    statuses.append(
        TriggerStatus(
            name="auc_drop",
            value=drop,
            threshold=limit,
            fired=drop is not None and drop > limit,
            message="no realised ROC AUC yet (outcomes not known)"
            if drop is None
            else f"realised ROC AUC is {drop:.1%} below the champion's test AUC "
            f"(limit {limit:.0%})",
        )
    )

    start, streak = _critical_streak(runs)
    period = timedelta(hours=config.drift_critical_hours)
    current = start is not None and latest is not None and now - latest.started_at <= period
    hours = (now - start).total_seconds() / 3600 if current and start is not None else 0.0
    if start is None:
        message = "the latest monitor run found no critical drift"
    elif not current:
        message = f"the last critical run is more than {config.drift_critical_hours:g} hours old"
    elif streak < 2:
        message = "critical drift in the latest run only: a trend needs two runs or more"
    else:
        message = (
            f"data drift has been critical in every monitor run for {hours:.0f} "
            f"hours (limit {config.drift_critical_hours:g})"
        )
    statuses.append(
        TriggerStatus(
            name="drift_critical",
            value=hours,
            threshold=config.drift_critical_hours,
            fired=streak >= 2 and current and hours >= config.drift_critical_hours,
            message=message,
        )
    )

    share = None if latest is None else latest.drift_share
    statuses.append(
        TriggerStatus(
            name="features_drifted",
            value=share,
            threshold=config.drifted_share,
            fired=share is not None and share > config.drifted_share,
            message="no monitor run yet"
            if share is None
            else f"{share:.0%} of the features drifted in the latest monitor run "
            f"(limit {config.drifted_share:.0%})",
        )
    )

    if config.schedule_days is not None and champion_created_at is not None:
        since = max(champion_created_at, last_retrain_at or champion_created_at)
        days = (now - since).total_seconds() / 86400
        what = "the champion is" if since == champion_created_at else "the last retrain was"
        statuses.append(
            TriggerStatus(
                name="schedule",
                value=days,
                threshold=config.schedule_days,
                fired=now - since >= timedelta(days=config.schedule_days),
                message=f"{what} {days:.1f} days old (retrain every {config.schedule_days:g} days)",
            )
        )
    return statuses


def should_retrain(
    config: RetrainConfig,
    *,
    now: datetime,
    runs: Sequence[MonitorRun] = (),
    champion_created_at: datetime | None = None,
    last_retrain_at: datetime | None = None,
    force: bool = False,
) -> RetrainDecision:
    """Which triggers fire, given the monitor runs (oldest first), the champion's age and when
    the last retrain that trained a challenger started (None: never)."""
    reasons: list[Trigger] = []
    if force:
        reasons.append(Trigger(name="forced", message="retraining was forced (--force)"))
    for status in trigger_status(
        config,
        now=now,
        runs=runs,
        champion_created_at=champion_created_at,
        last_retrain_at=last_retrain_at,
    ):
        if status.fired:
            reasons.append(
                Trigger(
                    name=status.name,
                    value=status.value,
                    threshold=status.threshold,
                    message=status.message,
                )
            )
    notes: list[str] = []
    cooldown = timedelta(hours=config.min_hours_between_retrains)
    if last_retrain_at is not None and now - last_retrain_at < cooldown:
        held = [r for r in reasons if r.name not in ("forced", "schedule")]
        if held:
            hours = (now - last_retrain_at).total_seconds() / 3600
            notes.append(
                f"{', '.join(r.name for r in held)} held back: the last retrain ran "
                f"{hours:.1f} hours ago (at most one every "
                f"{config.min_hours_between_retrains:g} hours unless forced)"
            )
            reasons = [r for r in reasons if r not in held]
    return RetrainDecision(retrain=bool(reasons), reasons=reasons, notes=notes)
