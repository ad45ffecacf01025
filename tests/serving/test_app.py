"""The decision service over real HTTP: a uvicorn server on loopback in front of a real MLflow
store and a real SQLite decision log."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator

import httpx
import pandas as pd
import pytest

from creditops.config import Settings
from creditops.data.datasets import load_builtin
from creditops.registry import register_model
from creditops.serving.api.deps import ADMIN_TAG
from creditops.serving.app import create_app
from creditops.serving.reproduce import reproduce_decisions
from creditops.store.audit import AuditLog
from creditops.store.predlog import PredictionLog
from helpers import serving

pytestmark = pytest.mark.slow

API_KEY = "test-admin-key-0123456789"
VIA = "api: CREDITOPS_API_KEY"  # the name of the key behind an audited change


@pytest.fixture(scope="module")
def server(trained, tmp_path_factory) -> Iterator[tuple[str, Settings]]:
    """A copy of the trained store (promotion here must not move the shared champion)."""
    source, _ = trained
    home = tmp_path_factory.mktemp("serving-home") / "home"
    shutil.copytree(source.home, home)
    settings = Settings(home=home, api_key=API_KEY)
    with serving(settings) as url:
        yield url, settings


@pytest.fixture(scope="module")
def application() -> dict:
    frame, spec = load_builtin("credit_data")
    row = frame.iloc[2]
    record = {c: row[c] for c in frame.columns if c not in (spec.target, spec.id)}
    return json.loads(
        json.dumps(
            {k: (None if v != v else v) for k, v in record.items()}, default=lambda v: v.item()
        )
    )


def _client(url: str, key: str | None = API_KEY) -> httpx.Client:
    """A client sending the bootstrap admin key (every role), or ``key``."""
    return httpx.Client(base_url=url, timeout=60, headers={"X-API-Key": key} if key else {})


def test_health_and_ready(server):
    url, _ = server
    with _client(url) as client:
        health = client.get("/health").json()
        assert health["status"] == "ok"
        assert isinstance(health["pid"], int)
        ready = client.get("/ready")
        assert ready.status_code == 200
        assert ready.json()["model_version"] == "1"
        assert ready.json()["pid"] == health["pid"]  # one process serves this test


def test_predict_decides_logs_and_keeps_protected_attributes_apart(server, application):
    url, settings = server
    with _client(url) as client:
        response = client.post("/predict", json=application)
    assert response.status_code == 200, response.text
    decision = response.json()
    assert decision["decision"] in {"approve", "refer", "decline"}
    assert 0 <= decision["probability_of_default"] <= 1
    expected = _served_reasons(settings, application, decision["model_version"])
    assert [r["code"] for r in decision["reasons"]] == expected
    assert not {r["feature"] for r in decision["reasons"]} & {"Age", "Marital"}
    log = PredictionLog(settings.resolved_database_url)
    try:
        record = log.get(decision["prediction_id"])
    finally:
        log.close()
    assert record is not None
    assert record.probability == decision["probability_of_default"]
    assert record.protected == {"Age": application["Age"], "Marital": application["Marital"]}
    assert "Age" not in record.features


def _served_reasons(settings: Settings, application: dict, version: str) -> list[str]:
    """The reason codes ``version`` gives ``application`` in this process ([] if approved)."""
    from creditops.evaluation.reasons import default_reason_map
    from creditops.serving.served import build_served_model

    served = build_served_model(settings, version)
    features = {f: application.get(f) for f in served.spec.features}
    if served.policy.decide(served.probability(features)) == "approve":
        return []
    return [r.code for r in served.reason_codes(features, default_reason_map())]


def test_declines_are_explained_with_at_most_four_reasons(server, application):
    url, settings = server
    risky = {
        **application,
        "Records": "yes",
        "Income": 40,
        "Debt": 3000,
        "Amount": 2000,
        "Seniority": 0,
        "Job": "partime",
    }
    with _client(url) as client:
        decision = client.post("/predict", json=risky).json()
    assert decision["decision"] == "decline"
    assert 1 <= len(decision["reasons"]) <= 4
    expected = _served_reasons(settings, risky, decision["model_version"])
    assert [r["code"] for r in decision["reasons"]] == expected
    assert all(r["text"] for r in decision["reasons"])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"Income": NaN}', "body"),
        (b'{"Income": Infinity}', "body"),
        (b'{"Income": 1e400}', "body"),
        (b'{"Home": "\\ud800"}', "body"),
    ],
)
def test_non_finite_and_invalid_json_is_422_and_not_echoed(server, body, field):
    url, _ = server
    with _client(url) as client:
        response = client.post(
            "/predict", content=body, headers={"content-type": "application/json"}
        )
    assert response.status_code == 422
    assert "detail" in response.json()
    assert "1e400" not in response.text
    assert "ud800" not in response.text


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"Income": "12"}, "Income"),
        ({"Income": True}, "Income"),
        ({"Income": -5}, "Income"),
        ({"Home": 7}, "Home"),
        ({"Home": "castle" * 20}, "Home"),
        ({"Salary": 100}, "Salary"),
        ({"Records": None}, "Records"),
    ],
)
def test_bad_fields_are_422_naming_the_field(server, application, change, field):
    url, _ = server
    with _client(url) as client:
        response = client.post("/predict", json={**application, **change})
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert any(e["field"] == field for e in errors), errors
    assert "castle" not in response.text


def test_oversized_body_is_413(server):
    url, settings = server
    with _client(url) as client:
        response = client.post(
            "/predict",
            content=b" " * (settings.max_body_bytes + 1),
            headers={"content-type": "application/json"},
        )
    assert response.status_code == 413


def test_decisions_and_refusals_carry_the_header_policy_over_real_http(server, application):
    """A decision is personal data: never stored by a cache; the body limit still holds behind
    the middleware, declared or streamed; every answer names its request."""
    url, settings = server
    limit = settings.max_body_bytes
    json_type = {"content-type": "application/json"}
    with _client(url) as client:
        decided = client.post("/predict", json=application, headers={"X-Request-ID": "loan-1"})
        declared = client.post("/predict", content=b" " * (limit + 1), headers=json_type)
        streamed = client.post(
            "/predict", content=iter([b" " * limit, b" " * limit]), headers=json_type
        )
    assert decided.status_code == 200
    assert decided.headers["x-request-id"] == "loan-1"
    assert [declared.status_code, streamed.status_code] == [413, 413]
    for response in (decided, declared, streamed):
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-request-id"]
    assert declared.headers["x-request-id"] != streamed.headers["x-request-id"]


def test_batch_is_atomic_and_names_the_row(server, application):
    url, settings = server
    log = PredictionLog(settings.resolved_database_url)
    try:
        before = log.count()
        with _client(url) as client:
            ok = client.post("/predict/batch", json={"applications": [application] * 5})
            assert ok.status_code == 200, ok.text
            assert ok.json()["count"] == 5
            bad = client.post(
                "/predict/batch",
                json={"applications": [application, {**application, "Income": "x"}]},
            )
        assert bad.status_code == 422
        assert any(e["field"] == "applications[1].Income" for e in bad.json()["errors"])
        assert log.count() == before + 5
    finally:
        log.close()


def test_a_batch_decides_exactly_as_single_requests(server):
    """The batch path scores and explains its rows together (one SHAP call): the same
    probabilities, decisions and reasons as one request per application."""
    url, _ = server
    frame, spec = load_builtin("credit_data")
    rows = json.loads(frame.drop(columns=[spec.target, spec.id]).head(40).to_json(orient="records"))
    rows = [{k: v for k, v in r.items() if v is not None} for r in rows]
    with _client(url) as client:
        batch = client.post("/predict/batch", json={"applications": rows}).json()["decisions"]
        single = [client.post("/predict", json=row).json() for row in rows]
    assert {d["decision"] for d in batch} >= {"approve", "decline"}
    for b, s in zip(batch, single, strict=True):
        assert b["probability_of_default"] == s["probability_of_default"]
        assert (b["decision"], b["score_points"], b["risk_grade"]) == (
            s["decision"],
            s["score_points"],
            s["risk_grade"],
        )
        assert [r["code"] for r in b["reasons"]] == [r["code"] for r in s["reasons"]]
        assert b["imputed_fields"] == s["imputed_fields"]


def test_feedback_is_idempotent_and_refuses_conflicts(server, application):
    url, _ = server
    with _client(url) as client:
        pid = client.post("/predict", json=application).json()["prediction_id"]
        first = client.post("/feedback", json={"prediction_id": pid, "outcome": "repaid"})
        again = client.post("/feedback", json={"prediction_id": pid, "outcome": "repaid"})
        conflict = client.post("/feedback", json={"prediction_id": pid, "outcome": "default"})
        unknown = client.post(
            "/feedback",
            json={"prediction_id": "00000000-0000-4000-8000-000000000000", "outcome": "repaid"},
        )
    assert first.json()["result"] == "recorded"
    assert again.json()["result"] == "unchanged"
    assert conflict.status_code == 409
    assert unknown.status_code == 404


def test_feedback_batch_is_atomic(server, application):
    url, settings = server
    with _client(url) as client:
        ids = [client.post("/predict", json=application).json()["prediction_id"] for _ in range(3)]
        first = [{"prediction_id": ids[0], "outcome": "default"}]
        assert client.post("/feedback/batch", json={"outcomes": first}).json() == {
            "count": 1,
            "recorded": 1,
            "unchanged": 0,
        }
        unknown = "00000000-0000-4000-8000-000000000000"
        refused = client.post(
            "/feedback/batch",
            json={
                "outcomes": [
                    {"prediction_id": ids[1], "outcome": "repaid"},
                    {"prediction_id": unknown, "outcome": "repaid"},
                ]
            },
        )
        assert refused.status_code == 404
        assert unknown in refused.json()["detail"]
        conflict = client.post(
            "/feedback/batch",
            json={
                "outcomes": [
                    {"prediction_id": ids[2], "outcome": "repaid"},
                    {"prediction_id": ids[0], "outcome": "repaid"},
                ]
            },
        )
        assert conflict.status_code == 409
        done = client.post(
            "/feedback/batch",
            json={
                "outcomes": [
                    {"prediction_id": i, "outcome": o}
                    for i, o in zip(ids, ["default", "repaid", "repaid"], strict=True)
                ]
            },
        )
        assert done.json() == {"count": 3, "recorded": 2, "unchanged": 1}
    log = PredictionLog(settings.resolved_database_url)
    try:
        assert log.get_outcome(ids[1])["outcome"] == 0  # recorded only by the last batch
    finally:
        log.close()


def test_every_admin_route_requires_the_api_key(server):
    url, settings = server
    app = create_app(settings, load_model=False)
    admin_routes = [r for r in app.routes if ADMIN_TAG in (getattr(r, "tags", None) or [])]
    assert {r.path for r in admin_routes} == {
        "/models/{version}/promote",
        "/models/rollback",
        "/models/canary/halt",
        "/models/canary/resume",
    }
    for route in app.routes:
        path = getattr(route, "path", "")
        methods = getattr(route, "methods", set()) or set()
        mutating = methods & {"POST", "PUT", "PATCH", "DELETE"}
        if path.startswith("/models") and mutating:
            dependencies = [d.call.__name__ for d in route.dependant.dependencies]
            assert "require_admin" in dependencies, path
    with _client(url, key=None) as client:
        assert client.post("/models/rollback").status_code == 401
        assert client.post("/models/1/promote", headers={"X-API-Key": "wrong"}).status_code == 401


def test_promote_and_rollback_swap_the_served_version(server, trained, application):
    url, settings = server
    _, result = trained
    other = next(c for c in result.candidates if not c.champion)
    version = register_model(
        other.model_uri,
        settings,
        alias=None,
        tags={"parent_run_id": result.parent_run_id, "candidate": other.name, "seed": 42},
    )
    headers = {"X-API-Key": API_KEY}
    with _client(url) as client:
        # The same rules as `creditops promote`: no retrain cleared this version.
        refused = client.post(f"/models/{version}/promote", headers=headers)
        assert refused.status_code == 409, refused.text
        assert "not produced by a retrain" in refused.json()["detail"]
        assert client.get("/model").json()["model_version"] == "1"
        promoted = client.post(
            f"/models/{version}/promote",
            params={"force": "true", "reason": "validated offline"},
            headers=headers,
        )
        assert promoted.status_code == 200, promoted.text
        assert promoted.json() == {
            "previous": "1",
            "champion": version,
            "audit_id": promoted.json()["audit_id"],
        }
        assert client.get("/model").json()["model_version"] == version
        assert client.post("/predict", json=application).json()["model_version"] == version
        risky = {**application, "Records": "yes", "Income": 40, "Debt": 3000, "Seniority": 0}
        new_ids = [
            client.post("/predict", json=body).json()["prediction_id"]
            for body in (application, risky)
        ]
        back = client.post("/models/rollback", headers=headers)
        assert back.status_code == 200, back.text
        assert (back.json()["previous"], back.json()["champion"]) == (version, "1")
        assert client.get("/model").json()["model_version"] == "1"
        again = client.post("/models/rollback", headers=headers)
        assert again.status_code == 409
        assert "no previous champion" in again.json()["detail"]
        withdrawn = client.post(f"/models/{version}/promote", headers=headers)
        assert withdrawn.status_code == 409
        assert "rolled back" in withdrawn.json()["detail"]
        missing = client.post("/models/99/promote?force=true", headers=headers)
        assert missing.status_code == 404
        assert client.get("/model").json()["model_version"] == "1"
        assert {v["version"] for v in client.get("/models").json()} >= {"1", version}
        old_ids = [
            client.post("/predict", json=body).json()["prediction_id"]
            for body in (application, risky)
        ]
    # Every change of champion through the API, and every refusal, is in the retraining audit.
    with AuditLog.from_settings(settings) as audit:
        entries = audit.recent(20)
    trail = [(e.action, e.outcome, e.details["via"]) for e in reversed(entries)]
    assert trail == [
        ("promote", "refused", VIA),
        ("promote", "promoted", VIA),
        ("rollback", "rolled_back", VIA),
        ("rollback", "refused", VIA),
        ("promote", "refused", VIA),
        ("promote", "refused", VIA),
    ]
    assert entries[-2].id == promoted.json()["audit_id"]
    assert entries[-2].reasons == ["forced"]
    assert entries[-2].details["reason"] == "validated offline"
    assert entries[-3].details["reason"] is None
    assert (entries[-3].champion_version, entries[-3].challenger_version) == ("1", version)
    # Audit: every logged decision, from either version, is reproduced exactly by its version.
    log = PredictionLog(settings.resolved_database_url)
    try:
        records = [log.get(pid) for pid in [*new_ids, *old_ids]]
    finally:
        log.close()
    assert {r.model_version for r in records} == {"1", version}
    reproductions = reproduce_decisions(settings, records)
    assert all(r.identical for r in reproductions), reproductions
    assert any(r.reasons for r in reproductions)


def test_metrics_exposition(server, application):
    url, _ = server
    with _client(url) as client:
        client.post("/predict", json=application)
        text = client.get("/metrics").text
    assert "creditops_predictions_total" in text
    assert 'creditops_model_info{model_name="credit-default"' in text
    assert "creditops_http_request_duration_seconds_bucket" in text


def test_explain_an_application_and_a_logged_decision(server, application):
    url, _ = server
    with _client(url) as client:
        direct = client.post("/explain", json=application)
        assert direct.status_code == 200, direct.text
        body = direct.json()
        shap = body["shap"]
        total = shap["base_value"] + sum(c["contribution"] for c in shap["contributions"])
        assert total == pytest.approx(shap["raw_output"], abs=1e-5)
        assert body["lime"]["weights"]
        assert "found" in body["counterfactual"]
        pid = client.post("/predict", json=application).json()["prediction_id"]
        logged = client.post("/explain", json={"prediction_id": pid}).json()
        assert logged["probability_of_default"] == pytest.approx(body["probability_of_default"])
        unknown = client.post(
            "/explain", json={"prediction_id": "00000000-0000-4000-8000-000000000000"}
        )
        assert unknown.status_code == 404


def test_batch_accepts_a_csv_upload_and_names_bad_cells(server):
    url, _ = server
    frame, spec = load_builtin("credit_data")
    rows = frame.drop(columns=[spec.target, spec.id]).head(50)
    with _client(url) as client:
        ok = client.post(
            "/predict/batch",
            content=rows.to_csv(index=False).encode(),
            headers={"content-type": "text/csv"},
        )
        assert ok.status_code == 200, ok.text
        decisions = ok.json()["decisions"]
        assert len(decisions) == 50
        json_batch = client.post(
            "/predict/batch",
            json={"applications": json.loads(rows.to_json(orient="records"))},
        ).json()["decisions"]
        assert [d["probability_of_default"] for d in decisions] == pytest.approx(
            [d["probability_of_default"] for d in json_batch], abs=1e-12
        )
        broken = rows.astype({"Income": object})
        broken.iloc[7, broken.columns.get_loc("Income")] = "n/a"
        bad = client.post(
            "/predict/batch",
            content=broken.to_csv(index=False).encode(),
            headers={"content-type": "text/csv"},
        )
    assert bad.status_code == 422
    assert "applications[7].Income" in bad.json()["detail"]
    assert "n/a" not in bad.text


def test_reasons_from_the_fast_path_equal_those_from_the_pipeline(server):
    from creditops.evaluation.explain import explain_rows
    from creditops.serving.served import build_served_model

    _, settings = server
    served = build_served_model(settings, "1")
    assert served.scorer is not None
    frame, _ = load_builtin("credit_data")
    rows = frame[served.spec.features].head(40)
    for record in json.loads(rows.to_json(orient="records")):
        fast = served.explain_one(record)
        as_frame = pd.DataFrame([record], columns=served.spec.features)
        slow = explain_rows(served.explainer, as_frame)[0]
        assert [c.contribution for c in fast.contributions] == pytest.approx(
            [c.contribution for c in slow.contributions], abs=1e-9
        )
        assert fast.proba == pytest.approx(slow.proba, abs=1e-9)
        # given the fast path's probability, the raw output is the scorer's own margin
        given = served.explain_one(record, served.probability(record))
        assert given.raw_output == pytest.approx(slow.raw_output, abs=1e-9)
        assert given.proba == pytest.approx(slow.proba, abs=1e-9)


def test_reasons_straight_from_the_attributions_equal_those_of_the_explanation(server):
    from creditops.evaluation.explain import explain_rows
    from creditops.evaluation.reasons import default_reason_map, reason_codes
    from creditops.serving.served import build_served_model

    _, settings = server
    served = build_served_model(settings, "1")
    reason_map = default_reason_map()
    frame, _ = load_builtin("credit_data")
    records = json.loads(frame[served.spec.features].head(60).to_json(orient="records"))
    many = served.reason_codes_many(records, reason_map)
    explained = explain_rows(
        served.explainer, pd.DataFrame.from_records(records, columns=served.spec.features)
    )
    assert sum(bool(codes) for codes in many) > 30  # most rows have some risk-raising feature
    for record, codes, explanation in zip(records, many, explained, strict=True):
        want = reason_codes(explanation, served.spec, reason_map)
        assert [(r.code, r.feature) for r in codes] == [(r.code, r.feature) for r in want]
        assert [r.contribution for r in codes] == pytest.approx(
            [r.contribution for r in want], abs=1e-9
        )
        alone = served.reason_codes(record, reason_map)  # one row: same up to rounding
        assert [r.code for r in alone] == [r.code for r in codes]
        assert [r.contribution for r in alone] == pytest.approx(
            [r.contribution for r in codes], abs=1e-12
        )
