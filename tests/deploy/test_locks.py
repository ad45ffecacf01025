"""The lock files (`make lock`) and the image that installs from them: every dependency pinned
with its hashes, torch as its CPU build from PyTorch's index, no path of the machine that
wrote them, the runtime set inside the dev set, and the Dockerfile installing exactly it."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOCKS = ROOT / "requirements"
TORCH_INDEX = "--extra-index-url https://download.pytorch.org/whl/cpu"


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(name: str) -> dict[str, str]:
    text = (LOCKS / name).read_text()
    pins = dict(re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", text, re.M))
    return {_norm(k): v for k, v in pins.items()}


@pytest.mark.parametrize("name", ["runtime.lock", "dev.lock"])
def test_every_pin_has_hashes_and_no_local_path(name: str) -> None:
    text = (LOCKS / name).read_text()
    assert TORCH_INDEX in text.splitlines()
    assert not re.search(r"file:|/opt/|/tmp/|/home/|/root/|/work/", text)
    blocks = re.split(r"\n(?=[A-Za-z0-9])", text.split(TORCH_INDEX, 1)[1])
    for block in filter(str.strip, blocks):
        assert "--hash=sha256:" in block, block.splitlines()[0]
    pins = _pins(name)
    assert pins["torch"] == "2.13.0+cpu"
    assert not [p for p in pins if p.startswith("nvidia-")]  # CPU torch; NCCL left out


def test_the_runtime_lock_is_the_project_and_inside_the_dev_lock() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime, dev = _pins("runtime.lock"), _pins("dev.lock")
    for requirement in project["dependencies"]:
        assert _norm(re.match(r"[A-Za-z0-9._-]+", requirement).group()) in runtime, requirement
    for requirement in project["optional-dependencies"]["dev"]:
        assert _norm(re.match(r"[A-Za-z0-9._-]+", requirement).group()) in dev, requirement
    assert {k: dev.get(k) for k in runtime} == runtime


def test_the_image_installs_the_lock_and_nothing_else() -> None:
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    text = "\n".join(lines)
    assert "COPY requirements/runtime.lock requirements/" in lines
    assert re.search(r"pip wheel [^\n]*--no-deps[^\n]*-r requirements/runtime\.lock", text)
    assert re.search(r"pip wheel [^\n]*--no-deps[^\n]* \.$", text, re.M)
    assert re.search(r"pip install [^\n]*--no-index --no-deps /wheels/\*\.whl", text)
    assert "!requirements/runtime.lock" in (ROOT / ".dockerignore").read_text().splitlines()
