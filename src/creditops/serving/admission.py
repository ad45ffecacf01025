"""Admission to one worker: a bound on the requests it handles at once, and what a draining
worker tells its clients.

* **Overload.** A worker admits at most ``CREDITOPS_MAX_IN_FLIGHT`` requests at a time. The
  next one is answered at once with 503, ``Retry-After: 1`` and the service's error body
  (:class:`~creditops.serving.schemas.ErrorBody`, with the request id), never queued: a
  queue only turns overload into timeouts for everyone, and an immediate 503 lets the client or
  the load balancer try another worker. ``/health``, ``/ready`` and ``/metrics`` are never
  counted nor refused, so probes and scrapes still answer under overload (a liveness probe
  that failed then would restart a worker that is merely busy).
* **Draining.** While :attr:`WorkerState.draining` is set (SIGTERM, see
  :mod:`creditops.serving.server`), every response carries ``Connection: close``, so a
  keep-alive client opens its next connection elsewhere instead of losing it when the worker
  closes.

uvicorn's own ``limit_concurrency`` is not used: it counts open connections, idle keep-alive
ones included, so a few hundred idle clients refuse everything; its 503 is plain text with
no ``Retry-After`` and bypasses the app (no request id, no security headers); and it refuses
the probes too.

Plain ASGI, like the rest of the app's middleware: Starlette's ``BaseHTTPMiddleware`` costs a
task and memory streams per request. The count is a plain int: the event loop runs every
ASGI call of a worker in one thread, and nothing awaits between the test and the increment,
so no lock is needed; the request path pays an attribute read, a set lookup and an add.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from creditops.serving.middleware import current_request_id
from creditops.serving.schemas import ErrorBody

__all__ = ["OPERATIONS_PATHS", "RETRY_AFTER_S", "AdmissionControl", "WorkerState"]

#: Paths that are always admitted: the probes and the scrape.
OPERATIONS_PATHS = frozenset({"/health", "/ready", "/metrics"})
#: What an overloaded worker asks a client to wait, in seconds: a request takes milliseconds,
#: so a second is long enough for the burst to pass and short enough not to idle a client.
RETRY_AFTER_S = 1

_CLOSE = (b"connection", b"close")


class WorkerState:
    """What the request path of one worker needs to know about the worker: how many requests
    it is handling now (:class:`AdmissionControl` keeps the count) and whether it is draining
    (:mod:`creditops.serving.server` sets that on SIGTERM; ``/ready`` then answers 503)."""

    __slots__ = ("draining", "in_flight")

    def __init__(self) -> None:
        self.in_flight = 0
        self.draining = False

    def start_draining(self) -> None:
        self.draining = True


class AdmissionControl:
    """At most ``limit`` requests in flight, the operations paths aside; past it, 503 with
    ``Retry-After`` at once. ``on_shed`` is called for every refusal (a metric). Place it
    inside the request-id middleware, so a refusal's body names its request."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limit: int,
        state: WorkerState,
        on_shed: Callable[[], None] | None = None,
        exempt: frozenset[str] = OPERATIONS_PATHS,
    ) -> None:
        if limit < 1:
            raise ValueError("a worker must admit at least one request")
        self.app = app
        self.limit = limit
        self.state = state
        self.on_shed = on_shed
        self.exempt = exempt
        self._detail = (
            f"overloaded: this worker is handling its limit of {limit} requests; "
            f"retry after {RETRY_AFTER_S} s"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = self.state
        if state.draining:
            send = _closing(send)
        if scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        if state.in_flight >= self.limit:
            await self._refuse(send)
            return
        state.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            state.in_flight -= 1

    async def _refuse(self, send: Send) -> None:
        if self.on_shed is not None:
            self.on_shed()
        body = ErrorBody(detail=self._detail, request_id=current_request_id())
        content = body.model_dump_json().encode()
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(content)).encode("ascii")),
                    (b"retry-after", str(RETRY_AFTER_S).encode("ascii")),
                ],
            }
        )
        await send({"type": "http.response.body", "body": content})


def _closing(send: Send) -> Send:
    """``send`` with ``Connection: close`` added to the response (uvicorn then closes the
    connection once the response is out)."""

    async def send_closing(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", ()), _CLOSE]
        await send(message)

    return send_closing
