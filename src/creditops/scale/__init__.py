"""The same steps past one machine: a Dask cluster when one is configured
(``CREDITOPS_DASK_SCHEDULER`` or ``--cluster``), this process otherwise.

* :mod:`.cluster`: connect to a scheduler, or start a ``LocalCluster``.
* :mod:`.batch`: decisions on files of any size, partition by partition, resumable.
* :mod:`.training`: training and tuning with Optuna's trials, the classical candidates' folds
  and large XGBoost fits on the workers.

``dask``, ``distributed`` and ``optuna-integration`` are the optional extra
``creditops[dask]``; nothing here imports them until a command asks for it.
"""

from creditops.scale.batch import PartitionedSummary, predict_partitioned
from creditops.scale.cluster import cluster_address, cluster_client
from creditops.scale.training import DaskOffload, train_on_cluster, training_cluster

__all__ = [
    "DaskOffload",
    "PartitionedSummary",
    "cluster_address",
    "cluster_client",
    "predict_partitioned",
    "train_on_cluster",
    "training_cluster",
]
