"""The process model behind ``creditops serve``.

A worker is one process: an uvloop event loop with httptools that parses and validates on the
loop and decides in a thread, where it waits for the decision log's fsync (so concurrent
decisions share one group commit). With ``--workers N`` a small supervisor starts N such
processes and restarts any that dies. Three measured traps decide this shape:

* uvicorn's own ``--workers`` shares one inherited socket; accepted connections then lose
  ``TCP_NODELAY`` (Nagle plus delayed ACKs add ~40 ms to keep-alive requests), and one worker
  often takes every connection. Here the supervisor opens one listening socket per worker
  slot, all bound to the port with ``SO_REUSEPORT`` (the kernel spreads connections evenly
  over them) and each with ``TCP_NODELAY``, which Linux copies to the connections it accepts.
* XGBoost, PyTorch and BLAS start one thread per core in every process; two processes on two
  cores then fight over them and serve less than one. Each worker is limited to one thread
  (``OMP_NUM_THREADS=1`` and friends, set before those libraries load).
* Scores must not depend on the worker: every worker loads the same registered version and
  follows the ``champion`` alias (see ``DecisionService.follow_champion``).

**Stopping without failing a request.** On SIGTERM a worker drains (:class:`DrainingServer`):
``/ready`` answers 503 at once, it keeps serving for ``CREDITOPS_DRAIN_SECONDS`` (so the load
balancer, which reads ``/ready``, stops sending) with ``Connection: close`` on every response
(so keep-alive clients reconnect elsewhere), then stops accepting, finishes what is in flight
(at most :data:`GRACEFUL_SHUTDOWN_S`), closes the decision log and exits 0. A second SIGTERM
skips the rest of the window; SIGINT stops at once, as uvicorn does.

**Rolling restart (SIGHUP to the supervisor).** Each worker in turn: its replacement starts,
the supervisor waits until it is ready (serving, its model loaded), then SIGTERMs the old one
and waits for its drain before the next. The trap: closing a listening socket of a
``SO_REUSEPORT`` group resets every connection still in its accept queue (Linux migrates them
to another member only with ``net.ipv4.tcp_migrate_req=1``, off by default and often not
settable in a container), and connections keep arriving in that queue until the very close.
So a worker never owns its socket: the supervisor opens the slot's socket once and keeps it
for its whole life, a worker receives a duplicate of it, and the replacement receives the
same socket. The old worker closing its duplicate only stops it accepting; the kernel socket
and its queue stay, and the replacement accepts from them. (With a socket per worker, as
before, each replacement of a worker under load reset the connections in its queue.) A slot
whose worker died keeps its queue too: those clients wait for the replacement instead of
being reset.

A listener that does close for good (one worker alone, or every worker at a supervisor's
stop) first drops new handshakes with a socket filter and accepts what is already queued: a
client then sees its connection refused, which means the request was never sent and may be
retried elsewhere, rather than a reset after sending it, which leaves a decision's fate
unknown to the client.
"""

from __future__ import annotations

import asyncio
import copy
import ctypes
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event
from types import FrameType
from typing import TYPE_CHECKING, Any

import uvicorn

if TYPE_CHECKING:
    from fastapi import FastAPI

    from creditops.serving.admission import WorkerState

logger = logging.getLogger(__name__)

_THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)
_RESTART_WINDOW_S = 60.0
_MAX_RESTARTS_PER_WINDOW = 5
#: How long a worker may take to finish the requests in flight once it stops accepting.
GRACEFUL_SHUTDOWN_S = 10
#: How long a rolling restart waits for a replacement to load its model and serve.
READY_TIMEOUT_S = 300.0
# Time for requests already on their way to arrive: after the filter, what the accept queue
# holds is accepted; after the listener closes, just-accepted connections send their request
# (so they are answered, not closed as idle).
_SETTLE_S = 0.1
# Linux's SO_ATTACH_FILTER, and a one-instruction classic BPF program: "return 0" (keep no
# byte of the packet, i.e. drop it).
_SO_ATTACH_FILTER = getattr(socket, "SO_ATTACH_FILTER", 26)
_DROP_ALL = struct.pack("HBBI", 0x06, 0, 0, 0)  # BPF_RET | BPF_K, k = 0


def single_threaded_environment() -> None:
    """Limit the numeric libraries of this process (and its children) to one thread each;
    must run before numpy, XGBoost or PyTorch are imported to take effect everywhere."""
    for name in _THREAD_VARIABLES:
        os.environ.setdefault(name, "1")


def listening_socket(
    host: str, port: int, *, reuse_port: bool, backlog: int = 2048
) -> socket.socket:
    """A bound, listening TCP socket whose accepted connections have ``TCP_NODELAY``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def refuse_new_connections(sock: socket.socket) -> bool:
    """Make a listening socket drop every packet that would open a connection, while it may
    still accept those already queued; False where the system does not allow it (then a close
    resets what is queued). Dropped handshakes are retried by the client, whose retry finds
    the socket closed: connection refused. Only for a socket about to close: the connections
    it accepts afterwards inherit the filter."""
    if sys.platform != "linux":
        return False
    program = ctypes.create_string_buffer(_DROP_ALL)
    fprog = struct.pack("HP", 1, ctypes.addressof(program))  # struct sock_fprog
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, fprog)
    except OSError as error:
        logger.warning("cannot filter the listener before closing it: %s", error)
        return False
    return True


def _exit_with_parent(parent: int) -> None:
    """Stop this worker (gracefully, through SIGTERM) once its supervisor is gone, e.g. killed
    with SIGKILL, so no orphan keeps the port."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGTERM)


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging configuration plus creditops' own loggers at ``level``; every line,
    uvicorn's included, names the request it was written for (the X-Request-ID its response
    carries), so a client's report of a failure leads to its traceback."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"request_id": {"()": "creditops.serving.middleware.RequestIdFilter"}}
    config["formatters"]["creditops"] = {
        "format": "%(asctime)s %(levelname)s %(name)s [request %(request_id)s] %(message)s"
    }
    for formatter in ("default", "access"):
        config["formatters"][formatter]["fmt"] += " [request %(request_id)s]"
    config["handlers"]["creditops"] = {
        "class": "logging.StreamHandler",
        "formatter": "creditops",
        "stream": "ext://sys.stderr",
    }
    for handler in config["handlers"].values():
        handler["filters"] = ["request_id"]
    config["loggers"]["creditops"] = {
        "handlers": ["creditops"],
        "level": level.upper(),
        "propagate": False,
    }
    return config


class DrainingServer(uvicorn.Server):
    """uvicorn's server, stopped the way a load balancer needs: the first SIGTERM marks the
    worker draining (``/ready`` 503, ``Connection: close`` on every response, see
    :mod:`creditops.serving.admission`) and stops it ``drain_seconds`` later; a second SIGTERM
    stops it at once. The exit status after SIGTERM is 0: the stop was asked for.

    ``ready`` is set once the worker serves with a model loaded (a supervisor's rolling
    restart waits for it). ``owns_listener`` says, when the server stops, whether its
    listening socket closes for good with it (no other process accepts from it then): if so,
    new handshakes are refused before the close (:func:`refuse_new_connections`)."""

    def __init__(
        self,
        config: uvicorn.Config,
        *,
        app: FastAPI,
        worker: WorkerState,
        drain_seconds: float,
        ready: Event | None = None,
        owns_listener: Callable[[], bool] = lambda: True,
    ) -> None:
        super().__init__(config)
        self.app = app
        self.worker = worker
        self.drain_seconds = drain_seconds
        self.ready = ready
        self.owns_listener = owns_listener
        self._drain_until: float | None = None
        self._announced = ready is None
        self._listeners: list[socket.socket] = []

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig != signal.SIGTERM:
            super().handle_exit(sig, frame)
            return
        # Not recorded as a captured signal: uvicorn would raise it again after the shutdown,
        # and the process would end killed by SIGTERM instead of exiting 0.
        if self.started and not self.worker.draining and self.drain_seconds > 0:
            self.worker.start_draining()
            self._drain_until = time.monotonic() + self.drain_seconds
            logger.info("SIGTERM: draining for %.1f s, then stopping", self.drain_seconds)
        else:
            self.should_exit = True

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._listeners = list(sockets or ())
        await super().serve(sockets)

    async def on_tick(self, counter: int) -> bool:
        if self._drain_until is not None and time.monotonic() >= self._drain_until:
            self.should_exit = True
        if not self._announced and self.started and self._serving():
            assert self.ready is not None
            self.ready.set()
            self._announced = True
        return await super().on_tick(counter)

    def _serving(self) -> bool:
        service = getattr(self.app.state, "service", None)
        return service is not None and service.ready

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Stop accepting without losing what is on its way, then uvicorn's shutdown (idle
        connections closed, requests in flight finished, the lifespan's shutdown)."""
        if self._listeners and self.owns_listener():
            filtered = [refuse_new_connections(sock) for sock in self._listeners]
            if any(filtered):
                await asyncio.sleep(_SETTLE_S)  # what the queue holds is accepted meanwhile
        for server in getattr(self, "servers", ()):
            server.close()
        await asyncio.sleep(_SETTLE_S)
        await super().shutdown(sockets)


def run_worker(
    host: str,
    port: int,
    *,
    sock: socket.socket | None = None,
    reuse_port: bool = False,
    log_level: str = "warning",
    parent: int | None = None,
    ready: Event | None = None,
    closing: Event | None = None,
) -> None:
    """Serve the app in this process until SIGINT/SIGTERM (or until ``parent`` exits), on
    ``sock`` (a supervisor's slot socket, which outlives this worker) or on a listening socket
    of its own. ``ready`` is set once it serves; ``closing`` is set by a supervisor stopping
    for good (this worker's socket then closes with it)."""
    from creditops.config import get_settings
    from creditops.serving.admission import WorkerState
    from creditops.serving.app import create_app

    if parent is not None:
        # SIGHUP is the supervisor's (a rolling restart); one sent to the whole process group
        # must not end the workers.
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()

    owned = sock is None
    if sock is None:
        sock = listening_socket(host, port, reuse_port=reuse_port)
    settings = get_settings()
    worker = WorkerState()
    app = create_app(settings, worker=worker)
    config = uvicorn.Config(
        app,
        log_level=log_level,
        log_config=log_config(log_level),
        loop="uvloop",
        http="httptools",
        lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    server = DrainingServer(
        config,
        app=app,
        worker=worker,
        drain_seconds=settings.drain_seconds,
        ready=ready,
        owns_listener=lambda: owned or (closing is not None and closing.is_set()),
    )
    server.run(sockets=[sock])  # exits with status 3 if the app cannot start


class Supervisor:
    """N worker processes sharing a port through one listening socket per slot, held here for
    the supervisor's whole life. Restarts a worker that dies (and gives up, stopping, when
    workers keep dying), replaces every worker in turn on SIGHUP, and drains and stops them
    all on SIGINT/SIGTERM."""

    def __init__(
        self,
        host: str,
        port: int,
        workers: int,
        log_level: str = "warning",
        *,
        drain_seconds: float = 5.0,
    ) -> None:
        if workers < 2:
            raise ValueError("a supervisor is for two or more workers")
        if port == 0:
            raise ValueError("--workers needs a fixed --port: each worker slot's socket binds it")
        self.host = host
        self.port = port
        self.workers = workers
        self.log_level = log_level
        self.drain_seconds = drain_seconds
        self._context = multiprocessing.get_context("spawn")
        self._sockets: list[socket.socket] = []
        self._processes: list[BaseProcess] = []
        self._retiring: list[BaseProcess] = []
        self._closing = self._context.Event()
        self._stopping = False
        self._reload = False
        self._status = 0
        self._restarts: list[float] = []

    @property
    def pids(self) -> list[int | None]:
        """The workers' process ids, slot by slot."""
        return [p.pid for p in self._processes]

    def _start(self, slot: int, ready: Event | None = None) -> BaseProcess:
        process = self._context.Process(
            target=run_worker,
            args=(self.host, self.port),
            kwargs={
                "sock": self._sockets[slot],
                "log_level": self.log_level,
                "parent": os.getpid(),
                "ready": ready,
                "closing": self._closing,
            },
            name=f"creditops-worker-{slot}",
            daemon=False,
        )
        process.start()
        return process

    def _stop(self, *_: Any) -> None:
        self._stopping = True

    def _request_reload(self, *_: Any) -> None:
        self._reload = True

    def run(self) -> int:
        """Run until stopped; the exit status is 0 on a requested stop."""
        # Fails here, clearly, when the port is taken, rather than in every worker.
        try:
            for _ in range(self.workers):
                self._sockets.append(listening_socket(self.host, self.port, reuse_port=True))
        except OSError:
            for sock in self._sockets:
                sock.close()
            raise
        single_threaded_environment()
        metrics_dir = None
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            # Each worker writes its samples here and /metrics adds them up.
            metrics_dir = tempfile.mkdtemp(prefix="creditops-metrics-")
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        handlers: dict[signal.Signals, Callable[..., None]] = {
            signal.SIGINT: self._stop,
            signal.SIGTERM: self._stop,
            signal.SIGHUP: self._request_reload,
        }
        previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
        try:
            self._processes = [self._start(slot) for slot in range(self.workers)]
            while not self._stopping:
                if self._reload:
                    self._reload = False  # a SIGHUP during the restart asks for another
                    self._rolling_restart()
                    continue
                if wait([p.sentinel for p in self._processes], timeout=0.5):
                    self._reap()
        finally:
            self._shutdown()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if metrics_dir is not None:
                shutil.rmtree(metrics_dir, ignore_errors=True)
                del os.environ["PROMETHEUS_MULTIPROC_DIR"]
        return self._status

    def _reap(self) -> None:
        """Start a new worker in the slot of any that died, unless workers keep dying."""
        for slot, process in enumerate(self._processes):
            if self._stopping or process.is_alive():
                continue
            _forget_metrics_of(process)
            if not self._may_restart():
                logger.error("workers keep exiting; stopping")
                self._stopping = True
                self._status = 1
                return
            logger.warning(
                "worker %s exited with %s; starting another", process.pid, process.exitcode
            )
            self._processes[slot] = self._start(slot)

    def _may_restart(self) -> bool:
        now = time.monotonic()
        self._restarts = [t for t in self._restarts if now - t < _RESTART_WINDOW_S]
        self._restarts.append(now)
        return len(self._restarts) <= _MAX_RESTARTS_PER_WINDOW

    def _rolling_restart(self) -> None:
        """Replace each worker in turn: the new one serves before the old one drains."""
        logger.warning("SIGHUP: replacing the %d workers one at a time", self.workers)
        for slot in range(self.workers):
            if self._stopping or not self._replace(slot):
                return
        logger.warning("rolling restart done: workers %s", self.pids)

    def _replace(self, slot: int) -> bool:
        """Start the slot's next worker on the same socket; once it serves, retire the one
        before. False (the old one kept) when the new one dies or is not ready in time."""
        ready = self._context.Event()
        replacement = self._start(slot, ready)
        self._wait_until(lambda: ready.is_set() or not replacement.is_alive(), READY_TIMEOUT_S)
        if not ready.is_set():
            if not self._stopping:
                logger.error(
                    "the replacement of worker %s did not become ready (exit status %s); "
                    "the old one keeps serving and the rolling restart stops",
                    self._processes[slot].pid,
                    replacement.exitcode,
                )
            self._retire(replacement)
            return False
        old, self._processes[slot] = self._processes[slot], replacement
        self._retire(old)
        return True

    def _retire(self, process: BaseProcess) -> None:
        """SIGTERM a worker no longer in a slot and wait for its drain to end."""
        self._retiring.append(process)
        if process.is_alive() and process.pid is not None:
            os.kill(process.pid, signal.SIGTERM)
        limit = self.drain_seconds + GRACEFUL_SHUTDOWN_S + 5.0
        if not self._wait_until(lambda: not process.is_alive(), limit) and process.is_alive():
            if self._stopping:
                return  # the shutdown stops it with the others
            logger.error("worker %s did not stop in %.0f s; killing it", process.pid, limit)
            process.kill()
        process.join()
        _forget_metrics_of(process)
        self._retiring.remove(process)

    def _wait_until(self, done: Callable[[], bool], timeout: float) -> bool:
        """Until ``done()`` (True) or ``timeout`` or a stop (False), keeping the other slots
        served meanwhile."""
        deadline = time.monotonic() + timeout
        while not done():
            if self._stopping or time.monotonic() >= deadline:
                return False
            if wait([p.sentinel for p in self._processes], timeout=0.1):
                self._reap()
        return True

    def _shutdown(self) -> None:
        self._closing.set()  # the slots' sockets close with the workers: refuse, then close
        processes = [*self._processes, *self._retiring]
        for process in processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.drain_seconds + GRACEFUL_SHUTDOWN_S + 5.0
        for process in processes:
            process.join(timeout=max(0.1, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
        for sock in self._sockets:
            sock.close()


def _forget_metrics_of(process: BaseProcess) -> None:
    """Drop a dead worker's live gauges (its ``creditops_model_info`` would otherwise stay 1
    for the version it served); its counters stay, as Prometheus counters must."""
    if process.pid is not None and os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(process.pid)


def serve(host: str, port: int, workers: int = 1, log_level: str = "warning") -> int:
    """Serve the champion: in this process for one worker, else under a :class:`Supervisor`."""
    from creditops.config import get_settings

    os.environ["CREDITOPS_SERVE_WORKERS"] = str(workers)  # the dashboard shows it
    if workers == 1:
        run_worker(host, port, reuse_port=False, log_level=log_level)
        return 0
    drain = get_settings().drain_seconds
    return Supervisor(host, port, workers, log_level, drain_seconds=drain).run()
