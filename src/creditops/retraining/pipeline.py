"""Retrain, compare, and promote only a better and fair model.

``retrain``:

1. takes a lock (:mod:`creditops.store.locks`): two retrains never run at once.
   ``CREDITOPS_HOME/retrain.lock`` (``flock``) covers one host; when the decision log is on
   PostgreSQL a session advisory lock on that database covers every host sharing it;
2. gathers the decisions of the decision log that now have outcomes (``outcome_window_days``);
   the most recent ``holdout_share`` of them are held out, the older ones join the champion's
   own training data (stored with its run);
3. runs the same training pipeline and registers its champion as a new version;
4. scores champion and challenger on the same recent labelled holdout, points the
   ``challenger`` alias at the new version only then (a crash changes no alias; the orphan
   version is named in the audit entry), and applies the gates:
   AUC not worse beyond a tolerance, Brier (calibration) not worse beyond a tolerance, fairness
   (not worse than the champion, or passing outright), enough labelled rows;
5. promotes the challenger when every gate passes and ``auto_promote`` is set; otherwise it
   waits for ``creditops promote``. Every outcome, failures included, is written to the audit
   table and to MLflow (:mod:`creditops.store.audit`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel

from creditops.config import Settings
from creditops.data.spec import ResolvedSpec
from creditops.evaluation.fairness import FOUR_FIFTHS, fairness_report, four_fifths_verdict
from creditops.evaluation.metrics import classification_metrics
from creditops.exceptions import (
    AuditLogError,
    ConfigurationError,
    CreditOpsError,
    ModelNotFoundError,
    NotClearedError,
)
from creditops.monitoring.monitor import read_sections
from creditops.monitoring.shadow import COMPARE_ROWS, compare_shadow, gate_failures
from creditops.registry import (
    CHALLENGER,
    CHAMPION,
    LoadedModel,
    get_version,
    load_model,
    load_version_data,
    previous_champion,
    promote,
    register_trained,
    set_alias,
    version_policy,
)
from creditops.retraining.policy import (
    RetrainConfig,
    RetrainDecision,
    TriggerStatus,
    should_retrain,
    trigger_status,
)
from creditops.store.alerts import AlertStore
from creditops.store.audit import Action, AuditEntry, AuditLog, Gate, record_everywhere
from creditops.store.locks import CHAMPION_LOCK, RETRAIN_LOCK, exclusive
from creditops.store.predlog import PredictionLog
from creditops.store.shadow import shadow_pairs
from creditops.training.train import train

logger = logging.getLogger(__name__)


class RetrainResult(BaseModel):
    model_config = {"protected_namespaces": ()}

    outcome: str
    message: str
    reasons: list[str]
    champion_version: str
    challenger_version: str | None = None
    gates: list[Gate] = []
    labelled_rows: int = 0
    holdout_rows: int = 0
    training_rows: int = 0
    metrics: dict[str, dict[str, float | None]] = {}
    seconds: float = 0.0
    audit_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def _logged_columns(frame: pd.DataFrame) -> tuple[dict[str, str], dict[str, str]]:
    """The log frame's columns by feature and by protected attribute (from
    :meth:`PredictionLog.window`'s ``attrs``). Without them every value would read as missing,
    so their absence is an error, not an empty mapping."""
    try:
        return frame.attrs["feature_columns"], frame.attrs["protected_columns"]
    except KeyError as missing:
        raise CreditOpsError(f"the labelled decisions lost their column map {missing}") from None


def _as_training_rows(
    labelled: pd.DataFrame, spec: ResolvedSpec, columns: list[str]
) -> pd.DataFrame:
    """Logged decisions with outcomes, in the columns of the champion's training data."""
    features, protected = _logged_columns(labelled)
    out = pd.DataFrame(index=labelled.index)
    for column in columns:
        if column == spec.target:
            out[column] = np.where(labelled["outcome"] == 1, spec.positive, spec.negative)
        elif column == spec.id:
            out[column] = labelled["prediction_id"].astype(str)
        elif column in features:
            out[column] = labelled[features[column]]
        elif column in protected:
            out[column] = labelled[protected[column]]
        else:
            out[column] = None
    for column in spec.numeric:
        out[column] = pd.to_numeric(out[column], errors="coerce")
    return out.reset_index(drop=True)


def _holdout_view(holdout: pd.DataFrame, spec: ResolvedSpec) -> tuple[pd.DataFrame, pd.DataFrame]:
    features, protected = _logged_columns(holdout)
    # A feature never logged is missing for every row (the pipelines impute it).
    X = pd.DataFrame(
        {f: holdout[features[f]] if f in features else np.nan for f in spec.features},
        index=holdout.index,
    )
    for column in spec.numeric:
        X[column] = pd.to_numeric(X[column], errors="coerce")
    groups = pd.DataFrame(
        {p: holdout[protected[p]] for p in spec.protected if p in protected}
    ).reset_index(drop=True)  # logged numbers are grouped as numbers by bin_protected
    return X.reset_index(drop=True), groups


def _scores(
    y: np.ndarray, proba: np.ndarray, groups: pd.DataFrame, threshold: float
) -> dict[str, Any]:
    metrics = classification_metrics(y, proba)
    report = (
        fairness_report(y, proba, groups, threshold=threshold, n_boot=0)
        if len(groups.columns)
        else None
    )
    di = {}
    if report is not None:
        for attribute in report.attributes:
            if attribute.kind == "attribute" and attribute.disparate_impact_ratio is not None:
                di[attribute.attribute] = attribute.disparate_impact_ratio.value
    return {
        "roc_auc": metrics["roc_auc"],
        "brier": metrics["brier"],
        "ks": metrics["ks"],
        "approval_rate": float(np.mean(proba < threshold)),
        "disparate_impact": di,
    }


def evaluate_gates(
    champion: dict[str, Any],
    challenger: dict[str, Any],
    holdout_rows: int,
    config: RetrainConfig,
) -> list[Gate]:
    """The promotion gates, each with its figures and a sentence."""
    gates = [
        Gate(
            name="minimum_labelled_rows",
            passed=holdout_rows >= config.min_labelled_rows,
            value=holdout_rows,
            threshold=config.min_labelled_rows,
            message=f"{holdout_rows} labelled holdout rows (need {config.min_labelled_rows})",
        )
    ]
    auc_floor = champion["roc_auc"] - config.auc_tolerance
    gates.append(
        Gate(
            name="auc_not_worse",
            passed=challenger["roc_auc"] >= auc_floor,
            value=challenger["roc_auc"],
            threshold=auc_floor,
            message=f"challenger ROC AUC {challenger['roc_auc']:.4f} vs champion "
            f"{champion['roc_auc']:.4f} (may lose {config.auc_tolerance:g})",
        )
    )
    brier_ceiling = champion["brier"] + config.calibration_tolerance
    gates.append(
        Gate(
            name="calibration_not_worse",
            passed=challenger["brier"] <= brier_ceiling,
            value=challenger["brier"],
            threshold=brier_ceiling,
            message=f"challenger Brier {challenger['brier']:.4f} vs champion "
            f"{champion['brier']:.4f} (may add {config.calibration_tolerance:g})",
        )
    )
    if config.fairness != "off":
        worst, worst_attribute, failures = math.inf, None, []
        for attribute, ratio in challenger["disparate_impact"].items():
            before = champion["disparate_impact"].get(attribute)
            if ratio < worst:
                worst, worst_attribute = ratio, attribute
            adverse = four_fifths_verdict(ratio) == "adverse impact presumed"
            if config.fairness == "pass" and adverse:
                failures.append(f"{attribute} disparate impact {ratio:.2f} < {FOUR_FIFTHS:.2f}")
            if (
                config.fairness == "not_worse"
                and before is not None
                and ratio < before - config.fairness_tolerance
            ):
                failures.append(
                    f"{attribute} disparate impact {ratio:.2f} vs champion's {before:.2f}"
                )
        gates.append(
            Gate(
                name="fairness",
                passed=not failures,
                value=None if worst_attribute is None else worst,
                threshold=FOUR_FIFTHS if config.fairness == "pass" else None,
                message="; ".join(failures)
                or (
                    "no protected attribute to judge"
                    if worst_attribute is None
                    else f"lowest disparate impact {worst:.2f} ({worst_attribute}); "
                    + (
                        f"every attribute at or above {FOUR_FIFTHS:.2f}"
                        if config.fairness == "pass"
                        else "no attribute worse than the champion's beyond "
                        f"{config.fairness_tolerance:g}"
                    )
                ),
            )
        )
    return gates


def _canary_gates(audit: AuditLog, version: str) -> list[Gate]:
    """The canary gate of ``version``: passed unless its canary stands halted (none when it
    never ran as a canary)."""
    newest = audit.recent(1, action="canary", challenger_version=version)
    if not newest:
        return []
    halted = newest[0].outcome == "halted"
    return [
        Gate(
            name="canary",
            passed=not halted,
            message=f"its canary was halted and not resumed: {newest[0].message}"
            if halted
            else f"its canary is {newest[0].outcome}, not halted",
        )
    ]


def _shadow_gates(settings: Settings, version: str) -> list[Gate]:
    """The shadow gates of ``version`` (none when the config requires nothing of shadow
    decisions): enough of them, and agreement, score PSI and approval rate within bounds."""
    config = retrain_config(settings)
    if not config.needs_shadow:
        return []
    with PredictionLog.from_settings(settings) as log:
        pairs = shadow_pairs(log, version, limit=COMPARE_ROWS)
        comparison = compare_shadow(pairs, version)
    failures = gate_failures(comparison, config.shadow)
    return [
        Gate(
            name="shadow",
            passed=not failures,
            value=comparison.rows,
            threshold=config.shadow.min_decisions,
            message="; ".join(failures)
            or (
                f"{comparison.rows} shadow decisions: agreement {comparison.agreement:.1%}, "
                f"score PSI {comparison.psi if comparison.psi is not None else float('nan'):.3f}"
            ),
        )
    ]


def retrain_config(settings: Settings) -> RetrainConfig:
    """The ``retrain`` section of the monitoring YAML over the defaults."""
    from pydantic import ValidationError

    section = read_sections(settings.monitoring_config).get("retrain") or {}
    try:
        return RetrainConfig.model_validate(section)
    except ValidationError as error:
        problems = "; ".join(
            f"retrain.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        raise ConfigurationError(f"monitoring config is invalid: {problems}") from None


def _trigger_inputs(settings: Settings, config: RetrainConfig, now: datetime) -> dict[str, Any]:
    """What the triggers read: the recorded monitor runs of the current champion (runs about a
    replaced champion say nothing about this one), its registration time, and the audit
    trail's last retrain that trained a challenger."""
    lookback = timedelta(hours=max(config.drift_critical_hours * 4, 24 * 7))
    with AlertStore.from_settings(settings) as store:
        runs = store.runs(since=now - lookback)
    version = get_version(settings, CHAMPION)
    created = None
    if version is not None:
        created = datetime.fromtimestamp(version.creation_timestamp / 1000, tz=UTC)
        runs = [r for r in runs if r.model_version in (None, str(version.version))]
    with AuditLog.from_settings(settings) as audit:
        trained = audit.recent(1, action="retrain", trained=True)
    last = trained[0].started_at if trained else None
    return {"runs": runs, "champion_created_at": created, "last_retrain_at": last}


def decide_retrain(
    settings: Settings, config: RetrainConfig, *, force: bool = False, now: datetime | None = None
) -> RetrainDecision:
    """Whether to retrain now, and why (see :func:`_trigger_inputs` for the evidence)."""
    now = now or datetime.now(UTC)
    return should_retrain(config, now=now, force=force, **_trigger_inputs(settings, config, now))


def current_triggers(
    settings: Settings, config: RetrainConfig, *, now: datetime | None = None
) -> list[TriggerStatus]:
    """Each trigger's value now against its threshold, fired or not."""
    now = now or datetime.now(UTC)
    return trigger_status(config, now=now, **_trigger_inputs(settings, config, now))


def record_no_retrain(settings: Settings, decision: RetrainDecision) -> AuditEntry:
    """Audit a retrain check that found no trigger."""
    version = get_version(settings, CHAMPION)
    with AuditLog.from_settings(settings) as audit:
        return audit.record(
            AuditEntry(
                started_at=datetime.now(UTC),
                action="retrain",
                outcome="skipped",
                champion_version=None if version is None else str(version.version),
                message=f"not retrained: {decision.summary}",
            )
        )


def retrain(
    settings: Settings,
    config: RetrainConfig,
    decision: RetrainDecision,
    *,
    now: datetime | None = None,
) -> RetrainResult:
    """Retrain, compare on a recent labelled holdout, gate, maybe promote; always audited."""
    started = now or datetime.now(UTC)
    clock = time.perf_counter()
    reasons = [r.message for r in decision.reasons]
    with exclusive(settings, RETRAIN_LOCK), AuditLog.from_settings(settings) as audit:
        current = get_version(settings, CHAMPION)
        entry = AuditEntry(
            started_at=started,
            action="retrain",
            outcome="failed",
            champion_version=None if current is None else str(current.version),
            reasons=reasons,
            message="",
        )
        progress: dict[str, str] = {}
        try:
            champion = load_model(settings, CHAMPION)
            result = _retrain(settings, config, champion, reasons, started, progress)
        except Exception as error:
            orphan = progress.get("registered")
            held = progress.get("aliases", "no alias")
            note = f" (version {orphan} was registered and holds {held})" if orphan else ""
            record_everywhere(
                settings,
                audit,
                entry.model_copy(
                    update={
                        "challenger_version": orphan,
                        "message": f"retrain failed: {type(error).__name__}: {error}{note}",
                        "finished_at": datetime.now(UTC),
                    }
                ),
            )
            raise
        result.seconds = time.perf_counter() - clock
        recorded = record_everywhere(
            settings,
            audit,
            entry.model_copy(
                update={
                    "outcome": result.outcome,
                    "challenger_version": result.challenger_version,
                    "gates": result.gates,
                    "message": result.message,
                    "finished_at": datetime.now(UTC),
                    "details": {
                        "metrics": result.metrics,
                        "labelled_rows": result.labelled_rows,
                        "holdout_rows": result.holdout_rows,
                        "training_rows": result.training_rows,
                    },
                }
            ),
        )
        result.audit_id = recorded.id
        return result


def _retrain(
    settings: Settings,
    config: RetrainConfig,
    champion: LoadedModel,
    reasons: list[str],
    started: datetime,
    progress: dict[str, str],
) -> RetrainResult:
    spec = champion.spec
    log = PredictionLog(settings.resolved_database_url)
    try:
        labelled = log.window(
            since=started - timedelta(days=config.outcome_window_days),
            with_outcomes_only=True,
            model_name=champion.name,
        )
    finally:
        log.close()
    original = load_version_data(settings, champion).frame
    if spec.id is not None and spec.id in original.columns and len(labelled):
        # A champion that came from a retrain was trained on logged decisions too (with their
        # prediction_id as the id): they are neither new training rows nor a fair holdout.
        learnt = set(original[spec.id].astype(str))
        labelled = labelled[~labelled["prediction_id"].astype(str).isin(learnt)].copy()
    n_holdout = math.floor(len(labelled) * config.holdout_share)
    base = {
        "reasons": reasons,
        "champion_version": champion.version,
        "labelled_rows": len(labelled),
        "holdout_rows": n_holdout,
    }

    def skipped(message: str, gate: Gate) -> RetrainResult:
        return RetrainResult(outcome="skipped", message=message, gates=[gate], **base)

    if n_holdout < config.min_labelled_rows:
        return skipped(
            f"not retrained: {len(labelled)} decisions have outcomes, so the holdout would hold "
            f"{n_holdout} rows (need {config.min_labelled_rows})",
            Gate(
                name="minimum_labelled_rows",
                passed=False,
                value=n_holdout,
                threshold=config.min_labelled_rows,
                message=f"{n_holdout} labelled holdout rows (need {config.min_labelled_rows})",
            ),
        )
    # The log's column maps ride in ``attrs``, which pandas carries through these operations.
    labelled = labelled.sort_values(["created_at", "prediction_id"]).reset_index(drop=True)
    holdout = labelled.iloc[len(labelled) - n_holdout :].copy()
    outcomes = holdout["outcome"].nunique()
    if outcomes < 2:
        # AUC is undefined on one class: no comparison is possible, so nothing is trained.
        return skipped(
            f"not retrained: the {n_holdout} holdout rows hold only one outcome, so champion "
            "and challenger cannot be compared",
            Gate(
                name="holdout_has_both_outcomes",
                passed=False,
                value=outcomes,
                threshold=2,
                message=f"the {n_holdout} labelled holdout rows all have the same outcome",
            ),
        )
    recent = labelled.iloc[: len(labelled) - n_holdout].copy()

    combined = original
    if len(recent):
        extra = _as_training_rows(recent, spec, list(original.columns))
        if spec.id is not None:
            original = original.assign(**{spec.id: original[spec.id].astype(str)})
        combined = pd.concat([original, extra], ignore_index=True)
    result = train(
        settings,
        frame=combined,
        spec=spec.dataset_spec(),
        dataset_name=f"{spec.dataset}+decisions",
        profile=config.profile,
        models=config.models,
    )
    winner = result.champion_result
    challenger_version = register_trained(
        settings,
        result,
        alias=None,
        tags={"retrain_of": champion.version, "retrain_reasons": "; ".join(reasons)[:4000]},
    )
    progress["registered"] = challenger_version

    X, groups = _holdout_view(holdout, spec)
    y = holdout["outcome"].to_numpy(dtype=int)
    # Each version is judged by the policy it decides with: the champion's stored one, and the
    # one the challenger was registered with.
    champion_threshold = version_policy(settings, champion).approve_below
    challenger_model = result.models[winner.name]
    champion_scores = _scores(y, champion.model.predict_proba(X)[:, 1], groups, champion_threshold)
    challenger_scores = _scores(
        y, challenger_model.predict_proba(X)[:, 1], groups, result.policy.approve_below
    )
    gates = evaluate_gates(champion_scores, challenger_scores, n_holdout, config)
    # Trained, registered and compared: only now does the new version take the alias.
    set_alias(settings, CHALLENGER, challenger_version)
    progress["aliases"] = "the 'challenger' alias"
    passed = all(g.passed for g in gates)
    if passed and config.auto_promote and not config.needs_shadow:
        progress["aliases"] = "the 'challenger' alias, and maybe 'champion': it was being promoted"
        with exclusive(settings, CHAMPION_LOCK):
            promote(settings, challenger_version)
        outcome, message = (
            "promoted",
            f"version {challenger_version} passed every gate and is now the champion",
        )
    elif passed:
        outcome = "awaiting_approval"
        message = (
            f"version {challenger_version} passed every gate; it becomes the champion with "
            "`creditops promote`"
            + (
                " once its shadow decisions on live traffic pass the shadow gates"
                if config.needs_shadow
                else ""
            )
        )
    else:
        outcome = "rejected"
        failed = ", ".join(g.name for g in gates if not g.passed)
        message = f"version {challenger_version} stays a challenger: failed {failed}"
    flat = {
        name: {k: v for k, v in scores.items() if k != "disparate_impact"}
        | {f"disparate_impact:{a}": r for a, r in scores["disparate_impact"].items()}
        for name, scores in (("champion", champion_scores), ("challenger", challenger_scores))
    }
    return RetrainResult(
        outcome=outcome,
        message=message,
        challenger_version=challenger_version,
        gates=gates,
        training_rows=len(combined),
        metrics=flat,
        **base,
    )


#: Moves the ``champion`` alias to a version (``rollback``: as a return to the previous one) and
#: returns (previous champion, new champion). The registry's :func:`promote` by default; a
#: running service passes its own, which loads and checks the version before the alias moves.
MoveChampion = Callable[[str, bool], tuple[str | None, str]]


def _registry_move(settings: Settings) -> MoveChampion:
    return lambda version, rollback: promote(settings, version, rollback=rollback)


def _audit_refusal(
    settings: Settings,
    audit: AuditLog,
    error: Exception,
    *,
    action: Action,
    started: datetime,
    champion_version: str | None,
    challenger_version: str | None,
    message: str,
    via: str,
    reason: str | None = None,
) -> None:
    """Record a promotion or rollback that did not happen: ``refused`` by a rule, or ``failed``
    on an unexpected error. The caller sees the error itself, so an audit that cannot be
    written is logged rather than raised over it."""
    refused = isinstance(error, CreditOpsError)
    entry = AuditEntry(
        started_at=started,
        action=action,
        outcome="refused" if refused else "failed",
        champion_version=champion_version,
        challenger_version=challenger_version,
        reasons=[str(error)],
        message=f"{message} {'refused' if refused else 'failed'}: {error}",
        details={"via": via, "error": type(error).__name__, "reason": reason},
    )
    try:
        record_everywhere(settings, audit, entry)
    except AuditLogError as audit_error:
        logger.error("%s (not audited: %s)", entry.message, audit_error)


def _audit_change(settings: Settings, audit: AuditLog, entry: AuditEntry) -> AuditEntry:
    """Record a change that has happened. The alias has moved either way, so a failed audit
    write is logged and noted on the returned entry, not raised as if nothing had changed."""
    try:
        return record_everywhere(settings, audit, entry)
    except AuditLogError as error:
        logger.error("%s, but the audit could not be written: %s", entry.message, error)
        return entry.model_copy(update={"details": {**entry.details, "audit_error": str(error)}})


def promote_challenger(
    settings: Settings,
    *,
    version: str | None = None,
    force: bool = False,
    move: MoveChampion | None = None,
    via: str = "cli",
    reason: str | None = None,
) -> AuditEntry:
    """Make the challenger (or ``version``: a number or an alias) the champion, if its retrain
    passed every gate, it was not rolled back since, its shadow decisions pass the shadow gates
    and its canary (if any) is not halted (``force``: even if not, recorded as forced).
    Refusals and failures are audited too; ``via`` says where the request came from (``cli``,
    ``api``, ``dashboard``), ``reason`` why the person asked."""
    started = datetime.now(UTC)
    move = move or _registry_move(settings)
    with exclusive(settings, CHAMPION_LOCK), AuditLog.from_settings(settings) as audit:
        champion = get_version(settings, CHAMPION)
        champion_version = str(champion.version) if champion is not None else None
        verdict: AuditEntry | None = None
        cleared = False
        try:
            found = get_version(settings, CHALLENGER if version is None else version)
            if found is None:
                raise ModelNotFoundError(
                    "no version holds the 'challenger' alias"
                    if version is None
                    else f"no version {version!r} of model {settings.registered_model_name!r} "
                    "is registered"
                )
            version = str(found.version)
            if champion_version == version:
                raise CreditOpsError(f"version {version} is already the champion")
            retrains = audit.recent(1, action="retrain", challenger_version=version)
            verdict = retrains[0] if retrains else None
            # A rollback always follows the retrain that made its version.
            rolled_back = audit.recent(
                1, action="rollback", outcome="rolled_back", challenger_version=version
            )
            cleared = (
                verdict is not None
                and verdict.outcome in ("awaiting_approval", "promoted")
                and not rolled_back
            )
            shadow_gates = _shadow_gates(settings, version) if not force else []
            failed_shadow = [g.message for g in shadow_gates if not g.passed]
            canary_gates = _canary_gates(audit, version)
            canary_halted = any(not g.passed for g in canary_gates)
            if cleared and not force and canary_halted:
                raise NotClearedError(
                    f"version {version} is not cleared for promotion: "
                    f"{canary_gates[0].message} (--force, or force=true over the API)"
                )
            if cleared and failed_shadow:
                raise NotClearedError(
                    f"version {version} is not cleared for promotion: its shadow decisions "
                    f"do not pass the shadow gates: {'; '.join(failed_shadow)} "
                    "(--force, or force=true over the API)"
                )
            if not cleared and not force:
                if rolled_back:
                    why = f"it was rolled back: {rolled_back[0].message}"
                elif verdict is None:
                    why = "it was not produced by a retrain"
                else:
                    why = f"its retrain ended '{verdict.outcome}': {verdict.message}"
                raise NotClearedError(
                    f"version {version} is not cleared for promotion: {why} "
                    "(--force, or force=true over the API)"
                )
            previous, current_version = move(version, False)
        except Exception as error:
            _audit_refusal(
                settings,
                audit,
                error,
                action="promote",
                started=started,
                champion_version=champion_version,
                challenger_version=version,
                message="promotion of the challenger"
                if version is None
                else f"promotion of version {version}",
                via=via,
                reason=reason,
            )
            raise
        return _audit_change(
            settings,
            audit,
            AuditEntry(
                started_at=started,
                action="promote",
                outcome="promoted",
                champion_version=previous,
                challenger_version=current_version,
                reasons=["forced"] if force and (not cleared or canary_halted) else [],
                gates=[
                    *(verdict.gates if verdict is not None else []),
                    *shadow_gates,
                    *canary_gates,
                ],
                message=f"version {current_version} promoted to champion (was {previous})"
                + (f"; reason: {reason}" if reason else ""),
                details={"via": via, "reason": reason},
            ),
        )


def rollback(
    settings: Settings,
    *,
    move: MoveChampion | None = None,
    via: str = "cli",
    reason: str | None = None,
) -> AuditEntry:
    """Return the champion alias to the previous champion (audited, refusals included, with
    the ``reason`` the person gave)."""
    started = datetime.now(UTC)
    move = move or _registry_move(settings)
    with exclusive(settings, CHAMPION_LOCK), AuditLog.from_settings(settings) as audit:
        champion = get_version(settings, CHAMPION)
        champion_version = str(champion.version) if champion is not None else None
        previous = previous_champion(settings)
        try:
            if previous is None:
                raise CreditOpsError("no previous champion to roll back to")
            if previous == champion_version:
                # The alias was moved outside creditops (e.g. in the MLflow UI) to the version
                # the history would return to: there is nothing to roll back from.
                raise CreditOpsError(
                    f"version {previous}, the previous champion, is already the champion"
                )
            before, now_champion = move(previous, True)
        except Exception as error:
            _audit_refusal(
                settings,
                audit,
                error,
                action="rollback",
                started=started,
                champion_version=previous,
                challenger_version=champion_version,
                message=f"rollback from version {champion_version}",
                via=via,
                reason=reason,
            )
            raise
        return _audit_change(
            settings,
            audit,
            AuditEntry(
                started_at=started,
                action="rollback",
                outcome="rolled_back",
                champion_version=now_champion,
                challenger_version=before,
                message=f"champion rolled back from version {before} to {now_champion}"
                + (f"; reason: {reason}" if reason else ""),
                details={"via": via, "reason": reason},
            ),
        )
