"""The DaskCluster of deploy/k8s/dask/ (the dask-kubernetes operator's resource): its scheduler
and worker pods and its scheduler Service are checked strictly as the Kubernetes objects they
become, its commands against the dask CLI the image ships, and its settings against the API's."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from helpers import tool

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "deploy" / "k8s" / "dask" / "daskcluster.yaml"
DEPLOYMENT = ROOT / "deploy" / "k8s" / "20-deployment.yaml"
KUBERNETES_VERSION = "1.37.0"


def _cluster() -> dict:
    return yaml.safe_load(CLUSTER.read_text())


def _validate(tmp_path: Path, kind: str, spec: dict, name: str) -> subprocess.CompletedProcess:
    api = {"Pod": "v1", "Service": "v1"}[kind]
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        yaml.safe_dump({"apiVersion": api, "kind": kind, "metadata": {"name": name}, "spec": spec})
    )
    return subprocess.run(
        [tool("kubernetes-validate", "`make install` installs it from PyPI"), "--strict",
         "-k", KUBERNETES_VERSION, str(path)],
        capture_output=True, text=True,
    )  # fmt: skip


def test_it_is_a_daskcluster_of_the_operator() -> None:
    cluster = _cluster()
    assert cluster["apiVersion"] == "kubernetes.dask.org/v1"
    assert cluster["kind"] == "DaskCluster"
    assert cluster["spec"]["worker"]["replicas"] >= 2


def test_its_pods_and_service_are_valid_kubernetes_objects(tmp_path: Path) -> None:
    spec = _cluster()["spec"]
    for kind, body, name in (
        ("Pod", spec["scheduler"]["spec"], "scheduler"),
        ("Pod", spec["worker"]["spec"], "worker"),
        ("Service", spec["scheduler"]["service"], "scheduler-service"),
    ):
        result = _validate(tmp_path, kind, body, name)
        assert result.returncode == 0, result.stdout + result.stderr


def test_a_misspelt_pod_field_is_refused(tmp_path: Path) -> None:
    worker = _cluster()["spec"]["worker"]["spec"]
    worker["containers"][0]["resource"] = worker["containers"][0].pop("resources")
    assert _validate(tmp_path, "Pod", worker, "broken").returncode != 0


def test_the_commands_are_the_dask_cli_of_the_image() -> None:
    spec = _cluster()["spec"]
    scheduler = spec["scheduler"]["spec"]["containers"][0]
    worker = spec["worker"]["spec"]["containers"][0]
    assert scheduler["command"] == ["dask", "scheduler"]  # overrides the creditops entrypoint
    assert worker["command"][:2] == ["dask", "worker"]
    dask = tool("dask", "`make install` installs the dask extra")
    help_text = subprocess.run(
        [dask, "worker", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for option in (a for a in worker["command"] if a.startswith("--")):
        assert option in help_text
    # The scheduler's Service sends to the ports the scheduler pod names.
    named = {p["name"] for p in scheduler["ports"]}
    assert {p["targetPort"] for p in spec["scheduler"]["service"]["ports"]} <= named


def test_the_workers_share_the_apis_settings_and_fit_their_memory() -> None:
    api = yaml.safe_load(DEPLOYMENT.read_text())["spec"]["template"]["spec"]["containers"][0]
    worker = _cluster()["spec"]["worker"]["spec"]["containers"][0]
    assert worker["envFrom"] == api["envFrom"]
    database = next(e for e in api["env"] if e["name"] == "CREDITOPS_DATABASE_URL")
    assert database in worker["env"]
    command = worker["command"]
    assert command[command.index("--nthreads") + 1] == "1"
    limit = command[command.index("--memory-limit") + 1]
    assert limit == "1.5GiB"
    assert worker["resources"]["limits"]["memory"] == "2Gi"  # spills and pauses before the kill
