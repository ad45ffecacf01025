"""Background work as jobs: training (and, later, monitor and retrain runs) started from the
dashboard or the command line, run outside the web worker by a local process per job, tracked
in the job store (:mod:`creditops.store.jobs`)."""

from creditops.jobs.progress import JobProgress, TeeProgress
from creditops.jobs.runner import (
    TrainingRequest,
    cancel_job,
    dispatch,
    run_job,
    submit_training,
    train_recorded,
)

__all__ = [
    "JobProgress",
    "TeeProgress",
    "TrainingRequest",
    "cancel_job",
    "dispatch",
    "run_job",
    "submit_training",
    "train_recorded",
]
