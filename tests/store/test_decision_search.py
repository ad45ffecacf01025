"""The audit search and the dashboard's aggregates over a real decision log (SQLite and
PostgreSQL): filters, newest-first keyset pages, outcome known or not, and bad input."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from creditops.store.decision_search import DecisionFilter, search_decisions
from creditops.store.decision_stats import hourly_decisions, log_totals
from creditops.store.predlog import PredictionLog, PredictionRecord

NOW = datetime(2026, 11, 30, 12, 30, tzinfo=UTC)


@pytest.fixture
def log(db_url: str) -> Iterator[PredictionLog]:
    with PredictionLog(db_url) as opened:
        decisions = ("approve", "refer", "decline")
        records = [
            PredictionRecord(
                created_at=NOW - timedelta(hours=i),
                model_name="credit-default",
                model_version="1" if i % 4 else "2",
                features={"Income": 100 + i},
                probability=0.1 + 0.01 * (i % 50),
                points=600 - i,
                grade="B",
                decision=decisions[i % 3],
                latency_ms=1.0,
            )
            for i in range(130)
        ]
        opened.write_many(records)
        # Outcomes only for decisions older than 100 hours, as lending delivers them: late.
        opened.record_outcomes(
            [(r.prediction_id, i % 2) for i, r in enumerate(records) if i >= 100]
        )
        opened.records = records  # type: ignore[attr-defined]
        yield opened


def _all_pages(log: PredictionLog, spec: DecisionFilter, limit: int) -> list[str]:
    ids, after = [], None
    while True:
        page = search_decisions(log, spec, after=after, limit=limit)
        ids += [row.prediction_id for row in page.rows]
        if page.next_cursor is None:
            return ids
        after = page.next_cursor


def test_pages_walk_the_whole_log_newest_first_without_gaps(log: PredictionLog) -> None:
    expected = [str(r.prediction_id) for r in log.records]  # type: ignore[attr-defined]
    assert _all_pages(log, DecisionFilter(), limit=7) == expected


def test_filters_combine(log: PredictionLog) -> None:
    records = log.records  # type: ignore[attr-defined]
    spec = DecisionFilter(decision="decline", model_version="2")
    expected = [
        str(r.prediction_id) for r in records if r.decision == "decline" and r.model_version == "2"
    ]
    assert _all_pages(log, spec, limit=5) == expected
    known = _all_pages(log, DecisionFilter(outcome="known"), limit=8)
    assert known == [str(r.prediction_id) for r in records[100:]]
    unknown = _all_pages(log, DecisionFilter(outcome="unknown"), limit=50)
    assert unknown == [str(r.prediction_id) for r in records[:100]]
    one = search_decisions(log, DecisionFilter(prediction_id=records[42].prediction_id))
    assert [row.prediction_id for row in one.rows] == [str(records[42].prediction_id)]
    day = DecisionFilter(since=(NOW - timedelta(days=1)).date(), until=NOW.date())
    rows = _all_pages(log, day, limit=50)
    assert rows == [str(r.prediction_id) for r in records if r.created_at.date() >= day.since]


def test_bad_filters_and_forged_cursors_are_named(log: PredictionLog) -> None:
    with pytest.raises(ValidationError, match="until"):
        DecisionFilter(since="2026-05-02", until="2026-05-01")
    with pytest.raises(ValidationError, match="model_version"):
        DecisionFilter(model_version="1; drop table predictions")
    with pytest.raises(ValidationError, match="decision"):
        DecisionFilter(decision="maybe")
    with pytest.raises(ValueError, match="after"):
        search_decisions(log, DecisionFilter(), after="2026-01-01|not-an-id")
    assert log.count() == 130  # nothing touched


def test_hourly_aggregates_and_totals(log: PredictionLog) -> None:
    hours = hourly_decisions(log, hours=24, now=NOW)
    assert len(hours) == 24
    assert sum(h.total for h in hours) == 24  # one decision per hour, the last 24 hours
    assert all(h.mean_probability is not None for h in hours)
    totals = log_totals(log)
    assert (totals.decisions, totals.with_outcome) == (130, 30)
    assert totals.last_at == NOW
