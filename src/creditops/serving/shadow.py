"""The challenger in shadow: a share of live applications scored again by the version holding
the ``challenger`` alias, after the champion's answer is on its way.

A decision offers its application here once it is logged (:meth:`ShadowScorer.offer`: a
random draw and a non-blocking put, about a microsecond); a thread of its own takes what was
offered in batches, scores them with the challenger (its own out-of-range rule included) and
stores them in one transaction per batch (:func:`creditops.store.shadow.write_shadow`). So the
answer a client gets never waits for the challenger and never depends on it: when the queue
is full an offer is dropped and counted, and a failure to score or store is logged and counted,
never raised into a request.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from creditops.store.shadow import write_shadow

if TYPE_CHECKING:
    from creditops.serving.served import ServedModel
    from creditops.store.predlog import PredictionLog

__all__ = ["ShadowScorer"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Offer:
    prediction_id: uuid.UUID
    features: Mapping[str, Any]
    created_at: datetime
    champion_version: str


class ShadowScorer:
    """Scores ``share`` of the offered decisions with the challenger set by :meth:`serve`.

    ``count(result, n)`` is told what became of offers: ``written``, ``dropped`` (the queue
    was full) or ``failed`` (scoring or storing raised)."""

    def __init__(
        self,
        log: PredictionLog,
        share: float,
        *,
        batch: int = 256,
        flush_s: float = 0.5,
        capacity: int = 10_000,
        count: Callable[[str, int], None] | None = None,
    ) -> None:
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"share: must be between 0 and 1, got {share!r}")
        self.log = log
        self.share = share
        self.batch = batch
        self.flush_s = flush_s
        self._count = count
        self._queue: queue.Queue[_Offer | None] = queue.Queue(maxsize=capacity)
        self._challenger: ServedModel | None = None
        self._random = random.Random()  # sampling traffic, not a secret
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def challenger(self) -> ServedModel | None:
        return self._challenger

    def serve(self, challenger: ServedModel | None) -> None:
        """Score with ``challenger`` from now on (None: stop scoring; offers are ignored)."""
        self._challenger = challenger
        if challenger is not None and self._thread is None and not self._closed:
            self._thread = threading.Thread(target=self._run, name="shadow", daemon=True)
            self._thread.start()

    def offer(
        self,
        prediction_id: uuid.UUID,
        features: Mapping[str, Any],
        champion_version: str,
    ) -> None:
        """Offer one logged decision's application (the features as sent)."""
        if self._challenger is None or self._random.random() >= self.share:
            return
        try:
            self._queue.put_nowait(
                _Offer(prediction_id, features, datetime.now(UTC), champion_version)
            )
        except queue.Full:
            self._tell("dropped", 1)

    def close(self, timeout_s: float = 5.0) -> None:
        """Score and store what was offered, then stop the thread."""
        self._closed = True
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=timeout_s)
            self._thread = None

    def _tell(self, result: str, n: int) -> None:
        if self._count is not None and n:
            self._count(result, n)

    def _run(self) -> None:
        while True:
            items: list[_Offer] = []
            first = self._queue.get()
            stop = first is None
            if first is not None:
                items.append(first)
            deadline = time.monotonic() + self.flush_s
            while not stop and len(items) < self.batch:
                try:
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                items.append(item)
            self._score(items)
            if stop:
                return

    def _score(self, items: list[_Offer]) -> None:
        challenger = self._challenger
        if not items or challenger is None:
            return
        try:
            screened = [challenger.screen(dict(item.features)) for item in items]
            probabilities = challenger.probabilities([scored for scored, _ in screened])
            labels = [
                challenger.label(float(p), outside)
                for p, (_, outside) in zip(probabilities, screened, strict=True)
            ]
            points = challenger.policy.points(probabilities)
            grades = challenger.policy.grade(probabilities)
            write_shadow(
                self.log,
                [
                    {
                        "id": str(uuid.uuid4()),
                        "prediction_id": str(item.prediction_id),
                        "created_at": item.created_at,
                        "model_version": challenger.version,
                        "champion_version": item.champion_version,
                        "probability": float(probabilities[i]),
                        "points": int(points[i]),
                        "grade": str(grades[i]),
                        "decision": labels[i],
                    }
                    for i, item in enumerate(items)
                ],
            )
        except Exception:  # never into a request: logged and counted
            logger.exception("shadow decisions of version %s not stored", challenger.version)
            self._tell("failed", len(items))
            return
        self._tell("written", len(items))
