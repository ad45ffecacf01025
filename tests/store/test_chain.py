"""The decision log's hash chains and signed checkpoints on real databases (SQLite files in
tmp_path, and PostgreSQL when ``CREDITOPS_TEST_POSTGRES_URL`` names a server): an untouched log
verifies; each kind of tampering, done as someone with write access to the database would do
it, is named with the row it hit; the command line exits non-zero on a break.
"""

from __future__ import annotations

import itertools
import json
import threading
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from chain_helpers import (
    KEY,
    OTHER_KEY,
    T0,
    bulk_row,
    chain_rows,
    decision,
    engine,
    execute,
    fill,
    forge,
    only_break,
    open_log,
    set_json,
    shift,
    verify,
)
from creditops.cli import app
from creditops.config import reset_settings
from creditops.exceptions import ChainError, ConfigurationError, RecordRejectedError
from creditops.store.chain import GENESIS, row_digest, stored_fields
from creditops.store.chain_audit import sign_chains
from creditops.store.checkpoints import AuditKey, export_checkpoints, read_checkpoints
from creditops.store.database import bulk_insert
from creditops.store.predlog import PredictionLog
from creditops.store.schema import predictions

runner = CliRunner()


@pytest.fixture
def filled(db_url: str) -> tuple[str, str, list[str]]:
    chain, ids = fill(db_url)
    before = verify(db_url)
    assert before.ok, before.breaks  # the tampering below is what breaks it
    return db_url, chain, ids


# ---------------------------------------------------------------------------------------------
# An untouched log
# ---------------------------------------------------------------------------------------------


def test_writers_side_by_side_each_keep_a_chain_that_verifies(db_url: str) -> None:
    logs = [open_log(db_url, checkpoint_rows=25) for _ in range(2)]

    def write(log: PredictionLog, offset: int) -> None:
        for i in range(60):
            log.write(decision(offset + i))

    threads = [
        threading.Thread(target=write, args=(log, 100 * n))
        for n, log in enumerate(logs)
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    chains = {log.chain_id for log in logs}
    for log in logs:
        log.close()

    report = verify(db_url)
    assert report.ok, report.breaks
    assert (report.chains, report.rows, report.unsigned_rows) == (2, 360, 0)
    for chain in chains:
        rows = chain_rows(db_url, chain)
        assert [row["seq"] for row in rows] == list(range(1, 181))
        assert rows[0]["prev_hash"] == GENESIS
        assert all(b["prev_hash"] == a["row_hash"] for a, b in itertools.pairwise(rows))
    with PredictionLog(db_url, audit_key=None) as log:
        kinds = [kind for _, kind, _, _, _ in log.read(read_checkpoints)]
    # each chain announced with its first rows, signed every 25 rows or so, and at close
    assert kinds.count("start") == 2
    assert kinds.count("close") == 2
    assert kinds.count("periodic") >= 8


def test_the_hash_covers_the_stored_text_so_reading_a_record_is_unchanged(db_url: str) -> None:
    chain, ids = fill(db_url)
    with PredictionLog(db_url, audit_key=None) as log:
        got = log.get(ids[1])
    assert got == decision(1).model_copy(update={"prediction_id": uuid.UUID(ids[1])})
    stored = chain_rows(db_url, chain)
    # what was hashed at write time is what a reader hashes from the stored text
    for row in stored:
        assert row_digest(row["prev_hash"], stored_fields(row)) == row["row_hash"]
    assert json.loads(stored[9]["features"]) == {"Income": 0.1 + 0.2, "Home": "own"}


def test_a_text_with_a_nul_is_refused_so_field_boundaries_cannot_move(tmp_path: Path) -> None:
    with open_log(f"sqlite:///{tmp_path / 'p.db'}") as log:
        with pytest.raises(RecordRejectedError, match="NUL"):
            log.write(decision(1).model_copy(update={"model_version": "3\x00approve"}))
        log.write(decision(2))  # the chain goes on
    assert verify(f"sqlite:///{tmp_path / 'p.db'}").ok


def test_without_a_key_rows_are_chained_but_nothing_is_signed(db_url: str) -> None:
    with open_log(db_url, audit_key=None) as log:
        log.write(decision(1))
    report = verify(db_url, key=None)
    assert report.ok
    assert not report.signed
    assert report.checkpoints == 0
    assert "no audit key" in report.warnings[0]


# ---------------------------------------------------------------------------------------------
# Tampering, one kind at a time
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("column", ["probability", "features", "actor"])
def test_an_edited_value_names_its_row(filled: tuple[str, str, list[str]], column: str) -> None:
    url, chain, ids = filled
    target = ids[9]
    if column == "features":
        set_json(url, target, "features", '{"Income": 9999.0, "Home": "own"}')
    elif column == "actor":
        execute(url, "UPDATE predictions SET actor = NULL WHERE id = :id", id=target)
    else:
        execute(url, "UPDATE predictions SET probability = 0.02 WHERE id = :id", id=target)
    found = only_break(verify(url))
    assert (found.kind, found.chain, found.seq, found.prediction_id) == (
        "edited",
        chain,
        10,
        target,
    )


def test_a_deleted_row_is_named_by_the_gap(filled: tuple[str, str, list[str]]) -> None:
    url, _chain, ids = filled
    execute(url, "DELETE FROM predictions WHERE id = :id", id=ids[4])
    found = only_break(verify(url))
    assert (found.kind, found.seq, found.prediction_id) == ("deleted", 6, ids[5])
    assert "seq 5 missing" in found.detail


def test_a_deleted_row_with_the_rest_renumbered_is_still_found(
    filled: tuple[str, str, list[str]],
) -> None:
    url, chain, ids = filled
    execute(url, "DELETE FROM predictions WHERE id = :id", id=ids[4])
    shift(url, chain, 6, -1)
    found = only_break(verify(url))
    assert (found.chain, found.seq, found.prediction_id) == (chain, 5, ids[5])
    assert found.kind == "edited"  # its seq is part of what was hashed


def test_a_forged_row_put_between_two_is_named(filled: tuple[str, str, list[str]]) -> None:
    url, chain, _ids = filled
    rows = chain_rows(url, chain)
    shift(url, chain, 5, +1)
    forged = forge(url, chain, 5, rows[3]["row_hash"])  # follows seq 4, hashes correctly
    found = only_break(verify(url))
    assert (found.kind, found.seq, found.prediction_id) == ("inserted", 5, forged)


def test_a_forged_row_after_the_closing_checkpoint_is_named(
    filled: tuple[str, str, list[str]],
) -> None:
    url, chain, _ids = filled
    rows = chain_rows(url, chain)
    forged = forge(url, chain, len(rows) + 1, rows[-1]["row_hash"])
    found = only_break(verify(url))
    assert (found.kind, found.seq, found.prediction_id) == ("inserted", 13, forged)
    assert "closed the chain" in found.detail


def test_a_row_outside_any_chain_is_named(filled: tuple[str, str, list[str]]) -> None:
    url, _, _ = filled
    row = {**bulk_row(50), "id": str(uuid.UUID(int=7))}
    db = engine(url)
    with db.begin() as conn:
        bulk_insert(conn, predictions, [row])
    db.dispose()
    found = only_break(verify(url))
    assert (found.kind, found.prediction_id) == ("unchained", row["id"])


def test_two_rows_swapped_are_named_as_reordered(filled: tuple[str, str, list[str]]) -> None:
    url, _chain, ids = filled
    execute(url, "UPDATE predictions SET seq = 1000 WHERE id = :id", id=ids[3])
    execute(url, "UPDATE predictions SET seq = 4 WHERE id = :id", id=ids[4])
    execute(url, "UPDATE predictions SET seq = 5 WHERE id = :id", id=ids[3])
    found = only_break(verify(url))
    assert (found.kind, found.seq, found.prediction_id) == ("reordered", 4, ids[4])


def test_a_truncated_tail_is_found_only_against_a_checkpoint(
    filled: tuple[str, str, list[str]],
) -> None:
    url, chain, _ids = filled
    execute(url, "DELETE FROM predictions WHERE chain = :c AND seq > 9", c=chain)
    assert verify(url, key=None).ok  # what is left still links up: the chain alone cannot tell
    found = only_break(verify(url))
    assert (found.kind, found.chain, found.seq) == ("truncated", chain, 10)
    assert "rows 10-12 were deleted" in found.detail


def test_a_recomputed_chain_is_found_against_a_checkpoint(
    filled: tuple[str, str, list[str]],
) -> None:
    url, chain, _ids = filled
    rows = chain_rows(url, chain)
    rows[5]["probability"] = 0.99  # changed, then every hash after it made to match
    prev = rows[4]["row_hash"]
    db = engine(url)
    with db.begin() as conn:
        for row in rows[5:]:
            row["prev_hash"] = prev
            row["row_hash"] = prev = row_digest(prev, stored_fields(row))
            conn.execute(
                sa.text(
                    "UPDATE predictions SET probability = :p, prev_hash = :prev, "
                    "row_hash = :h WHERE id = :id"
                ),
                {"p": row["probability"], "prev": row["prev_hash"], "h": prev, "id": row["id"]},
            )
    db.dispose()
    assert verify(url, key=None).ok  # consistent again, as far as the hashes go
    found = only_break(verify(url))
    assert (found.kind, found.seq) == ("rewritten", 12)  # the head the closing checkpoint signed


@pytest.mark.parametrize("how", ["edited", "resigned", "added"])
def test_a_forged_checkpoint_is_named(filled: tuple[str, str, list[str]], how: str) -> None:
    url, chain, _ = filled
    with PredictionLog(url, audit_key=None) as log:
        stored = log.read(read_checkpoints)
    seq, _, _, body, mac = stored[-1]
    data = json.loads(body)
    data["heads"][chain] = [9, "0" * 64]  # "the chain ends at seq 9"
    forged = json.dumps(data, sort_keys=True, separators=(",", ":"))
    if how == "edited":
        execute(url, "UPDATE decision_checkpoints SET body = :b WHERE seq = :s", b=forged, s=seq)
        detail = "signature does not match"
    elif how == "resigned":
        forged = forged.replace(KEY.key_id, OTHER_KEY.key_id)
        execute(url, "UPDATE decision_checkpoints SET body = :b, mac = :m, key_id = :k "
                "WHERE seq = :s", b=forged, m=OTHER_KEY.sign(forged), k=OTHER_KEY.key_id,
                s=seq)  # fmt: skip
        detail = "signed with another key"
    else:
        data.update(seq=seq + 1, prev_mac=mac, key_id=OTHER_KEY.key_id)
        forged = json.dumps(data, sort_keys=True, separators=(",", ":"))
        execute(url, "INSERT INTO decision_checkpoints (seq, created_at, kind, key_id, body, mac) "
                "VALUES (:s, :t, 'manual', :k, :b, :m)", s=seq + 1, t=T0, k=OTHER_KEY.key_id,
                b=forged, m=OTHER_KEY.sign(forged))  # fmt: skip
        detail = "signed with another key"
    found = only_break(verify(url))
    assert found.kind == "checkpoint"
    assert found.seq == (seq + 1 if how == "added" else seq)
    assert detail in found.detail


def test_checkpoints_deleted_with_the_tail_are_caught_by_an_exported_copy(
    filled: tuple[str, str, list[str]], tmp_path: Path
) -> None:
    url, chain, _ = filled
    exported = tmp_path / "checkpoints.jsonl"
    with PredictionLog(url, audit_key=None) as log:
        stored = log.read(read_checkpoints)
    from creditops.store.checkpoints import Checkpoint

    export_checkpoints([Checkpoint.parse(s, b, m) for s, _, _, b, m in stored], exported)
    last = stored[-1][0]
    execute(url, "DELETE FROM decision_checkpoints WHERE seq = :s", s=last)
    execute(url, "DELETE FROM predictions WHERE chain = :c AND seq > 4", c=chain)
    assert verify(url).ok  # the database's own copies now agree with what is left
    report = verify(url, exported=exported)
    kinds = {(item.kind, item.seq) for item in report.breaks}
    assert kinds == {("checkpoint", last), ("truncated", 5)}


# ---------------------------------------------------------------------------------------------
# Ranges, signing on demand, the writer's own recovery
# ---------------------------------------------------------------------------------------------


def test_a_range_checks_the_rows_made_in_it(db_url: str) -> None:
    with open_log(db_url) as log:
        for day in range(10):
            log.write(decision(day, created_at=T0 + timedelta(days=day)))
        chain = log.chain_id
    target = chain_rows(db_url, chain)[2]["id"]  # made on day 2
    execute(db_url, "UPDATE predictions SET points = 1 WHERE id = :id", id=target)
    late = verify(db_url, since=T0 + timedelta(days=5))
    assert late.ok, late.breaks
    assert late.rows == 5
    found = only_break(verify(db_url, since=T0 + timedelta(days=1), until=T0 + timedelta(days=4)))
    assert (found.kind, found.prediction_id) == ("edited", target)


def test_signing_every_chain_covers_chains_written_without_the_key(db_url: str) -> None:
    with open_log(db_url, audit_key=None) as log:
        log.write(decision(1))
    fill(db_url)
    found = only_break(verify(db_url))
    assert found.kind == "unsigned"
    with PredictionLog(db_url, audit_key=None) as log:
        checkpoint = sign_chains(log, KEY)
    assert len(checkpoint.heads) == 2
    assert verify(db_url).ok


def test_signing_refuses_a_chain_that_lost_signed_rows(
    filled: tuple[str, str, list[str]],
) -> None:
    url, chain, _ = filled
    execute(url, "DELETE FROM predictions WHERE chain = :c AND seq > 10", c=chain)
    with PredictionLog(url, audit_key=None) as log, pytest.raises(ChainError, match="seq 12"):
        sign_chains(log, KEY)


def test_a_writer_whose_next_place_was_taken_goes_on_in_a_new_chain(db_url: str) -> None:
    with open_log(db_url) as log:
        log.write(decision(1))
        log.write(decision(2))
        chain = log.chain_id
        rows = chain_rows(db_url, chain)
        forged = forge(db_url, chain, 3, rows[-1]["row_hash"])
        log.write(decision(3))  # not refused: logged in a chain of its own
        assert log.chain_id != chain
    found = only_break(verify(db_url))
    assert (found.kind, found.chain, found.prediction_id) == ("inserted", chain, forged)


def test_a_short_key_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match="at least 32 bytes"):
        AuditKey(b"short")
    monkeypatch.setenv("CREDITOPS_AUDIT_KEY", "too-short")
    reset_settings()
    try:
        from creditops.config import get_settings

        with pytest.raises(ConfigurationError, match="CREDITOPS_AUDIT_KEY"):
            get_settings()
    finally:
        reset_settings()


def test_the_key_may_come_from_a_file(tmp_path: Path) -> None:
    from creditops.config import Settings

    secret = tmp_path / "audit.key"
    secret.write_bytes(b"creditops-test-audit-key-0123456789\n")
    key = AuditKey.from_settings(Settings(home=tmp_path, audit_key_file=secret))
    assert key is not None
    assert key.key_id == KEY.key_id
    assert "0123456789" not in repr(key)


# ---------------------------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------------------------


def invoke(monkeypatch: pytest.MonkeyPatch, url: str, *args: str, key: bool = True) -> Any:
    monkeypatch.setenv("CREDITOPS_DATABASE_URL", url)
    if key:
        monkeypatch.setenv("CREDITOPS_AUDIT_KEY", "creditops-test-audit-key-0123456789")
    else:
        monkeypatch.delenv("CREDITOPS_AUDIT_KEY", raising=False)
    reset_settings()
    try:
        return runner.invoke(app, list(args))
    finally:
        reset_settings()


def test_audit_commands(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREDITOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CREDITOPS_DATABASE_URL", db_url)
    monkeypatch.setenv("CREDITOPS_AUDIT_KEY", "creditops-test-audit-key-0123456789")
    reset_settings()
    try:
        with PredictionLog(db_url) as log:  # the key from the settings, as the service does
            log.write(decision(1))
            log.write(decision(2))
            chain = log.chain_id
    finally:
        reset_settings()
    result = invoke(monkeypatch, db_url, "audit", "verify", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["ok"] is True

    result = invoke(monkeypatch, db_url, "audit", "checkpoint")
    assert result.exit_code == 0, result.output
    assert "1 chain(s) signed" in result.stdout
    exported = tmp_path / "out.jsonl"
    result = invoke(monkeypatch, db_url, "audit", "checkpoints", "--export", str(exported))
    assert result.exit_code == 0, result.output
    assert len(exported.read_text().splitlines()) == 3  # start, close, manual

    target = chain_rows(db_url, chain)[1]["id"]
    execute(db_url, "UPDATE predictions SET decision = 'approve' WHERE id = :id", id=target)
    result = invoke(monkeypatch, db_url, "audit", "verify", "--checkpoints", str(exported))
    assert result.exit_code == 1
    assert f"EDITED: chain {chain} seq 2 prediction {target}" in result.stdout

    result = invoke(monkeypatch, db_url, "audit", "checkpoint", key=False)
    assert result.exit_code == 1
    assert "CREDITOPS_AUDIT_KEY" in result.output


# ---------------------------------------------------------------------------------------------
# Decisions logged before the chain existed
# ---------------------------------------------------------------------------------------------


def test_decisions_logged_before_revision_0006_are_chained_by_it(db_url: str) -> None:
    from alembic import command

    from creditops.store.schema import _config, upgrade_database

    db = engine(db_url)
    with db.begin() as conn:
        command.upgrade(_config(conn), "0005")
    with db.begin() as conn:
        table = sa.Table("predictions", sa.MetaData(), autoload_with=conn)
        rows = [decision(i).model_dump() for i in range(7)]
        for row in rows:
            row["id"] = str(row.pop("prediction_id"))
        conn.execute(table.insert(), rows)
    db.dispose()
    upgrade_database(db_url)

    report = verify(db_url, key=None)
    assert report.ok, report.breaks
    assert (report.chains, report.rows) == (1, 7)
    with PredictionLog(db_url, audit_key=None) as log:
        sign_chains(log, KEY)
    assert verify(db_url).ok
    execute(db_url, "UPDATE predictions SET grade = 'A' WHERE id = :id", id=rows[3]["id"])
    found = only_break(verify(db_url))
    assert (found.kind, found.seq, found.prediction_id) == ("edited", 4, rows[3]["id"])
