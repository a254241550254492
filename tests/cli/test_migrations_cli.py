"""``agentmem migrate``: the key-layout revisions and the archive's schema, through click."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import redis
from _support import act
from click.testing import CliRunner, Result

import agentmem
from agentmem.cli import main
from agentmem.migrations import redis as mig
from agentmem.plans import keyspace


@pytest.fixture
def base(server: Any, r: redis.Redis, tmp_path: Path) -> list[str]:
    return ["--redis-url", server.url, "--archive-url", str(tmp_path / "archive.db"),
            "--data", str(tmp_path / "data")]


def run(args: list[str]) -> Result:
    return CliRunner().invoke(main, args, catch_exceptions=False)


def ok(args: list[str]) -> Result:
    result = run(args)
    assert result.exit_code == 0, result.output
    return result


def test_help_lists_every_subcommand() -> None:
    text = ok(["migrate", "--help"]).stdout
    for name in ("upgrade", "downgrade", "current", "history", "sql-upgrade", "sql-downgrade",
                 "sql-current", "sql-history"):
        assert name in text
    assert "--dry-run" in ok(["migrate", "upgrade", "--help"]).stdout


def test_history() -> None:
    rows = [json.loads(line) for line in ok(["migrate", "history", "--json"]).stdout.splitlines()]
    assert [(r["revision"], r["down_revision"], r["layout"], r["opt_in"]) for r in rows] == [
        ("0001", None, 1, False), ("0002", "0001", 2, False), ("0003", "0002", 2, False),
        ("0004", "0003", 3, True), ("0005", "0004", 4, True)]
    assert "0002" in ok(["migrate", "history"]).stdout


def test_dry_run_upgrade_downgrade_current(base: list[str], server: Any, r: redis.Redis
                                           ) -> None:
    with agentmem.connect(server.url) as mem:
        mem.actions.add_many([act("a1", s, "move") for s in range(5)])
    keys = sorted(r.keys("*"))
    assert json.loads(ok([*base, "migrate", "current", "--json"]).stdout) == {
        "revision": "0001", "layout": None, "in_progress": None}

    dry = json.loads(ok([*base, "migrate", "upgrade", "--dry-run", "--json"]).stdout)
    assert dry["dry_run"]
    assert dry["revisions"] == ["0002", "0003"]
    assert dry["counts"]["0002"]["before.action"] == 5
    assert dry["counts"]["0002"]["before.timeline"] == 1
    assert sorted(r.keys("*")) == keys
    text = ok([*base, "migrate", "upgrade", "--dry-run"]).stdout
    assert "dry run: nothing written" in text
    assert "before.action: 5" in text

    done = json.loads(ok([*base, "migrate", "upgrade", "--batch", "3", "--json"]).stdout)
    assert done["revisions"] == ["0002", "0003"]
    assert not done["dry_run"]
    assert r.get(keyspace.LAYOUT_KEY) == b"2"
    assert r.exists("agent:{a1}:action:a1-4-move")
    assert "revision 0003, layout 2" in ok([*base, "migrate", "current"]).stdout
    assert "nothing to do" in ok([*base, "migrate", "upgrade"]).stdout

    down = json.loads(ok([*base, "migrate", "downgrade", "base", "--json"]).stdout)
    assert down["revisions"] == ["0003", "0002"]
    assert down["to"] == "0001"
    assert r.exists("agent:a1:action:a1-4-move")
    assert mig.current(server.url) == "0001"


def test_errors_are_one_line(base: list[str], r: redis.Redis) -> None:
    result = run([*base, "migrate", "upgrade", "0042"])
    assert result.exit_code == 3  # ConfigError (docs/cli.md, exit status)
    assert "unknown revision" in result.output
    assert "Traceback" not in result.output
    result = run([*base, "migrate", "downgrade"])  # the revision is required
    assert result.exit_code == 2
    r.set(keyspace.LAYOUT_KEY, "9")
    result = run([*base, "migrate", "current"])
    assert result.exit_code == 10  # data of another layout
    assert "LayoutError" in result.output


def test_sql_schema_commands(base: list[str], tmp_path: Path) -> None:
    result = run([*base, "migrate", "sql-current"])
    assert result.exit_code == 8  # a read never creates the archive
    assert "no archive at" in result.output
    assert "revision 0002" in ok([*base, "migrate", "sql-upgrade"]).stdout
    assert json.loads(ok([*base, "migrate", "sql-current", "--json"]).stdout) == {
        "revision": "0002"}
    assert "base (none)" in ok([*base, "migrate", "sql-downgrade", "base"]).stdout
    assert ok([*base, "migrate", "sql-current"]).stdout.strip() == "none"
    sql = ok([*base, "migrate", "sql-upgrade", "--sql"]).stdout
    assert "ALTER TABLE" in sql or "CREATE TABLE" in sql
    rows = ok([*base, "migrate", "sql-history", "--json"]).stdout.splitlines()
    assert json.loads(rows[0])["revision"] == "0001"
