"""Reading the replies of many calls in a few wake-ups (agentmem.backends.spin.Pacer)
against real servers: a write of many calls, read with naps, stores and returns what
the same write read reply by reply does, and the naps happen. The nap arithmetic is in
tests/unit/test_pacer_rules.py."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis
from test_rows import data_keys
from test_write_cols import as_columns, steps

from agentmem.backends import spin


@pytest.mark.parametrize("path", ["add_columns", "add_many", "step_log"])
def test_a_write_of_many_calls_read_with_naps_stores_what_it_does_reply_by_reply(
        r: redis.Redis, connect: Any, monkeypatch: pytest.MonkeyPatch, path: str) -> None:
    data = steps(60, 50)  # 3,000 actions: 30 calls of 100, a few ms each
    naps: list[float] = []

    def counted(s: float) -> None:
        naps.append(s)
        time.sleep(s)

    monkeypatch.setattr(spin, "time", type("T", (), {"perf_counter": time.perf_counter,
                                                     "sleep": staticmethod(counted)}))
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
    assert 0 < len(naps) < 30  # fewer wake-ups than replies
