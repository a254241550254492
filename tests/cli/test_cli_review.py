"""Review 47 of the command: Ctrl-C (a real SIGINT to a real `agentmem` process) while
the embedded server starts or stops, the key layout of the data over $AGENTMEM_LAYOUT,
a database index the server does not have, the demo's series file per stores and per
simulation id, extreme rewards in `report`, a mistyped --archive-url, and usage errors
of `query`."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner, Result

import agentmem
from agentmem.cli import main
from agentmem.cli.exits import EXITS
from agentmem.errors import ConfigError
from agentmem.servers.embedded import Embedded
from agentmem.servers.local import LocalServer, find_binary

ROOT = Path(__file__).resolve().parents[2]
CODE = {e.name: e.code for e in EXITS}
SIGTERM_BIT = 1 << (signal.SIGTERM - 1)


def run(args: list[str], env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, args, catch_exceptions=False, env=env)


def ok(args: list[str], env: dict[str, str] | None = None) -> Result:
    result = run(args, env)
    assert result.exit_code == 0, result.output
    return result


def failed(args: list[str], kind: str, text: str = "") -> Result:
    result = run(args)
    assert result.exit_code == CODE[kind], result.output
    assert "Traceback" not in result.output
    assert text in result.stderr, result.stderr
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
    yield ["--redis-url", srv.url, "--archive-url", str(tmp_path / "a.db"),
           "--data", str(tmp_path / "data")]
    client.flushall()
    client.close()


def _embedded_binary() -> None:
    if find_binary("valkey") is None and find_binary("redis") is None:
        pytest.skip("no server binary")


# --- Ctrl-C while the embedded server starts or stops (real processes) ---------------

def _cli(data: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    env.pop("AGENTMEM_DEBUG", None)
    return subprocess.Popen([sys.executable, "-m", "agentmem.cli", "--data", str(data), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _ends(pid: int, within: float = 30.0) -> bool:
    """Whether process ``pid`` ends (is gone, or a zombie) within ``within`` seconds: a
    server told to end after the command exited may still be finishing its shutdown (a
    bound on waiting for an event, not a timed assertion)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


def _server_children(pid: int) -> list[int]:
    """The server processes (after their exec) that ``pid`` started."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == pid and (b"valkey-server" in cmdline
                                      or b"redis-server" in cmdline):
            found.append(int(stat.parent.name))
    return found


def _sigterms(data: Path) -> int:
    """How many SIGTERMs the folder's servers have logged receiving."""
    try:
        return (data / "valkey" / "valkey.log").read_text().count("Received SIGTERM")
    except OSError:
        return 0


def _readies(data: Path) -> int:
    """How many times the folder's servers have logged being ready for connections."""
    try:
        return (data / "valkey" / "valkey.log").read_text().count("Ready to accept")
    except OSError:
        return 0


def _asked_to_end(pid: int, data: Path, logged: int) -> bool:
    """Whether the (stopped) server ``pid`` got SIGTERM: pending, or handled before it
    was stopped (its log then says so: more than ``logged`` SIGTERMs)."""
    pending = []
    try:
        for status in Path(f"/proc/{pid}/task").glob("*/status"):
            lines = status.read_text().splitlines()
            pending += [int(line.split()[1], 16) for line in lines
                        if line.startswith(("SigPnd:", "ShdPnd:"))]
    except OSError:
        pass
    return any(p & SIGTERM_BIT for p in pending) or _sigterms(data) > logged


def _servers_in(folder: Path) -> list[int]:
    """Pids of the server processes whose working folder is ``folder``'s Valkey folder."""
    found = []
    for cwd in Path("/proc").glob("[0-9]*/cwd"):
        try:
            if Path(os.readlink(cwd)) == folder / "valkey":
                found.append(int(cwd.parent.name))
        except OSError:
            continue
    return found


def _interrupt_while_stopped(cli: subprocess.Popen[bytes], server: int, data: Path,
                            logged: int, sig: int = signal.SIGINT) -> tuple[int, str]:
    """SIGINT (or ``sig``) the command while its server is stopped (SIGSTOP); let the
    server go on once the command has asked it to end (SIGTERM). The command's status
    and standard error."""
    cli.send_signal(sig)
    while cli.poll() is None and not _asked_to_end(server, data, logged):
        pass
    with contextlib.suppress(ProcessLookupError):  # already gone: what the test wants
        os.kill(server, signal.SIGCONT)
    _, err = cli.communicate()
    return cli.returncode, err.decode()


@pytest.mark.parametrize(("sig", "code", "said"),
                         [(signal.SIGINT, CODE["interrupted"], "Error: interrupted"),
                          (signal.SIGTERM, 143, "")], ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_while_the_embedded_server_starts_leaves_no_server(
        tmp_path: Path, sig: int, code: int, said: str) -> None:
    """The server process is caught as it starts (SIGSTOP: it does not answer yet), the
    command gets SIGINT (Ctrl-C: it exits with 130) or SIGTERM (`timeout`, `kill`: 143)
    and stops that process; the next command starts one server, which it stops too."""
    _embedded_binary()
    data = tmp_path / "data"
    ok(["--data", str(data), "demo", "--agents", "2", "--steps", "3"])
    hits = 0
    for _ in range(20):  # until the start window is hit 3 times
        logged, readied = _sigterms(data), _readies(data)
        cli = _cli(data, "stats", "--json")
        server = None
        while server is None and cli.poll() is None:
            kids = _server_children(cli.pid)
            server = kids[0] if kids else None
        if server is None:  # the command ended before its server could be seen
            cli.communicate()
            continue
        os.kill(server, signal.SIGSTOP)
        # the window: stopped before it was ready (its record is written at the spawn,
        # so the log tells)
        started = _readies(data) > readied
        status, err = _interrupt_while_stopped(cli, server, data, logged, sig)
        try:
            assert status == code, err
            assert err.strip() == said
            assert _ends(server), "the server was left running"
            assert _servers_in(data) == []
        finally:
            if Path(f"/proc/{server}").exists():
                os.kill(server, signal.SIGKILL)
        hits += not started
        if hits == 3:
            break
    assert hits == 3
    stats = json.loads(ok(["--data", str(data), "stats", "--json"]).stdout)
    assert stats["agent_count"] == 2
    assert _servers_in(data) == []
    assert not (data / "valkey" / "server.json").exists()


def test_ctrl_c_while_the_embedded_server_stops_is_interrupted(tmp_path: Path) -> None:
    """SIGINT while the command waits for its server to shut down (the server stopped
    with SIGSTOP once the command has read everything, its output held in a full
    pipe): status 130 and `Error: interrupted`, not click's `Aborted!`; the next command
    finds the folder usable."""
    _embedded_binary()
    data = tmp_path / "data"
    with Embedded(data) as emb, agentmem.connect(emb.url) as mem:
        mem.actions.add_many([agentmem.Action(agent_id=f"agent-with-a-long-name-{n}",
                                              simulation_id="s", step_number=1,
                                              action_type="move") for n in range(5000)])
    logged = _sigterms(data)
    cli = _cli(data, "stats", "--json")
    assert cli.stdout is not None
    first = cli.stdout.read(1)  # the output begins: every read of the server is done
    assert first == b"{"
    server = json.loads((data / "valkey" / "server.json").read_text())["pid"]
    while "pipe_write" not in Path(f"/proc/{cli.pid}/wchan").read_text():
        assert cli.poll() is None  # until it waits for the pipe again: it cannot go on
    os.kill(server, signal.SIGSTOP)
    rest = b""
    while not rest.endswith(b"\n}\n"):
        chunk = cli.stdout.read1(65536)
        assert chunk, cli.stderr.read() if cli.stderr else ""
        rest += chunk
    assert json.loads(first + rest)["agent_count"] == 5000
    # the command stops its server: it waits for it to exit (a stopped process does not)
    while not (_asked_to_end(server, data, logged)
               or "nanosleep" in Path(f"/proc/{cli.pid}/wchan").read_text()):
        assert cli.poll() is None
    cli.send_signal(signal.SIGINT)
    _, err = cli.communicate()
    os.kill(server, signal.SIGCONT)
    assert cli.returncode == CODE["interrupted"], err
    assert err.decode().strip() == "Error: interrupted"
    assert json.loads(ok(["--data", str(data), "stats", "--json"]).stdout)["agent_count"] == 5000
    assert _servers_in(data) == []


# --- the layout the server records, not $AGENTMEM_LAYOUT --------------------------------

def test_stats_reads_the_recorded_layout_whatever_agentmem_layout_says(
        base: list[str], srv: LocalServer) -> None:
    ok([*base, "demo", "--agents", "3", "--steps", "4"])
    assert not redis.Redis.from_url(srv.url).exists("agentmem:layout")  # layout 1
    for env in ({"AGENTMEM_LAYOUT": "2"}, {"AGENTMEM_LAYOUT_VERSION": "2"}):
        stats = json.loads(ok([*base, "stats", "--json"], env).stdout)
        assert stats["layout_version"] == 1
        assert stats["agent_count"] == 3
        assert ok([*base, "inspect", "agent_0", "--json"], env).stdout.strip()
        ok([*base, "check"], env)


def test_an_empty_server_takes_the_layout_agentmem_layout_asks_for(
        base: list[str], srv: LocalServer) -> None:
    r = redis.Redis.from_url(srv.url)
    r.flushdb()
    ok([*base, "demo", "--agents", "3", "--steps", "4"], {"AGENTMEM_LAYOUT": "3"})
    assert r.get("agentmem:layout") == b"3"
    stats = json.loads(ok([*base, "stats", "--json"]).stdout)  # no variable: recorded 3
    assert stats["layout_version"] == 3
    assert stats["agent_count"] == 3


# --- a database index the server does not have ------------------------------------------

def test_a_database_the_server_does_not_have_is_a_config_error(srv: LocalServer,
                                                               tmp_path: Path) -> None:
    url = srv.url.rpartition("/")[0] + "/99"
    failed(["--redis-url", url, "--archive-url", str(tmp_path / "a.db"), "stats"], "config",
           "ConfigError: the Redis URL names a database the server does not have")


def test_ping_of_a_database_the_server_does_not_have_raises_config_error(
        srv: LocalServer) -> None:
    url = srv.url.rpartition("/")[0] + "/99"
    with agentmem.connect(url) as mem, pytest.raises(ConfigError, match="DB index"):
        mem.ping()


async def test_async_ping_of_a_database_the_server_does_not_have_raises_config_error(
        srv: LocalServer) -> None:
    url = srv.url.rpartition("/")[0] + "/99"
    mem = agentmem.connect_async(url)
    try:
        with pytest.raises(ConfigError, match="DB index"):
            await mem.ping()
    finally:
        await mem.close()


# --- the demo's series file: per stores, and a safe file name ------------------------------

def test_a_demo_into_other_stores_keeps_the_embedded_series(base: list[str],
                                                            tmp_path: Path) -> None:
    _embedded_binary()
    data = tmp_path / "data"
    ok(["--data", str(data), "demo", "--agents", "3", "--steps", "10"])
    runs = data / "runs"
    embedded_series = (runs / "demo.json").read_bytes()
    ok([*base, "demo", "--agents", "4", "--steps", "20"])  # --data is the same folder
    assert (runs / "demo.json").read_bytes() == embedded_series
    assert len(list(runs.iterdir())) == 2
    out = tmp_path / "charts"
    files = json.loads(ok(["--data", str(data), "report", "demo", "--out", str(out),
                           "--json"]).stdout)["files"]
    assert str(out / "demo-memory-tiers.png") in files
    other = json.loads(ok([*base, "report", "demo", "--out", str(tmp_path / "c2"),
                           "--json"]).stdout)["files"]
    assert str(tmp_path / "c2" / "demo-memory-tiers.png") in other


def test_simulation_ids_with_slashes_stay_in_the_runs_folder(base: list[str],
                                                             tmp_path: Path) -> None:
    data = tmp_path / "data"
    for n, sim in enumerate(("../escape", "a/b", "..")):
        ok([*base, "demo", "--agents", "2", "--steps", "3", "--simulation-id", sim,
            "--agent-prefix", f"p{n}_"])
        out = tmp_path / f"charts{n}"
        files = json.loads(ok([*base, "report", sim, "--out", str(out), "--json"]).stdout)
        assert all(Path(f).parent == out for f in files["files"])
        assert any(f.endswith("-memory-tiers.png") for f in files["files"])
    assert [p for p in (data / "runs").iterdir() if not p.is_file()] == []
    assert len(list((data / "runs").iterdir())) == 3
    outside = {p.name for p in tmp_path.iterdir() if not p.name.startswith("a.db")}
    assert outside == {"data", "charts0", "charts1", "charts2"}


def test_report_file_names_keep_letters(base: list[str], tmp_path: Path) -> None:
    ok([*base, "demo", "--agents", "2", "--steps", "3", "--simulation-id", "été/1"])
    files = json.loads(ok([*base, "report", "été/1", "--out", str(tmp_path / "c"),
                           "--json"]).stdout)["files"]
    assert str(tmp_path / "c" / "été_1-rewards.png") in files


# --- extreme rewards ------------------------------------------------------------------------

def test_report_draws_extreme_rewards(base: list[str], srv: LocalServer,
                                      tmp_path: Path) -> None:
    with agentmem.connect(srv.url) as mem:
        mem.actions.add_many([
            agentmem.Action(agent_id="z1", simulation_id="simz", step_number=s,
                            action_type="move", reward=r)
            for s, r in enumerate((1e308, -1e308, 0.0, 5e-324, -1.7976931348623157e308))])
    ok([*base, "sync", "simz"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        files = json.loads(ok([*base, "report", "simz", "--out", str(tmp_path / "c"),
                               "--json"]).stdout)["files"]
    assert [str(w.message) for w in caught] == []
    assert str(tmp_path / "c" / "simz-rewards.png") in files
    assert (tmp_path / "c" / "simz-rewards.png").read_bytes()[:4] == b"\x89PNG"


# --- a mistyped --archive-url -----------------------------------------------------------------

def test_a_read_command_with_a_missing_archive_given_is_not_found(
        base: list[str], srv: LocalServer, tmp_path: Path) -> None:
    ok([*base, "demo", "--agents", "2", "--steps", "3"])
    missing = tmp_path / "nonexist" / "dir" / "a.db"
    failed(["--redis-url", srv.url, "--archive-url", str(missing), "stats"], "not-found",
           "no archive at")
    result = CliRunner().invoke(main, ["--redis-url", srv.url, "stats"],
                                env={"AGENTMEM_ARCHIVE_URL": str(missing)})
    assert result.exit_code == CODE["not-found"], result.output
    assert not missing.parent.exists()
    # the data folder's default archive may be missing: no archive, not an error
    stats = json.loads(ok(["--redis-url", srv.url, "--data", str(tmp_path / "none"),
                           "stats", "--json"]).stdout)
    assert stats["stores"]["archive"] == "(none)"


# --- usage errors of query -----------------------------------------------------------------

def test_query_limit_zero_and_a_reversed_step_range_are_usage_errors(
        base: list[str]) -> None:
    ok([*base, "demo", "--agents", "2", "--steps", "6"])
    bad_limit = run([*base, "query", "--agent", "agent_0", "--type", "move", "--limit", "0"])
    assert bad_limit.exit_code == CODE["usage"], bad_limit.output
    assert "truncated" not in bad_limit.output
    reversed_steps = run([*base, "query", "--agent", "agent_0", "--steps", "5:3"])
    assert reversed_steps.exit_code == CODE["usage"], reversed_steps.output
    assert "START 5 is after END 3" in reversed_steps.stderr
    assert ok([*base, "query", "--agent", "agent_0", "--steps", "3:5"]).stdout.strip()
