"""Overload: a worker admits a bounded number of requests and refuses the rest at once (503
with Retry-After and the error body), probes aside; a key past its rate limit gets 429. The
limiter and the middleware in process, then a real `creditops serve` driven at four times its
admission limit."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from starlette.types import Receive, Scope, Send

from creditops.config import Settings
from creditops.serving import app as app_module
from creditops.serving.admission import RETRY_AFTER_S, AdmissionControl, WorkerState
from creditops.serving.api.openapi import served_openapi
from creditops.serving.app import create_app
from creditops.serving.ratelimit import RateLimiter, default_burst
from helpers import applications, start_server

API_KEY = "overload-test-key-0123456789"
READER_KEY = "overload-reader-key-0123456789"


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# ------------------------------------------------------------------------- the rate limiter


def test_a_bucket_allows_its_burst_then_one_request_per_token() -> None:
    clock = Clock()
    limiter = RateLimiter(2.0, 3, clock=clock)
    assert [limiter.acquire("a") for _ in range(4)] == [0, 0, 0, 1]
    clock.now += 0.25  # half a token
    assert limiter.acquire("a") == 1
    clock.now += 0.25  # the token is whole
    assert limiter.acquire("a") == 0
    assert limiter.acquire("a") == 1
    clock.now += 60  # a quiet spell refills to the burst, never past it
    assert [limiter.acquire("a") for _ in range(4)] == [0, 0, 0, 1]


def test_retry_after_is_the_whole_seconds_until_the_next_token() -> None:
    clock = Clock()
    limiter = RateLimiter(0.2, 1, clock=clock)  # one request per 5 s
    assert limiter.acquire("a") == 0
    assert limiter.acquire("a") == 5
    clock.now += 1.5
    assert limiter.acquire("a") == 4  # 3.5 s, rounded up
    fast = RateLimiter(1000.0, 1, clock=clock)
    fast.acquire("a")
    assert fast.acquire("a") == 1  # never 0: Retry-After is whole seconds


def test_each_principal_has_its_own_bucket() -> None:
    limiter = RateLimiter(1.0, 1, clock=Clock())
    assert limiter.acquire("a") == 0
    assert limiter.acquire("a") == 1
    assert limiter.acquire("b") == 0


def test_the_burst_defaults_to_twice_the_rate_rounded_up() -> None:
    assert default_burst(10) == 20
    assert default_burst(0.3) == 1
    assert default_burst(2.5) == 5
    assert RateLimiter(10).burst == 20
    with pytest.raises(ValueError, match="positive"):
        RateLimiter(0)


def test_buckets_of_quiet_keys_are_dropped() -> None:
    clock = Clock()
    limiter = RateLimiter(10.0, 10, clock=clock)  # full again 1 s after the last request
    for n in range(1000):
        limiter.acquire(f"key-{n}")
    assert len(limiter) == 1000
    clock.now += 0.5
    limiter.acquire("busy")  # too soon: nobody is full yet
    assert len(limiter) == 1001
    clock.now += 0.6
    limiter.acquire("busy")
    assert len(limiter) == 1  # only the key still spending its tokens


def test_concurrent_callers_share_one_budget() -> None:
    limiter = RateLimiter(1.0, 50, clock=Clock())  # a frozen clock: no refill
    admitted: list[int] = []
    barrier = threading.Barrier(8)

    def call() -> None:
        barrier.wait()
        admitted.append(sum(limiter.acquire("shared") == 0 for _ in range(100)))

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(admitted) == 50


# ---------------------------------------------------------------- admission, in process


def _app_with_slow_route(home: Path, **settings: object) -> tuple[FastAPI, asyncio.Event]:
    """The real app (no model) with one more route that waits until told to finish."""
    app = create_app(Settings(home=home, **settings), load_model=False)
    release = asyncio.Event()

    async def slow() -> dict[str, str]:
        await release.wait()
        return {"status": "done"}

    app.add_api_route("/slow", slow)
    return app, release


def _shed(app: FastAPI, reason: str) -> float:
    value = app.state.metrics.registry.get_sample_value(
        "creditops_requests_shed_total", {"reason": reason}
    )
    return value or 0.0


def test_past_its_limit_a_worker_refuses_at_once_and_still_answers_probes(tmp_path) -> None:
    app, release = _app_with_slow_route(tmp_path / "home", max_in_flight=1)

    async def scenario() -> tuple[httpx.Response, ...]:
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://test") as client,
        ):
            slow = asyncio.create_task(client.get("/slow"))
            while app.state.worker.in_flight < 1:
                await asyncio.sleep(0.001)
            refused = await client.get("/slow", headers={"X-Request-ID": "burst-7"})
            health = await client.get("/health")
            ready = await client.get("/ready")  # admitted: 503 only because no model is loaded
            release.set()
            done = await slow
            after = await client.get("/slow")
        return refused, health, ready, done, after

    refused, health, ready, done, after = asyncio.run(scenario())
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == str(RETRY_AFTER_S)
    assert refused.headers["content-type"] == "application/json"
    assert refused.headers["x-request-id"] == "burst-7"  # inside the request-id policy
    assert refused.headers["x-content-type-options"] == "nosniff"
    body = refused.json()
    assert body["request_id"] == "burst-7"
    assert body["detail"].startswith("overloaded: this worker is handling its limit of 1")
    assert health.status_code == 200
    assert ready.json()["detail"] == "not ready: no model loaded"
    assert done.status_code == 200
    assert after.status_code == 200  # the slot was given back
    assert app.state.worker.in_flight == 0
    assert _shed(app, "overload") == 1


def test_a_request_that_fails_gives_its_slot_back() -> None:
    state = WorkerState()

    async def failing(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("boom")

    admission = AdmissionControl(failing, limit=1, state=state)
    scope = {"type": "http", "path": "/predict", "method": "POST", "headers": []}

    async def call() -> None:
        with pytest.raises(RuntimeError):
            await admission(scope, None, None)  # type: ignore[arg-type]

    asyncio.run(call())
    assert state.in_flight == 0
    with pytest.raises(ValueError, match="at least one"):
        AdmissionControl(failing, limit=0, state=state)


def test_a_draining_worker_closes_every_connection_and_is_not_ready(tmp_path) -> None:
    app = create_app(Settings(home=tmp_path / "home"), load_model=False)
    with TestClient(app) as client:
        assert "connection" not in client.get("/health").headers
        app.state.worker.start_draining()
        health = client.get("/health")
        ready = client.get("/ready")
    assert health.status_code == 200
    assert health.headers["connection"] == "close"
    assert ready.status_code == 503
    assert ready.json()["detail"] == "not ready: draining (this worker is stopping)"
    assert ready.headers["connection"] == "close"


def test_a_key_past_its_rate_limit_gets_429_with_retry_after(tmp_path) -> None:
    settings = Settings(
        home=tmp_path / "home",
        api_key=API_KEY,
        reader_keys=READER_KEY,
        rate_limit_per_second=0.5,
        rate_limit_burst=2,
    )
    app = create_app(settings, load_model=False)
    admin, reader = {"X-API-Key": API_KEY}, {"Authorization": f"Bearer {READER_KEY}"}
    with TestClient(app) as client:
        # Past the key check: 503 only because no model is loaded.
        assert [client.get("/model", headers=admin).status_code for _ in range(2)] == [503, 503]
        limited = client.get("/model", headers=admin)
        other = client.get("/model", headers=reader)  # another principal, another bucket
        anonymous = client.get("/model")  # no principal: refused before any bucket
        probe = client.get("/health")
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "2"
    assert limited.json()["detail"] == (
        "rate limit of the key 'CREDITOPS_API_KEY' exceeded (0.5 requests/s, bursts of 2 per "
        "worker); retry after 2 s"
    )
    assert other.status_code == 503
    assert anonymous.status_code == 401
    assert probe.status_code == 200
    assert _shed(app, "rate_limit") == 1
    assert _shed(app, "overload") == 0


def test_the_requests_in_flight_are_sampled_off_the_request_path(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(app_module, "_IN_FLIGHT_SAMPLE_S", 0.01)
    app = create_app(Settings(home=tmp_path / "home"), load_model=False)

    def sampled() -> float | None:
        return app.state.metrics.registry.get_sample_value("creditops_requests_in_flight")

    with TestClient(app):
        app.state.worker.in_flight = 3  # as the middleware would count them
        deadline = time.monotonic() + 5
        while sampled() != 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sampled() == 3
        app.state.worker.in_flight = 0


def test_the_api_document_names_both_refusals_where_they_can_answer(tmp_path) -> None:
    app = create_app(Settings(home=tmp_path / "home"), load_model=False)
    paths = served_openapi(app)["paths"]
    error = {"$ref": "#/components/schemas/ErrorBody"}
    predict = paths["/predict"]["post"]["responses"]
    assert predict["503"]["description"].endswith(
        "or overloaded: the worker handles CREDITOPS_MAX_IN_FLIGHT requests already"
    )
    assert "CREDITOPS_RATE_LIMIT_PER_SECOND" in predict["429"]["description"]
    for status in ("429", "503"):
        assert predict[status]["content"]["application/json"]["schema"] == error
        assert "Retry-After" in predict[status]["headers"]
    for probe in ("/health", "/ready"):  # always admitted, and no key to limit
        assert "429" not in paths[probe]["get"]["responses"]
    assert "overloaded" not in paths["/ready"]["get"]["responses"]["503"]["description"]


def test_without_a_rate_the_service_has_no_limiter(tmp_path) -> None:
    app = create_app(Settings(home=tmp_path / "home"), load_model=False)
    assert app.state.rate_limiter is None


# --------------------------------------------------------- a real server, four times over

MAX_IN_FLIGHT = 4
CLIENTS = 16
LOAD_SECONDS = 8.0
RATE, BURST = 80.0, 10


@dataclass(frozen=True)
class Answer:
    status: int | str  # the HTTP status, or the name of the transport error
    seconds: float = 0.0
    retry_after: str | None = None
    prediction_id: str | None = None


def _drive(url: str, seconds: float) -> list[Answer]:
    """CLIENTS keep-alive clients posting decisions for ``seconds``, all starting at once and
    each sending its next request as soon as it has an answer (a refusal's Retry-After is not
    waited out)."""
    stop = threading.Event()
    start = threading.Barrier(CLIENTS)
    answers: list[Answer] = []
    lock = threading.Lock()
    bodies = applications(50)

    def client() -> None:
        with httpx.Client(base_url=url, timeout=30, headers={"X-API-Key": API_KEY}) as http:
            start.wait()
            i = 0
            while not stop.is_set():
                started = time.perf_counter()
                try:
                    response = http.post("/predict", json=bodies[i % len(bodies)])
                except httpx.HTTPError as error:
                    answer = Answer(type(error).__name__)
                else:
                    answer = Answer(
                        response.status_code,
                        time.perf_counter() - started,
                        response.headers.get("retry-after"),
                        response.json()["prediction_id"] if response.is_success else None,
                    )
                with lock:
                    answers.append(answer)
                i += 1

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    return answers


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _metric(text: str, name: str, labels: dict[str, str]) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_server_at_four_times_its_limit_sheds_the_excess_and_logs_what_it_admits(
    trained_store: Settings,
) -> None:
    home = trained_store.home
    process, url = start_server(
        home,
        API_KEY,
        CREDITOPS_MAX_IN_FLIGHT=str(MAX_IN_FLIGHT),
        CREDITOPS_RATE_LIMIT_PER_SECOND=str(RATE),
        CREDITOPS_RATE_LIMIT_BURST=str(BURST),
        CREDITOPS_DRAIN_SECONDS="0",
    )
    try:
        started = time.monotonic()
        answers = _drive(url, LOAD_SECONDS)
        elapsed = time.monotonic() - started
        metrics = httpx.get(f"{url}/metrics", timeout=10).text
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    statuses = Counter(answer.status for answer in answers)
    admitted = [answer.seconds for answer in answers if answer.status == 200]
    acknowledged = [answer.prediction_id for answer in answers if answer.status == 200]
    with sqlite3.connect(home / "predictions.db") as connection:
        logged = Counter(row[0] for row in connection.execute("SELECT id FROM predictions"))
    p50, p99 = _percentile(admitted, 0.5), _percentile(admitted, 0.99)
    other = len(answers) - statuses[200] - statuses[503] - statuses[429]
    print(
        f"\nmax_in_flight={MAX_IN_FLIGHT}, {CLIENTS} clients, {elapsed:.1f} s, "
        f"rate limit {RATE:g}/s burst {BURST}\n"
        f"{'sent':>7} {'200':>7} {'503':>7} {'429':>7} {'other':>6} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'logged':>7}\n"
        f"{len(answers):>7} {statuses[200]:>7} {statuses[503]:>7} {statuses[429]:>7} "
        f"{other:>6} {p50 * 1000:>7.1f} {p99 * 1000:>7.1f} {sum(logged.values()):>7}"
    )
    assert other == 0, statuses
    assert statuses[200] > 100, statuses
    assert statuses[503] > 0, statuses
    assert statuses[429] > 0, statuses
    refused = [answer for answer in answers if answer.status != 200]
    assert all(
        answer.retry_after is not None and answer.retry_after.isdigit() for answer in refused
    )
    assert p99 < 2.0  # a sanity bound: the admitted are served, not queued behind the rest
    # A token bucket never lets through more than its burst plus what refilled meanwhile.
    assert statuses[200] <= BURST + RATE * (elapsed + 1.0)
    assert len(set(acknowledged)) == len(acknowledged)
    assert all(logged[pid] == 1 for pid in acknowledged)
    assert sum(logged.values()) == len(acknowledged)  # nothing refused was logged
    assert (
        _metric(metrics, "creditops_requests_shed_total", {"reason": "overload"}) == (statuses[503])
    )
    assert (
        _metric(metrics, "creditops_requests_shed_total", {"reason": "rate_limit"})
        == (statuses[429])
    )
