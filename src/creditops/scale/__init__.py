"""The same steps past one machine: a Dask cluster when one is configured
(``CREDITOPS_DASK_SCHEDULER`` or ``--cluster``), this process otherwise.

* :mod:`.cluster`: connect to a scheduler, or start a ``LocalCluster``.
* :mod:`.batch`: decisions on files of any size, partition by partition, resumable.

``dask`` and ``distributed`` are the optional extra ``creditops[dask]``; nothing here imports
them until a command asks for it.
"""

from creditops.scale.batch import PartitionedSummary, predict_partitioned
from creditops.scale.cluster import cluster_address, cluster_client

__all__ = ["PartitionedSummary", "cluster_address", "cluster_client", "predict_partitioned"]
