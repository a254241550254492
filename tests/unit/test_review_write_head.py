"""The record head of the write script's argument: the retired pair goes as text, like
every value the script does not read as a count (review of 4bdd6d9)."""

from __future__ import annotations

from typing import Any

import msgpack  # type: ignore[import-untyped]

from agentmem.model.records import Action
from agentmem.repository.actions import ActionRepository


def test_the_retired_scope_and_order_go_as_text() -> None:
    planner = ActionRepository(None).writer
    call, _ = planner.batch(planner.prepare_all([Action(
        agent_id="a1", simulation_id="s1", step_number=7, action_type="move")]))
    argv: list[Any] = msgpack.unpackb(call.args[3], raw=True)
    head = argv[5 + 4 * argv[4]: 5 + 4 * argv[4] + 6]  # mode base id scope rs ro
    assert head[0] == b"g"
    assert head[4:] == [b"s1", b"7"]  # before the fix: [b"s1", 7], a MessagePack int
