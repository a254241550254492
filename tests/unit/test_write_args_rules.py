"""The write script's one argument (no server): a MessagePack array whose counts are
integers and whose every other value is the text the server stores, as hiredis wrote
each value when they were separate arguments (``str`` for ints, ``repr`` for floats)."""

from __future__ import annotations

from typing import Annotated, Any

import msgpack  # type: ignore[import-untyped]
from hypothesis import given
from hypothesis import strategies as st

from agentmem import (
    CounterIndex,
    GridIndex,
    Identifier,
    ListIndex,
    Record,
    SetIndex,
    SortedIndex,
    Split,
    declare,
)
from agentmem.model.records import Action
from agentmem.plans.write import WritePlanner
from agentmem.repository.actions import ActionRepository


class Probe(Record):
    probe_id: str | None = None
    agent_id: Identifier
    step: int
    level: int
    temp: float
    pos: Annotated[tuple[float, float], Split("px", "py")]


PROBES = declare(Probe, key="agent:{agent_id}:probe:{probe_id}", id="probe_id",
                 id_template="{agent_id}-{step}", unique_in="by_step", indexes=[
                     SortedIndex("by_step", "agent:{agent_id}:probe:timeline", score="step"),
                     SortedIndex("by_temp", "agent:{agent_id}:probe:temp", score="temp",
                                 member="level"),
                     SetIndex("levels", "agent:{agent_id}:probe:levels", member="level"),
                     ListIndex("temps", "agent:{agent_id}:probe:temps", member="temp"),
                     CounterIndex("lc", "agent:{agent_id}:probe:lc", field="level"),
                     CounterIndex("tc", "agent:{agent_id}:probe:tc", field="temp"),
                     GridIndex("grid", "agent:{agent_id}:probe:grid", x="px", y="py"),
                 ])


def argv_of(planner: WritePlanner[Any], records: list[Any]) -> list[Any]:
    call, _ = planner.batch(planner.prepare_all(records))
    assert call.args[0] == "EVALSHA"
    assert call.args[2] == 0
    assert len(call.args) == 4
    assert isinstance(call.args[3], bytes)
    out: list[Any] = msgpack.unpackb(call.args[3], raw=True)
    return out


def hash_args(argv: list[Any]) -> dict[bytes, bytes]:
    """The first record's hash arguments (the layout in agentmem.plans.writeargs)."""
    pos = 5 + 6 * argv[4]
    nh = argv[pos + 6]
    flat = argv[pos + 7: pos + 7 + nh]
    return dict(zip(flat[::2], flat[1::2], strict=True))


def groups(argv: list[Any]) -> dict[bytes, list[Any]]:
    """Every index group's arguments by key."""
    pos = 5 + 6 * argv[4]
    for _ in range(argv[0]):
        pos += 7 + argv[pos + 6]
    nprobe, pos = argv[pos], pos + 1
    for _ in range(nprobe):
        pos += 2 + argv[pos + 1]
    out = {}
    ngroup, pos = argv[pos], pos + 1
    for _ in range(ngroup):
        key, n = argv[pos + 1], argv[pos + 2]
        out[key] = argv[pos + 3: pos + 3 + n]
        pos += 3 + n
    return out


def test_counts_are_integers_and_every_other_value_is_text() -> None:
    planner = ActionRepository(None).writer
    argv = argv_of(planner, [Action(agent_id="a1", simulation_id="s1", step_number=3,
                                    action_type="move", reward=0.5, position=(1.0, 2.0))])
    assert argv[0] == 1
    assert isinstance(argv[1], bytes)
    kinds = {type(v) for v in argv}
    assert kinds <= {int, bytes}
    assert all(isinstance(v, bytes) for v in hash_args(argv).values())
    for flat in groups(argv).values():
        assert all(isinstance(v, bytes) for v in flat)


@given(step=st.integers(0, 2**53), reward=st.floats(allow_nan=False, allow_infinity=False))
def test_numbers_go_as_the_text_hiredis_wrote(step: int, reward: float) -> None:
    planner = ActionRepository(None).writer
    argv = argv_of(planner, [Action(agent_id="a1", simulation_id="s1", step_number=step,
                                    action_type="move", reward=reward)])
    h = hash_args(argv)
    assert h[b"step_number"] == str(step).encode()
    assert h[b"reward"] == repr(reward).encode()
    rewards = next(flat for key, flat in groups(argv).items() if key.endswith(b":rewards"))
    assert rewards[0] == repr(reward).encode()


def test_int_and_float_members_and_counted_values_go_as_text() -> None:
    planner: WritePlanner[Probe] = WritePlanner(PROBES)
    argv = argv_of(planner, [Probe(agent_id="p1", step=2, level=2**60, temp=-0.0,
                                   pos=(1e-7, 2.5))])
    g = groups(argv)
    assert g[b"agent:p1:probe:levels"] == [str(2**60).encode()]
    assert g[b"agent:p1:probe:temp"] == [b"-0.0", str(2**60).encode()]
    assert g[b"agent:p1:probe:temps"] == [b"-0.0"]
    assert g[b"agent:p1:probe:lc"] == [str(2**60).encode(), b"1"]
    assert g[b"agent:p1:probe:tc"] == [b"-0.0", b"1"]
    assert isinstance(g[b"agent:p1:probe:grid"][0], bytes)
    assert hash_args(argv)[b"px"] == b"1e-07"


def test_the_retired_scope_and_order_go_as_text() -> None:
    argv = argv_of(ActionRepository(None).writer, [Action(
        agent_id="a1", simulation_id="s1", step_number=7, action_type="move")])
    head = argv[5 + 6 * argv[4]: 5 + 6 * argv[4] + 6]  # mode base id scope rs ro
    assert head[0] == b"g"
    assert head[4:] == [b"s1", b"7"]  # before the fix: [b"s1", 7], a MessagePack int
