"""Each version's scored test split, kept per worker: a slider move must not reload a model."""

from __future__ import annotations

import threading
from collections import OrderedDict

from fastapi import Request

from creditops.registry.review import ScoredSplit, scored_test_split

_KEEP = 4  # versions kept per worker (a test split is a few MB at most)
_LOCK = threading.Lock()


def scored_split(request: Request, version: str) -> ScoredSplit:
    state = request.app.state
    with _LOCK:
        cache: OrderedDict[str, ScoredSplit] = getattr(state, "ui_samples", None) or OrderedDict()
        state.ui_samples = cache
        found = cache.get(version)
        if found is not None:
            cache.move_to_end(version)
            return found
    split = scored_test_split(state.settings, version)
    with _LOCK:
        cache[version] = split
        while len(cache) > _KEEP:
            cache.popitem(last=False)
    return split
