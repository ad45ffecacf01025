"""Prometheus instruments of the decision service (names follow Prometheus conventions).

With several worker processes, set ``PROMETHEUS_MULTIPROC_DIR`` (``creditops serve`` does): each
process then writes its samples to files there and ``/metrics`` aggregates all of them.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as _multiprocess

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_PROBABILITY_BUCKETS = tuple(i / 20 for i in range(1, 21))


class ServiceMetrics:
    """One set of instruments per process, registered on the given registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self._served: tuple[str, str] | None = None
        self.requests = Counter(
            "creditops_http_requests_total",
            "HTTP requests by method, route and status code.",
            ["method", "endpoint", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "creditops_http_request_duration_seconds",
            "HTTP request latency by route.",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.predictions = Counter(
            "creditops_predictions_total",
            "Credit decisions by decision and model version.",
            ["decision", "model_version"],
            registry=r,
        )
        self.probability = Histogram(
            "creditops_probability_of_default",
            "Predicted probability of default of every decision.",
            buckets=_PROBABILITY_BUCKETS,
            registry=r,
        )
        self.model_info = Gauge(
            "creditops_model_info",
            "The model version being served (value 1).",
            ["model_name", "model_version"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.log_failures = Counter(
            "creditops_prediction_log_failures_total",
            "Decisions refused because the decision log could not be written.",
            registry=r,
        )
        self.out_of_range = Counter(
            "creditops_out_of_range_total",
            "Decisions with an input outside the model's experience (past the training range, "
            "or an unseen category), by feature; one decision may count under several.",
            ["feature"],
            registry=r,
        )
        self.shadow = Counter(
            "creditops_shadow_decisions_total",
            "Live decisions offered to the challenger in shadow, by what became of them "
            "(written, dropped: the queue was full, failed: not scored or not stored).",
            ["result"],
            registry=r,
        )
        self.canary = Counter(
            "creditops_canary_decisions_total",
            "Live decisions routed to the challenger as a canary, by what became of them "
            "(decided: it answered; failed: it could not, and the champion answered).",
            ["result"],
            registry=r,
        )
        self.canary_active = Gauge(
            "creditops_canary_active",
            "Whether this worker routes a share of its decisions to the canary (1) or not (0).",
            registry=r,
            multiprocess_mode="liveall",
        )
        self.feedback = Counter(
            "creditops_feedback_total",
            "Observed outcomes received, by result (recorded, unchanged, conflict, unknown).",
            ["result"],
            registry=r,
        )
        self.shed = Counter(
            "creditops_requests_shed_total",
            "Requests refused before any work: overload (503, CREDITOPS_MAX_IN_FLIGHT) or "
            "rate_limit (429, the key's CREDITOPS_RATE_LIMIT_PER_SECOND).",
            ["reason"],
            registry=r,
        )
        for reason in ("overload", "rate_limit"):  # both series exist from the start
            self.shed.labels(reason)
        # Sampled about once a second (see creditops.serving.app), not moved per request: in
        # multiprocess mode every update of a value takes a process-wide lock and writes a
        # memory-mapped file (about 3 µs for the pair a request would need).
        self.in_flight = Gauge(
            "creditops_requests_in_flight",
            "Requests being handled (operations paths aside), summed over live workers.",
            registry=r,
            multiprocess_mode="livesum",
        )
        # One series per live worker (label pid in multiprocess mode): each follows the
        # champion alias on its own, so each says whether its last check reached the registry;
        # min() over them is 0 while any worker cannot.
        self.registry_up = Gauge(
            "creditops_registry_up",
            "Whether this worker's last check of the champion alias reached the model registry "
            "(1) or not (0: it keeps serving its version and checks again with backoff).",
            registry=r,
            multiprocess_mode="liveall",
        )

    def serving(self, name: str, version: str) -> None:
        """Mark ``version`` as the one this process serves; the one before it drops to 0
        (multiprocess mode cannot remove a label set, and ``livemax`` keeps what live workers
        report, so during a rolling switch both versions show 1)."""
        if self._served is not None and self._served != (name, version):
            self.model_info.labels(*self._served).set(0)
        self.model_info.labels(model_name=name, model_version=version).set(1)
        self._served = (name, version)


def exposition(metrics: ServiceMetrics) -> tuple[bytes, str]:
    """The text exposition of this process, or of every worker in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(metrics.registry), CONTENT_TYPE_LATEST
