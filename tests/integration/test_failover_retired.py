"""A write whose reply was lost, numbered by the script after a retired mark.

An agent's actions up to a step left short-term memory (the retired mark of its
simulation), and the writer writes another action of that agent at or below that
step: the write script gives it ``{agent}-{step}-{type}.r<n>``, an id the writer cannot
guess. When that write reaches Redis but its reply is lost, the writer journals the
action under its guess; the replay must find the stored copy under its ``.r`` id and
take it (in the archive too), not store a second copy under the guess.

Real servers, as in ``test_failover``: a private Redis with its append-only file, stopped
and started again on its port; another client stands in for the lost reply.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from test_failover import SIM, journaled_while_down, mine, server  # noqa: F401

import agentmem
from agentmem import Action
from agentmem.backends.sql import open_archive
from agentmem.dualwrite.failover import Failover
from agentmem.dualwrite.writer import DualWriter
from agentmem.servers.local import LocalServer


def _retire(mem: agentmem.Memory, agent: str, sim: str, step: int) -> None:
    """The agent's actions of ``sim`` up to ``step`` left STM (as a move to IM leaves it)."""
    mem.client.hset(mem.actions.layout.key("retired", agent_id=agent), sim, step)


J = Action(agent_id="a1", simulation_id=SIM, step_number=2, action_type="move", reward=1.0)
"""An action at step 2, at or below agent a1's retired mark of 5 (:func:`_writer`)."""


def _held_and_archived(mem: agentmem.Memory, archive: Any, agent: str
                       ) -> tuple[list[tuple[str, Any]], list[tuple[str, Any]]]:
    """An agent's actions in Redis and in the archive: (id, reward), sorted."""
    held = sorted((str(a.action_id), a.reward) for a in mem.actions.timeline(agent))
    archived = sorted((str(a.action_id), a.reward) for a in archive.read(SIM)
                      if a.agent_id == agent)
    return held, archived


def _writer(srv: LocalServer, tmp_path: Path) -> tuple[agentmem.Memory, Any, DualWriter]:
    """A store, its archive (SQLite) and a dual writer with an outbox and a failover;
    agent a1's actions of ``SIM`` up to step 5 have left STM (its retired mark)."""
    mem = agentmem.connect(srv.url, socket_connect_timeout=1)
    archive = open_archive(tmp_path / "archive.db")
    w = DualWriter(mem, archive, retry_interval=0.05)
    assert w.outbox is not None
    assert w.failover is not None
    _retire(mem, "a1", SIM, 5)
    return mem, archive, w


def test_a_lost_reply_numbered_after_a_retired_mark_is_not_stored_twice(
        server: LocalServer, tmp_path: Path) -> None:  # noqa: F811
    mem, archive, w = _writer(server, tmp_path)
    lost = J
    with agentmem.connect(server.url) as other:
        assert other.actions.add(lost).action_id == "a1-2-move.r1"
    journaled_while_down(server, w, lost)
    assert mine(mem, archive) == ([("a1-2-move.r1", 1.0)], [("a1-2-move.r1", 1.0)])


def test_two_identical_actions_after_a_mark_one_lost_keep_two_copies(
        server: LocalServer, tmp_path: Path) -> None:  # noqa: F811
    """The agent took the same action twice at a retired step: the first acknowledged
    (``.r1``, in the writer's buffer), the second's reply lost (stored as ``.r2``). The
    replay takes ``.r2`` for the second and leaves ``.r1`` to the first: two copies in
    Redis and two in the archive, none a third."""
    mem, archive, w = _writer(server, tmp_path)
    same = J
    first = w.add(same)
    assert first is not None
    assert first.action_id == "a1-2-move.r1"
    with agentmem.connect(server.url) as other:
        assert other.actions.add(same).action_id == "a1-2-move.r2"
    journaled_while_down(server, w, same)
    both = [("a1-2-move.r1", 1.0), ("a1-2-move.r2", 1.0)]
    assert mine(mem, archive) == (both, both)


def test_a_journaled_action_after_a_mark_that_never_reached_redis_is_stored_once(
        server: LocalServer, tmp_path: Path) -> None:  # noqa: F811
    """No copy in Redis (the write never got there): the replay stores it, once."""
    mem, archive, w = _writer(server, tmp_path)
    act = J
    journaled_while_down(server, w, act)
    held, archived = mine(mem, archive)
    assert held == archived
    assert len(held) == 1


def test_the_writers_own_lost_write_listed_in_its_outbox_is_taken(
        server: LocalServer, tmp_path: Path) -> None:  # noqa: F811
    """As a real lost reply leaves it: the write went through the writer's own outbox
    repository, so the copy ``.r1`` is listed in the writer's outbox (the writer's
    bookkeeping never learnt of it). The replay takes it; one copy in Redis and in the
    archive."""
    mem, archive, w = _writer(server, tmp_path)
    lost = J
    assert w.outbox is not None
    assert w.outbox.actions.add(lost).action_id == "a1-2-move.r1"
    assert journaled_while_down(server, w, lost) == ["a1-2-move"]
    assert mine(mem, archive) == ([("a1-2-move.r1", 1.0)], [("a1-2-move.r1", 1.0)])


def test_another_writers_acknowledged_identical_action_is_not_taken(
        server: LocalServer, tmp_path: Path) -> None:  # noqa: F811
    """Writer 1's action E, acknowledged as ``a1-2-move.r1`` and listed in its outbox (not
    archived yet), and writer 2's identical J journaled while Redis was down: J's replay
    leaves E's copy alone (another writer's outbox claims it) and stores J. Both
    acknowledged actions stay, in Redis and in the archive."""
    mem1 = agentmem.connect(server.url, socket_connect_timeout=1)
    mem = agentmem.connect(server.url, socket_connect_timeout=1)
    archive = open_archive(tmp_path / "archive.db")
    w1 = DualWriter(mem1, open_archive(tmp_path / "archive.db"), retry_interval=0.05,
                    buffer_size=1000)
    w = DualWriter(mem, archive, retry_interval=0.05)
    _retire(mem, "a1", SIM, 5)
    same = Action(agent_id="a1", simulation_id=SIM, step_number=2, action_type="move",
                  reward=1.0)
    e = w1.add(same)
    assert e is not None
    assert e.action_id == "a1-2-move.r1"
    assert journaled_while_down(server, w, same) == ["a1-2-move"]
    w1.close()
    mem1.close()
    held, archived = mine(mem, archive)
    assert len(held) == 2
    assert held == archived
    assert ("a1-2-move.r1", 1.0) in held


def test_an_id_the_caller_chose_is_not_taken_for_a_renumbered_copy(
        server: LocalServer, tmp_path: Path) -> None:  # noqa: F811
    """The script never renumbers an id the caller gave, so a journaled ``a1-2-mine`` has
    no ``.r`` copy: the identical ``a1-2-move.r1`` another client stored is left alone."""
    mem, archive, w = _writer(server, tmp_path)
    same = J
    with agentmem.connect(server.url) as other:
        assert other.actions.add(same).action_id == "a1-2-move.r1"
    mine_id = same.model_copy(update={"action_id": "a1-2-mine"})
    assert journaled_while_down(server, w, mine_id) == ["a1-2-mine"]
    held, archived = mine(mem, archive)
    assert held == [("a1-2-mine", 1.0), ("a1-2-move.r1", 1.0)]
    assert archived == [("a1-2-mine", 1.0)]  # the other client's action: not this writer's


@pytest.mark.parametrize("between", ["nothing", "an archive write"])
def test_a_replay_interrupted_after_taking_a_copy_settles_once(
        server: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
        between: str) -> None:
    """Redis is lost again right after the replay took the copy ``.r1`` (its archive rename
    pending) and before the chunk's write; with or without an archive write during the
    second outage (which applies the rename), the next replay settles the action once:
    one rename, one copy in Redis and in the archive, and later writes archived."""
    mem, archive, w = _writer(server, tmp_path)
    lost = J
    later = Action(agent_id="a1", simulation_id=SIM, step_number=9, action_type="eat",
                   reward=0.5)
    with agentmem.connect(server.url) as other:
        assert other.actions.add(lost).action_id == "a1-2-move.r1"
    server.stop()
    w.add_many([lost, later])
    if between == "an archive write":
        w.flush()
    server.start()
    time.sleep(0.1)  # the writer's next probe is due
    first = Failover._not_stored_renumbered
    calls: list[int] = []

    def then_lost_again(self: Failover, *args: Any, **kwargs: Any) -> Any:
        out = first(self, *args, **kwargs)
        calls.append(1)
        if len(calls) == 1:
            server.stop()
        return out

    monkeypatch.setattr(Failover, "_not_stored_renumbered", then_lost_again)
    if between == "an archive write":
        w.flush()
        # the replay took the copy, then the archive write during the second outage
        # applied its rename: the journal still holds the guess
        assert [a.action_id for a in archive.read(SIM)] == ["a1-2-move.r1", "a1-9-eat"]
        assert w.failover.down
    else:
        w.add(Action(agent_id="a2", simulation_id=SIM, step_number=1, action_type="x"))
        assert w.failover.pending_renames == [(SIM, "a1", "a1-2-move", "a1-2-move.r1")]
    assert calls == [1]
    server.start()
    time.sleep(0.1)
    w.close()
    held, archived = _held_and_archived(mem, archive, "a1")
    assert held == archived == [("a1-2-move.r1", 1.0), ("a1-9-eat", 0.5)]
    assert len(w.failover.journal) == 0
    mem.close()
    archive.close()


@pytest.mark.parametrize("reached", [2, 1])
def test_two_identical_journaled_actions_take_a_copy_each(
        server: LocalServer, tmp_path: Path, reached: int) -> None:  # noqa: F811
    """The agent took the same action twice at a retired step, in one batch whose reply
    was lost (listed in the writer's own outbox): both copies (``.r1``, ``.r2``) or only
    the first reached Redis. The two journaled actions (``a1-2-move``, ``.1``) never take
    one copy together: each copy is taken once, what has none is stored; two actions in
    Redis and in the archive. (The first review's fix took ``.r1`` for both: an
    acknowledged action lost, and every archive write refused after.)"""
    mem, archive, w = _writer(server, tmp_path)
    same = J
    stored = w.outbox.actions.add_many([same] * reached)
    assert [a.action_id for a in stored] == ["a1-2-move.r1", "a1-2-move.r2"][:reached]
    assert journaled_while_down(server, w, same, same) == ["a1-2-move", "a1-2-move.1"]
    held, archived = mine(mem, archive)
    assert held == archived
    assert len(held) == 2
    assert ("a1-2-move.r1", 1.0) in held


def test_a_copy_taken_by_an_interrupted_replay_and_gone_after_is_not_renamed_to(
        server: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
        ) -> None:
    """The replay took ``.r1`` (rename queued), Redis was lost again and came back empty:
    the next replay stores the action under its guess, and the rename the first one
    queued is dropped, not applied (it named a copy that is gone): one copy, one row."""
    mem, archive, w = _writer(server, tmp_path)
    lost = J
    assert w.outbox.actions.add(lost).action_id == "a1-2-move.r1"
    server.stop()
    w.add(lost)
    w.flush()
    server.start()
    time.sleep(0.1)
    first = Failover._not_stored_renumbered

    def then_lost_again(self: Failover, *args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(Failover, "_not_stored_renumbered", first)
        out = first(self, *args, **kwargs)
        server.stop()
        return out

    monkeypatch.setattr(Failover, "_not_stored_renumbered", then_lost_again)
    w.add(Action(agent_id="a2", simulation_id=SIM, step_number=1, action_type="x"))
    assert w.failover.pending_renames == [(SIM, "a1", "a1-2-move", "a1-2-move.r1")]
    shutil.rmtree(server.directory / "appendonlydir")  # back without its data
    server.start()
    time.sleep(0.1)
    w.close()
    held, archived = _held_and_archived(mem, archive, "a1")
    assert held == archived == [("a1-2-move", 1.0)]
    mem.close()
    archive.close()


def test_a_rename_the_archive_refused_once_is_settled_by_the_next_replay(
        server: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
        ) -> None:
    """The replay took ``.r1`` and handed the action over under it; the archive refused
    the rename once (a locked SQLite file), then Redis was lost again: the next replay
    settles the action again, not stopped by the copy it handed over itself (which the
    buffer now holds). One copy in Redis and in the archive."""
    from agentmem.dualwrite import failover as failover_module

    refuse = [1]
    real = failover_module.rename_archived

    def locked_once(archive: Any, renames: Any) -> None:
        if refuse:
            refuse.clear()
            raise agentmem.Unavailable("database is locked")
        real(archive, renames)

    monkeypatch.setattr(failover_module, "rename_archived", locked_once)
    mem, archive, w = _writer(server, tmp_path)
    lost = J
    assert w.outbox.actions.add(lost).action_id == "a1-2-move.r1"
    server.stop()
    w.add(lost)
    server.start()
    time.sleep(0.1)
    w.add(Action(agent_id="a1", simulation_id=SIM, step_number=9, action_type="eat"))
    assert not refuse  # the refusal happened, the rename is still queued
    assert w.failover.pending_renames == [(SIM, "a1", "a1-2-move", "a1-2-move.r1")]
    server.stop()
    w.add(Action(agent_id="a1", simulation_id=SIM, step_number=10, action_type="eat"))
    server.start()
    time.sleep(0.1)
    w.close()
    held = sorted(str(a.action_id) for a in mem.actions.timeline("a1"))
    archived = sorted(str(a.action_id) for a in archive.read(SIM))
    assert held == archived == ["a1-10-eat", "a1-2-move.r1", "a1-9-eat"]
    mem.close()
    archive.close()
