"""Reviews of registered versions for the dashboard: read when stored, computed once otherwise.

A review (every evaluation ``creditops report`` makes) takes tens of seconds, so a page never
waits for one: the first viewer starts it in a background thread and the page polls until it is
stored. A lock file per version makes the workers of one host compute it once between them."""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from dataclasses import dataclass
from typing import Literal

from fastapi import Request

from creditops.config import Settings
from creditops.evaluation.review import EvaluationConfig, EvaluationResult
from creditops.registry.review import review_and_store, stored_review

logger = logging.getLogger(__name__)

State = Literal["ready", "running", "failed"]


@dataclass(frozen=True)
class ReviewStatus:
    state: State
    result: EvaluationResult | None = None
    error: str | None = None


class Reviews:
    """The reviews this worker has started, and their failures."""

    def __init__(self, settings: Settings, config: EvaluationConfig | None = None) -> None:
        self.settings = settings
        self.config = config or EvaluationConfig()
        self._lock = threading.Lock()
        self._running: set[str] = set()
        self._failed: dict[str, str] = {}

    def status(self, version: str, *, start: bool = True) -> ReviewStatus:
        """The stored review of ``version`` (a number), or its progress (started if asked)."""
        result = stored_review(self.settings, version)
        if result is not None:
            return ReviewStatus("ready", result)
        with self._lock:
            if version in self._failed:
                return ReviewStatus("failed", error=self._failed[version])
            if version not in self._running and start:
                self._running.add(version)
                threading.Thread(
                    target=self._review, args=(version,), name=f"review-v{version}", daemon=True
                ).start()
        return ReviewStatus("running")

    def retry(self, version: str) -> None:
        with self._lock:
            self._failed.pop(version, None)

    def _review(self, version: str) -> None:
        locks = self.settings.ensure_home() / "locks"
        locks.mkdir(exist_ok=True)
        fd = os.open(locks / f"review-v{version}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # another worker may be reviewing it: wait for it
            if stored_review(self.settings, version) is None:
                review_and_store(self.settings, version, config=self.config)
        except Exception as error:  # shown on the page; the worker keeps serving
            logger.exception("review of version %s failed", version)
            with self._lock:
                self._failed[version] = f"{type(error).__name__}: {error}"
        finally:
            os.close(fd)
            with self._lock:
                self._running.discard(version)


_CREATE = threading.Lock()


def reviews_of(request: Request) -> Reviews:
    state = request.app.state
    with _CREATE:
        reviews = getattr(state, "ui_reviews", None)
        if reviews is None:
            reviews = Reviews(state.settings)
            state.ui_reviews = reviews
    return reviews
