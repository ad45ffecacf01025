"""What runs creditops elsewhere, checked by the tools made for each file (no Docker engine or
cluster here): the Dockerfile by hadolint, the Kubernetes manifests strictly against the
Kubernetes schema, and both against the application they run (its routes, its commands)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from creditops.cli import app as cli_app
from creditops.config import Settings
from creditops.serving.app import create_app
from creditops.serving.server import GRACEFUL_SHUTDOWN_S
from helpers import tool

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.37.0"


def _tool(name: str) -> str:
    return tool(name, "`make install` installs it from PyPI")


def _manifests() -> list[dict]:
    documents = []
    for path in sorted(K8S.glob("*.yaml")):
        documents.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return documents


def _by_kind(kind: str) -> list[dict]:
    return [d for d in _manifests() if d["kind"] == kind]


def _settings_from(data: dict[str, str]) -> dict[str, str]:
    """The ConfigMap's CREDITOPS_ variables as Settings fields."""
    prefix = "CREDITOPS_"
    return {k.removeprefix(prefix).lower(): v for k, v in data.items() if k.startswith(prefix)}


def _pod_specs() -> list[dict]:
    specs = []
    for document in _manifests():
        if document["kind"] in ("Deployment", "Job"):
            specs.append(document["spec"]["template"]["spec"])
        elif document["kind"] == "CronJob":
            specs.append(document["spec"]["jobTemplate"]["spec"]["template"]["spec"])
    return specs


def test_the_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [_tool("hadolint"), "--failure-threshold", "info", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_fails_a_dockerfile_that_breaks_its_rules(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install creditops\nCMD creditops serve\n")
    result = subprocess.run([_tool("hadolint"), str(bad)], capture_output=True, text=True)
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # the latest tag


def test_the_image_runs_the_server_as_a_non_root_user_with_signals_reaching_it() -> None:
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    runtime = lines[lines.index(next(x for x in lines if x.endswith("AS runtime"))) :]
    assert any(x.startswith("USER 10001") for x in runtime)
    assert 'ENTRYPOINT ["creditops"]' in runtime  # exec form: PID 1 is creditops
    assert 'CMD ["serve"]' in runtime
    assert any(x.startswith("HEALTHCHECK") for x in runtime)
    assert "/health" in " ".join(runtime)
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignored[1] == "*"  # everything out, then only what the build reads back in


def test_every_manifest_validates_strictly_against_kubernetes() -> None:
    files = sorted(str(p) for p in K8S.glob("*.yaml"))
    assert len(files) >= 9
    result = subprocess.run(
        [_tool("kubernetes-validate"), "--strict", "-k", KUBERNETES_VERSION, *files],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed") == len(files)


def test_the_validator_refuses_a_misspelt_field(tmp_path: Path) -> None:
    text = (K8S / "20-deployment.yaml").read_text().replace("readinessProbe:", "readinesProbe:")
    bad = tmp_path / "deployment.yaml"
    bad.write_text(text)
    result = subprocess.run(
        [_tool("kubernetes-validate"), "--strict", "-k", KUBERNETES_VERSION, str(bad)],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "readinesProbe" in result.stdout + result.stderr


def test_the_manifests_hold_together() -> None:
    kinds = {d["kind"] for d in _manifests()}
    assert {
        "ConfigMap", "Job", "Deployment", "Service", "HorizontalPodAutoscaler",
        "PodDisruptionBudget", "NetworkPolicy", "CronJob",
    } <= kinds  # fmt: skip
    (deployment,) = _by_kind("Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    for selector in (
        _by_kind("Service")[0]["spec"]["selector"],
        _by_kind("PodDisruptionBudget")[0]["spec"]["selector"]["matchLabels"],
        deployment["spec"]["selector"]["matchLabels"],
    ):
        assert selector.items() <= labels.items()
    assert (
        _by_kind("HorizontalPodAutoscaler")[0]["spec"]["scaleTargetRef"]["name"]
        == (deployment["metadata"]["name"])
    )
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    # SIGTERM comes after the preStop pause; then the drain window, then the requests in
    # flight: all of it before the kubelet's SIGKILL.
    pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain = Settings(**_settings_from(_by_kind("ConfigMap")[0]["data"])).drain_seconds
    assert drain > 0
    assert pause + drain + GRACEFUL_SHUTDOWN_S < pod["terminationGracePeriodSeconds"]
    schedules = {c["metadata"]["name"]: c["spec"]["schedule"] for c in _by_kind("CronJob")}
    assert schedules == {"creditops-monitor": "5 * * * *", "creditops-retrain": "30 3 * * *"}
    assert all(c["spec"]["concurrencyPolicy"] == "Forbid" for c in _by_kind("CronJob"))


def test_the_manifests_use_only_what_the_application_has() -> None:
    routes = {getattr(r, "path", "") for r in create_app(Settings(), load_model=False).routes}
    commands = {
        c.name or c.callback.__name__.replace("_", "-") for c in cli_app.registered_commands
    } | {g.name for g in cli_app.registered_groups}
    config_keys = set(_by_kind("ConfigMap")[0]["data"])
    for pod in _pod_specs():
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"]:
            assert container["args"][0] in commands, container["args"]
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                if probe in container:
                    assert container[probe]["httpGet"]["path"] in routes
            for variable in config_keys:
                assert variable.startswith(("CREDITOPS_", "MLFLOW_")) or variable in (
                    "PORT",
                    "WEB_CONCURRENCY",
                )
            secrets = [
                e["valueFrom"]["secretKeyRef"] for e in container.get("env", []) if "valueFrom" in e
            ]
            assert all(s["name"] == "creditops-secrets" for s in secrets)
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            mounts = {m["mountPath"] for m in container["volumeMounts"]}
            assert "/var/lib/creditops" in mounts  # CREDITOPS_HOME stays writable


def test_serve_takes_its_address_and_workers_from_the_environment(tmp_path: Path) -> None:
    """As the image and the platforms run it: no flags, PORT / CREDITOPS_HOST /
    WEB_CONCURRENCY set."""
    import os
    import signal
    import time

    import httpx

    from helpers import free_port

    port = free_port()
    env = {
        **os.environ,
        "CREDITOPS_HOME": str(tmp_path),
        "PORT": str(port),
        "CREDITOPS_HOST": "127.0.0.1",
        "WEB_CONCURRENCY": "2",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "creditops.cli", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        pids, deadline = set(), time.time() + 120
        while len(pids) < 2 and time.time() < deadline:
            assert server.poll() is None
            try:  # fresh connections spread over the workers
                pids.add(httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json()["pid"])
            except httpx.HTTPError:
                time.sleep(0.2)
        assert len(pids) == 2, pids
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
