"""The supply-chain targets: `make audit` reads both locks as pip-audit does (pinned, hashed)
and refuses an expired, incomplete or open-ended exception before it asks PyPI anything;
`make sbom` writes a CycloneDX SBOM with every package of the runtime lock and its hashes.

The audit against PyPI's vulnerability data itself needs that service; `make security` in CI
runs it (and `make test` wherever PyPI answers)."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_LOCK = ROOT / "requirements" / "runtime.lock"
DEV_LOCK = ROOT / "requirements" / "dev.lock"
BIN = Path(sys.executable).parent
TODAY = dt.date(2026, 12, 6)
_PIN = re.compile(r"^([A-Za-z0-9._-]+)==(\S+)", re.M)


@pytest.fixture(scope="module")
def audit() -> ModuleType:
    """scripts/audit.py, imported (scripts/ is not a package)."""
    name = "creditops_audit_script"
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / "audit.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


def _make(*args: str) -> subprocess.CompletedProcess[str]:
    """A make target with this interpreter's tools, the install step taken as done."""
    return subprocess.run(
        ["make", "--no-print-directory", "-o", ".venv/.installed", f"BIN={BIN}", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _exceptions(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "exceptions.toml"
    path.write_text(body)
    return path


def _entry(expires: str, reason: str = "not reached: creditops never parses such files") -> str:
    return (
        f'[[exception]]\nid = "GHSA-abcd-efgh-ijkl"\npackage = "example"\n'
        f'reason = "{reason}"\nexpires = {expires}\n'
    )


def _pins(lock: Path) -> set[tuple[str, str]]:
    return {(name.lower(), version) for name, version in _PIN.findall(lock.read_text())}


def test_the_repository_locks_are_read_as_pip_audit_reads_them(tmp_path: Path) -> None:
    result = _make("audit", "AUDIT_FLAGS=--dry-run")
    assert result.returncode == 0, result.stdout + result.stderr
    count = int(re.search(r"would have audited (\d+) packages", result.stderr)[1])
    assert count == len(_pins(RUNTIME_LOCK) | _pins(DEV_LOCK))


def test_an_unhashed_or_unpinned_requirement_fails_the_audit(audit, tmp_path: Path) -> None:
    empty = _exceptions(tmp_path, "")
    unhashed = tmp_path / "unhashed.lock"
    unhashed.write_text("requests==2.32.3\n")
    hashed = "    --hash=sha256:" + "0" * 64 + "\n"
    unpinned = tmp_path / "unpinned.lock"
    unpinned.write_text("requests>=2.0 \\\n" + hashed)
    pinned = tmp_path / "pinned.lock"
    pinned.write_text("requests==2.32.3 \\\n" + hashed)
    for lock, code in ((unhashed, 1), (unpinned, 1), (pinned, 0)):
        assert audit.main(["--dry-run", "--exceptions", str(empty), str(lock)]) == code, lock


def test_an_expired_exception_fails_the_audit_before_anything_is_asked(tmp_path: Path) -> None:
    expired = _exceptions(tmp_path, _entry("2020-01-31"))
    result = subprocess.run(
        [sys.executable, ROOT / "scripts" / "audit.py", "--exceptions", expired, "--offline-ok"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "GHSA-abcd-efgh-ijkl" in result.stderr
    assert "expired on 2020-01-31" in result.stderr
    assert "pip-audit" not in result.stdout  # refused before the audit


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (_entry("2027-01-31", reason="accepted"), "the reason must say why"),
        (_entry("2028-06-30"), "more than a year ahead"),
        (_entry("2027-01-31T00:00:00"), "expires must be a date"),
        (_entry('"soon"'), "expires must be a date"),
        (_entry("2027-01-31").replace("GHSA-abcd-efgh-ijkl", "CVE 2026"), "advisory id"),
        (_entry("2027-01-31").replace('package = "example"\n', ""), "missing ['package']"),
        (_entry("2027-01-31") + 'owner = "me"\n', "unknown ['owner']"),
        ('[[exceptions]]\nid = "GHSA-abcd-efgh-ijkl"\n', "unknown keys ['exceptions']"),
    ],
)
def test_an_incomplete_exception_is_refused(audit, tmp_path: Path, body: str, problem: str) -> None:
    with pytest.raises(audit.ExceptionsError) as caught:
        audit.read_exceptions(_exceptions(tmp_path, body), TODAY)
    assert problem in str(caught.value)


def test_a_current_exception_is_accepted_until_its_date(audit, tmp_path: Path) -> None:
    path = _exceptions(tmp_path, _entry("2027-01-31"))
    [entry] = audit.read_exceptions(path, TODAY)
    assert (entry.id, entry.package, entry.expires) == (
        "GHSA-abcd-efgh-ijkl",
        "example",
        dt.date(2027, 1, 31),
    )
    assert audit.read_exceptions(path, dt.date(2027, 1, 31))  # the last day still counts
    with pytest.raises(audit.ExceptionsError, match="expired on 2027-01-31"):
        audit.read_exceptions(path, dt.date(2027, 2, 1))


def test_the_repository_exceptions_file_is_well_formed(audit) -> None:
    for entry in audit.read_exceptions(audit.EXCEPTIONS, dt.date.today()):
        assert entry.reason.strip()


def test_local_version_labels_are_read_as_pypi_releases(audit) -> None:
    lock = "torch==2.13.0+cpu \\\n    --hash=sha256:ab\nnumpy==2.4.6 \\\n"
    assert (
        audit.without_local_labels(lock)
        == "torch==2.13.0 \\\n    --hash=sha256:ab\nnumpy==2.4.6 \\\n"
    )


def test_the_sbom_lists_every_locked_package_with_its_hashes(tmp_path: Path) -> None:
    target = tmp_path / "sbom" / "runtime.cdx.json"
    result = _make("sbom", f"SBOM={target}")
    assert result.returncode == 0, result.stdout + result.stderr
    bom = json.loads(target.read_text())
    assert bom["bomFormat"] == "CycloneDX"
    assert bom["specVersion"] == "1.6"
    assert bom["metadata"]["component"]["name"] == "creditops"
    listed = {(c["name"].lower(), c["version"]) for c in bom["components"]}
    assert listed == _pins(RUNTIME_LOCK)
    lock = RUNTIME_LOCK.read_text()
    for component in bom["components"]:
        assert component["purl"].startswith(f"pkg:pypi/{component['name'].lower()}@")
        hashes = {h["content"] for ref in component["externalReferences"] for h in ref["hashes"]}
        assert hashes, component["name"]
        assert all(f"sha256:{digest}" in lock for digest in hashes)
