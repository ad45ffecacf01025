"""Two registered versions side by side on the one test split they share: discrimination with
bootstrap intervals (and a paired interval of their AUC difference), calibration, gains, score
distributions, what each version's own policy does, and approval by protected group with the
four-fifths verdict.

A comparison is only fair on rows neither version trained on, so both versions must come from
the same data with the same split; versions trained on other data (a retrain adds logged
decisions and splits again) are refused, not compared on a split one of them has seen.

A version's model and data never change once registered and its policy changes only with a new
``policy_revision`` tag, so a comparison is computed once per pair and policy revisions and kept
in the process: a second view costs two registry look-ups.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from creditops.config import Settings
from creditops.evaluation.business import PolicyOutcome, amounts_from
from creditops.evaluation.fairness import ApprovalRates, GroupStatus
from creditops.evaluation.metrics import detailed_metrics, paired_auc_difference_interval
from creditops.evaluation.policy import DecisionPolicy
from creditops.evaluation.whatif import policy_what_if
from creditops.exceptions import IncomparableVersionsError, ModelNotFoundError
from creditops.registry.client import get_version
from creditops.registry.load import LoadedModel, VersionData, load_model, load_version_data
from creditops.registry.policy import POLICY_REVISION, version_policy

__all__ = [
    "AttributeComparison",
    "ComparedVersion",
    "GroupComparison",
    "VersionComparison",
    "compare_versions",
]

N_BOOT = 1000
_KEEP = 16  # comparisons kept per process (tens of kB each: curves are thinned)
_CACHE: OrderedDict[tuple[str, ...], VersionComparison] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_KEY_LOCKS: dict[tuple[str, ...], threading.Lock] = {}


class ComparedVersion(BaseModel):
    """One side of a comparison. ``metrics`` has the shape of a review's metrics (headline
    figures, AUC and Gini intervals, calibration, lift, ROC and score histogram), so the same
    charts draw both."""

    model_version: str
    candidate: str
    policy: DecisionPolicy
    metrics: dict[str, Any]
    outcome: PolicyOutcome  # its own policy applied to the shared test split


class GroupComparison(BaseModel):
    """One protected group under each version's policy, in the comparison's version order."""

    group: str
    size: int
    status: GroupStatus
    approval_rates: list[float]
    ratios_to_highest: list[float | None]


class AttributeComparison(BaseModel):
    """Approval by group of one protected attribute; ``rates`` holds each version's
    :class:`ApprovalRates` (disparate impact ratio and four-fifths verdict) in version order."""

    attribute: str
    groups: list[GroupComparison]
    rates: list[ApprovalRates]


class VersionComparison(BaseModel):
    """Two versions measured on the same test rows."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = 1
    dataset: str
    test_rows: int
    bad_rate: float
    n_boot: int
    versions: list[ComparedVersion]
    auc_difference: float  # second minus first
    auc_difference_ci: list[float]  # paired bootstrap: both versions on the same resamples
    fairness: list[AttributeComparison]

    @property
    def difference_is_clear(self) -> bool:
        """Whether the AUC difference's interval leaves out zero."""
        low, high = self.auc_difference_ci
        return low > 0 or high < 0


def compare_versions(
    settings: Settings, a: str, b: str, *, n_boot: int = N_BOOT
) -> VersionComparison:
    """Versions ``a`` and ``b`` (numbers) on their shared test split. Raises
    :class:`ModelNotFoundError` for a version not registered and
    :class:`IncomparableVersionsError` when they share no test split."""
    if a == b:
        raise IncomparableVersionsError(f"choose two different versions (both are v{a})")
    found = {}
    for number in (a, b):
        version = get_version(settings, number) if number.isdigit() else None
        if version is None:
            raise ModelNotFoundError(
                f"version {number} of model {settings.registered_model_name!r} is not registered"
            )
        found[number] = version
    key = (
        settings.resolved_tracking_uri,
        settings.registered_model_name,
        a,
        b,
        *((found[v].tags or {}).get(POLICY_REVISION, "") for v in (a, b)),
        str(n_boot),
    )
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
        if cached is not None:
            _CACHE.move_to_end(key)
            return cached
        key_lock = _KEY_LOCKS.setdefault(key, threading.Lock())
    with key_lock:  # one computation per pair, however many viewers ask at once
        with _CACHE_LOCK:
            cached = _CACHE.get(key)
        if cached is None:
            cached = _compute(settings, a, b, n_boot)
            with _CACHE_LOCK:
                _CACHE[key] = cached
                while len(_CACHE) > _KEEP:
                    _CACHE.popitem(last=False)
                _KEY_LOCKS.pop(key, None)
    return cached


def _compute(settings: Settings, a: str, b: str, n_boot: int) -> VersionComparison:
    loaded = [load_model(settings, a), load_model(settings, b)]
    data = [load_version_data(settings, model) for model in loaded]
    _check_same_split(loaded, data)
    spec = loaded[0].spec
    frame, y = data[0].part("test", spec)
    frame = frame.reset_index(drop=True)
    protected = frame[list(spec.protected)] if spec.protected else None
    sides, probas, impacts = [], [], []
    for model in loaded:
        proba = model.model.predict_proba(frame[model.spec.features])[:, 1]
        policy = version_policy(settings, model)
        amounts = amounts_from(frame, policy.economics)
        what_if = policy_what_if(policy, y, proba, amounts, protected)
        metrics = detailed_metrics(y, proba, threshold=policy.approve_below, n_boot=n_boot)
        sides.append(
            ComparedVersion(
                model_version=model.version,
                candidate=model.tags.get("candidate", "model"),
                policy=policy,
                metrics=metrics,
                outcome=what_if.outcome,
            )
        )
        probas.append(proba)
        impacts.append(what_if.fairness)
    low, high = paired_auc_difference_interval(y, probas[0], probas[1], n_boot=n_boot)
    return VersionComparison(
        dataset=loaded[0].tags.get("dataset", spec.dataset),
        test_rows=len(y),
        bad_rate=float(np.mean(y)),
        n_boot=n_boot,
        versions=sides,
        auc_difference=sides[1].metrics["roc_auc"] - sides[0].metrics["roc_auc"],
        auc_difference_ci=[low, high],
        fairness=[
            _attribute(first.attribute, [first.rates, second.rates])
            for first, second in zip(impacts[0], impacts[1], strict=True)
        ],
    )


def _attribute(name: str, rates: list[ApprovalRates]) -> AttributeComparison:
    # Same rows, same grouping: both versions list the same groups in the same order.
    groups = [
        GroupComparison(
            group=row.group,
            size=row.size,
            status=row.status,
            approval_rates=[r.groups[i].approval_rate for r in rates],
            ratios_to_highest=[r.groups[i].ratio_to_highest for r in rates],
        )
        for i, row in enumerate(rates[0].groups)
    ]
    return AttributeComparison(attribute=name, groups=groups, rates=rates)


def _check_same_split(loaded: list[LoadedModel], data: list[VersionData]) -> None:
    """Refuse, saying why, unless both versions were trained on the same rows, split alike."""
    first, second = loaded
    names = [f"v{model.version}" for model in loaded]
    datasets = [model.tags.get("dataset", model.spec.dataset) for model in loaded]
    if datasets[0] != datasets[1]:
        raise IncomparableVersionsError(
            f"{names[0]} was trained on {datasets[0]} and {names[1]} on {datasets[1]}: "
            "they share no test split to compare them on"
        )
    specs = [model.spec for model in loaded]
    if (specs[0].target, str(specs[0].positive)) != (specs[1].target, str(specs[1].positive)):
        raise IncomparableVersionsError(
            f"{names[0]} and {names[1]} predict different outcomes "
            f"({specs[0].target}={specs[0].positive} and {specs[1].target}={specs[1].positive})"
        )
    if first.tags.get("parent_run_id") == second.tags.get("parent_run_id"):
        return  # one training run: one split
    tests = [d.split.test for d in data]
    same_rows = np.array_equal(tests[0], tests[1]) and _rows(data[0], tests[0]).equals(
        _rows(data[1], tests[1])
    )
    if not same_rows:
        raise IncomparableVersionsError(
            f"{names[0]} and {names[1]} were both trained on {datasets[0]} but with different "
            "data or splits: the test rows of one were training rows of the other, so no "
            "single test split compares them fairly"
        )


def _rows(data: VersionData, positions: np.ndarray) -> pd.DataFrame:
    return data.frame.iloc[positions].reset_index(drop=True)
