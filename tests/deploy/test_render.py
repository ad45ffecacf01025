"""The Render Blueprint, checked without Render: it validates against Render's published schema
(vendored in deploy/schemas/), a broken copy is refused, and what it wires holds together and
matches the application: the health check is a route, every command is a creditops or MLflow
command with options they have, the databases and the tracking server reach the roles that
need them, and no secret is written in the file."""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import typer.main
import yaml
from sqlalchemy.engine import make_url

from creditops.cli import app as cli_app
from creditops.config import Settings
from creditops.serving.app import create_app
from creditops.store.database import normalise_url
from helpers import tool

ROOT = Path(__file__).resolve().parents[2]
BLUEPRINT = ROOT / "render.yaml"
SCHEMAS = ROOT / "deploy" / "schemas"
SCHEMA = SCHEMAS / "render.yaml.schema.json"
#: What Render's hostport gives for the private service: its internal host name, then the port.
MLFLOW_HOSTPORT = "creditops-mlflow-x7k2:5000"


def _tool(name: str) -> str:
    return tool(name, "`make install` installs it from PyPI")


def _validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_tool("check-jsonschema"), "--schemafile", str(SCHEMA), str(path)],
        capture_output=True,
        text=True,
    )


def _blueprint() -> dict:
    return yaml.safe_load(BLUEPRINT.read_text())


def _services() -> dict[str, dict]:
    return {s["name"]: s for s in _blueprint()["services"]}


def _service(kind: str) -> dict:
    (service,) = [s for s in _blueprint()["services"] if s["type"] == kind]
    return service


def _env(service: dict) -> dict[str, dict]:
    return {e["key"]: e for e in service.get("envVars", []) if "key" in e}


def _run_with_stubs(command: str, tmp_path: Path, env: dict[str, str]) -> list[tuple[str, ...]]:
    """Run a dockerCommand as Render does (split into words, no shell of its own) with
    `creditops` and `mlflow` replaced by stubs that record their arguments and the tracking
    URI they were given: (program, MLFLOW_TRACKING_URI, *arguments) per call."""
    stubs, log = tmp_path / "bin", tmp_path / "calls.log"
    stubs.mkdir(parents=True, exist_ok=True)
    for program in ("creditops", "mlflow"):
        stub = stubs / program
        stub.write_text(
            "#!/bin/sh\n"
            f'printf "%s\\n" "{program}" "${{MLFLOW_TRACKING_URI-}}" "$@" | '
            "tr '\\n' '\\037' >> \"$STUB_LOG\"\necho >> \"$STUB_LOG\"\n"
        )
        stub.chmod(0o755)
    result = subprocess.run(
        shlex.split(command),
        env={"PATH": f"{stubs}:/usr/bin:/bin", "STUB_LOG": str(log), **env},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    return [tuple(line.rstrip("\x1f").split("\x1f")) for line in log.read_text().splitlines()]


def _parses(args: tuple[str, ...]) -> dict:
    """The parameters creditops's CLI parses from ``args`` (invalid ones raise); nothing runs."""
    command, rest = typer.main.get_command(cli_app), list(args)
    while hasattr(command, "commands") and rest and rest[0] in command.commands:
        command = command.commands[rest.pop(0)]
    assert not hasattr(command, "commands"), f"{args}: not a command"
    return command.make_context(" ".join(args), rest).params


# -- the schema and the validator -----------------------------------------------------------------


def test_the_vendored_schema_is_renders_and_unchanged() -> None:
    schema = json.loads(SCHEMA.read_text())
    assert schema["$id"] == "https://render.com/schema/render.yaml.json"
    recorded = re.search(r"sha256 \| `([0-9a-f]{64})`", (SCHEMAS / "README.md").read_text())
    assert recorded, "deploy/schemas/README.md records the file's sha256"
    assert hashlib.sha256(SCHEMA.read_bytes()).hexdigest() == recorded.group(1)


def test_the_blueprint_follows_renders_schema() -> None:
    result = _validate(BLUEPRINT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok -- validation done" in result.stdout


@pytest.mark.parametrize(
    ("good", "bad", "named"),
    [
        ("type: pserv\n", "type: private\n", "'private' is not one of"),  # unknown service type
        ("numInstances: 2\n", "numInstances: two\n", "'two'"),  # a number as text
        ("healthCheckPath:", "healthcheckPath:", "healthcheckPath"),  # misspelt field
        ("plan: basic-256mb\n", "plan: micro\n", "'micro'"),  # no such instance type
    ],
)
def test_the_validator_refuses_a_broken_blueprint(
    tmp_path: Path, good: str, bad: str, named: str
) -> None:
    text = BLUEPRINT.read_text()
    assert good in text
    broken = tmp_path / "render.yaml"
    broken.write_text(text.replace(good, bad, 1))
    result = _validate(broken)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Schema validation errors" in result.stdout
    verbose = subprocess.run(
        [_tool("check-jsonschema"), "--verbose", "--schemafile", str(SCHEMA), str(broken)],
        capture_output=True,
        text=True,
    )
    assert named in verbose.stdout


# -- what the blueprint wires -----------------------------------------------------------------


def test_the_roles_are_those_of_compose_and_kubernetes() -> None:
    services = _services()
    assert {s["type"] for s in services.values()} == {"web", "worker", "cron", "pserv"}
    for service in services.values():
        assert service["runtime"] == "docker"
        assert (ROOT / service["dockerfilePath"]).resolve() == ROOT / "Dockerfile"
        for path in service["buildFilter"]["paths"]:
            assert "*" in path or (ROOT / path).exists(), path
    regions = {s["region"] for s in services.values()} | {
        d["region"] for d in _blueprint()["databases"]
    }
    assert len(regions) == 1  # the private network ends at a region


def test_the_api_is_checked_for_readiness_and_migrates_before_each_deploy() -> None:
    web = _service("web")
    routes = {getattr(r, "path", "") for r in create_app(Settings(), load_model=False).routes}
    assert web["healthCheckPath"] == "/ready"
    assert web["healthCheckPath"] in routes
    assert web["preDeployCommand"] == "creditops db upgrade"
    _parses(tuple(shlex.split(web["preDeployCommand"])[1:]))
    assert web["numInstances"] >= 2 or web["scaling"]["minInstances"] >= 2


def test_each_role_runs_its_creditops_command_against_the_tracking_server(tmp_path: Path) -> None:
    expected = {
        "web": [("serve",)],
        "worker": [("train", "--if-no-champion"), ("monitor", "--every", "1h")],
        "cron": [("retrain",)],
    }
    for kind, commands in expected.items():
        service = _service(kind)
        calls = _run_with_stubs(
            service["dockerCommand"], tmp_path / kind, {"MLFLOW_HOSTPORT": MLFLOW_HOSTPORT}
        )
        assert [c[2:] for c in calls] == commands, kind
        for program, tracking_uri, *args in calls:
            assert program == "creditops"
            assert tracking_uri == f"http://{MLFLOW_HOSTPORT}"
            _parses(tuple(args))
        # exec: creditops itself receives Render's SIGTERM, not the shell
        assert "exec creditops " + " ".join(commands[-1]) in service["dockerCommand"]
        assert _env(service)["MLFLOW_HOSTPORT"]["fromService"] == {
            "type": "pserv",
            "name": _service("pserv")["name"],
            "property": "hostport",
        }
    assert _parses(("monitor", "--every", "1h"))["every"] == "1h"


def test_the_retrain_job_runs_daily() -> None:
    minute, hour, *rest = _service("cron")["schedule"].split()
    assert re.fullmatch(r"[0-5]?[0-9]", minute)  # one minute
    assert re.fullmatch(r"1?[0-9]|2[0-3]", hour)  # of one hour
    assert rest == ["*", "*", "*"]  # of every day


def test_the_tracking_server_is_private_and_answers_the_name_it_is_called_by(
    tmp_path: Path,
) -> None:
    from mlflow.cli import cli as mlflow_cli
    from mlflow.server.security_utils import is_allowed_host_header

    mlflow = _service("pserv")
    ((program, _, *args),) = _run_with_stubs(mlflow["dockerCommand"], tmp_path, {})
    assert program == "mlflow"
    assert args[0] == "server"
    server = mlflow_cli.commands["server"]
    params = server.make_context("server", args[1:]).params
    assert params["serve_artifacts"] is True
    assert params["artifacts_destination"].startswith(mlflow["disk"]["mountPath"] + "/")
    allowed = params["allowed_hosts"].split(",")
    assert is_allowed_host_header(allowed, MLFLOW_HOSTPORT)
    assert is_allowed_host_header(allowed, "creditops-mlflow:5000")
    assert not is_allowed_host_header(allowed, "attacker.example:5000")
    assert MLFLOW_HOSTPORT.endswith(f":{params['port']}")
    # its backend store comes from its own database, through the variable mlflow server reads
    (backend,) = [p for p in server.params if p.name == "backend_store_uri"]
    assert backend.envvar == "MLFLOW_BACKEND_STORE_URI"
    assert _env(mlflow)["MLFLOW_BACKEND_STORE_URI"]["fromDatabase"] == {
        "name": "creditops-mlflow-db",
        "property": "connectionString",
    }


def test_creditops_and_mlflow_have_databases_of_their_own() -> None:
    databases = {d["name"]: d for d in _blueprint()["databases"]}
    services = _services()
    wired = {}
    for service in services.values():
        for key, env in _env(service).items():
            if "fromDatabase" in env:
                assert env["fromDatabase"]["property"] == "connectionString"
                assert env["fromDatabase"]["name"] in databases
                wired.setdefault(key, set()).add(env["fromDatabase"]["name"])
    # both keep an alembic_version table: one database each
    assert wired == {
        "CREDITOPS_DATABASE_URL": {"creditops-db"},
        "MLFLOW_BACKEND_STORE_URI": {"creditops-mlflow-db"},
    }
    for kind in ("web", "worker", "cron"):
        assert "CREDITOPS_DATABASE_URL" in _env(_service(kind)), kind
    for database in databases.values():
        assert database["ipAllowList"] == []  # reachable from Render's private network only


def test_renders_connection_string_opens_with_the_driver_the_image_has() -> None:
    """Render gives postgresql://...; creditops runs it through psycopg 3, and so does
    SQLAlchemy 2.1 for MLflow's server (psycopg2 is not installed)."""
    render_url = "postgresql://creditops:secret@dpg-d1abc2defg3h4i-a/creditops"
    assert normalise_url(render_url, "the creditops database", "record").get_driver_name() == (
        "psycopg"
    )
    assert make_url(render_url).get_driver_name() == "psycopg"


def test_the_admin_key_is_generated_and_no_secret_is_written() -> None:
    blueprint = _blueprint()
    (group,) = blueprint["envVarGroups"]
    secrets = {e["key"]: e for e in group["envVars"]}
    assert secrets["CREDITOPS_API_KEY"] == {"key": "CREDITOPS_API_KEY", "generateValue": True}
    assert secrets["CREDITOPS_SESSION_SECRET"]["generateValue"] is True
    assert {"fromGroup": group["name"]} in _service("web")["envVars"]
    fields = set(Settings.model_fields)
    everything = [e for s in blueprint["services"] for e in s["envVars"]] + group["envVars"]
    for env in everything:
        key = env.get("key", "")
        if re.search(r"(KEY|SECRET|PASSWORD|TOKEN|_URL|_URI)$", key):
            assert "value" not in env, key  # generated, asked for, or from a resource
        if key.startswith("CREDITOPS_"):
            assert key.removeprefix("CREDITOPS_").lower() in fields, key
