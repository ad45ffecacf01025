"""Training and tuning on a Dask cluster (``creditops train --cluster …``), with the same
MLflow layout as a run in this process: the same :func:`~creditops.registry.train_and_register`,
with two of its parts handed to the workers.

* Optuna's trials (boosted trees, the network) run several at once on the workers, one shared
  study per candidate held by the scheduler (optuna-integration's ``DaskStorage``), each worker
  sampling from its own seed; the data is shipped to each worker once.
* Cross-validation folds of the classical candidates (grid search, calibration, out-of-fold
  predictions) run as Dask tasks through joblib's ``dask`` backend.

What stays in this process: reading and splitting the data, the final fit of each candidate,
evaluation, tracking and registration.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from creditops.config import Settings
from creditops.exceptions import ClusterError, ConfigurationError
from creditops.registry import train_and_register
from creditops.scale.cluster import cluster_client
from creditops.training.train import TrainingResult

_T = TypeVar("_T")


class DaskOffload:
    """A training run's heavy parts on a Dask cluster
    (:class:`~creditops.training.offload.Offload`)."""

    name = "xgboost.dask"

    def __init__(self, client: Any, *, xgboost_rows: int, fit_timeout_s: float) -> None:
        self._client = client
        self._xgboost_rows = xgboost_rows
        self._fit_timeout_s = fit_timeout_s

    @property
    def width(self) -> int:
        """Worker threads: one trial each at a time."""
        workers = self._client.scheduler_info(n_workers=-1)["workers"].values()
        return max(1, sum(int(worker.get("nthreads", 1)) for worker in workers))

    def storage(self) -> Any:
        try:
            from optuna_integration import DaskStorage
        except ImportError:
            raise ConfigurationError(
                "Optuna on a Dask cluster needs optuna-integration: pip install 'creditops[dask]'"
            ) from None
        self._client.run(_quiet_optuna)
        _quiet_optuna()
        return DaskStorage(client=self._client)

    def run(self, function: Callable[..., _T], copies: list[tuple[Any, ...]]) -> Iterator[_T]:
        from distributed import as_completed

        # What every copy shares (the data, the search) goes to the workers once, not once
        # per task; the rest (a runner's number) travels with its task.
        shared = {
            id(value)
            for value in copies[0]
            if not isinstance(value, str | int | float | type(None))
            and all(any(v is value for v in args) for args in copies[1:])
        }
        shipped: dict[int, Any] = {}

        def ship(value: Any) -> Any:
            if id(value) not in shared:
                return value
            if id(value) not in shipped:
                shipped[id(value)] = self._client.scatter(value, broadcast=True, hash=False)
            return shipped[id(value)]

        futures = [
            self._client.submit(function, *[ship(value) for value in args], pure=False)
            for args in copies
        ]
        try:
            for _, result in as_completed(futures, with_results=True):
                yield result
        finally:
            self._client.cancel(futures)
            self._client.cancel(list(shipped.values()))

    def fit(self, pipeline: Any, X: pd.DataFrame, y: np.ndarray) -> Any | None:
        """An XGBoost pipeline from ``xgboost_rows`` rows: its preprocessing fitted here, the
        booster trained with ``xgboost.dask`` on the workers from the same parameters, and
        returned as an ordinary fitted pipeline (the same MLflow model as a local fit)."""
        if len(X) < self._xgboost_rows or not _xgboost_pipeline(pipeline):
            return None
        import dask.array as da
        import xgboost.dask as xgb_dask
        from sklearn.base import clone
        from sklearn.pipeline import Pipeline
        from xgboost.collective import Config

        fitted = clone(pipeline)
        preprocess = Pipeline(fitted.steps[:-1]).fit(X, y)
        matrix = preprocess.transform(X)
        matrix = np.asarray(matrix.toarray() if hasattr(matrix, "toarray") else matrix)
        model = fitted.steps[-1][1]
        # X and y cut into the same row blocks, each pair sent to the workers as it is (not
        # inside the task graph): xgboost.dask refuses, or misaligns, partitions of X and y
        # that do not match.
        rows = max(1, -(-len(matrix) // (2 * self.width)))
        starts = range(0, len(matrix), rows)
        blocks = self._client.scatter(
            [matrix[i : i + rows].astype(np.float32) for i in starts], hash=False
        )
        targets = self._client.scatter([np.asarray(y[i : i + rows]) for i in starts], hash=False)
        y_dtype = np.asarray(y).dtype
        features = da.concatenate(
            [
                da.from_delayed(block, shape=(min(rows, len(matrix) - i), matrix.shape[1]),
                                dtype=np.float32)
                for i, block in zip(starts, blocks, strict=True)
            ]
        )  # fmt: skip
        labels = da.concatenate(
            [
                da.from_delayed(target, shape=(min(rows, len(matrix) - i),), dtype=y_dtype)
                for i, target in zip(starts, targets, strict=True)
            ]
        )  # fmt: skip
        try:
            trained = xgb_dask.train(
                self._client,
                model.get_xgb_params(),
                xgb_dask.DaskDMatrix(self._client, features, labels),
                num_boost_round=model.n_estimators,
                verbose_eval=False,
                # A worker that leaves mid-fit would leave the others waiting forever.
                coll_cfg=Config(timeout=max(1, round(self._fit_timeout_s))),
            )
        except Exception as error:  # the workers' errors arrive as many types
            first = next((line for line in str(error).splitlines() if line.strip()), "")
            raise ClusterError(
                f"XGBoost on the Dask cluster failed ({type(error).__name__}: {first[:200]}); "
                "a worker may have left mid-fit: check the cluster and run again"
            ) from None
        finally:
            del features, labels, blocks, targets  # released, not cancelled: a worker may be gone
        model.load_model(bytearray(trained["booster"].save_raw("json")))
        return fitted


@dataclass(frozen=True)
class TrainingPlace:
    """The settings a run uses there (cluster runs ask joblib for every worker) and where its
    Optuna trials run (None: here)."""

    settings: Settings
    parallel: DaskOffload | None


@contextmanager
def training_cluster(settings: Settings, address: str | None) -> Iterator[TrainingPlace]:
    """Where a training run works: on the cluster at ``address``
    (:func:`~creditops.scale.cluster_address`) as the module docstring says, for as long as the
    context lasts; in this process as without Dask when ``address`` is None."""
    if address is None:
        yield TrainingPlace(settings, None)
        return
    import joblib

    with cluster_client(address) as client:
        # Every worker thread is a joblib worker: n_jobs=-1 asks the dask backend for them all.
        on_cluster = settings.model_copy(update={"n_jobs": -1})
        with joblib.parallel_config(backend="dask"):
            yield TrainingPlace(
                on_cluster,
                DaskOffload(
                    client,
                    xgboost_rows=settings.dask_xgboost_rows,
                    fit_timeout_s=settings.dask_fit_timeout_s,
                ),
            )


def _quiet_optuna() -> None:
    """DaskStorage is marked experimental: said once in the docs, not on every trial's log."""
    import warnings

    from optuna.exceptions import ExperimentalWarning

    warnings.filterwarnings("ignore", category=ExperimentalWarning)


def _xgboost_pipeline(pipeline: Any) -> bool:
    from sklearn.pipeline import Pipeline
    from xgboost import XGBClassifier

    return isinstance(pipeline, Pipeline) and type(pipeline.steps[-1][1]) is XGBClassifier


def train_on_cluster(settings: Settings, address: str | None, **options: Any) -> TrainingResult:
    """:func:`~creditops.registry.train_and_register` (``options`` are its keywords) in the
    place :func:`training_cluster` gives."""
    with training_cluster(settings, address) as place:
        return train_and_register(place.settings, parallel=place.parallel, **options)
