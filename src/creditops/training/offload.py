"""Where a training run can send its heavy parts: the interface training depends on, kept
here so that the places that provide it (:mod:`creditops.scale.training`) sit above training."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol, TypeVar

import numpy as np
import pandas as pd

_T = TypeVar("_T")


class Offload(Protocol):
    """Somewhere else for a training run's heavy parts (a Dask cluster, :mod:`creditops.scale`):
    Optuna trials in parallel on a study storage every runner reaches, and final fits of
    models too large for one process."""

    #: What a model fitted there is tagged with in MLflow (``fitted_on``).
    name: str

    @property
    def width(self) -> int:
        """How many trials run at once."""
        ...

    def storage(self) -> Any:
        """A new Optuna storage, shared by the runners (one per study)."""
        ...

    def run(self, function: Callable[..., _T], copies: list[tuple[Any, ...]]) -> Iterator[_T]:
        """``function(*args)`` for each ``args`` of ``copies``, in parallel; results as they
        finish. Large arguments (the data) are the same object in every copy: ship it once."""
        ...

    def fit(self, pipeline: Any, X: pd.DataFrame, y: np.ndarray) -> Any | None:
        """``pipeline`` fitted there on ``X``, ``y``, as ``clone(pipeline).fit(X, y)`` would
        be here; None when this kind of model or this little data is fitted here."""
        ...
