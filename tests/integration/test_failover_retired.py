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

from pathlib import Path

from test_failover import SIM, journaled_while_down, mine, server  # noqa: F401

import agentmem
from agentmem import Action
from agentmem.backends.sql import open_archive
from agentmem.dualwrite.writer import DualWriter
from agentmem.servers.local import LocalServer


def _retire(mem: agentmem.Memory, agent: str, sim: str, step: int) -> None:
    """The agent's actions of ``sim`` up to ``step`` left STM (as a move to IM leaves it)."""
    mem.client.hset(mem.actions.layout.key("retired", agent_id=agent), sim, step)


def test_a_lost_reply_numbered_after_a_retired_mark_is_not_stored_twice(
        server: LocalServer, tmp_path: Path) -> None:  # noqa: F811
    mem = agentmem.connect(server.url, socket_connect_timeout=1)
    archive = open_archive(tmp_path / "archive.db")
    w = DualWriter(mem, archive, retry_interval=0.05)
    _retire(mem, "a1", SIM, 5)
    lost = Action(agent_id="a1", simulation_id=SIM, step_number=2, action_type="move",
                  reward=1.0)
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
    mem = agentmem.connect(server.url, socket_connect_timeout=1)
    archive = open_archive(tmp_path / "archive.db")
    w = DualWriter(mem, archive, retry_interval=0.05)
    _retire(mem, "a1", SIM, 5)
    same = Action(agent_id="a1", simulation_id=SIM, step_number=2, action_type="move",
                  reward=1.0)
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
    mem = agentmem.connect(server.url, socket_connect_timeout=1)
    archive = open_archive(tmp_path / "archive.db")
    w = DualWriter(mem, archive, retry_interval=0.05)
    _retire(mem, "a1", SIM, 5)
    act = Action(agent_id="a1", simulation_id=SIM, step_number=2, action_type="move",
                 reward=1.0)
    journaled_while_down(server, w, act)
    held, archived = mine(mem, archive)
    assert held == archived
    assert len(held) == 1
