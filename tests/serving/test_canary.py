"""The challenger as a canary: a real server lets the challenger make and answer a share of live
single decisions, logs them under its version, halts it by itself when it departs from the
champion (audited, with the figures), keeps it halted across workers and for promotion, and an
admin halts and resumes it over the API.

The watch itself is exercised beside a real audit table: two watches on one database stand
for two workers."""

from __future__ import annotations

import sqlite3
import statistics
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from creditops.cli import app
from creditops.config import Settings, reset_settings
from creditops.exceptions import AuditLogError, CanaryStateError, NotClearedError
from creditops.retraining.pipeline import promote_challenger
from creditops.serving.canary import (
    CHECK_EVERY,
    LATENCY_FLOOR_MS,
    CanaryLimits,
    CanaryWatch,
    canary_entries,
    compare_arms,
    switch_canary,
)
from creditops.serving.service import DecisionService
from creditops.store.audit import AuditEntry, AuditLog
from creditops.store.predlog import PredictionLog
from helpers import applications, cleared_by_a_retrain, copy_with_challenger, serving

ADMIN_KEY = "canary-admin-key-0123456789"
READER_KEY = "canary-reader-key-0123456789"


# ------------------------------------------------------------------------ the comparison


def _arm(n: int = 500, error_rate: float = 0.0, approval: float = 0.6, p95: float = 3.0) -> dict:
    decided = round(n * (1 - error_rate))
    return {
        "decisions": n,
        "decided": decided,
        "error_rate": error_rate,
        "approval_rate": approval,
        "p95_ms": p95,
    }


def test_a_canary_close_to_the_champion_passes_every_check() -> None:
    gates = compare_arms(_arm(), _arm(approval=0.55, p95=4.0), CanaryLimits())
    assert [g.name for g in gates] == [
        "canary_error_rate",
        "canary_latency",
        "canary_approval_rate",
    ]
    assert all(g.passed for g in gates), gates


@pytest.mark.parametrize(
    ("canary", "failing"),
    [
        (_arm(error_rate=0.05), "canary_error_rate"),
        (_arm(approval=0.35), "canary_approval_rate"),
        (_arm(approval=0.85), "canary_approval_rate"),
        (_arm(p95=3.0 * 2 + LATENCY_FLOOR_MS), "canary_latency"),
    ],
)
def test_each_departure_fails_its_own_check(canary: dict, failing: str) -> None:
    gates = compare_arms(_arm(), canary, CanaryLimits())
    assert [g.name for g in gates if not g.passed] == [failing]


def test_a_gap_within_sampling_noise_does_not_halt_and_the_same_gap_on_more_does() -> None:
    """18 points apart on 200 decisions each is within three standard errors of the 10-point
    limit; on 2,000 each it is not."""
    few = compare_arms(_arm(200), _arm(200, approval=0.42), CanaryLimits())
    assert all(g.passed for g in few)
    many = compare_arms(_arm(2000), _arm(2000, approval=0.42), CanaryLimits())
    assert [g.name for g in many if not g.passed] == ["canary_approval_rate"]
    assert "of 2000" in many[2].message


def test_a_canary_that_decides_nothing_fails_on_its_errors_alone() -> None:
    gates = compare_arms(_arm(), _arm(error_rate=1.0), CanaryLimits())
    assert [g.name for g in gates if not g.passed] == ["canary_error_rate"]


def test_a_slower_canary_within_the_noise_floor_passes() -> None:
    """Four times slower, but 3 ms: sub-millisecond timings are too noisy to stop on."""
    gates = compare_arms(_arm(p95=1.0), _arm(p95=4.0), CanaryLimits())
    assert all(g.passed for g in gates)


# ------------------------------------------------------------- the watch, on a real audit


@pytest.fixture
def audit(tmp_path: Path) -> Iterator[AuditLog]:
    with AuditLog(f"sqlite:///{tmp_path / 'audit.db'}") as log:
        yield log


def _watch(audit: AuditLog, share: float = 0.3, min_decisions: int = 40) -> CanaryWatch:
    settings = Settings(canary_share=share, canary_min_decisions=min_decisions)
    return CanaryWatch(settings, audit)


def _decide(watch: CanaryWatch, n: int, *, canary_approves: float, seed: int = 0) -> Counter:
    """``n`` decisions routed as the watch draws them; the champion approves 60%."""
    import random

    rng = random.Random(seed)
    arms: Counter = Counter()
    for _ in range(n):
        arm = "canary" if watch.draw("2") else "champion"
        rate = canary_approves if arm == "canary" else 0.6
        watch.observe(arm, failed=False, approved=rng.random() < rate, ms=2.0)
        arms[arm] += 1
    return arms


def test_two_workers_start_one_canary_and_both_route_their_share(audit: AuditLog) -> None:
    first, second = _watch(audit), _watch(audit)
    assert first.refresh("1", "2")
    assert second.refresh("1", "2")
    entries = canary_entries(audit, "2")
    assert [e.outcome for e in entries] == ["started"]  # one start, whichever wrote first
    assert entries[0].champion_version == "1"
    assert entries[0].details["share"] == 0.3
    drawn = sum(first.draw("2") for _ in range(20_000)) / 20_000
    assert 0.28 < drawn < 0.32


def test_a_canary_that_agrees_keeps_deciding(audit: AuditLog) -> None:
    watch = _watch(audit)
    watch.refresh("1", "2")
    arms = _decide(watch, 3000, canary_approves=0.6)
    assert arms["canary"] > 600
    assert watch.active
    assert [e.outcome for e in canary_entries(audit, "2")] == ["started"]


def test_a_departing_canary_is_halted_by_one_worker_and_then_by_all(audit: AuditLog) -> None:
    halting, other = _watch(audit), _watch(audit)
    halting.refresh("1", "2")
    other.refresh("1", "2")
    arms = _decide(halting, 3000, canary_approves=0.1)
    assert not halting.active
    halting.wait_for_writes()  # the halt is written off the request's thread
    # Halted at its first check with both arms at 40 decisions: it stopped routing at once.
    assert arms["canary"] <= 2 * CHECK_EVERY, arms
    newest = canary_entries(audit, "2")[0]
    assert newest.outcome == "halted"
    failed = [g for g in newest.gates if not g.passed]
    assert [g.name for g in failed] == ["canary_approval_rate"]
    assert failed[0].value < -0.3
    assert newest.details["via"] == "watch"
    assert newest.details["canary"]["approval_rate"] < 0.3
    assert "halted by worker" in newest.message
    # The other worker reads the halt at its next check of the aliases.
    assert other.active
    assert not other.refresh("1", "2")
    assert not other.draw("2")


def test_a_person_resumes_and_halts_it_and_each_switch_is_audited(audit: AuditLog) -> None:
    watch = _watch(audit)
    watch.refresh("1", "2")
    with pytest.raises(CanaryStateError, match="not halted"):
        switch_canary(audit, "resumed", challenger="2", champion="1", by="api: alice")
    switch_canary(audit, "halted", challenger="2", champion="1", by="api: alice", reason="check")
    assert not watch.refresh("1", "2")
    with pytest.raises(CanaryStateError, match="nothing to halt"):
        switch_canary(audit, "halted", challenger="2", champion="1", by="api: alice")
    switch_canary(audit, "resumed", challenger="2", champion="1", by="dashboard: bob")
    assert watch.refresh("1", "2")
    outcomes = [(e.outcome, e.details.get("via")) for e in canary_entries(audit, "2")]
    assert outcomes == [
        ("resumed", "dashboard: bob"),
        ("halted", "api: alice"),
        ("started", None),
    ]


def test_a_resumed_canary_is_judged_on_what_it_does_from_then(audit: AuditLog) -> None:
    watch = _watch(audit)
    watch.refresh("1", "2")
    _decide(watch, 3000, canary_approves=0.1)
    assert not watch.active
    watch.wait_for_writes()
    switch_canary(audit, "resumed", challenger="2", champion="1", by="api: alice")
    watch.refresh("1", "2")
    arms = _decide(watch, 3000, canary_approves=0.6, seed=1)  # it behaves now
    assert watch.active
    assert arms["canary"] > 600


def test_a_new_challenger_starts_a_canary_of_its_own(audit: AuditLog) -> None:
    watch = _watch(audit)
    watch.refresh("1", "2")
    _decide(watch, 3000, canary_approves=0.1)
    assert not watch.active
    watch.wait_for_writes()
    assert watch.refresh("1", "3")  # version 3 is not held back by version 2's halt
    assert [e.outcome for e in canary_entries(audit, "3")] == ["started"]
    assert not watch.refresh("1", None)  # no challenger: no canary


class _AuditDown(AuditLog):
    """The audit table as it reads while its database is down."""

    def recent(self, *args: object, **kwargs: object) -> list[AuditEntry]:
        raise AuditLogError("retraining audit: connection refused")


def test_a_new_challenger_never_decides_before_its_canary_is_read(tmp_path: Path) -> None:
    """The alias moves to version 3 while the audit cannot be read: routing stops at once,
    and no decision meant for the canary goes to a version nobody started."""
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    with AuditLog(url) as audit:
        watch = _watch(audit)
        assert watch.refresh("1", "2")
        assert not watch.draw("3")  # never a version it does not watch
        watch.audit = _AuditDown(url)
        with pytest.raises(AuditLogError):
            watch.refresh("1", "3")
        assert not watch.active
        assert not any(watch.draw(v) for v in ("2", "3") for _ in range(1000))
        watch.audit.close()


def test_a_resume_the_worker_did_not_see_halted_still_judges_afresh(audit: AuditLog) -> None:
    """A person halts and resumes between two of this worker's checks: it keeps routing,
    and the figures it had gathered before (heading for a halt) are dropped."""
    watch = _watch(audit, share=0.5)  # the arms are fed directly here, not drawn
    watch.refresh("1", "2")
    for _ in range(45):  # 45 declines against a champion approving everything: one check
        watch.observe("champion", failed=False, approved=True, ms=2.0)  # away from a halt
        watch.observe("canary", failed=False, approved=False, ms=2.0)
    assert watch.active
    switch_canary(audit, "halted", challenger="2", champion="1", by="api: alice")
    switch_canary(audit, "resumed", challenger="2", champion="1", by="api: alice")
    assert watch.refresh("1", "2")
    for _ in range(10):  # would have been the 50th canary decision: a check, and a halt
        watch.observe("champion", failed=False, approved=True, ms=2.0)
        watch.observe("canary", failed=False, approved=False, ms=2.0)
    assert watch.active


# ------------------------------------------------------------------ a real server


@pytest.fixture(scope="module")
def store(trained, tmp_path_factory) -> tuple[Path, str]:
    """The trained champion (version 1) and another candidate as the challenger, whose policy
    declines every application: a canary that departs from the champion."""
    home = tmp_path_factory.mktemp("canary") / "home"
    return home, copy_with_challenger(trained, home, declining=True)


def _metric(client: httpx.Client, name: str, **labels: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                total += sample.value
    return total


@pytest.mark.slow
def test_a_canary_decides_its_share_and_is_halted_when_it_departs(store) -> None:
    home, challenger = store
    settings = Settings(
        home=home,
        api_key=ADMIN_KEY,
        reader_keys=READER_KEY,
        canary_share=0.3,
        canary_min_decisions=10,
        champion_poll_seconds=0,
    )
    admin = {"X-API-Key": ADMIN_KEY}
    bodies = applications(300)
    with serving(settings) as url, httpx.Client(base_url=url, headers=admin, timeout=60) as c:
        status = c.get("/models/canary").json()
        assert (status["state"], status["routing_here"]) == ("started", True)
        assert status["challenger_version"] == challenger
        answers = [c.post("/predict", json=body).json() for body in bodies]
        by_version = Counter(a["model_version"] for a in answers)
        canary = [i for i, a in enumerate(answers) if a["model_version"] == challenger]
        # Halted at its first check (25 canary decisions, the champion's well over 10), with
        # every answer before it a decline: the challenger's policy declines everything.
        assert len(canary) == CHECK_EVERY, by_version
        assert all(answers[i]["decision"] == "decline" for i in canary)
        assert all(a["model_version"] == "1" for a in answers[canary[-1] + 1 :])
        champion_approves = statistics.mean(
            a["decision"] == "approve" for a in answers if a["model_version"] == "1"
        )
        assert champion_approves > 0.3
        halted = c.get("/models/canary").json()
        assert (halted["state"], halted["routing_here"]) == ("halted", False)
        entry = halted["entries"][0]
        assert [g["name"] for g in entry["gates"] if not g["passed"]] == ["canary_approval_rate"]
        assert entry["details"]["canary"]["approval_rate"] == 0.0
        print(
            f"\n300 decisions, canary share 0.3: {dict(by_version)} by version; the last "
            f"canary answer was decision {canary[-1] + 1}; champion approved "
            f"{champion_approves:.1%}; halt: {entry['message']}"
        )
        assert _metric(c, "creditops_canary_decisions_total", result="decided") == CHECK_EVERY
        assert _metric(c, "creditops_canary_active") == 0
        # Batches are never the canary's: all or nothing, by one version.
        batch = c.post("/predict/batch", json={"applications": bodies[:20]}).json()
        assert {d["model_version"] for d in batch["decisions"]} == {"1"}

        # Promotion is held back while the canary stands halted, even after a clean retrain.
        cleared_by_a_retrain(Settings(home=home), challenger)
        with pytest.raises(NotClearedError, match="its canary was halted"):
            promote_challenger(Settings(home=home), version=challenger, move=lambda v, r: ("1", v))
        forced = promote_challenger(  # recorded as forced, with the halt it overrode
            Settings(home=home), version=challenger, force=True, move=lambda v, r: ("1", v)
        )
        assert forced.reasons == ["forced"]
        (canary_gate,) = [g for g in forced.gates if g.name == "canary"]
        assert not canary_gate.passed
        assert "halted by worker" in canary_gate.message

        # An admin resumes it over the API (a reader may not); it decides again, judged
        # afresh, and is halted again; then an admin halts a resumed one by hand.
        reader = c.post("/models/canary/resume", headers={"X-API-Key": READER_KEY})
        assert reader.status_code == 403
        resumed = c.post("/models/canary/resume", params={"reason": "policy fixed"})
        assert resumed.status_code == 200, resumed.text
        assert (resumed.json()["state"], resumed.json()["routing_here"]) == ("resumed", True)
        assert c.post("/models/canary/resume").status_code == 409
        again = [c.post("/predict", json=body).json() for body in bodies[:150]]
        assert sum(a["model_version"] == challenger for a in again) == CHECK_EVERY
        c.post("/models/canary/resume", params={"reason": "once more"}).raise_for_status()
        halt = c.post("/models/canary/halt", params={"reason": "by hand"})
        assert halt.status_code == 200, halt.text
        entries = halt.json()["entries"]
        assert [e["outcome"] for e in entries] == [
            "halted",  # by hand
            "resumed",  # once more
            "halted",  # by the watch, again
            "resumed",  # policy fixed
            "halted",  # by the watch
            "started",
        ]
        by = [e["details"].get("via", "").split(":")[0] for e in entries]
        assert by == ["api", "api", "watch", "api", "watch", ""]
        assert entries[0]["details"]["reason"] == "by hand"

    # Every answer was logged under the version that made it.
    with sqlite3.connect(home / "predictions.db") as db:
        logged = Counter(
            version for (version,) in db.execute("SELECT model_version FROM predictions")
        )
        declines = db.execute(
            "SELECT COUNT(*) FROM predictions WHERE model_version = ? AND decision != 'decline'",
            (challenger,),
        ).fetchone()[0]
    assert logged[challenger] == 2 * CHECK_EVERY
    assert declines == 0


def test_a_canary_that_cannot_decide_is_answered_by_the_champion(store, tmp_path) -> None:
    """A challenger that fails to score costs the client nothing: the champion answers, the
    failure counts against the canary, and enough of them halt it."""
    home, _ = store
    database = f"sqlite:///{tmp_path / 'log.db'}"  # a log and audit of its own
    settings = Settings(home=home, database_url=database, canary_share=0.5, canary_min_decisions=10)
    counted: Counter = Counter()
    with PredictionLog(database) as log:
        service = DecisionService(
            settings, log, on_canary=lambda result, n: counted.update({result: n})
        )
        service.load()
        service.follow_challenger()
        service.refresh_canary()
        assert service.canary is not None
        assert service.canary.active

        class Broken:  # a followed challenger whose scoring fails
            version = service.challenger.version

            def screen(self, features: dict) -> tuple[dict, list[str]]:
                raise RuntimeError("challenger scoring failed")

        service._challenger = Broken()  # type: ignore[assignment]
        served = service.served
        versions = Counter(
            service.decide(served.application_model.model_validate(body), served).model_version
            for body in applications(200)
        )
        service.canary.wait_for_writes()
        entry = canary_entries(service.canary.audit, service.challenger.version)[0]
        service.close()
    assert versions == Counter({"1": 200})
    assert counted["failed"] == CHECK_EVERY
    assert not service.canary.active
    assert entry.outcome == "halted"
    assert [g.name for g in entry.gates if not g.passed] == ["canary_error_rate"]
    assert entry.details["canary"]["error_rate"] == 1.0


def test_the_cli_shows_halts_and_resumes_the_registered_challengers_canary(
    trained, tmp_path, monkeypatch
) -> None:
    home = tmp_path / "home"
    challenger = copy_with_challenger(trained, home, declining=False)
    monkeypatch.setenv("CREDITOPS_HOME", str(home))
    reset_settings()
    runner = CliRunner()
    try:
        waiting = runner.invoke(app, ["canary", "status"])
        assert waiting.exit_code == 0, waiting.output
        assert f"champion 1, challenger {challenger}: canary waiting" in waiting.output
        refused = runner.invoke(app, ["canary", "halt"])
        assert refused.exit_code == 1
        assert "never started" in refused.output
        with AuditLog.from_settings(Settings(home=home)) as audit:
            CanaryWatch(Settings(home=home, canary_share=0.2), audit).refresh("1", challenger)
        halted = runner.invoke(app, ["canary", "halt", "--reason", "month end"])
        assert halted.exit_code == 0, halted.output
        assert f"canary version {challenger} halted by cli: month end" in halted.output
        resumed = runner.invoke(app, ["canary", "resume"])
        assert resumed.exit_code == 0, resumed.output
        status = runner.invoke(app, ["canary", "status"])
        lines = status.output.splitlines()
        assert f"challenger {challenger}: canary resumed" in lines[0]
        assert [line.split()[2] for line in lines[1:]] == ["resumed", "halted", "started"]
    finally:
        reset_settings()
