"""Helpers for the dashboard's browser tests (tests/ui)."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.sync_api import Page

from creditops.config import Settings
from creditops.data.datasets import load_builtin

ADMIN_KEY = "admin-key-for-the-dashboard-tests"
READER_KEY = "reader-key-for-the-dashboard-tests"
API_HEADERS = {"X-API-Key": ADMIN_KEY}  # the bootstrap admin key holds every role


@dataclass(frozen=True)
class Dashboard:
    url: str
    settings: Settings


def log_in(page: Page, key: str = ADMIN_KEY, *, start: str = "/ui") -> None:
    """Log in through the login form, ending on ``start``."""
    page.goto(start)
    page.get_by_label("Key").fill(key)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/ui(?!/login)"))


def application(row: int = 2) -> dict[str, Any]:
    """A real application of credit_data as /predict takes it (features and protected)."""
    frame, spec = load_builtin("credit_data")
    record = frame.iloc[row].drop([c for c in (spec.target, spec.id) if c]).to_dict()
    return json.loads(
        json.dumps(
            {k: (None if v != v else v) for k, v in record.items()}, default=lambda v: v.item()
        )
    )


def snapshot(page: Page, name: str) -> None:
    """A full-page picture of this moment as ``$CREDITOPS_SCREENSHOTS/<name>.png``, when that
    is set (how the README's pictures are made); nothing otherwise."""
    target = os.environ.get("CREDITOPS_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(target) / f"{name}.png"), full_page=True)
