"""Every dashboard route, walked over a real server: nobody reaches a page or an action without
logging in, and a reader is refused every action that changes something."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from creditops.config import Settings
from creditops.serving.app import create_app
from helpers import served_process
from ui_helpers import ADMIN_KEY, READER_KEY

# Valid values for each path parameter (they need not exist: access is checked first).
_VALUES = {
    "version": "1",
    "prediction_id": "00000000-0000-4000-8000-000000000000",
    "key": "0123456789abcdef",
    "name": "credit_data",
    "job_id": "00000000-0000-4000-8000-000000000001",
    "alert_id": "00000000-0000-4000-8000-000000000002",
    "batch_id": "0" * 32,
    "fmt": "csv",
    "switch": "halt",
}
_OPEN = {"/ui/login", "/ui/logout"}


def _routes() -> list[tuple[str, str]]:
    app = create_app(Settings(home="/tmp/creditops-routes"), load_model=False)
    found = []
    for route in app.routes:
        path = getattr(route, "path", "")
        if not path.startswith("/ui") or path.startswith("/ui/static") or path in _OPEN:
            continue
        for name in re.findall(r"{(\w+)}", path):
            path = path.replace("{" + name + "}", _VALUES[name])
        found.extend((method, path) for method in sorted(route.methods - {"HEAD"}))
    return found


ROUTES = _routes()


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = Settings(
        home=tmp_path_factory.mktemp("routes-home"), api_key=ADMIN_KEY, reader_keys=READER_KEY
    )
    with served_process(settings) as base:
        yield base


def _reader(url: str) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=url, follow_redirects=False, timeout=60)
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/ui/login").text)[1]
    answer = client.post("/ui/login", data={"csrf_token": token, "key": READER_KEY})
    assert answer.status_code == 303
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/ui/data").text)[1]
    return client, token


def test_the_walk_covers_the_new_pages() -> None:
    paths = {path for _, path in ROUTES}
    assert {"/ui/data", "/ui/jobs", "/ui/monitoring", "/ui/retraining"} <= paths
    assert ("POST", "/ui/monitoring/run") in ROUTES


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_nothing_is_reached_without_logging_in(url: str, method: str, path: str) -> None:
    answer = httpx.request(method, url + path, follow_redirects=False, timeout=60)
    if method == "POST" and answer.status_code == 403:  # refused on its missing CSRF token
        assert "CSRF token" in answer.text
        return
    assert answer.status_code == 303, answer.text[:200]
    assert answer.headers["location"].startswith("/ui/login?next=")


@pytest.mark.parametrize(("method", "path"), [r for r in ROUTES if r[0] == "POST"])
def test_a_reader_changes_nothing(url: str, method: str, path: str) -> None:
    client, token = _reader(url)
    answer = client.post(path, data={"csrf_token": token, "reason": "x", "note": "x"})
    # What a reader may do changes nothing stored: decide (as the API lets anyone), re-check a
    # spec as edited, reproduce a logged decision.
    if path in ("/ui/decide", "/ui/decide/batch") or path.endswith(("/check", "/reproduce")):
        assert answer.status_code != 403
        return
    assert answer.status_code == 403, (path, answer.status_code, answer.text[:300])
