"""The command as a Unix tool: one-line errors with the documented exit status per
failure kind (a real server killed mid-command included), read commands that never
create a store, no progress bar when standard error is not a terminal, --json on every
command, pin/unpin, maintain --dry-run, --all-tiers, truncation notes, the JSONL
export, and `check` on data written by the specification's own code."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import redis
from click.testing import CliRunner, Result

import agentmem
from agentmem.cli import main
from agentmem.cli.exits import EXITS
from agentmem.servers.local import LocalServer, find_binary

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import spec_reference  # noqa: E402

CODE = {e.name: e.code for e in EXITS}


def run(args: list[str]) -> Result:
    return CliRunner().invoke(main, args, catch_exceptions=False)


def ok(args: list[str]) -> Result:
    result = run(args)
    assert result.exit_code == 0, result.output
    return result


def failed(args: list[str], kind: str, text: str = "") -> Result:
    result = run(args)
    assert result.exit_code == CODE[kind], result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert text in lines[0]
    return result


@pytest.fixture(scope="module")
def srv() -> Iterator[LocalServer]:
    if find_binary("redis") is None:
        pytest.skip("no redis-server")
    with LocalServer("redis") as server:
        yield server


@pytest.fixture
def base(srv: LocalServer, tmp_path: Path) -> Iterator[list[str]]:
    client = redis.Redis.from_url(srv.url)
    client.flushall()
    # an archive given by --archive-url must exist (a missing one is NotFound): empty
    agentmem.open_archive(tmp_path / "a.db").close()
    yield ["--redis-url", srv.url, "--archive-url", str(tmp_path / "a.db"),
           "--data", str(tmp_path / "data")]
    client.flushall()
    client.close()


def _write(url: str, agents: int = 2, steps: int = 6, sim: str = "s1") -> None:
    with agentmem.connect(url) as mem:
        mem.actions.add_many([
            agentmem.Action(agent_id=f"a{a}", simulation_id=sim, step_number=s,
                            action_type="move" if s % 2 else "eat", reward=s / 10,
                            action_target_id="a9" if s == 3 else None,
                            details={"note": "x\"y", "n": [1, 2]}, position=(float(s), 0.0))
            for a in range(agents) for s in range(steps)])


def test_the_exit_table_of_the_docs_is_the_code() -> None:
    text = (ROOT / "docs" / "cli.md").read_text()
    rows = re.findall(r"^\| (\d+) \| `([a-z-]+)` \|", text, re.M)
    assert [(int(c), n) for c, n in rows] == [(e.code, e.name) for e in EXITS]
    assert len({e.code for e in EXITS}) == len(EXITS)


def test_every_command_has_json() -> None:
    def commands(group: click.Group) -> Iterator[click.Command]:
        for cmd in group.commands.values():
            if isinstance(cmd, click.Group):
                yield from commands(cmd)
            else:
                yield cmd

    for cmd in commands(main):
        assert any("--json" in p.opts for p in cmd.params), cmd.name


def test_read_commands_never_create_a_store(tmp_path: Path) -> None:
    missing = tmp_path / "mistyped"
    for args in (["stats"], ["inspect", "a1"], ["query", "--agent", "a1", "--type", "x"],
                 ["export", "s1", "-o", str(tmp_path / "out.csv")], ["check"], ["repair"],
                 ["maintain", "--stm-steps", "1"], ["pin", "a1", "a1-1-x"],
                 ["unpin", "a1", "a1-1-x"], ["report", "s1"], ["sync", "s1"],
                 ["migrate", "current"], ["migrate", "upgrade"], ["migrate", "sql-current"]):
        failed(["--data", str(missing), *args], "not-found", "no agentmem store" if
               args[-1] != "sql-current" else "no archive")
        assert not missing.exists(), args
    assert not (tmp_path / "out.csv").exists()


def test_a_missing_archive_is_not_created(base: list[str], srv: LocalServer,
                                          tmp_path: Path) -> None:
    _write(srv.url)
    failed([*base[:2], "--archive-url", str(tmp_path / "typo.db"), "sync", "s1", "--to",
            "redis"], "not-found", "no archive")
    assert not (tmp_path / "typo.db").exists()
    failed([*base[:2], "--archive-url", str(tmp_path / "typo.db"), "stats"], "not-found",
           "no archive")
    assert not (tmp_path / "typo.db").exists()


def test_failure_kinds_have_their_exit_status(base: list[str], srv: LocalServer,
                                              tmp_path: Path) -> None:
    failed(["--redis-url", "redis://127.0.0.1:1/0", "--archive-url", str(tmp_path / "a.db"),
            "stats"], "unavailable", "Unavailable")
    failed(["--redis-url", "nonsense", "stats"], "config", "ConfigError")
    failed(["--data", "/sys/agentmem-test", "demo", "--steps", "2"], "permission",
           "PermissionDenied")
    (tmp_path / "file").write_text("")
    failed(["--data", str(tmp_path / "file" / "sub"), "demo", "--steps", "2"], "path",
           str(tmp_path / "file"))
    _write(srv.url)
    failed([*base, "inspect", "nobody"], "not-found", "unknown agent")
    failed([*base, "query", "--agent", "nobody", "--type", "eat"], "not-found",
           "unknown agent")
    failed([*base, "export", "nosim", "-o", str(tmp_path / "x.csv")], "not-found",
           "unknown simulation")
    failed([*base, "sync", "nosim"], "not-found", "unknown simulation")
    failed([*base, "pin", "a0", "a0-99-eat"], "not-found", "nothing pinned")
    # in Redis, not archived, --no-sync: nothing to export, and no file
    failed([*base, "export", "s1", "--no-sync", "-o", str(tmp_path / "x.csv")], "empty",
           "nothing to export")
    assert not (tmp_path / "x.csv").exists()
    failed([*base, "export", "s1", "-o", str(tmp_path / "no" / "such" / "x.csv")], "path")
    assert run([*base, "query", "--agent", "a0"]).exit_code == CODE["usage"]


def test_a_server_killed_mid_command_is_one_line(tmp_path: Path) -> None:
    """`agentmem demo` on the embedded server, which is killed (SIGKILL) while the demo
    writes: one line on standard error, the status of an unavailable server."""
    if find_binary("valkey") is None and find_binary("redis") is None:
        pytest.skip("no server binary")
    data = tmp_path / "data"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("AGENTMEM_DEBUG", None)
    proc = subprocess.Popen([sys.executable, "-m", "agentmem.cli", "--data", str(data),
                             "demo", "--agents", "50", "--steps", "100000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    state = data / "valkey" / "server.json"
    try:
        deadline = time.monotonic() + 30
        while not (state.exists() and (data / "archive.db").exists()):
            assert proc.poll() is None
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(1.5)  # well inside the run
        assert proc.poll() is None
        os.kill(json.loads(state.read_text())["pid"], signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == CODE["unavailable"], err
    assert err.strip().splitlines() == [err.strip()]
    assert err.startswith("Error: Unavailable: ")


def test_pin_unpin_and_maintain_dry_run(base: list[str], srv: LocalServer) -> None:
    _write(srv.url, agents=1, steps=6)
    pinned = json.loads(ok([*base, "pin", "a0", "a0-0-eat", "--json"]).stdout)
    assert pinned == {"agent": "a0", "action_id": "a0-0-eat", "pinned": True, "tier": "stm"}
    client = redis.Redis.from_url(srv.url)
    assert client.ttl("agent:a0:action:a0-0-eat") == -1
    plan = json.loads(ok([*base, "maintain", "--stm-steps", "2", "--dry-run",
                          "--json"]).stdout)
    assert plan["dry_run"]
    assert plan["to_im"] == 3
    assert plan["moving"] == {"a0": ["a0-1-move", "a0-2-eat", "a0-3-move"]}
    assert client.zcard("agent:a0:action:timeline") == 6  # nothing changed
    human = ok([*base, "maintain", "--stm-steps", "2", "--dry-run"]).output
    assert "dry run" in human
    assert "a0-1-move" in human
    done = json.loads(ok([*base, "maintain", "--stm-steps", "2", "--json"]).stdout)
    assert done["to_im"] == 3
    assert not done["dry_run"]
    assert client.exists("agent:a0:action:a0-0-eat")  # pinned: stayed in STM
    assert "unpinned" in ok([*base, "unpin", "a0", "a0-0-eat"]).output
    assert client.ttl("agent:a0:action:a0-0-eat") > 0
    # --all-tiers on every query: type, target, reward, steps, relative
    def rows(*args: str) -> list[dict[str, Any]]:
        out = ok([*base, "query", "--agent", "a0", *args, "--json"]).stdout
        return [json.loads(x) for x in out.splitlines() if x.strip()]
    assert {r["tier"] for r in rows("--type", "move")} == {"stm"}
    moves = rows("--type", "move", "--all-tiers")
    assert [r["action_id"] for r in moves] == ["a0-5-move", "a0-3-move", "a0-1-move"]
    assert [r["tier"] for r in moves] == ["stm", "im", "im"]
    assert [r["action_id"] for r in rows("--target", "a9", "--all-tiers")] == ["a0-3-move"]
    assert rows("--target", "a9") == []
    best = rows("--min-reward", "0.1", "--all-tiers")
    assert [r["reward"] for r in best] == [0.5, 0.4, 0.3, 0.2, 0.1]
    client.close()


def test_truncated_outputs_say_so(base: list[str], srv: LocalServer) -> None:
    _write(srv.url, agents=12, steps=2)
    human = ok([*base, "stats"]).output
    assert "(truncated: 10 of 12 agents" in human
    assert "(truncated:" not in ok([*base, "stats", "--top", "0"]).output
    assert len(json.loads(ok([*base, "stats", "--json"]).stdout)["agents"]) == 12
    res = ok([*base, "query", "--agent", "a0", "--type", "eat", "--limit", "1", "--json"])
    assert "truncated" in res.stderr
    assert "truncated" not in res.stdout
    inspect = ok([*base, "inspect", "a0", "--limit", "1"]).output
    assert "(truncated: 1 of 2 actions" in inspect


def test_bad_limits_and_step_ranges_are_usage_errors(base: list[str], srv: LocalServer
                                                      ) -> None:
    """inspect --limit -1 showed all but the oldest action (a Python slice); query
    --steps 3 (no colon) read steps 3 and on, not step 3."""
    _write(srv.url, agents=1, steps=4)
    res = run([*base, "inspect", "a0", "--limit", "-1"])
    assert res.exit_code == CODE["usage"], res.output
    assert "--limit" in res.output
    res = run([*base, "query", "--agent", "a0", "--steps", "3"])
    assert res.exit_code == CODE["usage"], res.output
    assert "START:END" in res.output
    rows = ok([*base, "query", "--agent", "a0", "--steps", "3:3", "--json"]).stdout
    assert [json.loads(r)["step_number"] for r in rows.splitlines()] == [3]


def test_jsonl_details_are_json_once_and_no_bar_off_a_terminal(
        base: list[str], srv: LocalServer, tmp_path: Path) -> None:
    _write(srv.url, agents=1, steps=3)
    out = tmp_path / "s1.jsonl"
    res = ok([*base, "export", "s1", "--format", "jsonl", "-o", str(out)])
    assert res.stderr == ""  # no progress bar: standard error is not a terminal
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["details"] for r in rows] == [{"note": "x\"y", "n": [1, 2]}] * 3
    csv_out = tmp_path / "s1.csv"
    summary = json.loads(ok([*base, "export", "s1", "-o", str(csv_out), "--json"]).stdout)
    assert summary["rows"] == 3
    assert '"{""note"": ""x\\""y"", ""n"": [1, 2]}"' in csv_out.read_text()


def test_check_accepts_the_specifications_own_data(base: list[str], srv: LocalServer) -> None:
    client = redis.Redis.from_url(srv.url, decode_responses=True)
    for a in range(3):
        for step in range(30):
            spec_reference.store_agent_action(
                client, f"ag{a}", "simS", step, "move" if step % 2 else "gather",
                action_target_id=f"ag{(a + 1) % 3}" if step % 3 == 0 else None,
                reward=step / 30, details={"k": step} if step % 2 else None,
                position=(step, a) if step % 5 else None)
    res = ok([*base, "check"])
    assert "radius-search grids only" in res.output
    rep = json.loads(ok([*base, "check", "--json"]).stdout)
    assert rep["spec_clean"]
    assert not rep["clean"]
    assert rep["unindexed"] > 0
    assert run([*base, "check", "--strict"]).exit_code == CODE["findings"]
    ok([*base, "repair"])
    assert json.loads(ok([*base, "check", "--strict", "--json"]).stdout)["clean"]
    client.close()


def test_a_closed_pipe_ends_quietly(base: list[str], srv: LocalServer) -> None:
    """`agentmem query ... | head -1`: status 141, nothing on standard error."""
    with agentmem.connect(srv.url) as mem:
        mem.actions.add_many([agentmem.Action(
            agent_id="a", simulation_id="s", step_number=i, action_type="move",
            details={"pad": "x" * 200}) for i in range(3000)])
    proc = subprocess.Popen([sys.executable, "-m", "agentmem.cli", *base, "query", "--agent",
                             "a", "--steps", "0:", "--limit", "3000", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout is not None
    assert proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == CODE["pipe"]
    assert err == b""


def test_a_command_waits_while_the_embedded_server_loads(tmp_path: Path) -> None:
    """After a demo, the next command's server replays the append-only file (script
    calls): the command waits for the load instead of failing with LOADING."""
    if find_binary("valkey") is None and find_binary("redis") is None:
        pytest.skip("no server binary")
    base = ["--data", str(tmp_path / "data")]
    ok([*base, "demo", "--agents", "20", "--steps", "50"])
    stats = json.loads(ok([*base, "stats", "--json"]).stdout)
    assert stats["agent_count"] == 20
