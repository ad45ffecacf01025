"""The process model behind ``creditops serve``.

A worker is one process: an uvloop event loop with httptools that parses and validates on the
loop and decides in a thread, where it waits for the decision log's fsync (so concurrent
decisions share one group commit). With ``--workers N`` a small
supervisor starts N such processes, each with its own listening socket bound to the same port
with ``SO_REUSEPORT``, so the kernel spreads connections evenly over them, and restarts any that
dies. Three measured traps decide this shape:

* uvicorn's own ``--workers`` shares one inherited socket; accepted connections then lose
  ``TCP_NODELAY`` (Nagle plus delayed ACKs add ~40 ms to keep-alive requests), and one worker
  often takes every connection. Here each listener sets ``TCP_NODELAY``, which Linux copies to
  the connections it accepts, and has its own accept queue.
* XGBoost, PyTorch and BLAS start one thread per core in every process; two processes on two
  cores then fight over them and serve less than one. Each worker is limited to one thread
  (``OMP_NUM_THREADS=1`` and friends, set before those libraries load).
* Scores must not depend on the worker: every worker loads the same registered version and
  follows the ``champion`` alias (see ``DecisionService.follow_champion``).
"""

from __future__ import annotations

import copy
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from typing import Any

logger = logging.getLogger(__name__)

_THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)
_RESTART_WINDOW_S = 60.0
_MAX_RESTARTS_PER_WINDOW = 5


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


def run_worker(
    host: str,
    port: int,
    *,
    reuse_port: bool = False,
    log_level: str = "warning",
    parent: int | None = None,
) -> None:
    """Serve the app in this process until SIGINT/SIGTERM (or until ``parent`` exits)."""
    import uvicorn

    if parent is not None:
        threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()

    sock = listening_socket(host, port, reuse_port=reuse_port)
    config = uvicorn.Config(
        "creditops.serving.app:create_app",
        factory=True,
        log_level=log_level,
        log_config=log_config(log_level),
        loop="uvloop",
        http="httptools",
        lifespan="on",
        timeout_graceful_shutdown=10,
    )
    uvicorn.Server(config).run(sockets=[sock])  # exits with status 3 if the app cannot start


class Supervisor:
    """N worker processes sharing a port; restarts a worker that dies, stops them all on
    SIGINT/SIGTERM. Gives up (and stops) when workers keep dying at start-up."""

    def __init__(self, host: str, port: int, workers: int, log_level: str = "warning") -> None:
        if workers < 2:
            raise ValueError("a supervisor is for two or more workers")
        if port == 0:
            raise ValueError("--workers needs a fixed --port: each worker binds it")
        self.host = host
        self.port = port
        self.workers = workers
        self.log_level = log_level
        self._context = multiprocessing.get_context("spawn")
        self._processes: list[BaseProcess] = []
        self._stopping = False
        self._restarts: list[float] = []

    def _start(self) -> BaseProcess:
        process = self._context.Process(
            target=run_worker,
            args=(self.host, self.port),
            kwargs={"reuse_port": True, "log_level": self.log_level, "parent": os.getpid()},
            name="creditops-worker",
            daemon=False,
        )
        process.start()
        return process

    def _stop(self, *_: Any) -> None:
        self._stopping = True

    def run(self) -> int:
        """Run until stopped; the exit status is 0 on a requested stop."""
        # Fail here, clearly, when the port is taken, rather than in every worker.
        listening_socket(self.host, self.port, reuse_port=True).close()
        single_threaded_environment()
        metrics_dir = None
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            # Each worker writes its samples here and /metrics adds them up.
            metrics_dir = tempfile.mkdtemp(prefix="creditops-metrics-")
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        previous = {sig: signal.signal(sig, self._stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        status = 0
        try:
            self._processes = [self._start() for _ in range(self.workers)]
            while not self._stopping:
                ready = wait([p.sentinel for p in self._processes], timeout=0.5)
                if not ready or self._stopping:
                    continue
                for index, process in enumerate(self._processes):
                    if process.sentinel in ready and not process.is_alive():
                        _forget_metrics_of(process)
                        if not self._may_restart():
                            logger.error("workers keep exiting; stopping")
                            self._stopping = True
                            status = 1
                            break
                        logger.warning(
                            "worker %s exited with %s; starting another",
                            process.pid,
                            process.exitcode,
                        )
                        self._processes[index] = self._start()
        finally:
            self._shutdown()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if metrics_dir is not None:
                shutil.rmtree(metrics_dir, ignore_errors=True)
                del os.environ["PROMETHEUS_MULTIPROC_DIR"]
        return status

    def _may_restart(self) -> bool:
        now = time.monotonic()
        self._restarts = [t for t in self._restarts if now - t < _RESTART_WINDOW_S]
        self._restarts.append(now)
        return len(self._restarts) <= _MAX_RESTARTS_PER_WINDOW

    def _shutdown(self) -> None:
        for process in self._processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15.0
        for process in self._processes:
            process.join(timeout=max(0.1, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()


def _forget_metrics_of(process: BaseProcess) -> None:
    """Drop a dead worker's live gauges (its ``creditops_model_info`` would otherwise stay 1
    for the version it served); its counters stay, as Prometheus counters must."""
    if process.pid is not None and os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(process.pid)


def serve(host: str, port: int, workers: int = 1, log_level: str = "warning") -> int:
    """Serve the champion: in this process for one worker, else under a :class:`Supervisor`."""
    os.environ["CREDITOPS_SERVE_WORKERS"] = str(workers)  # the dashboard shows it
    if workers == 1:
        run_worker(host, port, reuse_port=False, log_level=log_level)
        return 0
    return Supervisor(host, port, workers, log_level).run()
