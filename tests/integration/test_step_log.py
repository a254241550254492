"""A repository's step log (``agentmem.repository.steplog``): steps added as columns,
validated when added, written many steps per write, on real servers. It stores byte
for byte what ``add_columns`` of each step stores (layouts 1-4, absent values, a
declared model with ids given and generated, a step whose given id an earlier step
generates, a given id the server refuses), returns the ids of what each call wrote,
refuses a bad step at its ``add`` with nothing of it held, keeps what was added whatever
the caller changes afterwards, writes what it holds when its block is left (even by an
exception), says what a failed write took, refuses to be made on a store whose
actions are archived, and with ``within`` writes at the first add that long after the
oldest held step was added."""

from __future__ import annotations

import asyncio
import math
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
from _support import restartable
from test_rows import data_keys
from test_write_cols import SNAPS, as_columns, steps

import agentmem
from agentmem import ListIndex, Record, SortedIndex, declare
from agentmem.errors import ConfigError, DuplicateId, InvalidInput, Unavailable, WriteError
from agentmem.model.fields import Identifier


def step_columns(agents: int, n_steps: int) -> list[dict[str, Any]]:
    data = steps(agents, n_steps)
    return [as_columns(data[i:i + agents]) for i in range(0, len(data), agents)]


@pytest.mark.parametrize("layout", [1, 2, 3, 4])
def test_a_step_log_stores_what_add_columns_of_each_step_stores(
        r: redis.Redis, connect: Any, layout: int) -> None:
    cols = step_columns(40, 12)
    mem = connect(layout_version=layout)
    want_ids = [i for c in cols for i in mem.actions.add_columns(c)]
    want = data_keys(r)
    assert len(want) > 400
    r.flushdb()
    mem = connect(layout_version=layout)
    ids: list[str] = []
    with mem.actions.step_log(every=100) as log:  # writes every third step, and at the end
        for c in cols:
            ids += log.add(c)
    assert ids == want_ids
    assert data_keys(r) == want


def test_add_returns_the_ids_of_what_it_wrote(r: redis.Redis, mem: agentmem.Memory) -> None:
    cols = step_columns(40, 5)
    log = mem.actions.step_log(every=100)
    assert log.add(cols[0]) == []
    assert log.add(cols[1]) == []
    assert len(log) == 80
    assert r.dbsize() == 0  # held in the process only
    written = log.add(cols[2])  # 120 held >= 100: all three steps written
    assert len(written) == 120
    assert len(log) == 0
    assert written[:2] == ["agent_0-0-move", "agent_1-0-share"]
    assert mem.actions.count("timeline", agent_id="agent_0") == 3
    assert log.add(cols[3]) == []
    assert log.flush() == [f"agent_{a}-3-{t}" for a, t in enumerate(cols[3]["action_type"])]
    assert log.flush() == []
    assert len(log) == 0


def test_a_bad_step_is_refused_at_its_add_and_nothing_of_it_is_held(
        r: redis.Redis, mem: agentmem.Memory) -> None:
    cols = step_columns(10, 3)
    log = mem.actions.step_log(every=1000)
    log.add(cols[0])
    bad = dict(cols[1])
    bad["resources_before"] = np.array([1.0] * 9 + [math.nan])
    with pytest.raises(InvalidInput, match="row 9"):
        log.add(bad)
    with pytest.raises(InvalidInput):
        log.add({"agent_id": ["a"], "no_such_field": [1]})
    with pytest.raises(InvalidInput):
        log.add({"agent_id": ["a", "b"], "simulation_id": ["s"]})  # lengths differ
    assert len(log) == 10
    log.add(cols[2])
    ids = log.flush()
    assert len(ids) == 20
    assert {i.split("-")[1] for i in ids} == {"0", "2"}
    assert mem.actions.count("timeline", agent_id="agent_0") == 2


def test_what_was_added_is_what_is_stored_whatever_the_caller_changes_after(
        r: redis.Redis, mem: agentmem.Memory) -> None:
    """Lists, arrays, position pairs and details dicts the caller reuses and changes
    between steps: each step is stored as it was when added."""
    agents = [f"a{i}" for i in range(40)]
    pos = [[float(i), 1.0] for i in range(40)]
    details = [{"k": 0} for _ in range(40)]
    rewards = np.zeros(40)
    types = ["move"] * 40
    log = mem.actions.step_log(every=10_000)
    for step in range(3):
        for i in range(40):
            pos[i][0] += 1.0  # the same lists, changed in place
            details[i]["k"] = step
        rewards[:] = step / 2
        types[:] = ["move" if step % 2 else "eat"] * 40
        log.add({"agent_id": agents, "simulation_id": ["s"] * 40, "step_number": [step] * 40,
                 "action_type": types, "reward": rewards, "position": pos,
                 "details": details})
    log.flush()
    got = mem.actions.recent("a3", 10)
    assert [(a.step_number, a.action_type, a.reward, a.position, a.details) for a in got] == [
        (2, "eat", 1.0, (6.0, 1.0), {"k": 2}), (1, "move", 0.5, (5.0, 1.0), {"k": 1}),
        (0, "eat", 0.0, (4.0, 1.0), {"k": 0})]


def test_leaving_the_block_writes_what_is_held_even_when_it_raised(
        r: redis.Redis, mem: agentmem.Memory) -> None:
    cols = step_columns(10, 2)
    log = mem.actions.step_log()

    def simulate() -> None:
        with log:
            log.add(cols[0])
            log.add(cols[1])
            raise RuntimeError("the simulation failed")

    with pytest.raises(RuntimeError, match="the simulation failed"):
        simulate()
    assert len(log) == 0
    assert mem.actions.count("timeline", agent_id="agent_0") == 2


@pytest.mark.parametrize("every", [0, -1, 1.5, "10"])
def test_every_must_be_a_positive_int(mem: agentmem.Memory, every: Any) -> None:
    with pytest.raises(ConfigError, match="every"):
        mem.actions.step_log(every=every)


def test_within_an_add_that_long_after_the_oldest_held_step_writes_what_is_held(
        r: redis.Redis, mem: agentmem.Memory) -> None:
    cols = step_columns(40, 4)
    log = mem.actions.step_log(every=10_000, within=0.5)
    time.sleep(0.55)
    assert log.add(cols[0]) == []  # counted from the oldest held step, not from the log
    time.sleep(0.55)
    ids = log.add(cols[1])  # the oldest held step was added over half a second ago
    assert len(ids) == 80
    assert len(log) == 0
    assert mem.actions.count("timeline", agent_id="agent_0") == 2
    assert log.add(cols[2]) == []  # the bound counts from the oldest step held now
    assert len(log) == 40
    assert len(log.flush()) == 40


def test_within_none_and_a_long_bound_hold_until_every(r: redis.Redis,
                                                       mem: agentmem.Memory) -> None:
    cols = step_columns(40, 3)
    for within in (None, 3600):
        log = mem.actions.step_log(every=100, within=within)
        assert log.add(cols[0]) == []
        assert log.add(cols[1]) == []
        assert r.dbsize() == 0
        assert len(log.add(cols[2])) == 120  # every reached
        r.flushdb()


def test_within_zero_writes_every_step_as_it_is_added(r: redis.Redis,
                                                      mem: agentmem.Memory) -> None:
    cols = step_columns(40, 3)
    log = mem.actions.step_log(every=10_000, within=0)
    for c in cols:
        assert len(log.add(c)) == 40
        assert len(log) == 0
    assert mem.actions.count("timeline", agent_id="agent_0") == 3


@pytest.mark.parametrize("within", [-1, -0.5, math.nan, math.inf, "1", True, 10**400,
                                    np.float64(-1.0)])
def test_within_must_be_none_or_seconds(mem: agentmem.Memory, within: Any) -> None:
    with pytest.raises(ConfigError, match="within"):
        mem.actions.step_log(within=within)


@pytest.mark.parametrize("within", [np.float64(2.5), np.int64(3), 2])
def test_within_takes_numpy_numbers_as_seconds(mem: agentmem.Memory, within: Any) -> None:
    log = mem.actions.step_log(within=within)
    assert log.within == float(within)
    assert type(log.within) is float


def test_an_add_refused_past_the_bound_writes_nothing(r: redis.Redis,
                                                      mem: agentmem.Memory) -> None:
    cols = step_columns(40, 2)
    log = mem.actions.step_log(every=10_000, within=0.1)
    assert log.add(cols[0]) == []
    time.sleep(0.15)
    bad = dict(cols[1], step_number=[-1] * 40)
    with pytest.raises(InvalidInput):
        log.add(bad)
    assert len(log) == 40
    assert r.dbsize() == 0
    assert len(log.add(cols[1])) == 80


async def test_an_asyncio_step_log_within(r: redis.Redis, amem: agentmem.AsyncMemory) -> None:
    cols = step_columns(40, 2)
    log = amem.actions.step_log(every=10_000, within=0.2)
    assert await log.add(cols[0]) == []
    await asyncio.sleep(0.25)
    assert len(await log.add(cols[1])) == 80
    assert await amem.actions.count("timeline", agent_id="agent_0") == 2


def test_a_declared_model_with_ids_given_and_generated(r: redis.Redis, connect: Any) -> None:
    """Steps whose ids are given, then generated: held parts of two modes, written as
    rows, as ``add_columns`` of each step writes them."""
    def step(s: int, given: bool) -> dict[str, Any]:
        return {"snap_id": [f"x{s}-{a}" if given else None for a in range(5)],
                "agent_id": [f"a{a}" for a in range(5)], "sim": ["s"] * 5,
                "step": [s] * 5, "health": [a / 3 for a in range(5)]}

    parts = [step(0, True), step(1, False), step(2, True)]
    mem = connect()
    repo = mem.repository(SNAPS)
    want_ids = [i for p in parts for i in repo.add_columns(p)]
    want = data_keys(r)
    r.flushdb()
    repo = connect().repository(SNAPS)
    log = repo.step_log(every=15)
    got = log.add(parts[0]) + log.add(parts[1]) + log.add(parts[2])
    assert got == want_ids
    assert got[:2] == ["x0-0", "x0-1"]
    assert got[5] == "a0-1"
    assert data_keys(r) == want


async def test_an_asyncio_step_log(r: redis.Redis, amem: agentmem.AsyncMemory) -> None:
    cols = step_columns(40, 3)
    async with amem.actions.step_log(every=60) as log:
        assert await log.add(cols[0]) == []
        assert len(await log.add(cols[1])) == 80
        assert await log.add(cols[2]) == []
    assert len(log) == 0
    assert await amem.actions.count("timeline", agent_id="agent_0") == 3


def test_a_store_that_archives_its_actions_refuses_a_step_log(
        server: Any, r: redis.Redis, tmp_path: Any) -> None:
    with agentmem.open(server.url, archive_url=str(tmp_path / "a.db")) as store, \
            pytest.raises(ConfigError, match="archives its actions"):
        store.actions.step_log()
    assert r.dbsize() <= 2  # nothing of the actions' (the store's own marks only)


def test_a_step_that_gives_ids_is_written_alone_after_what_is_held(
        r: redis.Redis, connect: Any) -> None:
    """The second step gives the id the first one's record is generated: step by step,
    the first stores it and the second is refused. One write of both would set the
    given id aside first and store the first step's record as ``.1``."""
    step0 = {"agent_id": ["a"], "simulation_id": ["s"], "step_number": [0],
             "action_type": ["move"]}
    step1 = {"action_id": ["a-0-move"], "agent_id": ["a"], "simulation_id": ["s"],
             "step_number": [0], "action_type": ["eat"]}
    step2 = {"agent_id": ["a"], "simulation_id": ["s"], "step_number": [1],
             "action_type": ["move"]}
    mem = connect()
    assert mem.actions.add_columns(step0) == ["a-0-move"]
    with pytest.raises(DuplicateId):
        mem.actions.add_columns(step1)
    assert mem.actions.add_columns(step2) == ["a-1-move"]
    want = data_keys(r)
    r.flushdb()
    log = connect().actions.step_log(every=100)
    assert log.add(step0) == []
    with pytest.raises(DuplicateId) as err:
        log.add(step1)  # the held step written first, then this one alone
    assert "this call stored 1 records before it" in err.value.__notes__[0]
    assert len(log) == 0
    assert log.add(step2) == []
    assert log.flush() == ["a-1-move"]
    assert data_keys(r) == want


def test_a_refused_given_id_orders_lists_as_step_by_step(r: redis.Redis,
                                                          connect: Any) -> None:
    """A given id the server refuses sends the rest of its call again after the write's
    other calls: the log writes such a step alone, so later steps' records stay after."""
    def snap(agent: str, sid: str | None, step: int) -> dict[str, Any]:
        return {"snap_id": [sid], "agent_id": [agent], "sim": ["s0"], "step": [step],
                "health": [1.0]}

    parts = [{k: snap("a2", "y1", 0)[k] + snap("a2", "y2", 1)[k] for k in snap("a", "x", 0)},
             {k: snap("a2", "y1", 2)[k] + snap("a1", "y2", 3)[k] for k in snap("a", "x", 0)},
             snap("a3", None, 5)]
    repo = connect().repository(SNAPS)
    repo.add_columns(parts[0])
    with pytest.raises(DuplicateId):
        repo.add_columns(parts[1])
    repo.add_columns(parts[2])
    want = data_keys(r)
    r.flushdb()
    log = connect().repository(SNAPS).step_log(every=100)
    log.add(parts[0])
    with pytest.raises(DuplicateId):
        log.add(parts[1])
    log.add(parts[2])
    log.flush()
    assert r.lrange("sim:s0:snaps", 0, -1) == [b"y1", b"y2", b"y2", b"a3-5"]
    assert data_keys(r) == want


def test_a_write_that_fails_says_the_log_no_longer_holds_its_records(tmp_path: Path) -> None:
    cols = step_columns(10, 2)
    with restartable(tmp_path) as srv, agentmem.connect(srv.url) as mem:
        log = mem.actions.step_log(every=15)
        assert log.add(cols[0]) == []
        srv.stop()
        with pytest.raises(Unavailable) as err:
            log.add(cols[1])
        assert len(log) == 0
        assert bool(log)
        assert any("no longer holds" in note for note in err.value.__notes__)


def one(agent: str, sim: str, step: int, kind: str) -> dict[str, Any]:
    return {"agent_id": [agent], "simulation_id": [sim], "step_number": [step],
            "action_type": [kind]}


def per_step_and_logged(r: redis.Redis, connect: Any, parts: list[dict[str, Any]],
                        repo_of: Any, before: Any = None, every: int = 100) -> None:
    """``add_columns`` of each part, then a step log of them: the same ids, the same
    keys (``before`` runs on each fresh store first)."""
    got = []
    for logged in (False, True):
        r.flushdb()
        repo = repo_of(connect())
        if before is not None:
            before(repo)
        if logged:
            log = repo.step_log(every=every)
            ids = [i for p in parts for i in log.add(p)] + log.flush()
        else:
            ids = [i for p in parts for i in repo.add_columns(p)]
        got.append((ids, data_keys(r)))
    assert got[1] == got[0]


@pytest.mark.parametrize("both", [False, True])
def test_a_step_whose_ids_a_held_step_has_starts_a_write_of_its_own(
        r: redis.Redis, connect: Any, both: bool) -> None:
    """Agent a0's action at step 1 in two simulations (one id base), a0's retired mark
    in s0: step by step the server numbers them ``.r1``, then ``.1``; one write of both
    steps would have guessed ``.1`` for the retired one and stored ``.2``. The second
    step holds the s0 action alone, or both (two ids alike in one step)."""
    step_a = one("a0", "s1", 1, "x")
    step_b = {k: one("a0", "s0", 1, "x")[k] + (one("a0", "s1", 1, "x")[k] if both else [])
              for k in step_a}

    def before(repo: Any) -> None:
        repo.add_columns(one("zz", "s0", 0, "move"))
        r.hset("agent:a0:retired", "s0", 5)

    per_step_and_logged(r, connect, [step_a, step_b], lambda mem: mem.actions, before)


def test_steps_whose_ids_meet_across_simulations_are_cut_apart(
        r: redis.Redis, connect: Any) -> None:
    """Two steps, each with distinct ids, sharing the bases ``a0-1-x`` and ``a1-1-x``
    across two simulations, with ``a0-1-x`` and ``a1-1-x`` stored in s0 before and a
    retired mark of a0 in s0: one write of both steps would number a0's s1 action
    ``.2`` where the second write of a write per step finds ``.1`` free (found by a
    random search of such steps; ``steplog._split`` cuts the second step off)."""
    def two(a: tuple[str, str], b: tuple[str, str]) -> dict[str, Any]:
        return {k: one(a[0], a[1], 1, "x")[k] + one(b[0], b[1], 1, "x")[k]
                for k in one("a", "s", 1, "x")}

    def before(repo: Any) -> None:
        repo.add_columns(one("zz", "s0", 0, "move"))
        repo.add_columns(one("a1", "s0", 1, "x"))
        repo.add_columns(one("a0", "s0", 1, "x"))
        r.hset("agent:a0:retired", "s0", 1)

    per_step_and_logged(r, connect, [two(("a0", "s1"), ("a1", "s0")),
                                     two(("a0", "s0"), ("a1", "s1"))],
                        lambda mem: mem.actions, before)


class Item(Record):
    iid: str | None = None
    name: str
    step: int


ITEMS = declare(Item, key="item:{iid}", id="iid", id_template="{name}",
                indexes=[ListIndex("log", "items:log"),
                         SortedIndex("by_step", "items:steps", score="step")])


def test_ids_with_a_dot_are_written_alone(r: redis.Redis, connect: Any) -> None:
    """Generated ids ``x`` and ``x.1`` (a name with a dot) in two steps, ``x`` stored
    before: step by step ``x.1`` then ``x.1.1``."""
    per_step_and_logged(r, connect, [{"name": ["x"], "step": [1]},
                                     {"name": ["x.1"], "step": [2]}],
                        lambda mem: mem.repository(ITEMS),
                        lambda repo: repo.add_columns({"name": ["x"], "step": [0]}))


@pytest.mark.parametrize("seed", range(16))
def test_random_steps_with_ids_alike_store_what_add_columns_of_each_step_stores(
        r: redis.Redis, connect: Any, seed: int) -> None:
    """Steps whose generated ids repeat within a step and across steps, hold a ``.``,
    or were stored before, held ``every`` 1 to 100 records: the log cuts its held steps
    where one write would store otherwise (``steplog._split``), and stores what
    ``add_columns`` of each step stores, with the same ids."""
    rnd = random.Random(seed)
    pool = ["x", "y", "x.1", "y.1.1", "z"]
    parts = []
    for _ in range(rnd.randint(2, 9)):
        k = rnd.randint(1, 5)
        names = [rnd.choice(pool) if rnd.random() < 0.4 else f"n{rnd.randint(0, 12)}"
                 for _ in range(k)]
        parts.append({"name": names, "step": [rnd.randint(0, 99) for _ in range(k)]})
    before = rnd.sample(pool, 2)
    per_step_and_logged(r, connect, parts, lambda mem: mem.repository(ITEMS),
                        lambda repo: repo.add_columns({"name": before, "step": [0, 0]}),
                        every=rnd.choice([1, 2, 5, 100]))


class Obs(Record):
    oid: str | None = None
    agent_id: Identifier
    step: int
    mood: str = "calm"


OBS = declare(Obs, key="obs:{agent_id}:{oid}", id="oid", id_template="{agent_id}-{step}",
              indexes=[SortedIndex("last_mood", "moods:last", score="step", member="mood",
                                   cap=1)])


def test_a_model_whose_writes_differ_in_one_write_is_written_step_by_step(
        r: redis.Redis, connect: Any) -> None:
    """A capped sorted index of field values: step by step ``y`` is trimmed before
    ``x`` is scored again; in one write ``x``'s last score would come first."""
    per_step_and_logged(r, connect, [{"agent_id": ["a", "b"], "step": [3, 2],
                                      "mood": ["x", "y"]},
                                     {"agent_id": ["c"], "step": [1], "mood": ["x"]}],
                        lambda mem: mem.repository(OBS))
    assert r.zrange("moods:last", 0, -1, withscores=True) == [(b"x", 1.0)]


def test_a_step_that_gives_ids_stays_held_when_the_write_before_it_fails(
        r: redis.Redis, connect: Any) -> None:
    log = connect().repository(ITEMS).step_log(every=100)
    assert log.add({"name": ["x"], "step": [1]}) == []
    r.set("items:log", "not a list")  # the held write is refused
    ids, names = ["new"], ["y"]
    with pytest.raises(WriteError) as err:
        log.add({"iid": ids, "name": names, "step": [2]})
    assert len(log) == 1
    assert "the log still holds 1 records" in err.value.__notes__[0]
    r.delete("items:log")
    ids[0], names[0] = "other", "z"  # the caller's lists, changed while the log holds them
    assert log.flush() == ["new"]
    assert r.hget("item:new", "name") == b"y"


def test_a_bad_step_carries_no_note_of_a_write(mem: agentmem.Memory) -> None:
    log = mem.actions.step_log()
    log.add(one("a", "s", 0, "move"))
    with pytest.raises(InvalidInput) as err:
        log.add(one("a", "s", -1, "move"))
    assert not getattr(err.value, "__notes__", [])
    assert len(log) == 1


SIGTERMED = """
import signal, sys, time
import agentmem
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # the recipe of durability.md
with agentmem.connect(sys.argv[1]) as mem, mem.actions.step_log(every=1000) as log:
    for step in range(3):
        log.add({"agent_id": ["a", "b"], "simulation_id": ["s", "s"],
                 "step_number": [step, step], "action_type": ["move", "move"]})
    print("held", len(log), flush=True)
    time.sleep(60)
"""


def test_sigterm_with_the_documented_handler_writes_what_is_held(
        server: Any, r: redis.Redis) -> None:
    """A real process holding three steps, killed with SIGTERM: with the handler
    ``docs/durability.md`` gives, its ``with`` block writes them before it exits."""
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", SIGTERMED, server.url],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "held 6"
        assert r.dbsize() == 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 143
    finally:
        proc.kill()
    assert sorted(k.decode() for k in r.keys("agent:a:action:*") if b":action:a-" in k) == [
        "agent:a:action:a-0-move", "agent:a:action:a-1-move", "agent:a:action:a-2-move"]
