"""The Decide page's parts without a browser: the form generated from a version's spec and
the batch results kept per session."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest
from pydantic import ValidationError

from creditops.config import Settings
from creditops.data.datasets import load_builtin
from creditops.data.validate import validate_dataset
from creditops.serving.batch import DecidedBatch
from creditops.serving.schemas import build_application_model, example_application
from creditops.serving.ui import batches
from creditops.serving.ui.application_form import application_form, place_errors


@pytest.fixture(scope="module")
def served() -> Any:
    """What the form reads of a served version: its spec, application model and training rows."""
    validated = validate_dataset(*load_builtin("credit_data"), dataset_name="credit_data")
    spec = validated.spec
    model = build_application_model(spec, example=example_application(spec, validated.frame))
    reference = validated.frame[[*spec.features, *spec.protected]]
    # The strict model: what a service with CREDITOPS_OUT_OF_RANGE=reject accepts.
    return SimpleNamespace(
        spec=spec, application_model=model, reference=reference, out_of_range="reject"
    )


def test_the_form_shows_what_the_api_accepts(served: Any) -> None:
    form = application_form(served)
    assert [f.name for f in form.features] == served.spec.features
    assert [f.name for f in form.protected] == ["Age", "Marital"]
    fields = {f.name: f for f in (*form.features, *form.protected)}
    amount = fields["Amount"]
    schema = {s.name: s for s in served.spec.schema_}
    assert (amount.minimum, amount.maximum) == schema["Amount"].accepted_range()
    assert amount.required
    assert amount.step == "1"
    assert "from 0 to 7,450" in amount.hint
    assert "training saw 100 to 5,000" in amount.hint
    assert not fields["Income"].required
    assert "Leave it empty when unknown" in fields["Income"].hint
    assert fields["Home"].kind == "choice"
    assert fields["Home"].choices == tuple(schema["Home"].categories or ())
    assert fields["Marital"].kind == "choice"
    assert fields["Marital"].protected
    assert fields["Age"].kind == "number"
    assert "18 to 68" in fields["Age"].hint
    assert len({f.id for f in fields.values()}) == len(fields)
    assert application_form(served) is form  # built once per served version


def test_problems_go_next_to_their_fields_and_unknown_fields_are_named(served: Any) -> None:
    form = application_form(served)
    with pytest.raises(ValidationError) as refused:
        served.application_model.model_validate({"Amount": -5, "Bogus": 1})
    cell = {"Seniority": "must be a finite number"}
    by_field, general = place_errors(form, cell, refused.value)
    assert by_field["Seniority"] == "must be a finite number"
    assert by_field["Amount"] == "Input should be greater than or equal to 0"
    assert by_field["Time"] == "Field required"
    assert general == ["Bogus: Extra inputs are not permitted"]


def _decided(rows: int) -> DecidedBatch:
    frame = pd.DataFrame(
        {
            "prediction_id": [f"id-{i}" for i in range(rows)],
            "probability_of_default": [i / rows for i in range(rows)],
            "score_points": [600 - i for i in range(rows)],
            "risk_grade": ["C"] * rows,
            "decision": ["approve", "refer", "decline"] * (rows // 3) + ["approve"] * (rows % 3),
            "reasons": ["", "R01;R02", "R02"] * (rows // 3) + [""] * (rows % 3),
            "imputed_fields": [""] * rows,
        }
    )
    return DecidedBatch(frame=frame, reason_texts={"R01": "Income is low", "R02": "Debt is high"})


def _save(settings: Settings, owner: str, rows: int = 60) -> batches.BatchResult:
    return batches.save_batch(
        settings, owner, _decided(rows), source="a.csv", model_version="1", logged=True
    )


def test_a_batch_is_paged_for_its_session_only(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    mine, theirs = batches.owner_of("csrf-a"), batches.owner_of("csrf-b")
    result = _save(settings, mine)
    assert result.decisions == {"approve": 20, "refer": 20, "decline": 20}
    assert sum(result.histogram) == 60
    assert result.pages == 3
    page = batches.read_page(settings, result.id, mine, 3)
    assert page is not None
    assert (page.first, page.last) == (51, 60)
    assert page.rows[0]["prediction_id"] == "id-50"
    assert page.reasons == {"R01": "Income is low", "R02": "Debt is high"}
    assert batches.read_page(settings, result.id, mine, 99).page == 3  # clamped
    assert batches.read_page(settings, result.id, theirs, 1) is None
    assert batches.batch_csv(settings, result.id, theirs) is None
    assert batches.read_page(settings, "../../secrets/x", mine, 1) is None
    csv = batches.batch_csv(settings, result.id, mine)
    assert csv is not None
    assert csv.decode().splitlines()[0].startswith("prediction_id,probability_of_default")
    path = batches.batch_parquet(settings, result.id, mine)
    assert path is not None
    assert "owner" not in str(pd.read_parquet(path).columns)  # the download is only decisions


def test_old_batches_are_deleted(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    owner = batches.owner_of("csrf-a")
    results = [_save(settings, owner, 6) for _ in range(batches.PER_SESSION + 2)]
    kept = [r for r in results if batches.read_batch(settings, r.id, owner) is not None]
    assert kept == results[-batches.PER_SESSION :]
    folder = tmp_path / "ui-batches"
    assert len(list(folder.glob("*.parquet"))) == batches.PER_SESSION
    stale = folder / f"{results[-1].id}.json"
    meta = json.loads(stale.read_text())
    meta["saved"] -= settings.session_hours * 3600 + 1
    stale.write_text(json.dumps(meta))
    _save(settings, batches.owner_of("csrf-b"), 6)  # any save prunes what outlived a session
    assert batches.read_batch(settings, results[-1].id, owner) is None
    assert not (folder / f"{results[-1].id}.parquet").exists()
