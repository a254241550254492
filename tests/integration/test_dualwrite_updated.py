"""Actions a dual writer stored, updated in Redis (``actions.update``) and archived in
their new version by someone else before the writer's own archive write (review 97), on
a real Redis or Valkey and a real SQLite file or PostgreSQL schema.

The writer's buffer holds the version it wrote. Once ``maintain`` (or a drain, or a
sync) has archived the updated version, the archive holds a row of the same identity and
write time with other content, which ``Archive.write`` refuses (``DuplicateId``): every
later flush raised, the buffer never emptied, and neither did ``close()``. The
buffered copy is the action's first version, so the archived row is kept and the copy
counts as archived. ``archive_to_sql`` (and the outbox drain) of an action updated
since it was archived keeps the archived row (it raised ``DuplicateId``): what it read
from Redis may be older than a row ``maintain`` archived meanwhile (review 100), and
STM's version reaches the archive when ``maintain`` moves the action.
"""

from __future__ import annotations

from typing import Any

import pytest
import redis
from test_sql_archive import Db, db  # noqa: F401 - the sqlite/postgresql fixture

import agentmem
from agentmem import Action
from agentmem.backends.sql import open_archive
from agentmem.dualwrite.sync import archive_to_sql
from agentmem.errors import DuplicateId
from agentmem.tiers import TierPolicy, Tiers

SIM = "sim_dwu"


def _acts(n: int = 6) -> list[Action]:
    return [Action(agent_id="x", simulation_id=SIM, step_number=s, action_type="move",
                   reward=0.1, details={"v": 1}) for s in range(n)]


def _archived(url: str) -> dict[str, tuple[float | None, Any]]:
    with open_archive(url) as archive:
        rows = archive.read(SIM)
    assert len(rows) == len({a.action_id for a in rows})  # each once
    return {str(a.action_id): (a.reward, a.details) for a in rows}


def test_a_buffered_action_archived_updated_by_maintain_leaves_the_writer_usable(
        server: Any, r: redis.Redis, db: Db) -> None:  # noqa: F811
    store = agentmem.open(server.url, archive_url=db.url,
                          tiers=agentmem.TierPolicy(stm_steps=3))
    store.add_many(_acts())  # stored in Redis, buffered for the archive
    assert store.writer.pending == 6
    first = store.memory.actions.get("x-0-move", agent_id="x")
    assert first is not None
    store.memory.actions.update(first.model_copy(update={"reward": 0.9, "details": {"v": 2}}))
    report = store.tiers.maintain(now_step=5)  # archives x-0..x-2 as STM holds them
    assert (report.to_im, report.refused) == (3, [])
    store.writer.flush()  # raised DuplicateId, then on every later flush
    assert store.writer.pending == 0
    store.close()
    rows = _archived(db.url)
    assert sorted(rows) == [f"x-{s}-move" for s in range(6)]
    assert rows["x-0-move"] == (0.9, {"v": 2})  # the updated version kept
    assert all(rows[f"x-{s}-move"] == (0.1, {"v": 1}) for s in range(1, 6))


def test_a_buffered_action_under_an_id_of_another_action_is_still_refused(
        server: Any, r: redis.Redis, db: Db) -> None:  # noqa: F811
    """Another action under the id (another write time): not the same action, so the
    writer refuses to archive it, as before, and keeps it buffered."""
    store = agentmem.open(server.url, archive_url=db.url)
    stored = store.add_many(_acts(2))
    other = stored[0].model_copy(update={"stored_at": (stored[0].stored_at or 0) + 5,
                                         "details": {"v": "other"}})
    with open_archive(db.url) as archive:
        assert archive.write([other]) == 1
    with pytest.raises(DuplicateId) as caught:
        store.writer.flush()
    assert list(caught.value.failed) == [0]
    assert caught.value.stored == ["x-1-move"]
    assert store.writer.pending == 2
    assert _archived(db.url)["x-0-move"] == (0.1, {"v": "other"})
    assert len(store.writer.discard(lambda a: True, lambda a: None)) == 2
    store.close()


def test_archive_to_sql_keeps_the_row_of_an_action_updated_since_until_it_moves(
        server: Any, r: redis.Redis, db: Db) -> None:  # noqa: F811
    mem = agentmem.connect(server.url)
    stored = mem.actions.add_many(_acts(3))
    with open_archive(db.url) as archive:
        assert archive.write(stored) == 3
        mem.actions.update(stored[1].model_copy(update={"reward": 0.9, "details": {"v": 2}}))
        assert archive_to_sql(mem, archive, SIM) == 0  # archived: no DuplicateId
        assert _archived(db.url)["x-1-move"] == (0.1, {"v": 1})
        report = Tiers(mem, TierPolicy(stm_steps=1), archive=archive).maintain(now_step=2)
        assert report.to_im == 2
    rows = _archived(db.url)
    assert rows == {"x-0-move": (0.1, {"v": 1}), "x-1-move": (0.9, {"v": 2}),
                    "x-2-move": (0.1, {"v": 1})}
    mem.close()
