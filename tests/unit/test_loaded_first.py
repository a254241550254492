"""``wire.loaded_first``: each script is loaded before its first call goes out, with
every core script the runner has not loaded (one round trip), once per runner, so that
a pipeline of one write's calls is not half refused with ``NOSCRIPT`` when another
thread loads the script meanwhile (tests/integration/test_script_first_use.py shows the
write order that keeps)."""

from __future__ import annotations

from typing import Any

from agentmem.backends.wire import loaded_first
from agentmem.lua.integrity import ACTIONS as INTEGRITY_ACTIONS
from agentmem.lua.scripts import ALL, GET_MANY, WRITE_COLS
from agentmem.plans.plan import command, script_call


def test_scripts_are_loaded_once_before_their_first_call() -> None:
    events: list[Any] = []
    calls = [command("PING"), script_call(WRITE_COLS, ["a"]), script_call(WRITE_COLS, ["b"]),
             script_call(GET_MANY, ["p", "s"]), script_call(INTEGRITY_ACTIONS, ["x"]),
             command("PING")]
    loaded: set[str] = set()
    for call in loaded_first(calls, loaded, lambda todo: events.append(
            sorted(s.name for s in todo))):
        events.append(str(call.args[0]) + (f" {call.args[-1]}" if call.script else ""))
    # the first script's call loads it and every core script; a script of another
    # module (an integrity check's) is loaded before its own first call
    assert events == ["PING", sorted(s.name for s in ALL), "EVALSHA a", "EVALSHA b",
                      "EVALSHA s", [INTEGRITY_ACTIONS.name], "EVALSHA x", "PING"]
    assert loaded == {s.sha for s in ALL} | {INTEGRITY_ACTIONS.sha}
    again: list[Any] = []
    assert len(list(loaded_first(calls, loaded, again.append))) == 6
    assert again == []  # known to the runner: not loaded again
