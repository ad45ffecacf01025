"""The dashboard in a real browser: Debian's Chromium driven by Playwright, against a real
server (uvicorn on loopback) over a real MLflow store with two registered versions.

Each test gets a fresh browser context; any console error or failed asset fails it, and it
leaves a screenshot in its temporary folder (and in ``$CREDITOPS_SCREENSHOTS`` when set, which
is how the README's pictures are made)."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from creditops.config import Settings
from creditops.data.datasets import load_builtin
from creditops.evaluation.review import EvaluationConfig
from creditops.registry import CHALLENGER, register_trained
from creditops.registry.review import review_and_store
from creditops.training.train import train
from helpers import serving
from ui_helpers import ADMIN_KEY, READER_KEY, Dashboard


@pytest.fixture(scope="session")
def dashboard(trained, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    """A served champion (v1: the fast profile's pick) and a challenger (v2: logistic
    regression), with an admin and a reader key. v1 is the suite's shared training (the same
    fast profile on credit_data), copied, with an empty decision log."""
    source, _ = trained
    home = tmp_path_factory.mktemp("ui") / "home"
    shutil.copytree(source.home, home)
    (home / "predictions.db").unlink(missing_ok=True)
    settings = Settings(
        home=home,
        api_key=ADMIN_KEY,
        reader_keys=READER_KEY,
        champion_poll_seconds=0.5,
    )
    frame, spec = load_builtin("credit_data")
    challenger = train(
        settings,
        frame=frame,
        spec=spec,
        dataset_name="credit_data",
        profile="fast",
        models=["logistic_regression"],
    )
    register_trained(settings, challenger, alias=CHALLENGER)
    # v1's review is stored beforehand (as `creditops report` would); v2's is left for the
    # dashboard to compute in the background, as it does for a version nobody reviewed.
    review_and_store(settings, "1", config=EvaluationConfig(n_boot=200))
    with serving(settings) as url:
        yield Dashboard(url=url, settings=settings)


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("Chromium is not installed: `make test` installs Debian's chromium package")
    return path


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's sandbox cannot start.
        chromium = playwright.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(
    browser: Browser, request: pytest.FixtureRequest, tmp_path: Path, dashboard: Dashboard
) -> Iterator[Page]:
    width = getattr(request, "param", 1280)
    context = browser.new_context(viewport={"width": width, "height": 900}, base_url=dashboard.url)
    context.set_default_timeout(20_000)
    tab = context.new_page()
    problems: list[str] = []
    tab.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda error: problems.append(str(error)))
    tab.on(
        "response",
        lambda r: (
            problems.append(f"{r.status} {r.url}")
            if r.status >= 500 or ("/static/" in r.url and r.status >= 400)
            else None
        ),
    )
    tab.expected_console_errors = []  # type: ignore[attr-defined]
    yield tab
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name)
    shot = tmp_path / f"{name}.png"
    tab.screenshot(path=str(shot), full_page=True)
    if target := os.environ.get("CREDITOPS_SCREENSHOTS"):
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(target) / shot.name)
    context.close()
    expected = tab.expected_console_errors  # type: ignore[attr-defined]
    unexpected = [p for p in problems if not any(e in p for e in expected)]
    assert not unexpected, f"console errors or failed requests: {unexpected}"
