"""The compose topology, checked without a Docker engine: Debian's docker-compose parses and
resolves it (``config``), it validates against the Compose specification's schema, and its
services start in the order the product needs (schema, then training, then the API)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

from helpers import tool

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"


def _tool(name: str) -> str:
    return tool(name, "`make test` installs it")


def _project(tmp_path: Path, text: str | None = None) -> Path:
    """The compose file in a folder of its own, with .env made from .env.example."""
    (tmp_path / "compose.yaml").write_text(text if text is not None else COMPOSE.read_text())
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    return tmp_path


def _config(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_tool("docker-compose"), "-f", str(project / "compose.yaml"), "config", *args],
        capture_output=True,
        text=True,
        cwd=project,
    )


def test_docker_compose_resolves_the_file(tmp_path: Path) -> None:
    project = _project(tmp_path)
    assert _config(project, "-q").returncode == 0
    services = _config(project, "--services").stdout.split()
    assert sorted(services) == sorted([
        "postgres", "mlflow", "migrate", "train", "api", "monitor", "retrain",
        "pushgateway", "prometheus", "alertmanager", "grafana",
        "dask-scheduler", "dask-worker",  # the optional "dask" profile
    ])  # fmt: skip


def test_docker_compose_refuses_a_broken_file(tmp_path: Path) -> None:
    text = COMPOSE.read_text().replace("service_completed_successfully", "service_finished", 1)
    result = _config(_project(tmp_path, text), "-q")
    assert result.returncode != 0
    assert "service_finished" in result.stderr


def test_the_file_follows_the_compose_specification() -> None:
    result = subprocess.run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_services_start_in_the_order_the_product_needs() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]

    def needs(name: str) -> dict[str, str]:
        return {k: v["condition"] for k, v in services[name]["depends_on"].items()}

    assert needs("migrate") == {"postgres": "service_healthy"}
    assert needs("mlflow") == {"postgres": "service_healthy"}
    assert needs("train") == {
        "migrate": "service_completed_successfully",
        "mlflow": "service_healthy",
    }
    assert needs("api") == {
        "migrate": "service_completed_successfully",
        "train": "service_completed_successfully",
        "mlflow": "service_healthy",
    }
    assert needs("monitor")["api"] == "service_healthy"
    assert services["api"]["command"] == ["serve"]
    assert services["api"]["environment"]["WEB_CONCURRENCY"] == "2"
    assert services["monitor"]["command"] == ["monitor", "--every", "1h"]
    assert services["train"]["command"] == ["train", "--if-no-champion"]
    assert services["migrate"]["command"] == ["db", "upgrade"]
    for name in ("postgres", "mlflow"):
        assert services[name]["healthcheck"]["test"]
    # MLflow refuses Host names it was not given: the one the other services call it by.
    tracking = services["api"]["environment"]["MLFLOW_TRACKING_URI"]
    host = tracking.split("//")[1]
    allowed = next(a for a in services["mlflow"]["command"] if a.startswith("--allowed-hosts="))
    assert host in allowed.split("=", 1)[1].split(",")
    named = set(yaml.safe_load(COMPOSE.read_text())["volumes"])
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source.startswith("./deploy/") or source in named, volume
            if source.startswith("./"):
                assert (ROOT / source).exists(), source


def test_no_secret_is_written_in_the_file_and_every_variable_is_in_the_example() -> None:
    text = COMPOSE.read_text()
    used = set(re.findall(r"\$\{(\w+)(?::-[^}]*)?\}", text))
    example = {
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert used - {"CREDITOPS_IMAGE"} <= example
    for key in ("PASSWORD", "API_KEY"):
        assert not re.search(rf"{key}\w*:\s*[^$\s{{]", text), key  # only ${...} values
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()


def test_the_prometheus_of_the_compose_file_loads_its_rules() -> None:
    result = subprocess.run(
        [_tool("promtool"), "check", "config",
         str(ROOT / "deploy" / "prometheus" / "prometheus.compose.yml")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_the_dask_profile_is_optional_and_its_workers_reach_the_scheduler() -> None:
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    dask = {name for name, s in services.items() if "dask" in s.get("profiles", [])}
    assert dask == {"dask-scheduler", "dask-worker"}  # nothing else needs Dask
    worker = services["dask-worker"]
    assert worker["entrypoint"] == ["dask"]
    assert worker["command"][:2] == ["worker", "tcp://dask-scheduler:8786"]
    assert worker["depends_on"]["dask-scheduler"]["condition"] == "service_healthy"
    # Like the API, the workers log to the creditops database and read the MLflow server.
    for name in ("CREDITOPS_DATABASE_URL", "MLFLOW_TRACKING_URI", "CREDITOPS_HOME"):
        assert worker["environment"][name] == services["api"]["environment"][name]
    help_text = subprocess.run(
        [_tool("dask"), "worker", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for option in (a for a in worker["command"] if a.startswith("--")):
        assert option in help_text
