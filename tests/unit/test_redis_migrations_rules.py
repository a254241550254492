"""The parts of test_redis_migrations.py that need no server (moved from tests/integration)."""

from __future__ import annotations

from agentmem.migrations import redis as mig


def test_history_is_one_chain() -> None:
    revs = mig.history()
    assert [r.revision for r in revs] == ["0001", "0002", "0003", "0004", "0005"]
    assert [r.down_revision for r in revs] == [None, "0001", "0002", "0003", "0004"]
    assert [r.layout for r in revs] == [1, 2, 2, 3, 4]
    assert [r.opt_in for r in revs] == [False, False, False, True, True]
    assert all(r.description for r in revs)


