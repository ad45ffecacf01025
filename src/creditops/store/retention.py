"""Retention: removing decisions older than the period the law asks to keep them, without
leaving the log unverifiable (``creditops predictions purge --older-than 25m``).

Reg B keeps applications, the information used and the reasons for 25 months (12 CFR
1002.12(b)); the EU AI Act asks at least 6 months for the automatic logs of a high-risk system
(Art. 19, 26), so a shorter period is refused unless forced.

A purge cuts each chain at one place: the longest prefix whose rows are all older than the
cut-off (a row logged a moment later by a racing thread keeps every row after it), with their
outcomes. The last deleted row of each chain becomes its anchor, signed in a checkpoint written
in the same transaction, from which ``creditops audit verify`` starts that chain. The log must
verify before anything is deleted: a purge never destroys the evidence of a break.
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from sqlalchemy.engine import Connection

from creditops.exceptions import ChainError
from creditops.store.chain_audit import signed_state, verify_log
from creditops.store.checkpoints import AuditKey, chain_heads, write_checkpoint
from creditops.store.schema import (
    decision_chains_table,
    outcomes,
    predictions,
    shadow_decisions_table,
)

if TYPE_CHECKING:
    from creditops.store.predlog import PredictionLog

__all__ = ["MIN_RETENTION_MONTHS", "PurgeResult", "cutoff", "purge_decisions"]

#: The shortest retention allowed without force (EU AI Act, Art. 19 and 26: at least 6 months).
MIN_RETENTION_MONTHS = 6
_PERIOD = re.compile(r"(\d+)([dwmy])")


class PurgeResult(BaseModel):
    """What a purge removed, and the checkpoint that anchors the chains at the cut."""

    model_config = ConfigDict(frozen=True)

    cutoff: datetime
    decisions: int
    outcomes: int
    chains: int  # chains cut
    checkpoint: int | None  # its number; None when nothing was old enough

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def _months_before(moment: datetime, months: int) -> datetime:
    """The same day and time ``months`` calendar months earlier (the month's last day when it
    is shorter)."""
    index = moment.year * 12 + moment.month - 1 - months
    year, month = divmod(index, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


def cutoff(period: str, now: datetime, *, force: bool = False) -> datetime:
    """The moment before which decisions go, for a period such as ``25m`` (months), ``2y``,
    ``90d`` or ``12w``; refuses (ValueError) a period under 6 months unless ``force``."""
    match = _PERIOD.fullmatch(period.strip().lower())
    if match is None or int(match.group(1)) == 0:
        raise ValueError(f"{period!r}: give a period such as 25m (months), 2y, 90d or 12w")
    count, unit = int(match.group(1)), match.group(2)
    if unit in ("m", "y"):
        moment = _months_before(now, count * (12 if unit == "y" else 1))
    else:
        moment = now - timedelta(days=count * (7 if unit == "w" else 1))
    if moment > _months_before(now, MIN_RETENTION_MONTHS) and not force:
        raise ValueError(
            f"{period} is shorter than {MIN_RETENTION_MONTHS} months: the EU AI Act asks high-"
            "risk systems to keep their logs at least that long (Reg B: 25 months); pass "
            "--force to purge anyway"
        )
    return moment


def purge_decisions(
    log: PredictionLog,
    key: AuditKey | None,
    older_than: str,
    *,
    now: datetime | None = None,
    force: bool = False,
) -> PurgeResult:
    """Delete the decisions (and their outcomes) made before ``older_than`` ago, a prefix per
    chain, and sign the cut; raises :class:`ChainError` without the audit key or when the log
    does not verify, ValueError for a period refused."""
    moment = cutoff(older_than, now or datetime.now(UTC), force=force)
    if key is None:
        raise ChainError(
            "a purge needs the audit key (CREDITOPS_AUDIT_KEY or CREDITOPS_AUDIT_KEY_FILE): "
            "it signs the checkpoint at the cut from which each chain is verified"
        )
    report = verify_log(log, key)
    if not report.ok:
        first = report.breaks[0]
        raise ChainError(
            f"the decision log does not verify ({len(report.breaks)} break(s); first: "
            f"{first.kind} in chain {first.chain} at seq {first.seq}: {first.detail}); "
            "nothing purged, so the evidence stays"
        )

    def work(conn: Connection) -> PurgeResult:
        _, anchors = signed_state(conn, key)
        anchors = dict(anchors)
        decisions = removed_outcomes = cut = 0
        for chain in conn.execute(sa.select(decision_chains_table.c.id)).scalars():
            done = anchors.get(chain, (0, ""))[0]
            last = _last_before(conn, chain, moment)
            if last <= done:
                continue
            row_hash = conn.execute(
                sa.select(predictions.c.row_hash).where(
                    predictions.c.chain == chain, predictions.c.seq == last
                )
            ).scalar_one()
            prefix = sa.select(predictions.c.id).where(
                predictions.c.chain == chain, predictions.c.seq <= last
            )
            removed_outcomes += conn.execute(
                outcomes.delete().where(outcomes.c.prediction_id.in_(prefix))
            ).rowcount
            # A challenger's shadow decisions on those applications go with them.
            conn.execute(
                shadow_decisions_table.delete().where(
                    shadow_decisions_table.c.prediction_id.in_(prefix)
                )
            )
            decisions += conn.execute(
                predictions.delete().where(predictions.c.chain == chain, predictions.c.seq <= last)
            ).rowcount
            anchors[chain] = (last, row_hash)
            cut += 1
        if not cut:
            return PurgeResult(cutoff=moment, decisions=0, outcomes=0, chains=0, checkpoint=None)
        checkpoint = write_checkpoint(
            conn, key, "purge", chain_heads(conn), anchors=anchors, writer="purge"
        )
        return PurgeResult(
            cutoff=moment,
            decisions=decisions,
            outcomes=removed_outcomes,
            chains=cut,
            checkpoint=checkpoint.seq,
        )

    return log.transact(work)


def _last_before(conn: Connection, chain: str, moment: datetime) -> int:
    """The end of ``chain``'s longest prefix made entirely before ``moment`` (0: none)."""
    c = predictions.c
    first_kept = conn.execute(
        sa.select(sa.func.min(c.seq)).where(c.chain == chain, c.created_at >= moment)
    ).scalar_one()
    if first_kept is not None:
        return int(first_kept) - 1
    last = conn.execute(sa.select(sa.func.max(c.seq)).where(c.chain == chain)).scalar_one()
    return 0 if last is None else int(last)
