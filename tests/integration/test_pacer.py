"""Reading the replies of many calls in a few wake-ups (agentmem.backends.spin.Pacer)
against real servers: the replies of slow calls are read in order, a refused call's
error in its place, with fewer naps than replies; and a write of many calls stores and
returns the same with the pacer on or off. The nap arithmetic is in
tests/unit/test_pacer_rules.py."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis
from test_rows import data_keys
from test_write_cols import as_columns, steps

from agentmem.backends import spin
from agentmem.errors import BackendError
from agentmem.plans.plan import Plan, command

# a call that keeps the server busy for a few ms (a loop: a script's TIME stands still on
# Valkey) and returns its argument (or, given "fail", is refused); each call carries 32 KB
# (ARGV[2]) so that the server reads it alone and sends its reply as it finishes it, as
# it does a write's calls
SLOW = """
local x = 0
for i = 1, 300000 do x = x + i end
if ARGV[1] == 'fail' then return redis.error_reply('ERR refused on purpose') end
return ARGV[1]
"""
PAD = "p" * 32768


@pytest.fixture
def naps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The pacer's naps, counted (each still sleeps)."""
    got: list[float] = []

    def counted(s: float) -> None:
        got.append(s)
        time.sleep(s)

    monkeypatch.setattr(spin, "time", type("T", (), {"perf_counter": time.perf_counter,
                                                     "sleep": staticmethod(counted)}))
    return got


def test_the_replies_of_slow_calls_are_read_in_order_with_a_few_naps(
        mem: Any, naps: list[float]) -> None:
    args = [str(i) if i != 17 else "fail" for i in range(40)]
    plan = Plan([command("EVAL", SLOW, 0, a, PAD) for a in args], lambda replies: replies)
    replies = mem.runner.run(plan)
    assert [x.decode() for i, x in enumerate(replies) if i != 17] == \
        [a for i, a in enumerate(args) if i != 17]
    assert isinstance(replies[17], BackendError)
    assert "on purpose" in str(replies[17])
    assert 0 < len(naps) < 20  # 40 replies ms apart: a few wake-ups, not 40


@pytest.mark.parametrize("path", ["add_columns", "add_many", "step_log"])
def test_a_write_of_many_calls_stores_the_same_with_the_pacer_on_or_off(
        r: redis.Redis, connect: Any, monkeypatch: pytest.MonkeyPatch, naps: list[float],
        path: str) -> None:
    data = steps(60, 50)  # 3,000 actions: 30 calls of 100
    got = []
    for paced in (False, True):
        monkeypatch.setattr(spin, "PACE_CALLS", 8 if paced else 1 << 30)
        r.flushdb()
        repo = connect().actions
        if path == "add_columns":
            ids = repo.add_columns(as_columns(data))
        elif path == "add_many":
            ids = [a.action_id for a in repo.add_many(
                [repo.spec.model(**row) for row in data])]
        else:
            with repo.step_log(every=len(data)) as log:
                ids = [i for s in range(50) for i in log.add(as_columns(data[s * 60:
                                                                          s * 60 + 60]))]
        got.append((ids, data_keys(r)))
        if not paced:
            assert naps == []
    assert got[1] == got[0]
    assert len(got[0][0]) == 3000
