"""What every response of the real app (create_app) carries: the security headers, the request
id (echoed, logged, in 5xx bodies), no CORS unless configured and a generic 500 for an unhandled
exception. The body limits behind this middleware are tested over real HTTP with a model
(test_app, test_feedback)."""

from __future__ import annotations

import logging
import logging.config
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from creditops.config import Settings, get_settings, reset_settings
from creditops.exceptions import ConfigurationError
from creditops.serving.api import ops
from creditops.serving.api.decisions import decide_in_thread
from creditops.serving.app import create_app
from creditops.serving.middleware import DASHBOARD_CSP, RequestIdFilter, current_request_id
from creditops.serving.server import log_config

GENERATED_ID = re.compile(r"[0-9a-f]{32}")
ORIGIN = "https://lender.example"
COMMON = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("middleware") / "home"


@pytest.fixture(scope="module")
def client(home: Path) -> Iterator[TestClient]:
    """The whole app with its lifespan (decision log, decision threads), no model loaded."""
    app = create_app(Settings(home=home, max_body_bytes=1024), load_model=False)
    with TestClient(app) as client:
        yield client


def _app(home: Path, **settings: object) -> FastAPI:
    return create_app(Settings(home=home, **settings), load_model=False)


def _assert_common(headers: object) -> None:
    for name, value in COMMON.items():
        assert headers[name] == value, name  # type: ignore[index]
    assert "camera=()" in headers["permissions-policy"]  # type: ignore[index]


def test_an_api_response_carries_the_policy_and_is_never_stored(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    _assert_common(response.headers)
    assert response.headers["content-security-policy"] == "frame-ancestors 'none'"
    assert response.headers["cache-control"] == "no-store"
    assert "strict-transport-security" not in response.headers  # plain http
    assert GENERATED_ID.fullmatch(response.headers["x-request-id"])


def test_errors_carry_the_policy_and_a_5xx_body_names_the_request(client: TestClient) -> None:
    missing = client.get("/no-such-route")
    assert missing.status_code == 404
    _assert_common(missing.headers)
    assert "request_id" not in missing.json()  # a client error needs no log look-up
    not_ready = client.get("/ready", headers={"X-Request-ID": "gateway-42"})
    assert not_ready.status_code == 503
    _assert_common(not_ready.headers)
    assert not_ready.headers["x-request-id"] == "gateway-42"
    assert not_ready.json()["request_id"] == "gateway-42"


def test_dashboard_pages_keep_their_strict_csp(client: TestClient) -> None:
    page = client.get("/ui/login")
    assert page.status_code == 200
    _assert_common(page.headers)
    assert page.headers["content-security-policy"] == DASHBOARD_CSP
    script_sources = DASHBOARD_CSP.split("script-src")[1].split(";")[0]
    assert script_sources.split() == ["'self'"]
    assert page.headers["cache-control"] == "no-store"
    root = client.get("/", follow_redirects=False)
    assert root.headers["content-security-policy"] == DASHBOARD_CSP


@pytest.mark.parametrize("path", ["/ui/static/app.css", "/docs/assets/swagger-ui.css"])
def test_static_files_stay_cacheable(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    _assert_common(response.headers)
    assert "no-store" not in response.headers.get("cache-control", "")
    assert response.headers["x-request-id"]


def test_hsts_only_over_https(home: Path) -> None:
    app = _app(home)
    with TestClient(app, base_url="https://testserver") as secure:
        hsts = secure.get("/health").headers["strict-transport-security"]
    assert hsts.startswith("max-age=31536000")
    assert "strict-transport-security" not in TestClient(app).get("/health").headers


def test_a_well_formed_request_id_is_echoed(client: TestClient) -> None:
    for given in ("4bf92f3577b34da6a3ce929d0e0e4736", "req.2026-12-06:a_b-c", "x" * 128):
        response = client.get("/health", headers={"X-Request-ID": given})
        assert response.headers["x-request-id"] == given


@pytest.mark.parametrize(
    "given", ["x" * 129, "two words", "<script>", "id;drop", "-leading-dash", "", "caf\u00e9"]
)
def test_a_malformed_request_id_is_replaced(client: TestClient, given: str) -> None:
    response = client.get("/health", headers={"X-Request-ID": given.encode()})
    returned = response.headers["x-request-id"]
    assert returned != given
    assert GENERATED_ID.fullmatch(returned)


def test_each_request_gets_its_own_id(client: TestClient) -> None:
    ids = {client.get("/health").headers["x-request-id"] for _ in range(20)}
    assert len(ids) == 20


def test_the_decision_threads_see_the_request_id(home: Path) -> None:
    """What a decision logs from its thread names its request, like the event loop's logs."""
    app = _app(home)

    async def thread_id(request: Request) -> dict[str, str | None]:
        return {"seen": await decide_in_thread(request, current_request_id)}

    app.add_api_route("/test-thread-id", thread_id)
    with TestClient(app) as client:
        response = client.get("/test-thread-id", headers={"X-Request-ID": "decide-7"})
    assert response.json() == {"seen": "decide-7"}


def test_no_cross_origin_access_by_default(client: TestClient) -> None:
    simple = client.get("/health", headers={"Origin": ORIGIN})
    assert "access-control-allow-origin" not in simple.headers
    preflight = client.options(
        "/predict", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status_code == 405
    assert "access-control-allow-origin" not in preflight.headers


def test_configured_origins_and_only_those_get_cors(home: Path) -> None:
    app = _app(home, cors_origins=f"{ORIGIN}, http://localhost:3000")
    client = TestClient(app)
    preflight = client.options(
        "/predict",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, x-api-key",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    assert "x-api-key" in preflight.headers["access-control-allow-headers"].lower()
    _assert_common(preflight.headers)  # a preflight passes through the same policy
    simple = client.get("/health", headers={"Origin": "http://localhost:3000"})
    assert simple.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert "x-request-id" in simple.headers["access-control-expose-headers"].lower()
    other = client.get("/health", headers={"Origin": "https://attacker.example"})
    assert "access-control-allow-origin" not in other.headers
    refused = client.options(
        "/predict",
        headers={"Origin": "https://attacker.example", "Access-Control-Request-Method": "POST"},
    )
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers


@pytest.mark.parametrize(
    "origins",
    ["*", "https://lender.example/", "https://lender.example/app", "lender.example", "https://*.x"],
)
def test_settings_refuse_anything_but_exact_origins(
    origins: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CREDITOPS_HOME", str(tmp_path))
    monkeypatch.setenv("CREDITOPS_CORS_ORIGINS", f"http://localhost:3000,{origins}")
    reset_settings()
    try:
        with pytest.raises(ConfigurationError, match="CREDITOPS_CORS_ORIGINS"):
            get_settings()
    finally:
        reset_settings()


def test_origin_list_reads_every_origin() -> None:
    settings = Settings(cors_origins=" https://a.example ,http://[::1]:8080,, ")
    assert settings.cors_origin_list == ("https://a.example", "http://[::1]:8080")
    assert Settings().cors_origin_list == ()


@pytest.fixture
def failing_client(home: Path, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    """The real app whose ``/metrics`` route fails inside, as a broken collector would."""

    def broken(*_: object) -> None:
        raise RuntimeError("collector at /srv/secret/path refused: password=hunter2")

    monkeypatch.setattr(ops, "exposition", broken)
    return TestClient(_app(home), raise_server_exceptions=False)


def test_an_unhandled_exception_is_a_generic_500_with_the_request_id(
    failing_client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.handler.addFilter(RequestIdFilter())
    with caplog.at_level(logging.ERROR, logger="creditops"):
        response = failing_client.get("/metrics", headers={"X-Request-ID": "incident-9"})
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "detail": "internal error: the server could not answer this request",
        "errors": [],
        "request_id": "incident-9",
    }
    for leak in ("Traceback", "RuntimeError", "secret", "hunter2", ".py"):
        assert leak not in response.text
    _assert_common(response.headers)
    assert response.headers["x-request-id"] == "incident-9"
    [record] = [r for r in caplog.records if r.exc_info]
    assert record.request_id == "incident-9"  # type: ignore[attr-defined]
    assert "hunter2" in str(record.exc_info[1])  # the server's log keeps the whole story


def test_a_generated_id_reaches_the_500_body(failing_client: TestClient) -> None:
    response = failing_client.get("/metrics")
    assert response.status_code == 500
    assert GENERATED_ID.fullmatch(response.json()["request_id"])
    assert response.json()["request_id"] == response.headers["x-request-id"]


@pytest.fixture
def served_logging() -> Iterator[None]:
    """The served process's logging configuration, undone afterwards."""
    names = ["creditops", "uvicorn", "uvicorn.error", "uvicorn.access"]
    saved = {
        name: (list(lg.handlers), lg.level, lg.propagate, list(lg.filters))
        for name in names
        for lg in [logging.getLogger(name)]
    }
    yield
    for name, (handlers, level, propagate, filters) in saved.items():
        lg = logging.getLogger(name)
        lg.handlers[:], lg.level, lg.propagate, lg.filters[:] = handlers, level, propagate, filters


def test_the_served_log_names_the_request_of_each_line(
    capsys: pytest.CaptureFixture[str], served_logging: None, failing_client: TestClient
) -> None:
    logging.config.dictConfig(log_config("warning"))  # as `creditops serve` configures it
    failing_client.get("/metrics", headers={"X-Request-ID": "trace-me-1"})
    logging.getLogger("creditops.test").warning("outside any request")
    err = capsys.readouterr().err
    failure = next(line for line in err.splitlines() if "unhandled error" in line)
    assert "[request trace-me-1]" in failure
    assert "GET /metrics" in failure
    assert "RuntimeError: collector at /srv/secret/path" in err  # the traceback, server-side
    assert "outside any request" in err
    assert "[request -] outside any request" in err
