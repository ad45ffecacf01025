"""The challenger as a canary: a configured share of live single decisions made, answered and
logged by the version holding the ``challenger`` alias, stopped automatically when it departs
from the champion.

Where the canary stands is kept in the audit (action ``canary``): ``started`` when a worker
first routes to a challenger version, ``halted`` when a worker's watch (or a person) stops it,
``resumed`` when a person lets it decide again. Every worker reads the newest entry for its
challenger at each check of the aliases, so a halt made by one worker, the API or the
dashboard reaches all of them, and survives a restart; the worker that halts stops routing at
once, before its entry is even written.

Each worker watches its own traffic (:class:`CanaryWatch`): the last ``window`` decisions of
each arm, compared once both have ``min_decisions``. A canary decision that fails to score is
answered by the champion (the client never sees the canary's failure) and counted against the
canary.
"""

from __future__ import annotations

import logging
import math
import os
import random
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Literal

import numpy as np
from pydantic import BaseModel

from creditops.config import Settings
from creditops.exceptions import CanaryStateError, CreditOpsError
from creditops.store.audit import AuditEntry, AuditLog, Gate

__all__ = [
    "Arm",
    "CanaryLimits",
    "CanaryStatus",
    "CanaryWatch",
    "canary_entries",
    "canary_state",
    "compare_arms",
    "record_canary",
    "switch_canary",
]

logger = logging.getLogger(__name__)

Arm = Literal["champion", "canary"]
#: Below this difference of 95th percentiles (ms) decision times are noise, whatever the ratio.
LATENCY_FLOOR_MS = 5.0
#: How often (in canary decisions) a worker compares the two arms once both have enough.
CHECK_EVERY = 25
#: Standard errors a rate's gap must exceed its limit by: a canary truly at its limit is
#: halted by one check with a chance of about 1 in 700, one truly level almost never.
NOISE_Z = 3.0


@dataclass(frozen=True)
class CanaryLimits:
    """How far the canary may depart from the champion before it is stopped."""

    min_decisions: int = 200
    max_error_rate: float = 0.01  # canary's failure rate minus the champion's
    max_latency_ratio: float = 2.0  # canary's p95 / champion's p95
    max_approval_gap: float = 0.10  # |canary's approval rate - champion's|
    window: int = 2000  # the decisions of each arm compared (the newest)

    @classmethod
    def from_settings(cls, settings: Settings) -> CanaryLimits:
        return cls(
            min_decisions=settings.canary_min_decisions,
            max_error_rate=settings.canary_max_error_rate,
            max_latency_ratio=settings.canary_max_latency_ratio,
            max_approval_gap=settings.canary_max_approval_gap,
        )


@dataclass
class _ArmStats:
    """The newest decisions of one arm: (failed, approved, decision time in ms)."""

    window: int
    seen: deque[tuple[bool, bool, float]] = field(init=False)

    def __post_init__(self) -> None:
        self.seen = deque(maxlen=self.window)

    def summary(self) -> dict[str, float]:
        n = len(self.seen)
        done = [(approved, ms) for failed, approved, ms in self.seen if not failed]
        return {
            "decisions": float(n),
            "decided": float(len(done)),
            "error_rate": (n - len(done)) / n if n else 0.0,
            "approval_rate": sum(a for a, _ in done) / len(done) if done else 0.0,
            "p95_ms": float(np.percentile([ms for _, ms in done], 95)) if done else 0.0,
        }


def _beyond_noise(gap: float, rate_a: float, n_a: float, rate_b: float, n_b: float) -> float:
    """How far the gap between two rates lies beyond sampling noise: ``|gap|`` less
    :data:`NOISE_Z` standard errors of the difference (negative: within the noise)."""
    if min(n_a, n_b) <= 0:
        return -1.0
    error = math.sqrt(rate_a * (1 - rate_a) / n_a + rate_b * (1 - rate_b) / n_b)
    return abs(gap) - NOISE_Z * error


def compare_arms(
    champion: dict[str, float], canary: dict[str, float], limits: CanaryLimits
) -> list[Gate]:
    """The three checks of a canary against the champion on the same worker's traffic.

    A rate check fails only when the gap exceeds its limit by more than :data:`NOISE_Z`
    standard errors: on a few hundred decisions each, two models that approve alike differ by
    several points by chance, and a check repeated every few decisions would otherwise halt a
    sound canary sooner or later. Latency and approval are compared on the decisions both arms
    made (one that made none fails on its error rate alone)."""
    error_gap = canary["error_rate"] - champion["error_rate"]
    error_beyond = _beyond_noise(
        error_gap,
        canary["error_rate"],
        canary["decisions"],
        champion["error_rate"],
        champion["decisions"],
    )
    comparable = min(canary["decided"], champion["decided"]) > 0
    ratio = canary["p95_ms"] / champion["p95_ms"] if comparable and champion["p95_ms"] > 0 else 1.0
    slower = canary["p95_ms"] - champion["p95_ms"] if comparable else 0.0
    approval_gap = canary["approval_rate"] - champion["approval_rate"] if comparable else 0.0
    approval_beyond = _beyond_noise(
        approval_gap,
        canary["approval_rate"],
        canary["decided"],
        champion["approval_rate"],
        champion["decided"],
    )
    noise = f"beyond {NOISE_Z:g} standard errors"
    return [
        Gate(
            name="canary_error_rate",
            passed=error_gap <= 0 or error_beyond <= limits.max_error_rate,
            value=error_gap,
            threshold=limits.max_error_rate,
            message=f"canary fails {canary['error_rate']:.2%} of {canary['decisions']:.0f} "
            f"decisions, champion {champion['error_rate']:.2%} of "
            f"{champion['decisions']:.0f} (at most {limits.max_error_rate:.2%} more, {noise})",
        ),
        Gate(
            name="canary_latency",
            passed=ratio <= limits.max_latency_ratio or slower <= LATENCY_FLOOR_MS,
            value=ratio,
            threshold=limits.max_latency_ratio,
            message=f"canary p95 {canary['p95_ms']:.1f} ms, champion {champion['p95_ms']:.1f} "
            f"ms (at most {limits.max_latency_ratio:g} times, unless within "
            f"{LATENCY_FLOOR_MS:g} ms)",
        ),
        Gate(
            name="canary_approval_rate",
            passed=approval_beyond <= limits.max_approval_gap,
            value=approval_gap,
            threshold=limits.max_approval_gap,
            message=f"canary approves {canary['approval_rate']:.1%} of "
            f"{canary['decided']:.0f}, champion {champion['approval_rate']:.1%} of "
            f"{champion['decided']:.0f} (at most {limits.max_approval_gap:.0%} apart, {noise})",
        ),
    ]


def canary_entries(audit: AuditLog, version: str, limit: int = 20) -> list[AuditEntry]:
    """The canary's audit entries for a challenger version, newest first."""
    return audit.recent(limit, action="canary", challenger_version=version)


def record_canary(
    audit: AuditLog,
    outcome: Literal["started", "halted", "resumed"],
    *,
    challenger: str,
    champion: str | None,
    message: str,
    gates: list[Gate] | None = None,
    details: dict | None = None,
    entry_id: str | None = None,
) -> AuditEntry:
    """Append one canary switch to the audit (the table only: it is read on every worker's
    check of the aliases, and MLflow may be the thing that is down)."""
    now = datetime.now(UTC)
    entry = AuditEntry(
        id=entry_id or str(uuid.uuid4()),
        started_at=now,
        finished_at=now,
        action="canary",
        outcome=outcome,
        champion_version=champion,
        challenger_version=challenger,
        gates=gates or [],
        message=message,
        details=details or {},
    )
    return audit.record(entry)


class CanaryWatch:
    """One worker's canary: whether to route a decision to the challenger (:meth:`draw`), what
    each arm did (:meth:`observe`), and the halt when they depart (:meth:`halt`).

    ``count(result, n)`` is told what became of canary decisions: ``decided`` or ``failed``."""

    def __init__(
        self,
        settings: Settings,
        audit: AuditLog,
        *,
        count: Callable[[str, int], None] | None = None,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        self.share = settings.canary_share
        self.limits = CanaryLimits.from_settings(settings)
        self.audit = audit
        self._count = count
        self._on_change = on_change
        self._random = random.Random()  # sampling traffic, not a secret
        self._lock = threading.Lock()
        self._pair: tuple[str, str] | None = None  # (champion, challenger) watched now
        self._active = False
        self._halted_here: datetime | None = None  # this worker stopped it, at that moment
        self._unwritten: AuditEntry | None = None  # a halt whose entry could not be written
        self._last_entry: str | None = None  # the newest audit entry acted on
        self._writer: threading.Thread | None = None  # the last halt's audit write
        self._arms: dict[Arm, _ArmStats] = {}
        self._canary_decisions = 0

    @property
    def active(self) -> bool:
        return self._active

    @property
    def challenger_version(self) -> str | None:
        return self._pair[1] if self._pair is not None else None

    def refresh(self, champion: str | None, challenger: str | None) -> bool:
        """Follow the audit for this (champion, challenger) pair: start the canary (writing
        ``started``) the first time a challenger is seen, stop or resume it as its newest entry
        says. Returns whether it routes now. Raises what the audit raises (the caller retries
        at its next check); a pair that changed stops routing before the audit is read, so an
        audit that cannot be read never lets a new challenger decide."""
        pair = (champion, challenger) if champion and challenger else None
        with self._lock:
            if pair != self._pair:  # another version on either side: its figures start afresh
                self._pair, self._halted_here, self._last_entry = pair, None, None
                self._reset_figures()
                was, self._active = self._active, False
            else:
                was = self._active
            unwritten, self._unwritten = self._unwritten, None
        if was and not self._active:
            self._changed(False)
        if pair is None:
            return False
        if unwritten is not None:
            self._write_halt(unwritten)
        newest = self._newest_or_start(pair)
        with self._lock:
            if pair != self._pair:
                return False  # another refresh moved on meanwhile
            routes = newest.outcome in ("started", "resumed")
            halted_here = self._halted_here
            if routes and halted_here is not None and newest.finished_at <= halted_here:
                routes = False  # this worker's own halt, not yet the audit's newest entry
            elif routes:
                self._halted_here = None
            if routes and (not self._active or newest.id != self._last_entry):
                self._reset_figures()  # started or resumed: judged on what it does from now
            self._last_entry = newest.id
            was, self._active = self._active, routes
        if was != routes:
            self._changed(routes)
        return routes

    def _newest_or_start(self, pair: tuple[str, str]) -> AuditEntry:
        entries = canary_entries(self.audit, pair[1], limit=1)
        if entries:
            return entries[0]
        try:
            record_canary(
                self.audit,
                "started",
                challenger=pair[1],
                champion=pair[0],
                message=f"version {pair[1]} decides {self.share:.0%} of live single "
                f"decisions as a canary beside champion {pair[0]}",
                details={"share": self.share, "limits": asdict(self.limits)},
                # One start per version, whichever worker writes it first.
                entry_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"creditops:canary:{pair[1]}")),
            )
        except CreditOpsError:  # another worker wrote it meanwhile: read it back
            if not canary_entries(self.audit, pair[1], limit=1):
                raise
        return canary_entries(self.audit, pair[1], limit=1)[0]

    def _reset_figures(self) -> None:
        """Called with the lock held."""
        self._arms = {arm: _ArmStats(self.limits.window) for arm in ("champion", "canary")}
        self._canary_decisions = 0

    def draw(self, version: str) -> bool:
        """Whether this decision goes to the canary, ``version`` being the challenger the
        service would use: never to one this watch is not watching."""
        pair = self._pair
        return (
            self._active
            and pair is not None
            and pair[1] == version
            and self._random.random() < self.share
        )

    def observe(self, arm: Arm, *, failed: bool, approved: bool = False, ms: float = 0.0) -> None:
        """Record one decision of ``arm``; every :data:`CHECK_EVERY` canary decisions, compare
        the arms and halt the canary when one check fails."""
        if arm == "canary":
            self._tell("failed" if failed else "decided", 1)
        with self._lock:
            if not self._arms or self._pair is None:
                return
            self._arms[arm].seen.append((failed, approved, ms))
            if arm != "canary" or not self._active:
                return
            self._canary_decisions += 1
            if self._canary_decisions % CHECK_EVERY:
                return
            champion, canary = (self._arms[a].summary() for a in ("champion", "canary"))
            if min(champion["decisions"], canary["decisions"]) < self.limits.min_decisions:
                return
            pair = self._pair
        gates = compare_arms(champion, canary, self.limits)
        failing = [g for g in gates if not g.passed]
        if failing:
            self.halt(
                pair,
                "; ".join(g.message for g in failing),
                gates=gates,
                details={"champion": champion, "canary": canary, "pair": list(pair)},
            )

    def halt(self, pair: tuple[str, str], why: str, *, gates: list[Gate], details: dict) -> None:
        """Stop routing to ``pair``'s canary in this worker now (if it is still the one
        watched and routing), and write the halt to the audit off the request's thread (kept
        for the next :meth:`refresh` if the audit cannot be written)."""
        with self._lock:
            if self._pair != pair or not self._active:
                return
            now = datetime.now(UTC)
            self._halted_here, self._active = now, False
        self._changed(False)
        entry = AuditEntry(
            started_at=now,
            finished_at=now,
            action="canary",
            outcome="halted",
            champion_version=pair[0],
            challenger_version=pair[1],
            gates=gates,
            message=f"canary version {pair[1]} halted by worker {os.getpid()}: {why}",
            details={**details, "via": "watch", "worker": os.getpid()},
        )
        logger.error("%s", entry.message)
        self._writer = threading.Thread(
            target=self._write_halt, args=(entry,), name="canary-halt", daemon=True
        )
        self._writer.start()

    def wait_for_writes(self, timeout_s: float = 30.0) -> None:
        """Until the last halt's audit entry is written (or kept for the next refresh)."""
        writer = self._writer
        if writer is not None:
            writer.join(timeout=timeout_s)

    def _write_halt(self, entry: AuditEntry) -> None:
        try:
            self.audit.record(entry)
        except CreditOpsError as error:
            logger.error("canary halt not written to the audit yet: %s", error)
            with self._lock:
                if self._unwritten is None:
                    self._unwritten = entry

    def _changed(self, active: bool) -> None:
        logger.warning(
            "canary %s: version %s %s",
            "on" if active else "off",
            self.challenger_version,
            f"decides {self.share:.0%} of single decisions" if active else "decides nothing",
        )
        if self._on_change is not None:
            self._on_change(active)

    def _tell(self, result: str, n: int) -> None:
        if self._count is not None:
            self._count(result, n)


class CanaryStatus(BaseModel):
    """Where the canary stands: its configured share, the two versions, its state (``off``,
    ``no challenger``, ``waiting``, ``started``, ``halted``, ``resumed``), whether the worker
    that answered routes to it now, and its audit entries, newest first."""

    share: float
    state: str
    champion_version: str | None
    challenger_version: str | None
    routing_here: bool
    entries: list[AuditEntry]


def canary_state(audit: AuditLog, challenger: str | None) -> str:
    """``no challenger``, ``waiting`` (no worker has started it yet), or the newest entry's
    outcome: ``started``, ``halted``, ``resumed``."""
    if challenger is None:
        return "no challenger"
    entries = canary_entries(audit, challenger, limit=1)
    return entries[0].outcome if entries else "waiting"


def switch_canary(
    audit: AuditLog,
    outcome: Literal["halted", "resumed"],
    *,
    challenger: str,
    champion: str | None,
    by: str,
    reason: str | None = None,
) -> AuditEntry:
    """A person halts the canary of ``challenger``, or lets a halted one decide again; every
    worker follows at its next check of the aliases. Raises :class:`CanaryStateError` when
    the canary is not in a state to switch that way."""
    entries = canary_entries(audit, challenger, limit=1)
    now = entries[0].outcome if entries else None
    if outcome == "halted" and now not in ("started", "resumed"):
        raise CanaryStateError(
            f"the canary of version {challenger} is not deciding "
            f"({now or 'never started'}): nothing to halt"
        )
    if outcome == "resumed" and now != "halted":
        raise CanaryStateError(
            f"the canary of version {challenger} is not halted ({now or 'never started'}): "
            "nothing to resume"
        )
    verb = "halted" if outcome == "halted" else "resumed"
    return record_canary(
        audit,
        outcome,
        challenger=challenger,
        champion=champion,
        message=f"canary version {challenger} {verb} by {by}" + (f": {reason}" if reason else ""),
        details={"via": by, **({"reason": reason} if reason else {})},
    )
