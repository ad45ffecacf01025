"""`creditops keys` as a user runs it: a key printed once and found by the store, a name used
once, unknown roles refused, revocation shown in the list, the key itself never listed."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from creditops.cli import app
from creditops.store.keys import KeyStore

runner = CliRunner()


def test_create_list_and_revoke_a_key(settings):
    made = runner.invoke(
        app, ["keys", "create", "--name", "gateway", "--role", "decide,analyst", "--json"]
    )
    assert made.exit_code == 0, made.output
    created = json.loads(made.stdout)
    assert created["roles"] == ["decide", "analyst"]
    with KeyStore(settings.resolved_database_url) as store:
        found = store.find(created["key"])
    assert found is not None
    assert found.name == "gateway"
    assert found.active()

    again = runner.invoke(app, ["keys", "create", "--name", "gateway", "--role", "admin"])
    assert again.exit_code != 0
    assert "exists already" in again.output
    unknown = runner.invoke(app, ["keys", "create", "--name", "other", "--role", "owner"])
    assert unknown.exit_code != 0
    assert "unknown role(s) owner" in unknown.output
    past = runner.invoke(
        app, ["keys", "create", "--name", "old", "--role", "decide", "--expires", "2001-01-01"]
    )
    assert past.exit_code != 0
    assert "already passed" in past.output

    revoked = runner.invoke(app, ["keys", "revoke", "gateway"])
    assert revoked.exit_code == 0, revoked.output
    listed = runner.invoke(app, ["keys", "list", "--json"])
    rows = json.loads(listed.stdout)
    assert [(r["name"], r["state"]) for r in rows] == [("gateway", "revoked")]
    assert created["key"] not in listed.stdout
    with KeyStore(settings.resolved_database_url) as store:
        assert not store.find(created["key"]).active()


def test_the_log_commands_work_on_a_fresh_home(settings, monkeypatch):
    """The audit and export commands make the home they need, as `keys` does."""
    from creditops.config import reset_settings
    from creditops.store.pii import PiiCipher

    assert not settings.home.exists()
    reads = runner.invoke(app, ["audit", "reads", "--json"])
    assert reads.exit_code == 0, reads.output
    assert json.loads(reads.stdout) == []
    verified = runner.invoke(app, ["audit", "verify", "--json"])
    assert verified.exit_code == 0, verified.output
    exported = runner.invoke(app, ["predictions", "export", str(settings.home / "all.csv")])
    assert exported.exit_code == 0, exported.output
    key = runner.invoke(app, ["keys", "pii-key"]).stdout.strip()
    assert PiiCipher([key]).key_count == 1  # a key the personal-data setting takes
    monkeypatch.setenv("CREDITOPS_PII_KEY", "typed-by-hand")
    reset_settings()
    refused = runner.invoke(app, ["audit", "reads"])
    assert refused.exit_code != 0
    assert "key #1 is not a Fernet key" in refused.output
    assert "typed-by-hand" not in refused.output
