"""The pacer's naps (agentmem.backends.spin.Pacer), on a clock the test drives: when it
naps, for how long, and when it never does. What it does with a real server's replies
is in tests/integration/test_pacer.py."""

from __future__ import annotations

import types
from typing import Any

import pytest

from agentmem.backends import spin
from agentmem.backends.spin import NAP_MAX, NAP_MIN, PACE_CALLS, PACE_SHARE, Pacer


class Conn:
    """A connection whose replies come at the times ``due`` (on the test's clock):
    ``can_read`` says whether the next one has come (and counts its calls)."""

    def __init__(self, clock: Any, due: list[float] | None = None) -> None:
        self.clock = clock
        self.due = due if due is not None else []
        self.next = 0
        self.asked = 0

    def can_read(self, timeout: float = 0) -> bool:
        assert timeout == 0
        self.asked += 1
        return self.next < len(self.due) and self.due[self.next] <= self.clock.now

    def read(self) -> None:
        """The blocking read: returns when the next reply has come."""
        self.clock.now = max(self.clock.now, self.due[self.next])
        self.next += 1


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The pacer's ``time``: ``now`` moved by the test and by each nap (``naps``)."""
    state = types.SimpleNamespace(now=100.0, naps=[])

    def sleep(s: float) -> None:
        state.naps.append(s)
        state.now += s

    monkeypatch.setattr(spin, "time", types.SimpleNamespace(
        perf_counter=lambda: state.now, sleep=sleep))
    return state


def read_all(clock: Any, calls: int, gap: float, first: float = 0.0) -> Conn:
    """Read the replies of ``calls`` calls, the first ``first`` seconds from now, the
    others ``gap`` seconds apart, through a pacer."""
    conn = Conn(clock, [clock.now + first + gap * i for i in range(calls)])
    pacer = Pacer(calls)
    for _ in range(calls):
        pacer.before_read(conn)
        conn.read()
    return conn


def test_the_naps_are_a_share_of_what_the_replies_due_should_take(clock: Any) -> None:
    start = clock.now
    read_all(clock, 100, 0.004)
    # the first nap: before reply 2, one gap measured, 98 due
    assert clock.naps[0] == pytest.approx(min(PACE_SHARE * 98 * 0.004, NAP_MAX))
    assert all(NAP_MIN <= nap <= NAP_MAX for nap in clock.naps)
    # a few wake-ups instead of 100; the last reply read within half a gap of coming
    # (the pace measured to a nap's end runs slightly long)
    assert len(clock.naps) <= 12
    assert start + 99 * 0.004 <= clock.now <= start + 99.5 * 0.004


def test_replies_at_a_steady_pace_are_read_within_half_a_gap(clock: Any) -> None:
    for gap in (0.0005, 0.002, 0.01, 0.05):
        start = clock.now
        read_all(clock, 60, gap, first=0.02)
        assert start + 0.02 + 59 * gap <= clock.now <= start + 0.02 + 59.5 * gap


def test_fewer_calls_than_pace_calls_never_nap(clock: Any) -> None:
    conn = read_all(clock, PACE_CALLS - 1, 0.05)
    assert clock.naps == []
    assert conn.asked == 0


def test_a_buffered_reply_is_read_without_a_nap(clock: Any) -> None:
    conn = Conn(clock, [clock.now] * 50)  # every reply already there
    pacer = Pacer(50)
    clock.now += 1.0
    for _ in range(50):
        pacer.before_read(conn)
        conn.read()
    assert clock.naps == []
    assert conn.asked == 0  # (a pace of 0: not even asked)


def test_replies_that_come_fast_are_read_without_a_nap(clock: Any) -> None:
    conn = read_all(clock, 200, 1e-6)  # 200 µs for all: under NAP_MIN
    assert clock.naps == []
    assert conn.asked == 0


def test_the_first_reply_s_wait_is_not_a_pace(clock: Any) -> None:
    """A first reply that takes a second (a round trip, a busy server), the others 1 ms
    apart: the naps follow the 1 ms."""
    start = clock.now
    read_all(clock, 20, 0.001, first=1.0)
    assert clock.naps[0] == pytest.approx(PACE_SHARE * 18 * 0.001)
    assert start + 1.0 + 19 * 0.001 <= clock.now <= start + 1.0 + 19.5 * 0.001


def test_a_server_that_speeds_up_is_read_late_by_at_most_one_nap(clock: Any) -> None:
    """Ten replies 10 ms apart, then the other 90 at once: the reply that came during
    a nap is read when it ends, no later."""
    t0 = clock.now
    due = [t0 + 0.01 * i for i in range(10)] + [t0 + 0.09] * 90
    conn = Conn(clock, due)
    pacer = Pacer(100)
    for _ in range(100):
        pacer.before_read(conn)
        conn.read()
    assert clock.now - due[-1] <= NAP_MAX
    assert clock.now - due[-1] <= max(clock.naps)
