"""Personal data in the decision log, on real databases (SQLite, and PostgreSQL when
``CREDITOPS_TEST_POSTGRES_URL`` names a server): sealed before it is stored, so no stored
text holds it; opened only by an explicit read with the key; rotated keys still open what
they sealed; a token edited in place is named by `audit verify` and no longer opens; a chain
hashed before the column existed (format 1) still verifies."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from chain_helpers import KEY, bulk_row, chain_rows, decision, engine, execute, open_log, verify
from creditops.config import Settings
from creditops.exceptions import PersonalDataError, RecordRejectedError
from creditops.store.chain import row_digest, stored_fields
from creditops.store.pii import PiiCipher, new_pii_key
from creditops.store.predlog import PredictionLog

NAME = "Zofia Wąsowska-Ng"
ACCOUNT = "GB29NWBK60161331926819"
PII = {"Name": NAME, "Account": ACCOUNT}


def _with_pii(i: int) -> object:
    return decision(i).model_copy(update={"pii": dict(PII, Note=f"row {i}")})


def _stored_text(url: str) -> str:
    """Every value of every table, as text: what a copy of the database would show."""
    db = engine(url)
    try:
        with db.connect() as conn:
            tables = sa.inspect(conn).get_table_names()
            parts = []
            for table in tables:
                for row in conn.execute(sa.text(f"SELECT * FROM {table}")):
                    parts.extend(str(value) for value in row)
            return "\n".join(parts)
    finally:
        db.dispose()


# ---------------------------------------------------------------------------------------------
# The cipher
# ---------------------------------------------------------------------------------------------


def test_a_sealed_token_opens_to_the_values_and_shows_none_of_them() -> None:
    cipher = PiiCipher([new_pii_key()])
    token = cipher.seal(PII)
    assert NAME not in token
    assert ACCOUNT not in token
    assert "Name" not in token
    assert cipher.open(token) == PII
    assert cipher.seal(PII) != token  # a fresh IV each time: equal data, different tokens


def test_rotation_seals_with_the_first_key_and_opens_with_any() -> None:
    old, new = new_pii_key(), new_pii_key()
    sealed_before = PiiCipher([old]).seal(PII)
    rotated = PiiCipher([new, old])
    assert rotated.open(sealed_before) == PII
    sealed_after = rotated.seal(PII)
    assert PiiCipher([new]).open(sealed_after) == PII
    with pytest.raises(PersonalDataError, match="no configured key opens it") as error:
        PiiCipher([new]).open(sealed_before)  # the old key was dropped too early
    assert NAME not in str(error.value)


def test_a_bad_key_is_named_by_its_place_never_shown(tmp_path: Path) -> None:
    secret = "not-a-fernet-key-but-a-secret-someone-typed"
    with pytest.raises(PersonalDataError, match="key #2 is not a Fernet key") as error:
        PiiCipher.from_settings(Settings(home=tmp_path, pii_key=f"{new_pii_key()},{secret}"))
    assert secret not in str(error.value)
    assert PiiCipher.from_settings(Settings(home=tmp_path)) is None
    key_file = tmp_path / "pii.key"
    key_file.write_text(f"{new_pii_key()}\n{new_pii_key()}\n", encoding="ascii")
    cipher = PiiCipher.from_settings(Settings(home=tmp_path, pii_key_file=key_file))
    assert cipher is not None
    assert cipher.key_count == 2
    with pytest.raises(PersonalDataError, match="CREDITOPS_PII_KEY_FILE: cannot read"):
        PiiCipher.from_settings(Settings(home=tmp_path, pii_key_file=tmp_path / "absent"))
    with pytest.raises(PersonalDataError, match="holds no key"):
        PiiCipher.from_settings(Settings(home=tmp_path, pii_key=" , "))


def test_a_key_in_standard_base64_as_render_generates_works_and_empty_means_unset(
    tmp_path: Path,
) -> None:
    import base64

    generated = base64.b64encode(bytes([0xFB, 0xEF, 0xFF] * 10 + [0xFB, 0xEF])).decode()
    assert "+" in generated
    assert "/" in generated
    cipher = PiiCipher([generated])
    assert cipher.open(cipher.seal(PII)) == PII
    # compose passes an optional secret it lacks as an empty variable
    assert PiiCipher.from_settings(Settings(home=tmp_path, pii_key="", pii_key_file="")) is None
    assert Settings(home=tmp_path, audit_key=" ").audit_key is None


def test_an_altered_token_does_not_open() -> None:
    cipher = PiiCipher([new_pii_key()])
    token = cipher.seal(PII)
    flipped = token[:40] + ("A" if token[40] != "A" else "B") + token[41:]
    with pytest.raises(PersonalDataError):
        cipher.open(flipped)


# ---------------------------------------------------------------------------------------------
# In the decision log
# ---------------------------------------------------------------------------------------------


def test_the_log_stores_no_personal_data_in_the_clear_and_opens_it_on_request(
    db_url: str,
) -> None:
    cipher = PiiCipher([new_pii_key()])
    with open_log(db_url, pii_cipher=cipher) as log:
        log.write(_with_pii(0))
        log.write_many([_with_pii(1), decision(2)])
        row = bulk_row(3)
        log.write_rows([{**row, "pii": log.seal_personal_data(PII)}])
        ids = [r["id"] for r in chain_rows(db_url, log.chain_id)]
        record = log.get(ids[0])
        assert record is not None
        assert record.pii is None
        assert log.personal_data(ids[0]) == {**PII, "Note": "row 0"}
        assert log.personal_data(ids[2]) is None  # decided without personal data
        assert log.personal_data(ids[3]) == PII
        assert log.personal_data(uuid.uuid4()) is None
    stored = _stored_text(db_url)
    for secret in (NAME, ACCOUNT, "row 0", "GB29"):
        assert secret not in stored
    assert verify(db_url).ok


def test_without_a_key_a_record_with_personal_data_is_refused_and_nothing_is_stored(
    db_url: str,
) -> None:
    with open_log(db_url, pii_cipher=None) as log:
        assert not log.seals_personal_data
        with pytest.raises(RecordRejectedError, match="no personal-data key is configured"):
            log.write(_with_pii(0))
        with pytest.raises(RecordRejectedError):
            log.write_many([decision(1), _with_pii(2)])  # all or nothing
        assert log.count() == 0
        log.write(decision(3))
        assert log.count() == 1
        with pytest.raises(PersonalDataError):
            log.seal_personal_data(PII)


def test_a_log_without_the_key_cannot_open_what_another_sealed(db_url: str) -> None:
    with open_log(db_url, pii_cipher=PiiCipher([new_pii_key()])) as log:
        log.write(_with_pii(0))
        (prediction_id,) = [r["id"] for r in chain_rows(db_url, log.chain_id)]
    with (
        open_log(db_url, pii_cipher=None) as reader,
        pytest.raises(PersonalDataError, match="no personal-data key is configured"),
    ):
        reader.personal_data(prediction_id)
    with (
        open_log(db_url, pii_cipher=PiiCipher([new_pii_key()])) as stranger,
        pytest.raises(PersonalDataError, match="no configured key opens it"),
    ):
        stranger.personal_data(prediction_id)


def test_a_personal_data_token_edited_in_place_breaks_the_chain_at_its_row(db_url: str) -> None:
    cipher = PiiCipher([new_pii_key()])
    with open_log(db_url, pii_cipher=cipher) as log:
        for i in range(5):
            log.write(_with_pii(i))
        chain = log.chain_id
    rows = chain_rows(db_url, chain)
    # Someone with write access swaps row 3's token for row 1's (a valid token, another person).
    execute(db_url, "UPDATE predictions SET pii = :t WHERE id = :id", t=rows[0]["pii"],
            id=rows[2]["id"])  # fmt: skip
    report = verify(db_url)
    assert not report.ok
    (found,) = report.breaks
    assert (found.kind, found.seq, found.prediction_id) == ("edited", 3, rows[2]["id"])
    # Cleared personal data is an edit too.
    execute(db_url, "UPDATE predictions SET pii = :t WHERE id = :id", t=rows[2]["pii"],
            id=rows[2]["id"])  # fmt: skip
    assert verify(db_url).ok
    execute(db_url, "UPDATE predictions SET pii = NULL WHERE id = :id", id=rows[3]["id"])
    assert [(b.kind, b.seq) for b in verify(db_url).breaks] == [("edited", 4)]


def test_a_chain_hashed_before_personal_data_verifies_and_refuses_a_token_added_later(
    db_url: str,
) -> None:
    """A chain of format 1 (written before the column existed), made as that creditops wrote
    it: the same rows re-hashed without the column, and the chain registered as format 1."""
    with open_log(db_url, audit_key=None) as log:
        for i in range(4):
            log.write(decision(i))
        chain = log.chain_id
    prev = "0" * 64
    for row in chain_rows(db_url, chain):
        digest = row_digest(prev, stored_fields(row, None, 1), 1)
        execute(db_url, "UPDATE predictions SET prev_hash = :p, row_hash = :h WHERE id = :id",
                p=prev, h=digest, id=row["id"])  # fmt: skip
        prev = digest
    execute(db_url, "UPDATE decision_chains SET format = 1 WHERE id = :c", c=chain)
    assert verify(db_url, key=None).ok
    rows = chain_rows(db_url, chain)
    token = PiiCipher([new_pii_key()]).seal(PII)
    execute(db_url, "UPDATE predictions SET pii = :t WHERE id = :id", t=token, id=rows[1]["id"])
    assert [(b.kind, b.seq) for b in verify(db_url, key=None).breaks] == [("edited", 2)]
    execute(db_url, "UPDATE decision_chains SET format = 7 WHERE id = :c", c=chain)
    (found,) = verify(db_url, key=None).breaks
    assert found.kind == "edited"
    assert "chain format 7" in found.detail


def test_the_settings_key_is_the_logs_default(tmp_path: Path) -> None:
    key = new_pii_key()
    settings = Settings(home=tmp_path / "home", pii_key=key)
    with PredictionLog.from_settings(settings, audit_key=KEY) as log:
        assert log.seals_personal_data
        token = log.seal_personal_data(PII)
    assert PiiCipher([key]).open(token) == PII
