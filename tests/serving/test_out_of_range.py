"""Applications outside the model's experience (a value past the training range, a category
training never saw) over real HTTP, in each of the three ways a lender may choose
(``CREDITOPS_OUT_OF_RANGE``): referred with a reason naming the field (the default), decided by
the model, or refused. Either way they are flagged in the response, the log and Prometheus;
what is invalid (wrong type, NaN, a negative amount, an unknown field) stays a 422."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from creditops.config import Settings
from creditops.data.datasets import load_builtin
from creditops.registry import load_model
from creditops.serving.reproduce import reproduce_decisions
from creditops.serving.served import build_served_model
from creditops.store.predlog import PredictionLog
from helpers import serving

pytestmark = pytest.mark.slow

API_KEY = "out-of-range-key-0123456789"
HEADERS = {"X-API-Key": API_KEY}


@pytest.fixture(scope="module")
def home(trained, tmp_path_factory) -> Path:
    source, _ = trained
    home = tmp_path_factory.mktemp("out-of-range") / "home"
    shutil.copytree(source.home, home)
    return home


@pytest.fixture(scope="module")
def application() -> dict:
    frame, spec = load_builtin("credit_data")
    row = frame.drop(columns=[spec.target, spec.id]).iloc[2]
    return json.loads(row.to_json())


@pytest.fixture(scope="module")
def schema(home) -> dict:
    spec = load_model(Settings(home=home), "champion").spec
    return {item.name: item for item in spec.schema_}


def _server(home: Path, mode: str, tmp_path: Path) -> Iterator[tuple[str, Settings]]:
    copy = tmp_path / mode
    shutil.copytree(home, copy)
    settings = Settings(home=copy, api_key=API_KEY, out_of_range=mode)
    with serving(settings) as url:
        yield url, settings


@pytest.fixture
def refer(home, tmp_path) -> Iterator[tuple[str, Settings]]:
    yield from _server(home, "refer", tmp_path)


def _logged(settings: Settings, prediction_id: str) -> tuple[str, list[str] | None]:
    with sqlite3.connect(settings.home / "predictions.db") as conn:
        decision, flagged = conn.execute(
            "SELECT decision, out_of_range FROM predictions WHERE id = ?", (prediction_id,)
        ).fetchone()
    return decision, None if flagged is None else json.loads(flagged)


def _counted(client: httpx.Client) -> dict[str, float]:
    found = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        if family.name == "creditops_out_of_range":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    found[sample.labels["feature"]] = sample.value
    return found


def test_a_value_past_the_range_and_an_unseen_category_are_referred_flagged_and_counted(
    refer, application, schema
):
    url, settings = refer
    amount = schema["Amount"]
    past = {**application, "Amount": amount.maximum * 1.6, "Home": "houseboat"}
    with httpx.Client(base_url=url, headers=HEADERS, timeout=60) as client:
        usual = client.post("/predict", json=application)
        response = client.post("/predict", json=past)
        counted = _counted(client)
        explained = client.post("/explain", json=past)
    assert usual.status_code == 200
    assert usual.json()["out_of_range"] == []
    assert response.status_code == 200, response.text
    decision = response.json()
    assert decision["decision"] == "refer"
    assert decision["out_of_range"] == ["Amount", "Home"]  # in the spec's order
    first, second = decision["reasons"][:2]
    assert (first["code"], first["feature"]) == ("OUT_OF_RANGE", "Amount")
    assert "outside the range the model was trained on" in first["text"]
    assert f"{amount.minimum:g}" in first["text"]
    assert (second["code"], second["feature"]) == ("OUT_OF_RANGE", "Home")
    assert "houseboat" not in response.text  # the value is not echoed
    assert 0.0 <= decision["probability_of_default"] <= 1.0
    # Logged with its flag, the values as sent; counted per feature.
    assert _logged(settings, decision["prediction_id"]) == ("refer", ["Amount", "Home"])
    assert _logged(settings, usual.json()["prediction_id"])[1] is None
    assert counted == {"Amount": 1.0, "Home": 1.0}
    assert explained.status_code == 200, explained.text
    assert explained.json()["out_of_range"] == ["Amount", "Home"]
    assert explained.json()["decision"] == "refer"
    # The audit's reproduction re-judges the logged row the same way.
    log = PredictionLog(settings.resolved_database_url)
    try:
        record = log.get(decision["prediction_id"])
        assert record.features["Amount"] == amount.maximum * 1.6
        (again,) = reproduce_decisions(settings, [record])
    finally:
        log.close()
    assert again.identical, again


def test_a_batch_refers_only_its_rows_outside(refer, application, schema):
    url, _ = refer
    past = {**application, "Seniority": schema["Seniority"].maximum + 1}
    with httpx.Client(base_url=url, headers=HEADERS, timeout=60) as client:
        response = client.post("/predict/batch", json={"applications": [application, past]})
    assert response.status_code == 200, response.text
    usual, outside = response.json()["decisions"]
    assert usual["out_of_range"] == []
    assert not any(r["code"] == "OUT_OF_RANGE" for r in usual["reasons"])
    assert outside["out_of_range"] == ["Seniority"]
    assert outside["decision"] == "refer"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"Amount": -1}, "Amount"),  # training saw no negative amount
        ({"Amount": "12"}, "Amount"),
        ({"Amount": True}, "Amount"),
        ({"Seniority": 2.5}, "Seniority"),  # a whole-number feature
        ({"Home": 3}, "Home"),
        ({"Home": "x" * 101}, "Home"),
        ({"Shoe size": 44}, "Shoe size"),
    ],
)
def test_what_is_invalid_stays_a_422_naming_the_field(refer, application, change, field):
    url, _ = refer
    with httpx.Client(base_url=url, headers=HEADERS, timeout=60) as client:
        response = client.post("/predict", json={**application, **change})
        non_finite = client.post(
            "/predict",
            content=json.dumps(application).replace("}", ', "Amount": NaN}'),
            headers={"content-type": "application/json"},
        )
    assert response.status_code == 422, response.text
    assert any(e["field"] == field for e in response.json()["errors"]), response.text
    assert non_finite.status_code == 422


def test_decide_lets_the_model_decide_and_still_flags(home, application, schema, tmp_path):
    past = {**application, "Amount": schema["Amount"].maximum * 1.6}
    for url, settings in _server(home, "decide", tmp_path):
        with httpx.Client(base_url=url, headers=HEADERS, timeout=60) as client:
            response = client.post("/predict", json=past)
            counted = _counted(client)
        assert response.status_code == 200, response.text
        decision = response.json()
        assert decision["out_of_range"] == ["Amount"]
        assert all(r["code"] != "OUT_OF_RANGE" for r in decision["reasons"])
        # The policy's own answer on the score held at the trusted edge of the range.
        served = build_served_model(settings)
        scored, outside = served.screen({**past, "Amount": float(past["Amount"])})
        assert outside == ["Amount"]
        assert scored["Amount"] == served.scoring_ranges["Amount"][1]
        assert decision["decision"] == served.policy.decide(served.probability(scored))
        assert _logged(settings, decision["prediction_id"])[1] == ["Amount"]
        assert counted == {"Amount": 1.0}


def test_reject_refuses_exactly_past_the_training_range(home, application, schema, tmp_path):
    amount = schema["Amount"]
    for url, _ in _server(home, "reject", tmp_path):
        with httpx.Client(base_url=url, headers=HEADERS, timeout=60) as client:
            edge = client.post("/predict", json={**application, "Amount": amount.maximum})
            past = client.post("/predict", json={**application, "Amount": amount.maximum + 1})
            unseen = client.post("/predict", json={**application, "Home": "houseboat"})
        assert edge.status_code == 200
        assert edge.json()["out_of_range"] == []
        assert past.status_code == 422
        assert [e["field"] for e in past.json()["errors"]] == ["Amount"]
        assert unseen.status_code == 422
        assert [e["field"] for e in unseen.json()["errors"]] == ["Home"]
