"""The one module that talks to MLflow tracking.

Store: SQLite under ``CREDITOPS_HOME`` by default. MLflow 3 refuses a plain file store unless
told to allow it, and a database store is what the model registry needs anyway; SQLite gives
both with nothing to run. ``MLFLOW_TRACKING_URI`` points everything at a tracking server instead.

Model format: cloudpickle. MLflow's default skops format rejects pipelines holding XGBoost or
the PyTorch estimator unless each type is listed as trusted, and that list is read from the model
itself, so it adds no protection over pickle; MLflow gates loading of every format behind
``MLFLOW_ALLOW_PICKLE_DESERIALIZATION`` instead, which creditops sets only for its own store.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from creditops import __version__
from creditops.config import Settings
from creditops.data.spec import ResolvedSpec

MODEL_ARTIFACT = "model"
SPEC_FILE = "spec.json"
TRAINING_DATA_FILE = "data/training.parquet"
SPLIT_FILE = "split.csv"
SELECTION_FILE = "selection.json"
# Where a version's decision policy is stored on its run (the path older versions used too).
POLICY_FILE = "evaluation/policy.json"
_REQUIREMENTS = (
    "scikit-learn",
    "xgboost",
    "lightgbm",
    "torch",
    "optbinning",
    "pandas",
    "numpy",
    "scipy",
    "cloudpickle",
)


def quiet_mlflow_output() -> None:
    """No per-file download bars, and no "View run at" links written to stdout after each run
    on a tracking server: they would interleave with creditops' own output and break the
    JSON that ``--json`` prints."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")


def configure_tracking(settings: Settings) -> str:
    """Point MLflow at the configured store and return the experiment id."""
    import mlflow

    quiet_mlflow_output()
    if settings.uses_local_store:
        settings.ensure_home()
    # MLflow also exports these URIs as environment variables; creditops reads those variables
    # as *user* settings, so restore them or the next Settings() would inherit this store.
    saved = {key: os.environ.get(key) for key in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    mlflow.set_tracking_uri(settings.resolved_tracking_uri)
    mlflow.set_registry_uri(settings.registry_uri or settings.resolved_tracking_uri)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(settings.experiment_name)
    if experiment is None:
        experiment_id = client.create_experiment(
            settings.experiment_name, artifact_location=artifact_location(settings)
        )
    else:
        experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def artifact_location(settings: Settings) -> str | None:
    """Where a new experiment keeps its artifacts: the tracking server's own store when there is
    one, else ``CREDITOPS_HOME/artifacts``. Left unset with a database URI (even the default
    SQLite file given explicitly), MLflow would write to ``./mlruns`` of whatever directory the
    command runs in."""
    scheme = settings.resolved_tracking_uri.split(":", 1)[0].lower()
    if scheme in {"http", "https", "databricks"}:
        return None
    settings.ensure_home()
    return settings.artifacts_dir.as_uri()


@contextmanager
def start_run(name: str, *, nested: bool = False, run_id: str | None = None) -> Iterator[Any]:
    import mlflow

    with mlflow.start_run(run_name=None if run_id else name, nested=nested, run_id=run_id) as run:
        yield run


def log_params(params: dict[str, Any]) -> None:
    import mlflow

    mlflow.log_params({k: _param_text(v) for k, v in params.items()})


def _param_text(value: Any) -> str:
    text = json.dumps(value, default=str) if isinstance(value, dict | list | tuple) else str(value)
    return text[:6000]


def log_metrics(metrics: dict[str, float], *, prefix: str = "") -> None:
    import mlflow

    mlflow.log_metrics({f"{prefix}{k}": float(v) for k, v in metrics.items() if np.isfinite(v)})


def set_tags(tags: dict[str, Any]) -> None:
    import mlflow

    mlflow.set_tags({k: str(v) for k, v in tags.items()})


def log_dict(data: Any, artifact_file: str) -> None:
    import mlflow

    mlflow.log_dict(data, artifact_file)


def log_text(text: str, artifact_file: str) -> None:
    import mlflow

    mlflow.log_text(text, artifact_file)


def log_frame(frame: pd.DataFrame, artifact_file: str) -> None:
    """A table as CSV, readable without MLflow."""
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(artifact_file).name
        frame.to_csv(path, index=False)
        parent = str(Path(artifact_file).parent)
        mlflow.log_artifact(str(path), artifact_path=None if parent == "." else parent)


def log_parquet(frame: pd.DataFrame, artifact_file: str) -> None:
    """A table with its dtypes intact (the training data kept with the run as a reference)."""
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(artifact_file).name
        frame.to_parquet(path, index=False)
        parent = str(Path(artifact_file).parent)
        mlflow.log_artifact(str(path), artifact_path=None if parent == "." else parent)


def download_artifact(run_id: str, artifact_path: str, *, tracking_uri: str | None = None) -> Path:
    """A run's artifact, from ``tracking_uri`` (default: the process-wide store)."""
    import mlflow.artifacts

    return Path(
        mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=artifact_path, tracking_uri=tracking_uri
        )
    )


def log_figures(figures: dict[str, Any], directory: str) -> None:
    import mlflow

    for name, figure in figures.items():
        mlflow.log_figure(figure, f"{directory}/{name}")


def model_signature(spec: ResolvedSpec) -> Any:
    """Built from the spec, not inferred from a sample: every feature is optional (missing values
    are imputed) and numeric ones are doubles even when the sample holds integers."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    inputs = Schema(
        [ColSpec("double", name, required=False) for name in spec.numeric]
        + [ColSpec("string", name, required=False) for name in spec.categorical]
    )
    outputs = Schema([TensorSpec(np.dtype("float64"), (-1, 2), name="probabilities")])
    return ModelSignature(inputs=inputs, outputs=outputs)


def log_model(model: Any, spec: ResolvedSpec, input_example: pd.DataFrame) -> Any:
    """Log a fitted pipeline whose pyfunc flavour returns [P(good), P(default)] per row."""
    import mlflow.sklearn

    with tempfile.TemporaryDirectory() as tmp:
        spec_path = Path(tmp) / SPEC_FILE
        spec_path.write_text(spec.to_json(), encoding="utf-8")
        return mlflow.sklearn.log_model(
            model,
            name=MODEL_ARTIFACT,
            serialization_format="cloudpickle",
            signature=model_signature(spec),
            input_example=input_example,
            pyfunc_predict_fn="predict_proba",
            pip_requirements=pinned_requirements(),
            extra_files=[str(spec_path)],
            metadata={"creditops_version": __version__, "spec_version": spec.spec_version},
        )


def pinned_requirements() -> list[str]:
    """Exact versions of what the pipelines need (skips MLflow's slow requirement inference)."""
    return [f"{name}=={package_version(name)}" for name in _REQUIREMENTS]


def data_fingerprint(frame: pd.DataFrame) -> str:
    """A content hash of the data (values, column names and order), to tie a run to its data."""
    digest = hashlib.sha256()
    digest.update(json.dumps([str(c) for c in frame.columns]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def git_commit() -> str:
    """The commit of the creditops source tree, or "unknown" outside a git checkout."""
    source = Path(__file__).resolve().parent
    try:
        completed = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return completed.stdout.strip() if completed.returncode == 0 else "unknown"


def candidate_summaries(experiment_id: str | None, parent_run_id: str) -> list[dict[str, Any]]:
    """Every candidate of one training run as recorded: CV mean ± std per metric, validation
    and test metrics, calibration and tuned parameters."""
    import mlflow

    client = mlflow.MlflowClient()
    if experiment_id is None:
        experiment_id = client.get_run(parent_run_id).info.experiment_id
    runs = client.search_runs(
        [experiment_id], f"tags.mlflow.parentRunId = '{parent_run_id}'", max_results=100
    )
    summaries = []
    for run in runs:
        metrics, params = run.data.metrics, run.data.params
        cv_names = sorted({k[3:-4] for k in metrics if k.startswith("cv_") and k.endswith("_std")})
        summaries.append(
            {
                "name": run.data.tags.get("candidate", run.info.run_name),
                "run_id": run.info.run_id,
                "calibration": params.get("calibration"),
                "cv": {
                    name: {"mean": metrics.get(f"cv_{name}"), "std": metrics.get(f"cv_{name}_std")}
                    for name in cv_names
                },
                "validation": {
                    k[11:]: v
                    for k, v in metrics.items()
                    if k.startswith("validation_") and not k.startswith("validation_log_loss_")
                },
                "test": {k[5:]: v for k, v in metrics.items() if k.startswith("test_")},
                "params": {k[6:]: v for k, v in params.items() if k.startswith("param_")},
                "monotone_cost": metrics.get("monotone_constraint_cost"),
                "selection": {
                    "gap": metrics.get("selection_cv_gap"),
                    "gap_se": metrics.get("selection_cv_gap_se"),
                    "within_rule": run.data.tags.get("selection_within_rule") == "true",
                },
            }
        )
    return sorted(summaries, key=lambda s: -(s["cv"].get("roc_auc", {}).get("mean") or 0.0))


def run_tag(run_id: str, key: str) -> str | None:
    import mlflow

    return mlflow.MlflowClient().get_run(run_id).data.tags.get(key)


def log_artifact(path: str, artifact_dir: str | None = None) -> None:
    import mlflow

    mlflow.log_artifact(path, artifact_path=artifact_dir)
