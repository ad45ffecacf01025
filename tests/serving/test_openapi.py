"""The API's OpenAPI document tells the truth, checked three ways: its request bodies are the
served version's models with an example from a real row; a schema-based fuzzer (Schemathesis,
every check) finds no failure against a real `creditops serve`, with a key of each role in
turn; and /docs and /redoc load every asset from the server itself."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from creditops.config import Settings
from creditops.serving.schemas import ErrorBody
from creditops.store.keys import KeyStore
from helpers import served_process, serving

pytestmark = pytest.mark.slow

API_KEY = "fuzz-test-key-0123456789"
KEYED = {"X-API-Key": API_KEY}
# Per role: the bootstrap admin key, then a key holding only decide, then only analyst.
FUZZ_SECONDS = 12
ROLES = ("admin", "decide", "analyst")
# CSV has no types: no JSON Schema can say which texts are valid batches, so a schema-valid
# string sent as text/csv may well be refused (422). Only that operation allows it.
FUZZ_CONFIG = """
[[operations]]
include-path = "/predict/batch"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422"]
"""


@pytest.fixture(scope="module")
def role_keys(trained, tmp_path_factory) -> tuple[Settings, dict[str, str]]:
    """A copy of the trained store with an admin key, and a key of one role each."""
    source, _ = trained
    home = tmp_path_factory.mktemp("openapi-home") / "home"
    shutil.copytree(source.home, home)
    settings = Settings(home=home, api_key=API_KEY)
    keys = {"admin": API_KEY}
    with KeyStore(settings.resolved_database_url) as store:
        for role in ("decide", "analyst"):
            keys[role] = store.create(f"fuzz-{role}", [role], created_by="test").key
    return settings, keys


@pytest.fixture(scope="module")
def served(role_keys) -> Iterator[str]:
    """`creditops serve` in its own process, on a copy of the trained store."""
    settings, _ = role_keys
    with served_process(settings, ready=True) as url:
        yield url


def test_request_bodies_are_the_served_versions_models(served):
    document = httpx.get(f"{served}/openapi.json", timeout=30, headers=KEYED).json()
    schemas = document["components"]["schemas"]
    application = schemas["Application"]
    assert application["additionalProperties"] is False
    assert {"Income", "Home", "Age"} <= set(application["properties"])
    assert "Status" not in application["properties"]  # the target is never an input
    paths = document["paths"]
    predict = paths["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert predict["schema"] == {"$ref": "#/components/schemas/Application"}
    assert set(predict["example"]) == set(application["properties"]) - {"Age", "Marital"}
    batch = paths["/predict/batch"]["post"]["requestBody"]["content"]
    assert batch["application/json"]["example"] == {"applications": [predict["example"]]}
    assert batch["text/csv"]["example"].splitlines()[0].split(",") == list(predict["example"])
    explain = paths["/explain"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert {"$ref": "#/components/schemas/LoggedDecision"} in explain["anyOf"]
    # The example is a real application: it is decided.
    assert (
        httpx.post(
            f"{served}/predict", json=predict["example"], timeout=30, headers=KEYED
        ).status_code
        == 200
    )
    # The feedback routes read their bodies themselves too; their models are still documented.
    for path, model in (("/feedback", "FeedbackRequest"), ("/feedback/batch", "FeedbackBatch")):
        operation = paths[path]["post"]
        body = operation["requestBody"]["content"]["application/json"]
        assert body["schema"] == {"$ref": f"#/components/schemas/{model}"}
        assert body["example"]
        assert {"404", "409", "413", "422", "503"} <= set(operation["responses"])
    assert schemas["FeedbackRequest"]["required"] == ["prediction_id", "outcome"]
    feedback_example = paths["/feedback"]["post"]["requestBody"]["content"]["application/json"]
    # A valid body, about a decision this server never made.
    unknown = httpx.post(
        f"{served}/feedback", json=feedback_example["example"], timeout=30, headers=KEYED
    )
    assert unknown.status_code == 404


def test_every_error_status_is_documented_with_the_one_error_body(served):
    document = httpx.get(f"{served}/openapi.json", timeout=30, headers=KEYED).json()
    error = {"$ref": "#/components/schemas/ErrorBody"}
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    assert response["content"]["application/json"]["schema"] == error, (
                        method,
                        path,
                        status,
                    )
    # Every route but the probes takes a key, in either header, and documents 401 and 403.
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            if path in ("/health", "/ready"):
                continue
            assert {"401", "403"} <= set(operation["responses"]), (method, path)
            assert operation["security"] == [{"APIKeyHeader": []}, {"HTTPBearer": []}], path
    # FastAPI's own validation answers the same body.
    invalid = httpx.post(f"{served}/feedback", json={"outcome": "maybe"}, timeout=30, headers=KEYED)
    assert invalid.status_code == 422
    body = ErrorBody.model_validate(invalid.json())
    assert {e.field for e in body.errors} == {"prediction_id", "outcome"}


def test_the_request_bodies_follow_the_served_version(trained, tmp_path):
    """Without a version the document still lists the bodies; with one, its own fields."""
    source, _ = trained
    home = tmp_path / "home"
    shutil.copytree(source.home, home)
    for settings, fields in (
        (Settings(home=tmp_path / "empty", champion_poll_seconds=0, api_key=API_KEY), False),
        (Settings(home=home, champion_poll_seconds=0, api_key=API_KEY), True),
    ):
        with serving(settings) as url:
            document = httpx.get(f"{url}/openapi.json", timeout=30, headers=KEYED).json()
        application = document["components"]["schemas"]["Application"]
        assert ("Income" in application.get("properties", {})) is fields


@pytest.mark.parametrize("role", ROLES)
def test_a_schema_fuzzer_finds_no_failure(served, role_keys, role, tmp_path):
    """Schemathesis, every check and phase, against the live server for a bounded time, as a
    key of ``role``: what the role may not do must be a documented 403, never a failure."""
    _, keys = role_keys
    config = tmp_path / "schemathesis.toml"
    config.write_text(FUZZ_CONFIG)
    # Read with the admin key: a key of the decide role may not read the document itself.
    document = tmp_path / "openapi.json"
    document.write_text(httpx.get(f"{served}/openapi.json", timeout=30, headers=KEYED).text)
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(config),
        "run",
        str(document),
        "--url",
        served,
        "--checks",
        "all",
        "--header",
        f"X-API-Key: {keys[role]}",
        "--max-time",
        str(FUZZ_SECONDS),
        "--workers",
        "1",
        "--seed",
        "20261124",
        "--request-timeout",
        "30",
    ]
    run = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=FUZZ_SECONDS + 90,
        check=False,
        cwd=tmp_path,  # its cache of crashes stays out of the working tree
        env={**os.environ, "NO_COLOR": "1"},
    )
    output = run.stdout + run.stderr
    summary = output[output.rfind("SUMMARY") :]
    print(summary)
    assert run.returncode == 0, output[-6000:]
    assert re.search(r"\d+ generated", summary), summary
    assert "Server error" not in output


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_load_every_asset_from_the_server(served, page):
    with httpx.Client(base_url=served, timeout=30, headers=KEYED) as client:
        response = client.get(page)
        assert response.status_code == 200
        parser = _Links()
        parser.feed(response.text)
        assert parser.urls, "the page references its assets"
        for url in parser.urls:
            assert not re.match(r"^(https?:)?//", url), url  # nothing from another host
            assert client.get(url).status_code == 200, url
        # the scripts that load the document name it by a local path too
        assert "cdn" not in response.text.lower()
        assert client.get("/openapi.json").status_code == 200
