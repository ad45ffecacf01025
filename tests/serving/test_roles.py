"""Keys and roles on every route: each route of the app, walked with no key, a wrong key and a
key of each role, answers 401 without a valid key and 403 with a key lacking its role; only
the operations paths (and the login page, static files and docs assets) are open; what a key
does is recorded under its name."""

from __future__ import annotations

import re
import sqlite3
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import Mount

from creditops.config import Settings
from creditops.serving.app import create_app
from creditops.store.keys import KeyStore
from helpers import serving

pytestmark = pytest.mark.slow

BOOTSTRAP = "bootstrap-admin-key-0123456789"
OPEN = {"/health", "/ready", "/metrics"}
# Open by design: the login form, the redirect to it, logging out, and static files.
PUBLIC_UI = {"/", "/ui/login", "/ui/logout", "/ui/static/vendor/plotly.min.js"}
ROLE_OF_API = {
    "/predict": "decide",
    "/predict/batch": "decide",
    "/feedback": "decide",
    "/feedback/batch": "decide",
    "/explain": "decide|analyst",
    "/model": "analyst",
    "/models": "analyst",
    "/models/{version}/promote": "admin",
    "/models/rollback": "admin",
    "/models/canary": "analyst",
    "/models/canary/halt": "admin",
    "/models/canary/resume": "admin",
    "/openapi.json": "analyst",
    "/docs": "analyst",
    "/docs/oauth2-redirect": "analyst",
    "/redoc": "analyst",
}


@pytest.fixture(scope="module")
def keyed(trained, tmp_path_factory) -> tuple[Settings, dict[str, str]]:
    import shutil

    source, _ = trained
    home = tmp_path_factory.mktemp("roles") / "home"
    shutil.copytree(source.home, home)
    (home / "predictions.db").unlink(missing_ok=True)
    settings = Settings(home=home, api_key=BOOTSTRAP)
    keys = {"bootstrap": BOOTSTRAP}
    with KeyStore(settings.resolved_database_url) as store:
        for role in ("decide", "analyst", "admin"):
            keys[role] = store.create(f"{role}-only", [role], created_by="test").key
        keys["revoked"] = store.create("revoked", ["decide"], created_by="test").key
        store.revoke("revoked", revoked_by="test")
    return settings, keys


@pytest.fixture(scope="module")
def client(keyed) -> Iterator[TestClient]:
    settings, _ = keyed
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def _routes(client: TestClient) -> list[tuple[str, str]]:
    routes = []
    for route in client.app.routes:
        if isinstance(route, Mount):
            continue
        assert isinstance(route, APIRoute), route
        routes.extend((method, route.path) for method in sorted(route.methods))
    return routes


def _concrete(path: str) -> str:
    values = {"fmt": "csv", "name": "credit_data", "version": "1"}
    return re.sub(
        r"\{(\w+)\}", lambda m: values.get(m.group(1), "00000000-0000-0000-0000-000000000000"), path
    )


def _call(client: TestClient, method: str, path: str, headers: dict[str, str]) -> Any:
    return client.request(method, _concrete(path), headers=headers, follow_redirects=False)


def test_every_route_is_listed_here(client):
    """A new route must say who may use it: the walk below would pass it unchecked."""
    listed = set(ROLE_OF_API) | OPEN | PUBLIC_UI
    unlisted = {p for _, p in _routes(client) if p not in listed and not p.startswith("/ui")}
    assert not unlisted


def test_without_a_valid_key_every_closed_route_answers_401_or_the_login_page(client, keyed):
    _, keys = keyed
    for method, path in _routes(client):
        if path in OPEN or path in PUBLIC_UI:
            continue
        for headers in ({}, {"X-API-Key": "cok_0123456789abcdef_" + "x" * 43},
                        {"Authorization": f"Bearer {keys['revoked']}"}):  # fmt: skip
            response = _call(client, method, path, headers)
            if path.startswith("/ui") and method == "GET":  # a page: to the login form
                assert response.status_code == 303, (method, path, response.status_code)
                assert response.headers["location"].startswith("/ui/login")
            elif path.startswith("/ui"):  # a form: to the login form, or refused for its token
                assert response.status_code in (303, 403), (method, path, response.status_code)
            else:
                assert response.status_code == 401, (method, path, response.text)
                assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("role", ["decide", "analyst", "admin"])
def test_a_key_without_the_routes_role_gets_403_and_with_it_gets_past_the_check(
    client, keyed, role
):
    _, keys = keyed
    for method, path in _routes(client):
        needed = ROLE_OF_API.get(path)
        if needed is None:
            continue
        for header in ("X-API-Key", "Authorization"):
            value = keys[role] if header == "X-API-Key" else f"Bearer {keys[role]}"
            response = _call(client, method, path, {header: value})
            if role in needed.split("|"):
                assert response.status_code not in (401, 403), (role, method, path, response.text)
            else:
                assert response.status_code == 403, (role, method, path, response.text)
                assert f"{role}-only" in response.json()["detail"]


def test_the_operations_paths_are_open_by_default_and_closed_when_configured(keyed):
    settings, keys = keyed
    closed = settings.model_copy(update={"open_paths": "/health"})
    with TestClient(create_app(closed, load_model=False)) as client:
        assert client.get("/health").status_code == 200
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"X-API-Key": keys["decide"]}).status_code == 403
        assert client.get("/metrics", headers={"X-API-Key": keys["analyst"]}).status_code == 200


def _ui_login(client: TestClient, key: str) -> Any:
    page = client.get("/ui/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    return client.post(
        "/ui/login", data={"key": key, "csrf_token": token, "next": "/ui"}, follow_redirects=False
    )


def test_the_dashboard_takes_keys_with_the_analyst_role_and_admin_forms_need_admin(keyed):
    settings, keys = keyed
    with TestClient(create_app(settings, load_model=False)) as client:
        assert _ui_login(client, keys["decide"]).status_code == 403  # no analyst role
        assert client.get("/ui", follow_redirects=False).status_code == 303
        assert _ui_login(client, keys["analyst"]).status_code == 303
        assert client.get("/ui").status_code == 200
        token = re.search(r'"X-CSRF-Token": "([^"]+)"', client.get("/ui").text).group(1)
        headers = {"X-CSRF-Token": token}
        refused = client.post("/ui/models/rollback", headers=headers, follow_redirects=False)
        assert refused.status_code == 403
        assert client.get("/docs").status_code == 200  # the session opens the API docs too


def test_failed_login_attempts_are_rate_limited_per_client(keyed):
    settings, keys = keyed
    with TestClient(create_app(settings, load_model=False)) as client:
        statuses = [_ui_login(client, f"wrong-{i}").status_code for i in range(12)]
    assert statuses[:10] == [401] * 10
    assert statuses[10:] == [429, 429]
    with TestClient(create_app(settings, load_model=False)) as client:
        ok = [_ui_login(client, keys["analyst"]).status_code for _ in range(12)]
    assert ok == [303] * 12  # logging in often is not guessing
    with TestClient(create_app(settings, load_model=False)) as client:
        page = client.get("/ui/login")
        for i in range(11):
            response = _ui_login(client, f"wrong-{i}")
        assert response.status_code == 429
        assert 1 <= int(response.headers["retry-after"]) <= 60
        assert page.status_code == 200


def test_a_key_is_recorded_with_what_it_does_and_explains_only_its_own(keyed, tmp_path):
    settings, keys = keyed
    with KeyStore(settings.resolved_database_url) as store:
        other = store.create(f"other-{uuid.uuid4().hex[:6]}", ["decide"], created_by="t").key
    with serving(settings) as url:
        import httpx

        from creditops.data.datasets import load_builtin

        frame, spec = load_builtin("credit_data")
        row = frame.drop(columns=[spec.target, spec.id]).iloc[0].to_dict()
        application = {k: (None if v != v else (v.item() if hasattr(v, "item") else v))
                       for k, v in row.items()}  # fmt: skip
        with httpx.Client(base_url=url, headers={"X-API-Key": keys["decide"]}) as client:
            decision = client.post("/predict", json=application).json()
            pid = decision["prediction_id"]
            assert client.post("/explain", json={"prediction_id": pid}).status_code == 200
            outcome = client.post("/feedback", json={"prediction_id": pid, "outcome": "repaid"})
            assert outcome.status_code == 200, outcome.text
        with httpx.Client(base_url=url, headers={"X-API-Key": other}) as client:
            assert client.post("/explain", json={"prediction_id": pid}).status_code == 404
        with httpx.Client(base_url=url, headers={"X-API-Key": keys["analyst"]}) as client:
            assert client.post("/explain", json={"prediction_id": pid}).status_code == 200
    with sqlite3.connect(settings.home / "predictions.db") as conn:
        actor = conn.execute("SELECT actor FROM predictions WHERE id = ?", (pid,)).fetchone()
        by = conn.execute("SELECT recorded_by FROM outcomes WHERE prediction_id = ?", (pid,))
        assert actor == ("decide-only",)
        assert by.fetchone() == ("decide-only",)
    assert keys["decide"] not in (settings.home / "predictions.db").read_bytes().decode("latin-1")
