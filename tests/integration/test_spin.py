"""Polling for replies before sleeping (agentmem.backends.spin): when it is on, and
that every reply is read the same whether it comes during the poll or after it."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable

import pytest
import redis

import agentmem
from agentmem.backends import spin
from agentmem.backends.cluster import connect_cluster
from agentmem.backends.spin import AUTO_SPIN_US, resolve_spin
from agentmem.servers.local import LocalServer, find_binary

AUTO = AUTO_SPIN_US / 1e6

# a script that keeps the server busy for about 400 ms, so that replies come late
BUSY = """
local t0 = redis.call('TIME')
repeat
  local t = redis.call('TIME')
until (t[1] - t0[1]) * 1000000 + (t[2] - t0[2]) > 400000
return 1
"""


@pytest.mark.parametrize("host", ["127.0.0.1", "127.4.5.6", "localhost", "::1", "[::1]"])
def test_auto_polls_for_a_loopback_server_with_two_cpus(
        monkeypatch: pytest.MonkeyPatch, host: str) -> None:
    monkeypatch.setattr(spin, "_usable_cpus", lambda: 2)
    assert resolve_spin(None, host=host, unix=False) == AUTO


@pytest.mark.parametrize("host", ["10.0.0.5", "192.168.1.20", "redis.example.com", None])
def test_auto_does_not_poll_for_a_remote_server(
        monkeypatch: pytest.MonkeyPatch, host: str | None) -> None:
    monkeypatch.setattr(spin, "_usable_cpus", lambda: 8)
    assert resolve_spin(None, host=host, unix=False) == 0.0


def test_a_given_spin_applies_to_any_server() -> None:
    assert resolve_spin(0, host="127.0.0.1", unix=False) == 0.0
    assert resolve_spin(500, host="10.0.0.5", unix=False) == 500e-6
    assert resolve_spin(spin.MAX_SPIN_US, host=None, unix=True) == spin.MAX_SPIN_US / 1e6


@pytest.mark.parametrize("bad", [-1, True, 1.5, "200", spin.MAX_SPIN_US + 1])
def test_malformed_spin_us_is_a_config_error_before_connecting(bad: object) -> None:
    with pytest.raises(agentmem.ConfigError, match="spin_us"):
        agentmem.connect("redis://127.0.0.1:1/0", spin_us=bad)  # type: ignore[arg-type]
    # connect_cluster reads the slot map at once: the port-1 node would be Unavailable
    with pytest.raises(agentmem.ConfigError, match="spin_us"):
        connect_cluster("redis+cluster://127.0.0.1:1", spin_us=bad)  # type: ignore[arg-type]


def test_connect_takes_the_spin_from_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spin, "_usable_cpus", lambda: 2)
    with agentmem.connect("redis://127.0.0.1:1/0") as local:  # nothing is sent
        assert local.runner.spin == AUTO
    with agentmem.connect("redis://10.0.0.5:6379/0") as remote:
        assert remote.runner.spin == 0.0
    with agentmem.connect("redis://127.0.0.1:1/0", spin_us=0) as off:
        assert off.runner.spin == 0.0
    with agentmem.connect("unix:///tmp/agentmem-none.sock") as unix:
        assert unix.runner.spin == AUTO


def _history(mem: agentmem.Memory) -> list[object]:
    actions = [agentmem.Action(agent_id=f"a{i % 3}", simulation_id="s1", step_number=i // 3,
                               action_type=("move", "share", "gather")[i % 3],
                               action_target_id="a0" if i % 3 == 1 else None,
                               reward=(i % 7) / 7 - 0.4, position=(float(i), 2.0))
               for i in range(60)]
    mem.actions.add(actions[0])
    mem.actions.add_many(actions[1:])
    out: list[object] = []
    for agent in ("a0", "a1", "a2"):
        out += [a.model_dump(exclude={"stored_at"}) for a in mem.actions.timeline(agent)]
        out += [a.action_id for a in mem.actions.high_reward(agent, 0.0, limit=5)]
        before_last = mem.actions.relative(agent, -2)
        assert before_last is not None
        out.append(before_last.model_dump(exclude={"stored_at"}))  # write times may differ
    out.append(mem.actions.type_counts("s1"))
    out.append(mem.actions.steps("s1"))
    out += [(n.record.action_id, n.distance) for n in mem.actions.near("a1", 10.0, 2.0, 5.0)]
    return out


def test_replies_read_the_same_polled_or_not(
        connect: Callable[..., agentmem.Memory], r: redis.Redis) -> None:
    """No poll; a poll too short for any reply (the read after it blocks); a poll
    long enough for every reply; add_many in batches of 7 (several replies per round
    trip, the first found by the poll, the others read after it)."""
    seen = []
    for options in ({"spin_us": 0}, {"spin_us": 1}, {"spin_us": 100_000},
                    {"spin_us": 100_000, "batch_size": 7}):
        r.flushdb()
        seen.append(_history(connect(**options)))
    assert seen[0]
    assert all(s == seen[0] for s in seen[1:])


@pytest.fixture
def local() -> LocalServer:
    if find_binary("redis") is None and find_binary("valkey") is None:
        pytest.skip("no server binary")
    kind = "redis" if find_binary("redis") is not None else "valkey"
    return LocalServer(kind)  # type: ignore[arg-type]


def _busy(url: str) -> threading.Thread:
    """Start BUSY on its own connection; return once the server is running it."""
    client = redis.Redis.from_url(url)

    def run() -> None:
        with contextlib.suppress(redis.ConnectionError):  # the server was killed
            client.eval(BUSY, 0)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    time.sleep(0.1)
    return thread


def test_a_reply_later_than_the_poll_is_read_after_it(local: LocalServer) -> None:
    with local, agentmem.connect(local.url, spin_us=20_000) as mem:
        mem.actions.record(agent_id="a1", simulation_id="s1", step_number=4,
                           action_type="move")
        busy = _busy(local.url)
        t0 = time.perf_counter()
        steps = mem.actions.steps("s1")
        waited = time.perf_counter() - t0
        busy.join()
        assert waited > 0.02  # the server was busy: the reply came after the poll
        assert steps == [4]


def test_a_server_lost_while_a_reply_is_awaited_is_unavailable(local: LocalServer) -> None:
    """The server is killed 30 ms into a wait whose poll may last 100 ms: usually while
    the client polls, else in the blocking read after it; either way Unavailable."""
    with local, agentmem.connect(local.url, spin_us=spin.MAX_SPIN_US) as mem:
        assert mem.actions.steps("s1") == []
        _busy(local.url)
        threading.Timer(0.03, local.kill).start()
        with pytest.raises(agentmem.Unavailable):
            mem.actions.steps("s1")
