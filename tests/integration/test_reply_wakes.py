"""Reading a pipeline's replies with few wake-ups (agentmem.backends.wakes): the reader
sleeps until the bytes the replies still due must at least take have come, so it wakes
far fewer times than once per reply; every reply is read even when each is the
shortest RESP allows, with or without a socket timeout, when some are queued before
the read starts, and from a batch of thousands; a socket timeout fails a read only when
no byte came for that long; the connection goes back to its pool as it came."""

from __future__ import annotations

import dataclasses
import socket
import sys
import threading
import time
from typing import Any

import hiredis
import pytest
import redis

import agentmem
from agentmem.backends import wakes
from agentmem.lua.loader import Script
from agentmem.model.records import Action
from agentmem.plans.plan import LEAST_TEXT_FIRST, Call, Plan, command, every_reply, script_call

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="counts wakes in /proc/thread-self/status")

# each call keeps the server busy for ARGV[3] seconds (the server's CPU clock on Valkey,
# whose TIME stands still in a script; TIME on Redis 7.0, which has no os.clock) and
# carries 70 kB, so that the server reads and runs the calls one by one and their replies
# come one at a time, as a large write's do
SLOW = """
local has_clock, clock = pcall(function() return os.clock end)
local function now()
  if has_clock and clock then return clock() end
  local t = redis.call('TIME')
  return t[1] + t[2] / 1000000
end
local t0 = now()
repeat until now() - t0 > tonumber(ARGV[3])
if ARGV[2] == 'status' then return redis.status_reply('') end
if ARGV[2] == 'nil' then return nil end
return ARGV[2]
"""
CALLS = 100


def _calls(reply: str, seconds: float = 0.002, calls: int = CALLS) -> tuple[Call, ...]:
    return tuple(command("EVAL", SLOW, "0", "x" * 70_000, reply, repr(seconds))
                 for _ in range(calls))


def _sleeps() -> int:
    with open("/proc/thread-self/status") as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches"):
                return int(line.split()[1])
    raise AssertionError("no voluntary_ctxt_switches")


def _low_water(mem: agentmem.Memory) -> int:
    conn: Any = mem.client.connection_pool.get_connection()
    try:
        return int(conn._sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT))
    finally:
        mem.client.connection_pool.release(conn)


@pytest.fixture
def plain(connect: Any) -> agentmem.Memory:
    return connect(spin_us=0)  # type: ignore[no-any-return]


def _sleeps_of(mem: agentmem.Memory, reply: str) -> tuple[int, list[Any]]:
    """The times the thread slept reading the replies (sent first: a send that fills
    the socket's buffer sleeps too)."""
    # (4 ms calls: with 2 ms ones, a reader kept off the CPU by the suite's other
    # processes found the replies come in bursts, 19 wakes unmarked, once)
    pending = mem.runner.start(Plan(_calls(reply, 0.004), every_reply))
    before = _sleeps()
    out = pending.result()
    return _sleeps() - before, out


def test_a_pipeline_read_with_marks_sleeps_far_fewer_times_than_its_replies(
        plain: agentmem.Memory, monkeypatch: pytest.MonkeyPatch) -> None:
    _sleeps_of(plain, "abc")  # connected, script cached
    marked, out = _sleeps_of(plain, "abc")
    assert out == [b"abc"] * CALLS
    monkeypatch.setattr(wakes, "_LOWAT", None)  # the kernel not told: a wake per reply
    unmarked, out = _sleeps_of(plain, "abc")
    assert out == [b"abc"] * CALLS
    # the replies came a few at a time (25-27 wakes on Redis 7, 43-46 on Valkey 9 when
    # measured with 2 ms calls); with the marks about a dozen (11 measured on both)
    assert unmarked >= CALLS // 5, unmarked
    assert marked <= CALLS // 5, marked
    assert marked * 3 <= unmarked * 2, (marked, unmarked)


def _client(server: Any, timeout: float | None, protocol: int = 2) -> redis.Redis:
    """A redis-py client with exactly this socket timeout (None: none; agentmem's own
    ``socket_timeout=None`` means redis-py's default, 5 s on redis-py 8)."""
    return redis.Redis.from_url(server.url, socket_timeout=timeout, protocol=protocol)


def _within(seconds: float, work: Any) -> Any:
    """``work()``'s result, failing the test if it has not returned after ``seconds``."""
    got: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            got.append(work())
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), "the reader slept past the last reply"
    if errors:
        raise errors[0]
    return got[0]


@pytest.mark.parametrize("protocol", [2, 3])
@pytest.mark.parametrize("timeout", [None, 5.0])
def test_replies_as_short_as_resp_allows_are_all_read(
        server: Any, connect: Any, protocol: int, timeout: float | None) -> None:
    # "+\r\n" and RESP3's "_\r\n" are the 3 bytes the marks count on: one byte less
    # and the reader would sleep until the socket timeout (or for ever)
    mem = connect(spin_us=0, client=_client(server, timeout, protocol))
    got = [_within(60, lambda: mem.runner.run(
        Plan(_calls("nil") + _calls("status"), every_reply)))]
    assert got == [[None] * CALLS + [b""] * CALLS]
    assert _low_water(mem) == 1  # the connection went back to the pool unmarked


def test_a_read_that_fails_leaves_no_marked_connection(plain: agentmem.Memory,
                                                        r: redis.Redis) -> None:
    # the server closes the connection while its replies are due: the read fails at
    # once (a closed connection wakes the reader whatever the mark), and the next plan
    # gets a fresh connection with no mark
    killer = threading.Timer(0.03, lambda: r.client_kill_filter(
        _type="normal", skipme=True))
    killer.start()
    with pytest.raises(agentmem.AgentMemError):
        plain.runner.run(Plan(_calls("abc"), every_reply))
    killer.join()
    assert plain.runner.run(Plan((command("PING"),), every_reply)) == [True]
    assert _low_water(plain) == 1


@pytest.mark.parametrize("timeout", [None, 5.0])
@pytest.mark.parametrize("how", ["run", "start"])
@pytest.mark.parametrize("spin_us", [0, 200])
def test_replies_queued_before_the_read_starts_are_read_with_the_rest(
        server: Any, connect: Any, timeout: float | None, how: str, spin_us: int) -> None:
    # the first reply comes at once, the next three 100 ms apart: a read that starts
    # with the first queued must not then sleep until the mark's worth *more* bytes are
    # queued (a blocking recv on TCP does; 3 * 3 + 1 bytes that never come)
    mem = connect(spin_us=spin_us, client=_client(server, timeout))
    calls = _calls("status", 0.0, 1) + _calls("status", 0.1, 3)

    def read() -> Any:
        if how == "run":
            return mem.runner.run(Plan(calls, every_reply))
        pending = mem.runner.start(Plan(calls, every_reply))
        time.sleep(0.05)  # the first reply queued
        return pending.result()

    assert _within(20, read) == [b""] * 4
    assert _low_water(mem) == 1


@pytest.mark.parametrize("timeout", [None, 5.0])
def test_a_batch_of_thousands_of_short_replies_is_read_whole(
        server: Any, connect: Any, timeout: float | None) -> None:
    mem = connect(spin_us=200, client=_client(server, timeout))
    ids = mem.actions.add_rows([{"agent_id": f"a{i % 10}", "simulation_id": "s",
                                 "step_number": i, "action_type": "move"}
                                for i in range(100)])
    for _ in range(5):
        def exists() -> int:
            with mem.batch() as b:
                handles = [b.actions.exists(ids[i % 100]) for i in range(5000)]
            return sum(h.result() for h in handles)
        assert _within(20, exists) == 5000
    assert _low_water(mem) == 1


def test_a_socket_timeout_fails_a_read_only_when_no_byte_came_for_that_long(
        server: Any, connect: Any) -> None:
    # 30 calls of 100 ms on a 1.2 s timeout: the whole pipeline takes about 3 s, but a
    # reply comes every 100 ms, as each read of one reply would see it (1.2 s: on Valkey
    # a call's time is the server's CPU time, which a loaded machine stretched past 0.3 s
    # with 80 ms calls, and past 0.6 s once with 100 ms calls)
    mem = connect(spin_us=0, client=_client(server, 1.2))
    assert mem.runner.run(Plan(_calls("status", 0.1, 30), every_reply)) == [b""] * 30
    assert _low_water(mem) == 1
    # a call of 3 s: no byte for the timeout, the read fails as before (within twice the
    # timeout of the last byte: backends/wakes.py)
    with pytest.raises(agentmem.Unavailable):
        mem.runner.run(Plan(_calls("status", 0.0, 3) + _calls("status", 3.0, 1),
                            every_reply))
    # the call still runs on the server: the next test starts once it has ended (a
    # loaded machine can stretch it past the 5 s after which others get BUSY)
    admin = redis.Redis.from_url(server.url)
    deadline = time.monotonic() + 60
    while True:
        try:
            admin.ping()
            break
        except redis.ResponseError:  # BUSY
            assert time.monotonic() < deadline
            time.sleep(0.05)
    admin.close()


def test_a_store_closed_by_another_thread_during_the_wait_fails_as_unavailable(
        server: Any, connect: Any) -> None:
    # the socket is shut and closed under the wait's poll: the read fails as a read of
    # a closed connection does (Unavailable), not with the socket's own OSError
    for delay in (0.05, 0.3, 0.6):
        mem = connect(spin_us=0)
        mem.runner.run(Plan((command("PING"),), every_reply))
        closer = threading.Timer(delay, mem.close)
        closer.start()
        try:
            with pytest.raises(agentmem.Unavailable):
                _within(30, lambda m=mem: m.runner.run(
                    Plan(_calls("status", 0.2, 10), every_reply)))
        finally:
            closer.cancel()
            closer.join()


def _stated(calls: tuple[Call, ...], least: int) -> tuple[Call, ...]:
    return tuple(dataclasses.replace(c, least_reply=least) for c in calls)


def test_calls_that_state_longer_replies_are_read_with_fewer_wakes(
        plain: agentmem.Memory) -> None:
    # "abc" comes as "$3\r\nabc\r\n", 9 bytes: stated, the mark counts on 9 bytes per
    # reply due and the reader wakes about once when they are all there; at 3 bytes
    # each wake waits for a third of what is due (11-20 wakes measured)
    plain.runner.run(Plan(_calls("abc", 0.0, 4), every_reply))  # connected, cached

    def sleeps(calls: tuple[Call, ...]) -> int:
        pending = plain.runner.start(Plan(calls, every_reply))
        before = _sleeps()
        assert pending.result() == [b"abc"] * CALLS
        return _sleeps() - before

    default = sleeps(_calls("abc"))
    stated = sleeps(_stated(_calls("abc"), 9))
    assert stated <= 5, stated
    assert stated * 2 <= default, (stated, default)
    # a script's calls, which start() sends as EVAL with the script's text: the length
    # they state goes with them
    slow = Script("slow", SLOW)
    scripted = tuple(script_call(slow, ("x" * 70_000, "abc", "0.002"), least_reply=9)
                     for _ in range(CALLS))
    assert sleeps(scripted) <= 5
    assert _low_water(plain) == 1


@pytest.mark.parametrize("order", ["under first", "exact first", "interleaved"])
def test_each_reply_takes_off_the_mark_what_its_own_call_stated(
        server: Any, connect: Any, order: str) -> None:
    # replies of 9 bytes ("abc") from calls stating 3 (under), and of 27 (a text of 20)
    # from calls stating 27 (exact), in one pipeline: a wait wakes before all are due,
    # the parser then reads several
    # replies with no wait, and the next wait's mark must be what the replies still due
    # state. Taken off for another call's length, or only where the reader waited, the
    # mark exceeds what is still to come, and the read stalls until the socket's
    # timeout (10 s here) instead of ending with the last reply
    mem = connect(spin_us=0, client=_client(server, 10.0))
    under = _stated(_calls("abc", 0.02, 20), 3)
    exact = _stated(_calls("t" * 20, 0.02, 20), 27)
    calls = {"under first": under + exact, "exact first": exact + under,
             "interleaved": tuple(c for pair in zip(under, exact, strict=True)
                                  for c in pair)}[order]
    got = _within(7, lambda: mem.runner.run(Plan(calls, every_reply)))
    assert got == [b"abc" if c in under else b"t" * 20 for c in calls]
    assert _low_water(mem) == 1


@pytest.mark.parametrize("timeout", [None, 0.3])
def test_a_stated_length_the_replies_fall_short_of_delays_the_read_and_never_hangs_it(
        server: Any, connect: Any, timeout: float | None) -> None:
    # the calls state 50 bytes, their replies take 3 ("+\r\n"): once they have all
    # come, the mark is never reached; the wait lasts the socket's timeout (or, with
    # none, a second) and the reader then reads them all, with no timeout error
    mem = connect(spin_us=0, client=_client(server, timeout))
    calls = _stated(_calls("status", 0.0, 10), 50)
    t0 = time.perf_counter()
    assert _within(30, lambda: mem.runner.run(Plan(calls, every_reply))) == [b""] * 10
    assert time.perf_counter() - t0 >= (0.25 if timeout else 0.9)  # it did wait
    assert _low_water(mem) == 1


def _reply_bytes(server: Any, call: Call) -> tuple[int, Any]:
    """The bytes of ``call``'s reply, read off a connection of its own, and the reply."""
    conn: Any = redis.Redis.from_url(server.url, protocol=2).connection_pool.get_connection()
    try:
        sock = conn._sock  # connected, its database selected
        sock.sendall(b"".join(conn.pack_command(*call.args)))
        reader = hiredis.Reader()
        size = 0
        while True:
            data = sock.recv(65536)
            assert data, "closed"
            size += len(data)
            reader.feed(data)
            got = reader.gets()
            if got is not False:
                return size, got
    finally:
        conn.disconnect()


@pytest.mark.parametrize("path", ["add_many", "add_rows", "add_columns"])
def test_a_writes_replies_take_at_least_what_its_calls_state(
        server: Any, connect: Any, r: redis.Redis, path: str) -> None:
    # a write's calls state LEAST_TEXT_FIRST bytes: its reply written, refused (a key of
    # another type), and refused by a server that lacks the script, each at least that;
    # add_many's calls (core/write.lua) as well as the columns' (core/write_cols.lua)
    mem = connect(spin_us=0)
    repo = mem.actions
    rows = [{"agent_id": f"a{i % 10}", "simulation_id": "s", "step_number": i,
             "action_type": "move", "reward": 0.5} for i in range(100)]
    repo.add_rows(rows[:1])  # the scripts loaded, the grid cell recorded
    build = getattr(type(repo), path).build

    def first_call() -> Call:
        made = build(repo, [Action(**row) for row in rows] if path == "add_many" else
                     rows if path == "add_rows" else
                     {k: [row[k] for row in rows] for k in rows[0]})
        call = next(iter(made.calls))
        assert call.least_reply == LEAST_TEXT_FIRST
        return call

    size, reply = _reply_bytes(server, first_call())  # written
    assert isinstance(reply, list)
    assert size >= LEAST_TEXT_FIRST
    r.delete(*r.keys("agent:a3:action:types:*"))
    r.delete("agent:a3:action:timeline")
    r.set("agent:a3:action:timeline", "x")  # an index key of another type
    size, reply = _reply_bytes(server, first_call())
    assert isinstance(reply, list)
    assert reply[0] == b"\0WRONGTYPE"
    assert size >= LEAST_TEXT_FIRST
    r.script_flush()
    size, reply = _reply_bytes(server, first_call())
    assert isinstance(reply, hiredis.ReplyError)
    assert size >= LEAST_TEXT_FIRST


def test_without_a_socket_timeout_calls_slower_than_the_bounded_wait_are_waited_for(
        server: Any, connect: Any) -> None:
    # no socket timeout, replies that fill what they state, each call 1.1 s: the wait
    # gives up after a second with nothing queued, and the reader goes on to wait in
    # its read, as it would have without the wait, instead of failing
    mem = connect(spin_us=0, client=_client(server, None))
    calls = _stated(_calls("abc", 1.1, 4), 9)
    assert _within(60, lambda: mem.runner.run(Plan(calls, every_reply))) == [b"abc"] * 4
    assert _low_water(mem) == 1
