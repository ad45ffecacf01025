"""The Alertmanager routing for creditops's alerts, checked by Alertmanager's own tool
(``amtool``, Debian's prometheus-alertmanager package, which ``make test`` installs): the file
loads, and every severity the Prometheus rules raise reaches the receivers meant for it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"


def _amtool() -> str:
    found = shutil.which("amtool")
    if found is None:
        pytest.fail(
            "amtool is not installed: `make test` installs Debian's prometheus-alertmanager"
        )
    return found


def _routes(**labels: str) -> list[str]:
    result = subprocess.run(
        [_amtool(), "config", "routes", "test", f"--config.file={CONFIG}",
         *(f"{k}={v}" for k, v in labels.items())],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return result.stdout.strip().split(",")


def test_the_config_loads() -> None:
    result = subprocess.run(
        [_amtool(), "check-config", str(CONFIG)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_amtool_refuses_a_broken_config(tmp_path: Path) -> None:
    broken = tmp_path / "alertmanager.yml"
    broken.write_text(CONFIG.read_text().replace("receiver: creditops-team", "receiver: nobody", 1))
    result = subprocess.run(
        [_amtool(), "check-config", str(broken)], capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "nobody" in result.stdout + result.stderr


def test_every_rule_reaches_the_receivers_meant_for_its_severity() -> None:
    rules = [r for group in yaml.safe_load(RULES.read_text())["groups"] for r in group["rules"]]
    severities = {rule["labels"]["severity"] for rule in rules}
    assert severities == {"warning", "critical"}
    for rule in rules:
        routed = _routes(alertname=rule["alert"], severity=rule["labels"]["severity"])
        if rule["labels"]["severity"] == "critical":
            assert routed == ["creditops-on-call", "creditops-team"], rule["alert"]
        else:
            assert routed == ["creditops-team"], rule["alert"]
