"""The ``agentmem`` command end to end: its real entry point, the embedded default
(a Valkey server of the data folder, started and stopped per command) and a Redis URL.
"""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner, Result

import agentmem
from agentmem.backends.sql import open_archive
from agentmem.cli import main
from agentmem.dualwrite.writer import DualWriter
from agentmem.errors import ConfigError
from agentmem.servers.embedded import Embedded
from agentmem.servers.local import LocalServer, find_binary

COMMANDS = ["demo", "stats", "inspect", "query", "export", "check", "repair", "sync",
            "maintain", "report"]


def run(args: list[str], **kw: Any) -> Result:
    result = CliRunner().invoke(main, args, catch_exceptions=False, **kw)
    return result


def ok(args: list[str]) -> Result:
    result = run(args)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(params=["embedded", "redis-url"])
def base(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[str]]:
    """The global options of one way to run: the embedded default, or a Redis URL."""
    if request.param == "embedded":
        if find_binary("valkey") is None and find_binary("redis") is None:
            pytest.skip("no server binary")
        yield ["--data", str(tmp_path / "data")]
        return
    if find_binary("redis") is None:
        pytest.skip("no redis-server")
    with LocalServer("redis") as srv:
        yield ["--redis-url", srv.url, "--archive-url", str(tmp_path / "archive.db"),
               "--data", str(tmp_path / "data")]


def test_every_command_has_help() -> None:
    assert set(COMMANDS) <= set(main.commands)
    for name in COMMANDS:
        result = ok([name, "--help"])
        assert "Usage:" in result.output
    assert "agentmem demo" in ok(["--help"]).output


def test_the_console_script_runs() -> None:
    proc = subprocess.run([sys.executable, "-m", "agentmem.cli", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "demo" in proc.stdout


@pytest.mark.slow
def test_demo_then_every_command(base: list[str], tmp_path: Path) -> None:
    demo_then_every_command(base, tmp_path, layout_version=1)


def demo_then_every_command(base: list[str], tmp_path: Path, *, layout_version: int) -> None:
    """A demo, then every command on its stores, checked against the demo's numbers
    (also run on a Redis Cluster by test_cli_cluster.py)."""
    summary = json.loads(ok([*base, "demo", "--agents", "6", "--steps", "30", "--json"]).stdout)
    logged = summary["actions_logged"]
    assert logged >= 6 * 30
    stats = json.loads(ok([*base, "stats", "--json"]).stdout)  # a later command: same data
    assert stats["tiers"]["archive"] == logged
    assert stats["simulations"]["demo"]["archived"] == logged
    assert stats["tiers"]["stm"] == summary["stm_actions"]
    assert stats["tiers"]["im"] == summary["im_actions"]
    assert stats["tiers"]["stm"] > 0
    assert stats["layout_version"] == layout_version
    assert stats["memory"]["used_memory"] > 0
    assert stats["agent_count"] == len(stats["agents"]) == 6
    assert sum(c["stm"] for c in stats["agents"].values()) == stats["tiers"]["stm"]
    assert sum(c["im"] for c in stats["agents"].values()) == stats["tiers"]["im"]
    assert sum(stats["simulations"]["demo"]["by_type"].values()) == \
        stats["simulations"]["demo"]["stm_actions"] == stats["tiers"]["stm"]
    human = ok([*base, "stats"]).output
    assert "short-term (STM)" in human
    assert "agent_0" in human

    agent = "agent_0"
    inspect = json.loads(ok([*base, "inspect", agent, "--json"]).stdout)
    assert inspect["actions"] > 0
    assert sum(inspect["mix"].values()) == inspect["actions"]
    assert "recent" in ok([*base, "inspect", agent]).output

    def lines(args: list[str]) -> list[dict[str, Any]]:
        out = ok([*base, "query", "--agent", agent, *args, "--json"]).stdout
        return [json.loads(x) for x in out.splitlines() if x.strip()]

    moves = lines(["--type", "move", "--limit", "3"])
    assert all(r["action_type"] == "move" for r in moves)
    assert len(moves) <= 3
    good = lines(["--min-reward", "0.0"])
    assert [r["reward"] for r in good] == sorted((r["reward"] for r in good), reverse=True)
    span = lines(["--steps", "0:29", "--all-tiers", "--limit", "1000"])
    assert len(span) == inspect["actions"]
    assert {r["tier"] for r in span} <= {"stm", "im"}
    newest = lines(["--relative", "0"])
    assert len(newest) == 1
    near = lines(["--near", "50,50", "--radius", "1000"])
    assert near
    assert all(r["position"] is not None for r in near)
    dists = [math.dist(r["position"], (50, 50)) for r in near]
    assert dists == sorted(dists)  # nearest first, from the grid index
    bad = run([*base, "query", "--agent", agent])
    assert bad.exit_code == 2
    assert "exactly one" in bad.output

    out_csv = tmp_path / "demo.csv"
    ok([*base, "export", "demo", "-o", str(out_csv)])
    with open(out_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == logged
    assert {r["simulation_id"] for r in rows} == {"demo"}
    out_jsonl = tmp_path / "demo.jsonl"
    ok([*base, "export", "demo", "--format", "jsonl", "-o", str(out_jsonl), "--chunk", "50"])
    assert len(out_jsonl.read_text().splitlines()) == logged
    pq = pytest.importorskip("pyarrow.parquet")  # a dev dependency: installed in CI
    out_pq = tmp_path / "demo.parquet"
    ok([*base, "export", "demo", "--format", "parquet", "-o", str(out_pq), "--chunk", "40"])
    table = pq.read_table(out_pq)
    assert table.num_rows == logged
    assert set(table.column("simulation_id").to_pylist()) == {"demo"}
    assert sorted(table.column("action_id").to_pylist()) == sorted(r["action_id"] for r in rows)

    again = run([*base, "demo", "--agents", "6", "--steps", "30"])
    assert again.exit_code == 3  # ConfigError
    assert "already holds" in again.output
    assert "--reset" in again.output
    assert json.loads(ok([*base, "check", "--json"]).stdout)["clean"]
    assert json.loads(ok([*base, "repair", "--json"]).stdout)["total"] == 0
    assert json.loads(ok([*base, "sync", "demo", "--json"]).stdout)["archived"] == 0
    rep = json.loads(ok([*base, "maintain", "--stm-steps", "2", "--now-step", "29",
                         "--json"]).stdout)
    assert rep["agents"] >= 6
    after = json.loads(ok([*base, "stats", "--json"]).stdout)
    assert after["tiers"]["stm"] <= 6 * 2 * 2  # two steps of (at most two) actions per agent
    assert after["tiers"]["archive"] == logged
    assert after["simulations"]["demo"]["stm_actions"] == after["tiers"]["stm"]
    assert after["tiers"]["stm"] + after["tiers"]["im"] == \
        stats["tiers"]["stm"] + stats["tiers"]["im"]
    assert json.loads(ok([*base, "check", "--json"]).stdout)["clean"]

    charts = json.loads(ok([*base, "report", "demo", "--out", str(tmp_path / "charts"),
                            "--json"]).stdout)["files"]
    assert len(charts) >= 3  # action mix, rewards, memory per tier over the run
    for name in charts:
        data = Path(name).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        assert len(data) > 1000


def test_errors_are_one_line_not_a_traceback(tmp_path: Path) -> None:
    result = run(["--redis-url", "redis://127.0.0.1:1/0", "--archive-url",
                  str(tmp_path / "a.db"), "stats"])
    assert result.exit_code == 4  # unavailable
    assert "Unavailable" in result.output
    assert "Traceback" not in result.output


# -- the embedded server ------------------------------------------------------------------


def _valkeys(folder: Path) -> list[int]:
    """Pids of server processes working in ``folder``/valkey (the server's --dir)."""
    out = []
    want = str((folder / "valkey").resolve())
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{pid}/cwd") == want:
                out.append(int(pid))
        except OSError:
            continue
    return out


def test_embedded_keeps_data_and_stops_its_server(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with Embedded(data) as emb:
        r = redis.Redis.from_url(emb.url)
        r.set("kept", "1")
        r.close()
        assert _valkeys(data)
    assert _valkeys(data) == []  # stopped at the end
    with Embedded(data) as emb:
        assert not emb.reused
        assert redis.Redis.from_url(emb.url).get("kept") == b"1"  # append-only file


def test_a_server_left_by_a_killed_command_is_reused_not_duplicated(tmp_path: Path) -> None:
    data = tmp_path / "data"
    script = f"""
import os, signal, redis
from agentmem.servers.embedded import Embedded
emb = Embedded({str(data)!r}).start()
redis.Redis.from_url(emb.url).set("before", "kill")
print(emb.port, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == -signal.SIGKILL
    try:
        port = int(proc.stdout.split()[0])
        left = _valkeys(data)
        assert len(left) == 1  # the server outlived its command
        with Embedded(data) as emb:
            assert emb.reused
            assert emb.port == port
            assert _valkeys(data) == left  # no second server
            assert redis.Redis.from_url(emb.url).get("before") == b"kill"
        deadline = time.monotonic() + 10
        while _valkeys(data) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _valkeys(data) == []
    finally:  # never leave the orphan behind, whatever failed
        for pid in _valkeys(data):
            os.kill(pid, signal.SIGKILL)


def test_a_stale_state_file_is_replaced(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "valkey").mkdir(parents=True)
    (data / "valkey" / "server.json").write_text(json.dumps({"pid": 2**22 + 7, "port": 1}))
    with Embedded(data) as emb:
        assert not emb.reused
        assert emb.port != 1
        assert redis.Redis.from_url(emb.url).ping()


def test_two_commands_never_share_a_folder_at_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with Embedded(data):
        with pytest.raises(ConfigError, match="another agentmem process"):
            Embedded(data, wait=0.2).start()
        assert len(_valkeys(data)) == 1


def test_demo_human_summary_and_reset(tmp_path: Path) -> None:
    if find_binary("valkey") is None and find_binary("redis") is None:
        pytest.skip("no server binary")
    base = ["--data", str(tmp_path / "data")]
    first = ok([*base, "demo", "--agents", "4", "--steps", "12"]).output
    assert "actions_per_second" in first
    assert "example queries" in first
    ok([*base, "demo", "--agents", "4", "--steps", "12", "--reset"])
    stats = json.loads(ok([*base, "stats", "--json"]).stdout)
    assert stats["tiers"]["archive"] == stats["simulations"]["demo"]["archived"]
    assert stats["simulations"]["demo"]["archived"] >= 4 * 12


def test_commands_follow_a_store_migrated_to_layout_2(tmp_path: Path) -> None:
    if find_binary("redis") is None:
        pytest.skip("no redis-server")
    with LocalServer("redis") as srv:
        base = ["--redis-url", srv.url, "--archive-url", str(tmp_path / "a.db"),
                "--data", str(tmp_path / "data")]
        ok([*base, "demo", "--agents", "4", "--steps", "15"])
        before = json.loads(ok([*base, "stats", "--json"]).stdout)
        ok([*base, "migrate", "upgrade", "0002"])
        after = json.loads(ok([*base, "stats", "--json"]).stdout)
        assert before["layout_version"] == 1
        assert after["layout_version"] == 2
        assert after["tiers"] == before["tiers"]
        assert after["simulations"] == before["simulations"]
        moves = ok([*base, "query", "--agent", "agent_0", "--steps", "0:14", "--all-tiers",
                    "--json"]).stdout.splitlines()
        assert len(moves) == before["tiers"]["stm"] // 4 + before["tiers"]["im"] // 4
        assert json.loads(ok([*base, "check", "--json"]).stdout)["clean"]
        keys = {k.decode() for k in redis.Redis.from_url(srv.url).scan_iter(count=1000)}
        assert "agent:{agent_0}:action:timeline" in keys


def _layout_run(url: str, folder: Path, version: int) -> dict[str, Any]:
    """Data written by a store of ``version`` (a dual writer's outbox left undrained,
    actions Redis holds that no archive has), then every read-only command, the drain,
    sync and maintain: their JSON outputs."""
    base = ["--redis-url", url, "--archive-url", str(folder / "a.db"),
            "--data", str(folder / "data")]
    actions = [agentmem.Action(agent_id=f"a{s % 3}", simulation_id="s1", step_number=s,
                               action_type=("move", "eat", "share")[s % 4 % 3],
                               reward=s / 10 - 1, position=(float(s), float(s % 5)),
                               action_target_id="a2" if s % 4 == 0 else None)
               for s in range(30)]
    with agentmem.connect(url, layout_version=version) as mem, \
            open_archive(folder / "a.db") as archive:
        writer = DualWriter(mem, archive, buffer_size=1000, interval=3600, lease=60)
        writer.add_many(actions[:20])  # acknowledged, in the outbox, not archived
        mem.actions.add_many(actions[20:])  # in Redis only

        def lines(args: list[str]) -> list[Any]:
            out = ok([*base, *args, "--json"]).stdout
            try:
                return [json.loads(out)]  # one object, maybe indented
            except json.JSONDecodeError:
                return [json.loads(x) for x in out.splitlines() if x.strip()]

        out: dict[str, Any] = {}
        out["drain"] = lines(["archive", "--all"])
        out["sync"] = lines(["sync", "s1"])
        stats = lines(["stats"])[0]
        out["layout"] = stats.pop("layout_version")
        out["stats"] = {k: stats[k] for k in ("simulations", "agents", "tiers", "types_in_stm")}
        out["inspect"] = lines(["inspect", "a1"])
        for name, args in [("type", ["--type", "eat"]), ("target", ["--target", "a2"]),
                           ("reward", ["--min-reward", "0.5"]), ("steps", ["--steps", "3:12"]),
                           ("relative", ["--relative", "-2"]),
                           ("near", ["--near", "10,2", "--radius", "6"])]:
            out["query " + name] = lines(["query", "--agent", "a1", *args])
        out["maintain"] = lines(["maintain", "--stm-steps", "5", "--im-capacity", "4",
                                 "--now-step", "29"])
        for name, args in [("type", ["--type", "eat"]), ("steps", ["--steps", "0:29"])]:
            out["all tiers " + name] = lines(["query", "--agent", "a1", *args, "--all-tiers"])
        out["inspect after"] = lines(["inspect", "a1", "--limit", "20"])
        export = folder / "s1.jsonl"
        ok([*base, "export", "s1", "--format", "jsonl", "-o", str(export)])
        out["export"] = sorted((json.loads(x)["action_id"], json.loads(x)["reward"])
                               for x in export.read_text().splitlines())
        writer.close()
    return json.loads(json.dumps(out).replace('"stored_at": ', '"_": ').replace(
        '"generated_at": ', '"_": '), object_hook=lambda d: {k: v for k, v in d.items()
                                                             if k != "_"})


def test_commands_on_a_layout_3_store(tmp_path: Path) -> None:
    """A store written in layout 3 (short hash fields): the commands open it in that
    layout, and every read, the outbox drain, sync and maintain answer as on layout 2."""
    if find_binary("redis") is None:
        pytest.skip("no redis-server")
    runs = {}
    for version in (2, 3):
        with LocalServer("redis") as srv:
            folder = tmp_path / f"l{version}"
            folder.mkdir()
            runs[version] = _layout_run(srv.url, folder, version)
    assert runs[3]["layout"] == 3
    runs[3]["layout"] = 2
    assert runs[3] == runs[2]
    assert runs[3]["drain"][0]["archived"] == 20
    assert runs[3]["sync"] == [{"simulation": "s1", "archived": 10}]
    assert len(runs[3]["export"]) == 30
    assert runs[3]["query near"]
    assert {r["tier"] for r in runs[3]["all tiers steps"]} == {"stm", "im"}


def test_commands_use_the_grid_cell_the_server_records(tmp_path: Path) -> None:
    """Data written with grid_cell=4: the commands search, check and repair it with
    that cell (a store of the default cell would be refused)."""
    if find_binary("redis") is None:
        pytest.skip("no redis-server")
    with LocalServer("redis") as srv:
        base = ["--redis-url", srv.url, "--archive-url", str(tmp_path / "a.db"),
                "--data", str(tmp_path / "data")]
        writer = agentmem.connect(srv.url, grid_cell=4.0)
        writer.actions.add_many([
            agentmem.Action(agent_id="a1", simulation_id="s1", step_number=i,
                            action_type="move", position=(float(i), 0.0)) for i in range(40)])
        with pytest.raises(agentmem.LayoutError):
            agentmem.connect(srv.url).actions.near("a1", 0.0, 0.0, 1.0)
        out = ok([*base, "query", "--agent", "a1", "--near", "10,0", "--radius", "2.5",
                  "--json"]).stdout
        found = [json.loads(x)["action_id"] for x in out.splitlines() if x.strip()]
        assert found == ["a1-10-move", "a1-11-move", "a1-9-move", "a1-12-move", "a1-8-move"]
        assert json.loads(ok([*base, "check", "--json"]).stdout)["clean"]
        writer.close()


def test_migrate_on_the_embedded_default(tmp_path: Path) -> None:
    if find_binary("valkey") is None and find_binary("redis") is None:
        pytest.skip("no server binary")
    base = ["--data", str(tmp_path / "data")]
    ok([*base, "demo", "--agents", "3", "--steps", "10"])
    before = json.loads(ok([*base, "stats", "--json"]).stdout)
    assert json.loads(ok([*base, "migrate", "current", "--json"]).stdout)["revision"] == "0001"
    ok([*base, "migrate", "upgrade"])
    after = json.loads(ok([*base, "stats", "--json"]).stdout)  # a later command: same data
    assert after["layout_version"] == 2
    assert after["tiers"] == before["tiers"]
    assert "layout 2" in ok([*base, "migrate", "current"]).stdout
    ok([*base, "migrate", "downgrade", "base"])
    assert json.loads(ok([*base, "stats", "--json"]).stdout)["tiers"] == before["tiers"]
