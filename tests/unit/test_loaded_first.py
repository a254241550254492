"""``wire.inline_loads``: the first call of a script a runner has not loaded goes after
``SCRIPT LOAD`` of it and of every core script the runner has not loaded, on the same
pipeline, once per runner; ``own_replies`` takes the loads' replies out (a script
counts as loaded once the server has run its load). So a pipeline of one write's calls
is not half refused with ``NOSCRIPT`` while another thread loads the script
(tests/integration/test_script_first_use.py shows the write order that keeps), and no
second connection is needed."""

from __future__ import annotations

from typing import Any

from agentmem.backends.wire import inline_loads, own_replies
from agentmem.lua.integrity import ACTIONS as INTEGRITY_ACTIONS
from agentmem.lua.scripts import ALL, GET_MANY, WRITE_COLS
from agentmem.plans.plan import command, script_call


def _names(calls: list[Any]) -> list[Any]:
    by_source = {s.source: s.name for s in (*ALL, INTEGRITY_ACTIONS)}
    return [f"load {by_source[c.args[2]]}" if c.args[:2] == ("SCRIPT", "LOAD")
            else f"{c.args[0]} {c.args[-1]}" for c in calls]


def test_scripts_are_loaded_on_the_pipeline_before_their_first_call() -> None:
    calls = [command("PING", "1"), script_call(WRITE_COLS, ["a"]),
             script_call(WRITE_COLS, ["b"]), script_call(GET_MANY, ["p", "s"]),
             script_call(INTEGRITY_ACTIONS, ["x"]), command("PING", "2")]
    loaded: set[str] = set()
    injected: dict[int, str] = {}
    out = list(inline_loads(calls, loaded, injected))
    # the first script's call goes after its load and every core script's; a script of
    # another module (an integrity check's) after its own
    core = [f"load {s.name}" for s in ALL if s is not WRITE_COLS]
    assert _names(out) == ["PING 1", "load write_cols", *core, "EVALSHA a", "EVALSHA b",
                           "EVALSHA s", "load integrity_actions", "EVALSHA x", "PING 2"]
    assert loaded == set()  # not until the server has run the loads
    assert len(injected) == len(ALL) + 1
    # the server refused one load (an ACL without SCRIPT LOAD): it counts as run all
    # the same (not sent with every plan; its NOSCRIPT, if any, reloads and raises)
    replies: list[Any] = [RuntimeError("NOPERM") if c.args[:2] == ("SCRIPT", "LOAD") and
                          c.args[2] == GET_MANY.source else n for n, c in enumerate(out)]
    sent, mine = own_replies(out, replies, injected, loaded)
    assert sent == calls
    assert mine == [replies[out.index(c)] for c in calls]
    assert loaded == {s.sha for s in ALL} | {INTEGRITY_ACTIONS.sha}
    again: dict[int, str] = {}
    assert list(inline_loads(calls, loaded, again)) == calls  # known: none loaded again
    assert again == {}
    assert own_replies(calls, [1, 2, 3, 4, 5, 6], again, loaded) == (calls,
                                                                      [1, 2, 3, 4, 5, 6])


def test_a_bulk_plan_loads_its_scripts_again() -> None:
    """A large write loads each of its scripts ahead of its first call even when the
    runner has loaded it (the server may have lost it): only those scripts, once."""
    calls = [script_call(WRITE_COLS, ["a"]), script_call(WRITE_COLS, ["b"]),
             command("PING", "1")]
    loaded = {s.sha for s in ALL}
    injected: dict[int, str] = {}
    out = list(inline_loads(calls, loaded, injected, bulk=True))
    assert _names(out) == ["load write_cols", "EVALSHA a", "EVALSHA b", "PING 1"]
    assert own_replies(out, [0, 1, 2, 3], injected, loaded) == (calls, [1, 2, 3])
