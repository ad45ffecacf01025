"""Where distributed work runs: a Dask scheduler named by URL, a ``LocalCluster`` started for
the command (``local`` or ``local:N``), or nowhere (None: this process, as without Dask)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from creditops.config import Settings
from creditops.exceptions import ConfigurationError

_LOCAL = re.compile(r"^local(?::(\d+))?$")
_CONNECT_TIMEOUT_S = 30


def cluster_address(settings: Settings, cluster: str | None = None) -> str | None:
    """The cluster a command uses: its ``--cluster`` option, else ``CREDITOPS_DASK_SCHEDULER``,
    else None; refused at once when it is neither a scheduler URL nor ``local[:N]``."""
    address = cluster if cluster is not None else settings.dask_scheduler
    if address is None or address.strip() == "":
        return None
    address = address.strip()
    match = _LOCAL.match(address)
    if match is not None:
        if match.group(1) is not None and int(match.group(1)) < 1:
            raise ConfigurationError(f"--cluster {address}: a local cluster needs 1 worker or more")
        return address
    if re.match(r"^(tcp|tls|ucx|inproc)://[^\s/]+$", address):
        return address
    raise ConfigurationError(
        f"--cluster {address!r}: use a scheduler address (tcp://host:8786) or local[:N]"
    )


@contextmanager
def cluster_client(address: str | None) -> Iterator[Any]:
    """A ``distributed.Client`` for ``address`` (see :func:`cluster_address`), closed at the
    end, with the LocalCluster it started; None when no cluster is asked for."""
    if address is None:
        yield None
        return
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ConfigurationError(
            "a Dask cluster needs the dask extra: pip install 'creditops[dask]'"
        ) from None
    match = _LOCAL.match(address)
    if match is None:
        try:
            client = Client(address, timeout=_CONNECT_TIMEOUT_S)
        except OSError as error:
            raise ConfigurationError(
                f"cannot reach the Dask scheduler {address}: {error}"
            ) from None
        try:
            yield client
        finally:
            client.close()
        return
    workers = int(match.group(1)) if match.group(1) else (os.cpu_count() or 1)
    # One thread per worker: the work is Python holding the GIL (validation, SHAP), so a
    # worker process per core is what runs in parallel.
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
        ) as local,
        Client(local) as client,
    ):
        yield client
