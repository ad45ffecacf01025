"""The traffic simulator against a real decision service: uvicorn on loopback in front of a copy
of the trained store, with a real SQLite decision log read back after each run."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from creditops.config import Settings
from creditops.data.datasets import load_builtin
from creditops.exceptions import ConfigurationError, CreditOpsError
from creditops.simulation import (
    ServedSpec,
    ServiceUnavailableError,
    SimulationReport,
    available_scenarios,
    get_scenario,
    simulate,
)
from creditops.store.predlog import PredictionLog
from helpers import free_port, serving

pytestmark = pytest.mark.slow

ROWS = 300

API_KEY = "simulate-test-key-0123456789"


@pytest.fixture(scope="module")
def server(trained, tmp_path_factory) -> Iterator[tuple[str, Settings]]:
    """A copy of the trained store, so the decisions and outcomes logged here stay here."""
    source, _ = trained
    home = tmp_path_factory.mktemp("simulate-home") / "home"
    shutil.copytree(source.home, home)
    settings = Settings(home=home, api_key=API_KEY)
    with serving(settings) as url:
        yield url, settings


def _run(
    server, scenario: str, rows: int = ROWS, **options
) -> tuple[SimulationReport, pd.DataFrame]:
    """One simulation and the decisions it left in the log (read back by time)."""
    url, settings = server
    before = datetime.now(UTC)
    report = simulate(url, scenario, rows, key=API_KEY, **options)
    log = PredictionLog.for_home(settings.home)
    try:
        window = log.window(since=before)
    finally:
        log.close()
    return report, window


@pytest.fixture(scope="module")
def baseline(server) -> tuple[SimulationReport, pd.DataFrame]:
    return _run(server, "none", seed=7, batch_size=128)


@pytest.fixture(scope="module")
def dataset_default_rate() -> float:
    frame, spec = load_builtin("credit_data")
    return float((frame[spec.target] == spec.positive).mean())


def _column(window: pd.DataFrame, name: str, kind: str = "feature_columns") -> pd.Series:
    return window[window.attrs[kind][name]]


def test_none_decides_every_row_and_feeds_back_true_outcomes(baseline, dataset_default_rate):
    report, window = baseline
    assert report.scenario == "none"
    assert report.rows_sent == report.rows_decided == ROWS
    assert report.errors == {}
    assert report.failures == []
    assert report.predict_requests == 3  # 300 rows in chunks of 128
    assert sum(report.decisions.values()) == ROWS
    assert set(report.decisions) <= {"approve", "refer", "decline"}
    assert report.feedback_sent == ROWS
    assert report.feedback_failed == 0
    assert report.ok
    # What the log holds is what the report says.
    assert len(window) == ROWS
    assert window["probability"].mean() == pytest.approx(report.mean_probability, abs=1e-9)
    assert (window["decision"] == "approve").mean() == pytest.approx(report.approval_rate)
    labelled = window[window["outcome"].notna()]
    assert len(labelled) == ROWS
    realised = float(labelled["outcome"].astype(int).mean())
    assert realised == pytest.approx(report.feedback_default_rate)
    assert realised == pytest.approx(report.true_default_rate)
    # 300 draws: the standard error of the rate is about 0.026.
    assert abs(realised - dataset_default_rate) < 0.08
    # Protected attributes reach the log (for fairness monitoring).
    assert _column(window, "Age", "protected_columns").notna().all()
    data = report.to_dict()
    assert data["rows_decided"] == ROWS
    assert isinstance(data["started_at"], str)
    assert data["requests_per_second"] > 0


def test_missing_values_are_sent_absent_and_imputed(baseline):
    _, window = baseline
    imputed = window["imputed"].map(lambda fields: "Income" in fields)
    # Income is missing in about 8.6% of credit_data: some drawn rows lack it.
    assert imputed.any()
    assert _column(window, "Income")[imputed].isna().all()


def _sent(window: pd.DataFrame) -> pd.DataFrame:
    """The applications a window holds, in a fixed order (the log orders ties by random id)."""
    columns = [
        *window.attrs["feature_columns"].values(),
        *window.attrs["protected_columns"].values(),
    ]
    frame = window[columns].astype(str)
    return frame.sort_values(columns).reset_index(drop=True)


def test_the_same_seed_sends_the_same_applications(server):
    report, first = _run(server, "none", rows=60, seed=5, batch_size=60, feedback=False)
    assert report.feedback_sent == 0
    assert report.feedback_requests == 0
    assert first["outcome"].isna().all()
    # A seeded draw does not depend on the batch size ...
    again = _run(server, "none", rows=60, seed=5, batch_size=7, feedback=False)
    assert again[0].predict_requests == 9
    pd.testing.assert_frame_equal(_sent(first), _sent(again[1]))
    # ... and another seed draws other applicants.
    other = _run(server, "none", rows=60, seed=6, feedback=False)[1]
    assert not _sent(first).equals(_sent(other))


def test_income_shock_lowers_income_within_what_the_service_accepts(server, baseline):
    _, plain = baseline
    report, shocked = _run(server, "income_shock", seed=7, feedback=False)
    assert report.errors == {}
    assert report.rows_decided == ROWS
    income, plain_income = _column(shocked, "Income"), _column(plain, "Income")
    # Same seed, same applicants: only the shock differs.
    assert income.mean() / plain_income.mean() == pytest.approx(0.6, abs=0.01)
    ratio = _column(shocked, "Expenses").mean() / _column(plain, "Expenses").mean()
    assert ratio == pytest.approx(1.2, abs=0.02)
    assert (income.dropna() >= 0).all()
    assert (income.dropna() == income.dropna().round()).all()
    # Poorer applicants look riskier to the model.
    assert report.mean_probability > baseline[0].mean_probability


def test_new_segment_sends_young_thin_file_applicants(server, baseline):
    report, window = _run(server, "new_segment", seed=3, feedback=False)
    assert report.errors == {}
    assert report.rows_decided == ROWS
    age = _column(window, "Age", "protected_columns").astype(float)
    assert (age < 30).mean() > 0.8
    thin = (
        _column(window, "Seniority").le(2)
        & _column(window, "Home").eq("rent")
        & _column(window, "Job").isin(["partime", "freelance"])
    )
    assert 0.6 < thin.mean() < 0.85
    plain_age = _column(baseline[1], "Age", "protected_columns").astype(float)
    assert (plain_age < 30).mean() < 0.45


def test_rising_defaults_feeds_back_more_defaults(server, baseline):
    calls: list[tuple[str, int, int]] = []
    report, window = _run(
        server,
        "rising_defaults",
        seed=7,
        feedback_delay_s=0.3,
        progress=lambda *call: calls.append(call),
    )
    assert calls[0] == ("predict", ROWS, ROWS)  # one batch of the default 500
    feedback_done = [done for stage, done, _ in calls if stage == "feedback"]
    assert feedback_done == [ROWS]  # one /feedback/batch request for all the outcomes
    assert report.feedback_requests == 1
    # The outcomes were observed after the delay, not with the decisions.
    delay = window["observed_at"].min() - window["created_at"].max()
    assert delay.total_seconds() >= 0.3
    assert report.seconds >= 0.3
    assert report.errors == {}
    assert report.feedback_sent == ROWS
    labelled = window[window["outcome"].notna()]
    assert len(labelled) == ROWS
    realised = float(labelled["outcome"].astype(int).mean())
    assert realised == pytest.approx(report.feedback_default_rate)
    # True defaults stay defaults; about 30% of the goods turn bad.
    true_rate = report.true_default_rate
    assert realised == pytest.approx(true_rate + (1 - true_rate) * 0.3, abs=0.06)
    assert realised > 0.45
    assert realised > baseline[0].feedback_default_rate + 0.15
    # The applications themselves do not move.
    assert report.mean_probability == pytest.approx(baseline[0].mean_probability, abs=1e-9)


def test_a_rejected_batch_is_counted_with_the_services_detail(server):
    url, _ = server
    # The service refuses batches above its maximum (10,000) as one 422.
    report = simulate(url, "none", 10_001, batch_size=10_001, feedback=False, seed=1, key=API_KEY)
    assert report.rows_decided == 0
    assert report.errors == {"422": 1}
    assert report.failures[0].endpoint == "/predict/batch"
    assert report.failures[0].rows == 10_001
    assert "invalid batch" in report.failures[0].detail
    assert report.decisions == {}
    assert report.approval_rate is None
    assert not report.ok


def test_an_unknown_scenario_is_a_configuration_error_listing_the_names():
    with pytest.raises(ConfigurationError, match="available: income_shock, new_segment, none"):
        simulate("http://127.0.0.1:9", "recession", 10)
    assert available_scenarios() == ["income_shock", "new_segment", "none", "rising_defaults"]
    assert get_scenario("none").name == "none"


@pytest.mark.parametrize("options", [{"rows": 0}, {"batch_size": 0}, {"feedback_delay_s": -1}])
def test_bad_arguments_are_configuration_errors(options):
    arguments = {"rows": 10} | options
    rows = arguments.pop("rows")
    with pytest.raises(ConfigurationError):
        simulate("http://127.0.0.1:9", "none", rows, **arguments)


def test_a_service_that_is_down_is_one_clear_error():
    port = free_port()  # nothing listens there
    with pytest.raises(ServiceUnavailableError, match=f"cannot reach .*127.0.0.1:{port}"):
        simulate(f"http://127.0.0.1:{port}", "none", 10, api_timeout=5)
    assert issubclass(ServiceUnavailableError, CreditOpsError)


def test_the_pool_leaves_out_rows_the_service_would_refuse():
    frame, _ = load_builtin("credit_data")
    served = ServedSpec.model_validate(
        {
            "numeric": ["Income"],
            "categorical": ["Home"],
            "protected": ["Age"],
            "schema": [
                {
                    "name": "Income",
                    "kind": "numeric",
                    "missing_rate": 0.1,
                    "minimum": 100,
                    "maximum": 200,
                    "integer": True,
                },
                {
                    "name": "Home",
                    "kind": "categorical",
                    "missing_rate": 0.0,
                    "categories": ["owner", "rent"],
                },
            ],
        }
    )
    keep = served.acceptable(frame)
    kept = frame[keep]
    # Income accepted in [50, 250] (range 100 widened by half of it each side) or missing.
    income = kept["Income"].dropna()
    assert income.between(50, 250).all()
    assert kept["Income"].isna().any()
    assert set(kept["Home"]) == {"owner", "rent"}  # required: never missing, known only
    expected = (frame["Income"].between(50, 250) | frame["Income"].isna()) & frame["Home"].isin(
        ["owner", "rent"]
    )
    assert keep.equals(expected)
    shocked = pd.DataFrame({"Income": [10.4, 120.6, np.nan, 900.0]})
    served.clip(shocked, "Income")
    assert shocked["Income"].tolist()[:2] == [50.0, 121.0]
    assert np.isnan(shocked["Income"][2])
    assert shocked["Income"][3] == 250.0


def test_connection_failures_after_the_start_are_counted(server):
    """A service that answers GET /model and then drops every connection: the run finishes
    and the report counts the failed requests instead of raising."""
    import http.server
    import json

    import httpx

    url, _ = server
    model = json.dumps(
        httpx.get(f"{url}/model", timeout=30, headers={"X-API-Key": API_KEY}).json()
    ).encode()

    class Dropping(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(model)))
            self.end_headers()
            self.wfile.write(model)

        def do_POST(self) -> None:
            self.close_connection = True  # no response at all

        def log_message(self, *args) -> None:
            pass

    broken = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Dropping)
    thread = threading.Thread(target=broken.serve_forever, daemon=True)
    thread.start()
    try:
        report = simulate(
            f"http://127.0.0.1:{broken.server_address[1]}", "none", 50, batch_size=20, seed=2
        )
    finally:
        broken.shutdown()
        broken.server_close()
    assert report.rows_sent == 50
    assert report.rows_decided == 0
    assert report.errors == {"connection": 3}
    assert [f.rows for f in report.failures] == [20, 20, 10]
    assert report.feedback_requests == 0
    assert not report.ok


def test_a_dataset_that_does_not_fit_the_served_model_is_refused(server):
    url, _ = server
    with pytest.raises(ConfigurationError, match="lacks feature\\(s\\) the served model requires"):
        simulate(url, "none", 10, dataset="lending_club", key=API_KEY)
