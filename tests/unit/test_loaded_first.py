"""``wire.loaded_first``: each script is loaded before its first call goes out, once per
runner, so that a pipeline of one write's calls is not half refused with ``NOSCRIPT``
when another thread loads the script meanwhile (tests/integration/test_write_cols.py's
threads test on a server without scripts shows the write order that kept)."""

from __future__ import annotations

from agentmem.backends.wire import loaded_first
from agentmem.lua.scripts import GET_MANY, WRITE_COLS
from agentmem.plans.plan import command, script_call


def test_each_script_is_loaded_once_before_its_first_call() -> None:
    events: list[str] = []
    calls = [command("PING"), script_call(WRITE_COLS, ["a"]), script_call(WRITE_COLS, ["b"]),
             script_call(GET_MANY, ["p", "s"]), command("PING")]
    loaded: set[str] = set()
    for call in loaded_first(calls, loaded, lambda source: events.append(f"load {len(source)}")):
        events.append(str(call.args[0]) + (f" {call.args[-1]}" if call.script else ""))
    assert events == ["PING", f"load {len(WRITE_COLS.source)}", "EVALSHA a", "EVALSHA b",
                      f"load {len(GET_MANY.source)}", "EVALSHA s", "PING"]
    assert loaded == {WRITE_COLS.sha, GET_MANY.sha}
    again: list[str] = []
    assert len(list(loaded_first(calls, loaded, again.append))) == 5
    assert again == []  # known to the runner: not loaded again
