"""Per-key rate limits: a token bucket per principal (a key's or a token's name), in each
worker process.

A bucket holds up to ``burst`` tokens and refills at ``rate`` tokens a second; a request takes
one, and one that finds none is refused (429) with the seconds until the next token, rounded
up, as ``Retry-After``. A key may so send ``burst`` requests at once after a quiet spell and
``rate`` a second sustained.

The buckets live in the memory of one worker: with N workers (``creditops serve --workers N``,
or N replicas) a key may reach N times the rate, as the kernel and the load balancer spread
its connections. An exact global limit would need a shared store on every request's path (a
round trip per decision); the limit is here to keep one client from crowding out the others
in a worker, which a per-worker bucket does.

The limiter is called from the event loop (``/predict``) and from the threads that run the
synchronous dependencies, hence the lock; its critical section is a few arithmetic operations.
Memory stays bounded: a bucket left alone long enough to be full again holds nothing worth
keeping and is dropped (swept at most once a second or once per refill period), so only the
keys seen lately are kept.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

__all__ = ["RateLimiter", "default_burst"]


def default_burst(rate: float) -> int:
    """Twice the rate, rounded up, and at least one request."""
    return max(1, math.ceil(2 * rate))


class RateLimiter:
    """Token buckets by name: :meth:`acquire` takes a token or says how long to wait."""

    def __init__(
        self,
        rate: float,
        burst: int | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not rate > 0:
            raise ValueError("the rate must be positive (0 means no limiter at all)")
        self.rate = float(rate)
        self.burst = default_burst(rate) if burst is None else burst
        if self.burst < 1:
            raise ValueError("the burst must allow at least one request")
        self._clock = clock
        # name -> [tokens, when they were counted]
        self._buckets: dict[str, list[float]] = {}
        self._lock = threading.Lock()
        # A bucket idle this long is full again, the same as no bucket at all; looking for such
        # buckets at most once a second keeps the sweep's cost per request negligible.
        self._prune_every = max(self.burst / self.rate, 1.0)
        self._pruned = clock()

    def __len__(self) -> int:
        return len(self._buckets)

    def describe(self) -> str:
        return f"{self.rate:g} requests/s, bursts of {self.burst}"

    def acquire(self, name: str) -> int:
        """Take a token from ``name``'s bucket: 0 when one was there, else the whole seconds
        (at least 1) until the next one (what ``Retry-After`` says)."""
        with self._lock:
            now = self._clock()
            if now - self._pruned >= self._prune_every:
                self._prune(now)
            bucket = self._buckets.get(name)
            if bucket is None:
                self._buckets[name] = [self.burst - 1.0, now]
                return 0
            tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
            bucket[1] = now
            if tokens >= 1.0:
                bucket[0] = tokens - 1.0
                return 0
            bucket[0] = tokens
        return max(1, math.ceil((1.0 - tokens) / self.rate - 1e-9))

    def _prune(self, now: float) -> None:
        """Drop the buckets that have refilled completely (the caller holds the lock)."""
        full = [
            name
            for name, (tokens, stamp) in self._buckets.items()
            if tokens + (now - stamp) * self.rate >= self.burst
        ]
        for name in full:
            del self._buckets[name]
        self._pruned = now
