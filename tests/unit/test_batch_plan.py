"""The pure part of batches: plans combined into one, each parsing its own replies."""

from __future__ import annotations

from typing import Any

import pytest

from agentmem.errors import AgentMemError, InvalidInput, NotRun
from agentmem.lua.scripts import GET_MANY
from agentmem.plans.batch import BULK_CALLS, Handle, combine, queued, script_loads
from agentmem.plans.plan import FollowUp, Plan, command, script_call


def _plan(*names: str) -> Plan[list[Any]]:
    return Plan(iter([command("GET", n) for n in names]), lambda raw: list(raw))


def test_each_plan_gets_its_own_slice_of_the_replies() -> None:
    handles: list[Handle[Any]] = [Handle(), Handle(), Handle()]
    entries = [queued(_plan("a", "b"), handles[0]), queued(_plan(), handles[1]),
               queued(_plan("c"), handles[2])]
    plan = combine(entries)
    assert [c.args for c in plan.calls] == [("GET", "a"), ("GET", "b"), ("GET", "c")]
    assert plan.parse([1, 2, 3]) is None
    assert [h.result() for h in handles] == [[1, 2], [], [3]]
    assert not plan.bulk


def test_an_error_is_its_plans_alone() -> None:
    def boom(raw: list[Any]) -> Any:
        raise InvalidInput("bad reply")

    ok, bad = Handle[Any](), Handle[Any]()
    combine([queued(Plan((command("GET", "x"),), boom), bad),
             queued(_plan("y"), ok)]).parse([1, 2])
    with pytest.raises(InvalidInput, match="bad reply"):
        bad.result()
    assert isinstance(bad.exception(), InvalidInput)
    assert ok.result() == [2]
    assert ok.exception() is None


def test_follow_ups_are_run_together_afterwards() -> None:
    first, second, plain = Handle[Any](), Handle[Any](), Handle[Any]()

    def then(n: int) -> Plan[Any]:
        def parse(raw: list[Any]) -> Any:
            raise FollowUp(Plan((command("GET", f"more{n}"),), lambda r: ("more", r[0])))
        return Plan((command("GET", f"first{n}"),), parse)

    plan = combine([queued(then(1), first), queued(_plan("p"), plain), queued(then(2), second)])
    with pytest.raises(FollowUp) as info:
        plan.parse([0, 1, 0])
    assert plain.result() == [1]
    assert not first.done
    assert not second.done
    more = info.value.plan
    assert [c.args for c in more.calls] == [("GET", "more1"), ("GET", "more2")]
    more.parse(["x", "y"])
    assert (first.result(), second.result()) == (("more", "x"), ("more", "y"))


def test_a_pending_handle_raises_not_run() -> None:
    h = Handle[int]()
    assert not h.done
    with pytest.raises(NotRun):
        h.result()
    assert issubclass(NotRun, AgentMemError)
    h.set_result(3)
    assert h.done
    assert h.result() == 3


def test_new_scripts_are_loaded_first_once() -> None:
    loaded: set[str] = set()
    entries = [queued(Plan((script_call(GET_MANY, ["k"]),), list), Handle())]
    loads = script_loads(entries, loaded)
    assert [c.args[:2] for e in loads for c in e[0]] == [("SCRIPT", "LOAD")]
    assert loaded == {GET_MANY.sha}
    assert script_loads(entries, loaded) == []


def test_a_big_batch_runs_as_a_bulk_plan() -> None:
    entries = [queued(_plan("k"), Handle()) for _ in range(BULK_CALLS)]
    assert combine(entries).bulk
