"""Stopping without failing a request: a worker drains on SIGTERM (not ready, still serving,
``Connection: close``, then exit 0 with everything logged), and `creditops serve --workers 2`
replaces every worker on SIGHUP under load without one failed request. Beneath both, the
sockets: why a replacement must receive its predecessor's listening socket, and how a socket
that closes for good refuses new connections instead of resetting queued ones."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from creditops.config import Settings
from creditops.serving.admission import WorkerState
from creditops.serving.server import (
    GRACEFUL_SHUTDOWN_S,
    DrainingServer,
    listening_socket,
    refuse_new_connections,
)
from helpers import ClientThreads, applications, free_port, start_server

API_KEY = "drain-test-key-0123456789"
DRAIN_S = 1.0

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="Linux socket behaviour")


# ------------------------------------------------------------------ the server's signals


def _server(drain_seconds: float = DRAIN_S, **kwargs: object) -> DrainingServer:
    app = FastAPI()
    return DrainingServer(
        uvicorn.Config(app),
        app=app,
        worker=WorkerState(),
        drain_seconds=drain_seconds,
        **kwargs,  # type: ignore[arg-type]
    )


def test_the_first_sigterm_drains_and_the_window_then_stops_the_server() -> None:
    server = _server(drain_seconds=0.05)
    server.started = True
    server.handle_exit(signal.SIGTERM, None)
    assert server.worker.draining
    assert not server.should_exit  # still serving
    assert not asyncio.run(server.on_tick(1))
    time.sleep(0.06)
    assert asyncio.run(server.on_tick(1))  # the window is over
    assert server._captured_signals == []  # nothing raised again after the shutdown: exit 0


def test_a_second_sigterm_or_a_sigint_stops_at_once() -> None:
    server = _server()
    server.started = True
    server.handle_exit(signal.SIGTERM, None)
    server.handle_exit(signal.SIGTERM, None)
    assert server.should_exit
    interrupted = _server()
    interrupted.started = True
    interrupted.handle_exit(signal.SIGINT, None)  # uvicorn's own handling
    assert interrupted.should_exit
    assert not interrupted.worker.draining


def test_without_a_window_or_before_serving_sigterm_stops_at_once() -> None:
    for server in (_server(drain_seconds=0), _server()):
        server.started = server.drain_seconds == 0  # the other one is still starting
        server.handle_exit(signal.SIGTERM, None)
        assert server.should_exit
        assert not server.worker.draining


def test_a_worker_says_it_is_ready_once_its_model_serves() -> None:
    ready = threading.Event()
    server = _server(ready=ready)
    server.started = True
    asyncio.run(server.on_tick(1))
    assert not ready.is_set()  # no model loaded yet

    class Loaded:
        ready = True

    server.app.state.service = Loaded()
    asyncio.run(server.on_tick(1))
    assert ready.is_set()


# ------------------------------------------------------------------------ the sockets


def _queued_clients(port: int, n: int) -> list[socket.socket]:
    """``n`` connections the kernel completes into the accept queues, each having sent a
    request (nobody has accepted them yet)."""
    clients = []
    for _ in range(n):
        client = socket.create_connection(("127.0.0.1", port), timeout=2)
        client.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        clients.append(client)
    return clients


def _accept_all(listener: socket.socket) -> list[socket.socket]:
    listener.settimeout(0.2)
    accepted = []
    while True:
        try:
            accepted.append(listener.accept()[0])
        except TimeoutError:
            return accepted


def _was_reset(client: socket.socket) -> bool:
    """Whether the connection was reset (on loopback the reset arrives with the close)."""
    client.setblocking(False)
    try:
        client.recv(1)
    except ConnectionResetError:
        return True
    except BlockingIOError:  # open, nothing to read yet
        return False
    return False


@linux_only
def test_closing_a_reuseport_listener_resets_its_queued_connections() -> None:
    """The trap a socket per worker falls into: a worker that stops closes its listener, and
    what the kernel had queued on it is reset, requests already sent."""
    port = free_port()
    old = listening_socket("127.0.0.1", port, reuse_port=True)
    other = listening_socket("127.0.0.1", port, reuse_port=True)
    clients = _queued_clients(port, 40)  # hashed over both listeners
    old.close()
    accepted = _accept_all(other)
    reset = sum(_was_reset(client) for client in clients)
    assert reset > 0
    assert reset + len(accepted) == len(clients)
    for sock in (*clients, *accepted, other):
        sock.close()


@linux_only
def test_a_slot_socket_keeps_its_queue_when_the_old_worker_closes_its_copy() -> None:
    """The supervisor's way: the slot's socket outlives its workers; the old worker and its
    replacement each hold a duplicate, and the old one closing its copy loses nothing."""
    port = free_port()
    slot = listening_socket("127.0.0.1", port, reuse_port=True)
    old_copy, new_copy = slot.dup(), slot.dup()
    clients = _queued_clients(port, 40)
    old_copy.close()
    accepted = _accept_all(new_copy)
    assert len(accepted) == len(clients)
    assert not any(_was_reset(client) for client in clients)
    for sock in (*clients, *accepted, new_copy, slot):
        sock.close()


@linux_only
def test_a_listener_closing_for_good_refuses_new_connections_and_keeps_the_queued() -> None:
    port = free_port()
    listener = listening_socket("127.0.0.1", port, reuse_port=False)
    queued = _queued_clients(port, 3)
    assert refuse_new_connections(listener)
    late = socket.socket()
    late.settimeout(0.3)
    with pytest.raises(TimeoutError):  # its handshake is dropped, not queued
        late.connect(("127.0.0.1", port))
    late.close()
    accepted = _accept_all(listener)
    assert len(accepted) == 3  # what was queued is still served
    assert all(conn.recv(64).startswith(b"GET /health") for conn in accepted)
    listener.close()
    with pytest.raises(ConnectionRefusedError):  # a client's retry: refused, never reset
        socket.create_connection(("127.0.0.1", port), timeout=2)
    for sock in (*queued, *accepted):
        sock.close()


# ----------------------------------------------------------------- real servers, under load


@dataclass(frozen=True)
class Answer:
    sent: float  # monotonic
    done: float
    status: int | str  # the HTTP status, or the name of the transport error
    connection: str | None = None
    prediction_id: str | None = None
    error: str = ""


class Load(ClientThreads):
    """Clients posting decisions until stopped, half on fresh connections and half keep-alive;
    a client stops at a refused connection (nothing is listening any more)."""

    def __init__(self, url: str, clients: int, pause_s: float = 0.0) -> None:
        self.url, self.pause_s = url, pause_s
        super().__init__(clients)

    def client(self, n: int) -> None:
        bodies = applications(50)
        limits = httpx.Limits(max_keepalive_connections=0 if n % 2 == 0 else 1)
        with httpx.Client(
            base_url=self.url, timeout=30, headers={"X-API-Key": API_KEY}, limits=limits
        ) as client:
            i = 0
            while not self.stop.is_set():
                sent = time.monotonic()
                try:
                    response = client.post("/predict", json=bodies[i % len(bodies)])
                except httpx.HTTPError as error:
                    refused = isinstance(error, httpx.ConnectError) and "refused" in str(error)
                    name = "refused" if refused else type(error).__name__
                    self.record(Answer(sent, time.monotonic(), name, error=str(error)))
                    return
                self.record(
                    Answer(
                        sent,
                        time.monotonic(),
                        response.status_code,
                        response.headers.get("connection"),
                        response.json().get("prediction_id"),
                    )
                )
                i += 1
                if self.pause_s:
                    time.sleep(self.pause_s)


def _logged(home: Path) -> Counter:
    with sqlite3.connect(home / "predictions.db") as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return Counter(row[0] for row in connection.execute("SELECT id FROM predictions"))


def _assert_logged_once(home: Path, answers: list[Answer]) -> int:
    acknowledged = [a.prediction_id for a in answers if a.status == 200]
    logged = _logged(home)
    assert len(set(acknowledged)) == len(acknowledged)
    assert all(logged[pid] == 1 for pid in acknowledged)
    assert sum(logged.values()) == len(acknowledged)  # nothing unacknowledged either
    return sum(logged.values())


def _worker_pids(url: str, probes: int = 30) -> set[int]:
    """The workers answering now (fresh connections: SO_REUSEPORT spreads them)."""
    return {httpx.get(f"{url}/health", timeout=10).json()["pid"] for _ in range(probes)}


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_sigterm_drains_a_worker_under_load(trained_store: Settings) -> None:
    home = trained_store.home
    process, url = start_server(home, API_KEY, CREDITOPS_DRAIN_SECONDS=str(DRAIN_S))
    try:
        with Load(url, 4) as load:
            time.sleep(2.0)
            signalled = time.monotonic()
            process.send_signal(signal.SIGTERM)
            while True:  # /ready, on a fresh connection each time
                if httpx.get(f"{url}/ready", timeout=5).status_code == 503:
                    not_ready = time.monotonic()
                    break
                assert time.monotonic() - signalled < DRAIN_S, "/ready never answered 503"
                time.sleep(0.02)
            status = process.wait(timeout=DRAIN_S + GRACEFUL_SHUTDOWN_S + 5)
            exited = time.monotonic()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    answers = load.answers
    statuses = Counter(a.status for a in answers)
    window = [a for a in answers if a.status == 200 and not_ready <= a.sent]
    refused = [a for a in answers if a.status == "refused"]
    failed = [a for a in answers if a.status not in (200, "refused")]
    logged = _assert_logged_once(home, answers)
    print(
        f"\n1 worker, 4 clients, drain {DRAIN_S:g} s: /ready 503 after "
        f"{(not_ready - signalled) * 1000:.0f} ms, exit {status} after "
        f"{exited - signalled:.2f} s\n"
        f"{'sent':>6} {'200':>6} {'200 draining':>13} {'refused':>8} {'failed':>7} "
        f"{'logged':>7}\n"
        f"{len(answers):>6} {statuses[200]:>6} {len(window):>13} {len(refused):>8} "
        f"{len(failed):>7} {logged:>7}"
    )
    assert status == 0
    assert not_ready - signalled < 0.5
    assert exited - signalled < DRAIN_S + GRACEFUL_SHUTDOWN_S
    assert failed == [], failed[:5]
    assert len(window) > 10  # still serving while not ready
    assert all(a.connection == "close" for a in window)  # clients told to go elsewhere
    # Refused only once the listener closed, after the window.
    assert all(a.sent >= signalled + DRAIN_S for a in refused), refused


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_sighup_replaces_every_worker_under_load_without_a_failed_request(
    trained_store: Settings,
) -> None:
    home = trained_store.home
    process, url = start_server(home, API_KEY, workers=2, CREDITOPS_DRAIN_SECONDS=str(DRAIN_S))
    try:
        before = _worker_pids(url)
        with Load(url, 8, pause_s=0.05) as load:
            time.sleep(1.0)
            signalled = time.monotonic()
            os.kill(process.pid, signal.SIGHUP)
            deadline = signalled + 150
            while True:
                after = _worker_pids(url, probes=20)
                if len(after) == 2 and not after & before:
                    break
                assert time.monotonic() < deadline, f"workers still {after} (before: {before})"
                time.sleep(0.5)
            replaced = time.monotonic()
            time.sleep(2.0)
        os.killpg(process.pid, signal.SIGTERM)
        status = process.wait(timeout=DRAIN_S + GRACEFUL_SHUTDOWN_S + 10)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    answers = load.answers
    ok = sum(a.status == 200 for a in answers)
    failed = [a for a in answers if a.status != 200]
    logged = _assert_logged_once(home, answers)
    print(
        f"\n2 workers, 8 clients (4 fresh connections, 4 keep-alive), drain {DRAIN_S:g} s: "
        f"both replaced {replaced - signalled:.1f} s after SIGHUP\n"
        f"{'sent':>6} {'ok':>6} {'failed':>7} {'logged':>7}  pids before -> after\n"
        f"{len(answers):>6} {ok:>6} {len(failed):>7} {logged:>7}  "
        f"{sorted(before)} -> {sorted(after)}"
    )
    assert failed == [], failed[:5]
    assert ok > 200
    assert len(before) == 2
    assert status == 0
