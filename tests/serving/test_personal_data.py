"""Personal data through the service, as a lender would send it: a version trained on data whose
spec marks a name and an account number as ``pii`` takes them with an application, logs them
sealed (no stored text, application log line, metric or error body holds them), opens them only
on the analyst's audit page, and is not served at all without a personal-data key. Protected
attributes are never shown to a key that may only decide."""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from creditops.config import Settings
from creditops.data.datasets import load_builtin
from creditops.registry import train_and_register
from creditops.registry.load import load_version_data
from creditops.serving.app import create_app
from creditops.store.keys import KeyStore
from creditops.store.pii import new_pii_key
from creditops.store.predlog import PredictionLog

pytestmark = pytest.mark.slow

ADMIN = "bootstrap-admin-key-for-personal-data"
PII_KEY = new_pii_key()
NAME = "Ingrid Þórsdóttir-Quayle"
ACCOUNT = "0049381275"  # leading zeros: text, never a number


@pytest.fixture(scope="module")
def trained_with_pii(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Logistic regression on credit_data with two personal-data columns added."""
    frame, spec = load_builtin("credit_data")
    frame = frame.copy()
    frame["Name"] = [f"Applicant {i:05d}" for i in range(len(frame))]
    frame["Account"] = [f"{i:010d}" for i in range(len(frame))]
    spec = spec.model_copy(update={"pii": ["Name", "Account"]})
    home = tmp_path_factory.mktemp("pii") / "home"
    settings = Settings(home=home, api_key=ADMIN, pii_key=PII_KEY)
    train_and_register(
        settings,
        frame=frame,
        spec=spec,
        dataset_name="credit_pii",
        profile="fast",
        models=["logistic_regression"],
    )
    with KeyStore(settings.resolved_database_url) as store:
        keys = {role: store.create(f"{role}-key", [role], created_by="test").key
                for role in ("decide", "analyst")}  # fmt: skip
    application = frame.drop(columns=[spec.target, spec.id, "Name", "Account"]).iloc[0].to_dict()
    application = {k: (None if v != v else (v.item() if hasattr(v, "item") else v))
                   for k, v in application.items()}  # fmt: skip
    return {"settings": settings, "keys": keys, "application": application, "frame": frame}


@pytest.fixture(scope="module")
def client(trained_with_pii: dict[str, Any]) -> Iterator[TestClient]:
    with TestClient(create_app(trained_with_pii["settings"]), raise_server_exceptions=False) as c:
        yield c


def _stored_text(settings: Settings) -> str:
    engine = sa.create_engine(settings.resolved_database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT * FROM predictions")).all()
    finally:
        engine.dispose()
    return "\n".join(str(value) for row in rows for value in row)


def test_personal_data_never_reaches_the_model_nor_the_versions_artifacts(trained_with_pii):
    settings = trained_with_pii["settings"]
    from creditops.registry.load import load_model

    loaded = load_model(settings, "champion")
    assert loaded.spec.pii == ["Name", "Account"]
    assert not {"Name", "Account"} & set(loaded.spec.features)
    data = load_version_data(settings, loaded)
    assert not {"Name", "Account"} & set(data.frame.columns)


def test_a_decision_logs_personal_data_sealed_and_the_analyst_page_opens_it(
    client, trained_with_pii, caplog
):
    settings, keys = trained_with_pii["settings"], trained_with_pii["keys"]
    body = {**trained_with_pii["application"], "Name": NAME, "Account": ACCOUNT}
    with caplog.at_level(logging.DEBUG):
        response = client.post("/predict", json=body, headers={"X-API-Key": keys["decide"]})
        assert response.status_code == 200, response.text
        pid = response.json()["prediction_id"]
        metrics = client.get("/metrics", headers={"X-API-Key": keys["analyst"]}).text
    assert NAME not in response.text
    assert ACCOUNT not in response.text
    logged = "\n".join(record.getMessage() for record in caplog.records)
    for secret in (NAME, ACCOUNT):
        assert secret not in logged
        assert secret not in metrics
        assert secret not in _stored_text(settings)
    with PredictionLog.from_settings(settings) as log:
        assert log.personal_data(pid) == {"Name": NAME, "Account": ACCOUNT}
        assert log.get(pid).actor == "decide-key"

    page = client.get("/ui/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    login = client.post("/ui/login", data={"key": keys["analyst"], "csrf_token": token},
                        follow_redirects=False)  # fmt: skip
    assert login.status_code == 303
    audit = client.get(f"/ui/audit/decisions/{pid}")
    assert audit.status_code == 200
    assert NAME in audit.text
    assert ACCOUNT in audit.text
    assert "personal data: stored encrypted" in audit.text
    client.cookies.clear()


def test_a_batch_logs_each_rows_personal_data_sealed(client, trained_with_pii):
    settings, keys = trained_with_pii["settings"], trained_with_pii["keys"]
    rows = [
        {**trained_with_pii["application"], "Name": f"{NAME} {i}", "Account": f"00{i}"}
        for i in range(3)
    ]
    rows.append(dict(trained_with_pii["application"]))  # none sent: nothing sealed
    response = client.post("/predict/batch", json={"applications": rows},
                           headers={"X-API-Key": keys["decide"]})  # fmt: skip
    assert response.status_code == 200, response.text
    ids = [d["prediction_id"] for d in response.json()["decisions"]]
    assert f"{NAME} 1" not in _stored_text(settings)
    with PredictionLog.from_settings(settings) as log:
        opened = [log.personal_data(pid) for pid in ids]
        exported = settings.home / "exported.csv"
        assert log.export(exported) >= 4
    assert opened == [{"Name": f"{NAME} {i}", "Account": f"00{i}"} for i in range(3)] + [None]
    text = exported.read_text(encoding="utf-8")  # an export leaves personal data out
    assert ids[1] in text
    assert f"{NAME} 1" not in text
    assert "Account" not in text


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("S3CRET-" + "x" * 1000, "must be at most 1000 characters"),
        (4930012345, "must be a string or null (personal data)"),
    ],
)
def test_a_bad_personal_data_field_is_named_without_its_value(
    client, trained_with_pii, caplog, value, problem
):
    keys = trained_with_pii["keys"]
    body = {**trained_with_pii["application"], "Account": value}
    with caplog.at_level(logging.DEBUG):
        response = client.post("/predict", json=body, headers={"X-API-Key": keys["decide"]})
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert errors == [{"field": "Account", "problem": problem}]
    shown = str(value)[:12]
    assert shown not in response.text
    assert shown not in "\n".join(record.getMessage() for record in caplog.records)


def test_a_key_that_may_only_decide_sees_no_protected_attribute_nor_personal_data(
    client, trained_with_pii
):
    keys = trained_with_pii["keys"]
    spec_protected = ["Age", "Marital"]
    body = {**trained_with_pii["application"], "Name": NAME, "Account": ACCOUNT}
    body.update({"Age": 41, "Marital": "married"})
    headers = {"X-API-Key": keys["decide"]}
    pid = client.post("/predict", json=body, headers=headers).json()["prediction_id"]
    explained = client.post("/explain", json={"prediction_id": pid}, headers=headers)
    assert explained.status_code == 200
    text = explained.text
    for secret in (NAME, ACCOUNT, "married", *spec_protected):
        assert secret not in text, secret
    # The dashboard, where logged protected attributes and personal data are shown, refuses it.
    page = client.get("/ui/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    login = client.post("/ui/login", data={"key": keys["decide"], "csrf_token": token},
                        follow_redirects=False)  # fmt: skip
    assert login.status_code == 403
    assert client.get(f"/ui/audit/decisions/{pid}", follow_redirects=False).status_code == 303


def test_explanations_and_openings_of_personal_data_are_recorded_by_key_name(
    client, trained_with_pii, monkeypatch
):
    from typer.testing import CliRunner

    from creditops.cli import app
    from creditops.store.access_log import read_access

    settings, keys = trained_with_pii["settings"], trained_with_pii["keys"]
    body = {**trained_with_pii["application"], "Name": NAME}
    pid = client.post("/predict", json=body, headers={"X-API-Key": keys["decide"]}).json()[
        "prediction_id"
    ]
    fresh = client.post("/explain", json=trained_with_pii["application"],
                        headers={"X-API-Key": keys["analyst"]})  # fmt: skip
    assert fresh.status_code == 200
    logged = client.post("/explain", json={"prediction_id": pid},
                         headers={"X-API-Key": keys["decide"]})  # fmt: skip
    assert logged.status_code == 200
    page = client.get("/ui/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    client.post("/ui/login", data={"key": keys["analyst"], "csrf_token": token})
    assert NAME in client.get(f"/ui/audit/decisions/{pid}").text
    client.cookies.clear()
    with PredictionLog.from_settings(settings) as log:
        of_decision = read_access(log, prediction_id=pid)
        by_analyst = read_access(log, actor="analyst-key")
    assert [(r.actor, r.action) for r in of_decision] == [
        ("dashboard (analyst-key)", "open_personal_data"),
        ("decide-key", "explain_logged"),
    ]
    assert by_analyst[0].action == "explain"
    assert by_analyst[0].prediction_id is None
    assert by_analyst[0].model_version == "1"
    from creditops.config import reset_settings

    monkeypatch.setenv("CREDITOPS_HOME", str(settings.home))
    monkeypatch.setenv("CREDITOPS_PII_KEY", PII_KEY)
    reset_settings()  # the command reads the settings of this environment, not a cached one
    try:
        listed = CliRunner().invoke(app, ["audit", "reads", "--prediction-id", pid, "--json"])
    finally:
        monkeypatch.undo()
        reset_settings()
    assert listed.exit_code == 0, listed.output
    assert '"open_personal_data"' in listed.output
    assert keys["decide"] not in listed.output


def test_without_a_personal_data_key_the_version_is_not_served(trained_with_pii, tmp_path: Path):
    source = trained_with_pii["settings"]
    home = tmp_path / "home"
    shutil.copytree(source.home, home)
    settings = Settings(home=home, api_key=ADMIN)  # no CREDITOPS_PII_KEY
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert "CREDITOPS_PII_KEY" in ready.text
        refused = client.post("/predict", json=trained_with_pii["application"],
                              headers={"X-API-Key": ADMIN})  # fmt: skip
        assert refused.status_code == 503


def test_a_parquet_batch_seals_personal_data_on_the_column_path(trained_with_pii, tmp_path):
    from creditops.scale.batch import predict_partitioned

    settings = trained_with_pii["settings"]
    frame: pd.DataFrame = trained_with_pii["frame"].head(40).drop(columns=["Status"])
    path = tmp_path / "applications.parquet"
    frame.to_parquet(path)
    from creditops.registry.load import load_model
    from creditops.serving.bulk import column_rules, table_is_valid
    from creditops.serving.schemas import build_application_model

    model = build_application_model(load_model(settings, "champion").spec)
    rules = column_rules(model)
    assert rules is not None
    assert rules["Name"].kind == "pii"
    assert table_is_valid(frame.drop(columns=["applicant_id"]), rules)  # not row by row
    result = predict_partitioned(settings, str(path), tmp_path / "out", actor="batch-test")
    assert result.rows == 40
    out = pd.concat(pd.read_parquet(p) for p in sorted((tmp_path / "out").glob("part-*")))
    assert "Name" not in out.columns
    assert "Applicant 00007" not in _stored_text(settings)
    with PredictionLog.from_settings(settings) as log:
        opened = log.personal_data(out["prediction_id"].iloc[7])
    assert opened == {"Name": "Applicant 00007", "Account": "0000000007"}
