"""The parts of test_spin.py that need no server (moved from tests/integration)."""

from __future__ import annotations

import contextlib
import threading
import time

import pytest
import redis

import agentmem
from agentmem.backends import spin
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


def test_auto_polls_for_a_unix_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spin, "_usable_cpus", lambda: 2)
    assert resolve_spin(None, host=None, unix=True) == AUTO


def test_auto_does_not_poll_with_one_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spin, "_usable_cpus", lambda: 1)
    assert resolve_spin(None, host="127.0.0.1", unix=False) == 0.0
    assert resolve_spin(None, host=None, unix=True) == 0.0


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


