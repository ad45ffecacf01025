"""`make audit`: pip-audit --strict against the locked requirements, with dated exceptions.

Every package pinned (with its hashes) in the lock files is looked up in PyPI's vulnerability
data, without installing anything. A known vulnerability fails the audit unless the
exceptions file lists it with a reason and an expiry date; an expired or incomplete entry
fails the audit too, so an accepted risk is looked at again instead of living on unread.
pip-audit has no expiry of its own: this script checks the file, then passes the current
exceptions to pip-audit as --ignore-vuln.

PyPI does not know the local version labels of the lock (torch 2.13.0+cpu is PyPI's 2.13.0,
built for CPU): the audited copies drop them.

--offline-ok (what `make test` passes): on a machine that cannot reach PyPI's vulnerability
data, say so and check only the exceptions file, instead of failing; CI's security job runs
the full audit.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import subprocess
import sys
import tempfile
import tomllib
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXCEPTIONS = ROOT / "deploy" / "security" / "pip-audit-exceptions.toml"
LOCKS = (ROOT / "requirements" / "runtime.lock", ROOT / "requirements" / "dev.lock")
# An exception is reviewed at least once a year.
MAX_VALIDITY = dt.timedelta(days=366)
_LOCAL_LABEL = re.compile(r"^([A-Za-z0-9._-]+==[^+\s]+)\+[A-Za-z0-9.]+", re.M)
_ID = re.compile(r"(PYSEC|GHSA|CVE|OSV|GSD)-[A-Za-z0-9-]+")


class ExceptionsError(ValueError):
    """The exceptions file is malformed, or one of its entries has expired."""


@dataclass(frozen=True)
class Accepted:
    """One known vulnerability the audit lets pass until ``expires``."""

    id: str
    package: str
    reason: str
    expires: dt.date


def read_exceptions(path: Path, today: dt.date) -> list[Accepted]:
    """The current entries of ``path``; raises naming every problem (expired ones included)."""
    with path.open("rb") as f:
        data = tomllib.load(f)
    problems: list[str] = []
    entries: list[Accepted] = []
    unknown = set(data) - {"exception"}
    if unknown:
        problems.append(f"unknown keys {sorted(unknown)} (entries are [[exception]] tables)")
    for n, entry in enumerate(data.get("exception", []), start=1):
        where = f"exception {n} ({entry.get('id', 'no id')})"
        missing = {"id", "package", "reason", "expires"} - set(entry)
        extra = set(entry) - {"id", "package", "reason", "expires"}
        if missing or extra:
            problems.append(f"{where}: missing {sorted(missing)}, unknown {sorted(extra)}")
            continue
        expires = entry["expires"]
        if not isinstance(entry["id"], str) or not _ID.fullmatch(entry["id"]):
            problems.append(f"{where}: id must be a PYSEC-, GHSA-, CVE- or OSV- advisory id")
        if not isinstance(entry["reason"], str) or len(entry["reason"].strip()) < 20:
            problems.append(f"{where}: the reason must say why the risk is accepted")
        if not isinstance(expires, dt.date) or isinstance(expires, dt.datetime):
            problems.append(f"{where}: expires must be a date (expires = 2027-01-31)")
            continue
        if expires < today:
            problems.append(f"{where}: expired on {expires}: fix it, or renew it with a reason")
        elif expires - today > MAX_VALIDITY:
            problems.append(f"{where}: expires {expires}, more than a year ahead")
        entries.append(Accepted(entry["id"], entry["package"], entry["reason"], expires))
    if problems:
        raise ExceptionsError(f"{path.name}: " + "; ".join(problems))
    return entries


def without_local_labels(text: str) -> str:
    """A lock's text with ``==1.2.3+cpu`` pins read as ``==1.2.3`` (PyPI's release)."""
    return _LOCAL_LABEL.sub(r"\1", text)


def vulnerability_data_reachable(timeout_s: float = 15.0) -> bool:
    """Whether PyPI answers the per-release JSON that pip-audit reads its advisories from."""
    url = f"https://pypi.org/pypi/pip-audit/{version('pip-audit')}/json"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.status == 200
    except (urllib.error.URLError, TimeoutError, OSError):
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("locks", nargs="*", type=Path, default=list(LOCKS))
    parser.add_argument("--exceptions", type=Path, default=EXCEPTIONS)
    parser.add_argument("--offline-ok", action="store_true")
    parser.add_argument(
        "--dry-run", action="store_true", help="read the locks as pip-audit does, audit nothing"
    )
    args = parser.parse_args(argv)
    try:
        accepted = read_exceptions(args.exceptions, dt.date.today())
    except (ExceptionsError, tomllib.TOMLDecodeError, OSError) as error:
        print(f"audit failed: {error}", file=sys.stderr)
        return 1
    for entry in accepted:
        print(f"accepted until {entry.expires}: {entry.id} in {entry.package}: {entry.reason}")
    if not args.dry_run and not vulnerability_data_reachable():
        message = "PyPI's vulnerability data cannot be reached from this machine"
        if args.offline_ok:
            print(f"pip-audit skipped: {message}; the exceptions file was checked")
            return 0
        print(f"audit failed: {message}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="creditops-audit-") as tmp:
        command = [
            sys.executable,
            "-m",
            "pip_audit",
            "--strict",
            "--disable-pip",
            "--require-hashes",
            "--progress-spinner",
            "off",
        ]
        for n, lock in enumerate(args.locks):
            copy = Path(tmp) / f"{n}-{lock.name}"
            copy.write_text(without_local_labels(lock.read_text()))
            command += ["--requirement", str(copy)]
        for entry in accepted:
            command += ["--ignore-vuln", entry.id]
        if args.dry_run:
            command.append("--dry-run")
        names = ", ".join(str(lock) for lock in args.locks)
        print(f"pip-audit --strict: {names}", flush=True)
        return subprocess.run(command, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
