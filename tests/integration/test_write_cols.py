"""The write calls sent as columns (``core/write_cols.lua``, ``agentmem.plans.colwrite``):
``add_rows`` and ``add_columns`` store byte for byte what ``add_many`` of the same
records stores (its calls built by ``WritePlanner.batch``), on real servers, for the
shapes the column form takes: AgentFarm-shaped actions of many agents, ids the server
renumbers (taken, retired), capped and split groups, counters and sorted sets of field
values, a declared model, layouts 2 and 3, and the server's refusals; a write it does
not take (ids repeated in a call, ids given) goes as before, in one script."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import pytest
import redis
from _support import HoldingProxy
from test_rows import data_keys, snapshot

import agentmem
from agentmem import CounterIndex, Identifier, ListIndex, Record, SetIndex, SortedIndex, declare
from agentmem.errors import ConfigError, WriteError
from agentmem.lua.scripts import WRITE, WRITE_COLS
from agentmem.model.records import Action
from agentmem.plans.colwrite import GRID_LOOP_MAX, MIN_RECORDS, PACK_MIN, grid_codes
from agentmem.plans.grid import code
from agentmem.plans.wirepack import packed_texts


def steps(agents: int, n_steps: int, *, sims: int = 2) -> list[dict[str, Any]]:
    """One action per agent and step; targets, positions, rewards and details sometimes
    absent; an embedding now and then."""
    types = ["move", "eat", "attack", "share"]
    out: list[dict[str, Any]] = []
    for step in range(n_steps):
        for a in range(agents):
            i = step * agents + a
            row: dict[str, Any] = {
                "agent_id": f"agent_{a}", "simulation_id": f"sim{a % sims}",
                "step_number": step, "action_type": types[(i * 7) % 4],
                "resources_before": float(i) / 3, "resources_after": i + 1,
            }
            if i % 4:
                row["reward"] = ((i * 37) % 19) / 10 - 0.5
            if i % 3:
                row["action_target_id"] = f"agent_{(a + 1) % agents}"
            if i % 2:
                row["position"] = (i % 50 - 10.5, (i % 30) / 2)
            if i % 5 == 0:
                row["details"] = {"i": i, "t": [i % 3, "x"], "f": i / 7}
            if i % 13 == 0:
                row["embedding"] = np.full(4, i, np.float32)
            if i % 11 == 0:
                row["module_type"], row["state_before_id"] = "m", f"st{i}"
            out.append(row)
    return out


def as_columns(data: list[dict[str, Any]]) -> dict[str, Any]:
    names = sorted({k for r in data for k in r})
    cols: dict[str, Any] = {n: [r.get(n) for r in data] for n in names}
    cols["step_number"] = np.array(cols["step_number"])
    cols["resources_before"] = np.array(cols["resources_before"])
    return cols


class Traced:
    """Stores whose traffic crosses two relays in front of the test's server, counting the
    calls of the row script and of the column script (other clients of the server, and
    its script cache, do not count)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.cols = HoldingProxy(parts.hostname or "127.0.0.1", parts.port or 6379,
                                 WRITE_COLS.sha.encode(), hold=False)
        self.rows = HoldingProxy("127.0.0.1", self.cols.port, WRITE.sha.encode(), hold=False)
        self.url = urlunsplit((parts.scheme, f"127.0.0.1:{self.rows.port}", parts.path,
                               parts.query, parts.fragment))
        self.opened: list[Any] = []

    def connect(self, **options: Any) -> agentmem.Memory:
        m = agentmem.connect(self.url, **options)
        self.opened.append(m)
        return m

    def ran(self, write: Any) -> tuple[bool, bool]:
        """Whether ``write()`` called the row script, the column script."""
        self.rows.hits = self.cols.hits = 0
        write()
        return self.rows.hits > 0, self.cols.hits > 0

    def close(self) -> None:
        for m in self.opened:
            m.close()
        self.rows.close()
        self.cols.close()


@pytest.fixture
def traced(server: Any, r: redis.Redis) -> Iterator[Traced]:
    t = Traced(server.url)
    yield t
    t.close()


@pytest.mark.parametrize("layout", [1, 2, 3, 4])
def test_rows_as_columns_store_what_add_many_stores(r: redis.Redis, connect: Any,
                                                   traced: Traced, layout: int) -> None:
    data = steps(40, 12)
    mem = connect(layout_version=layout)
    stored = mem.actions.add_many([Action(**d) for d in data])
    stored += mem.actions.add_many([Action(**d) for d in data[:130]])  # ids taken: .1
    want = snapshot(r)
    r.flushdb()
    mem2 = traced.connect(layout_version=layout)
    ran: list[list[str]] = []
    assert traced.ran(lambda: ran.append(mem2.actions.add_rows(data))) == (False, True)
    ran.append(mem2.actions.add_columns(as_columns(data[:130])))
    assert ran[0] + ran[1] == [a.action_id for a in stored]
    assert ran[1][0] == "agent_0-0-move.1"
    assert snapshot(r) == want


def test_fields_no_row_of_a_call_gives_as_add_many(r: redis.Redis, connect: Any,
                                                  traced: Traced) -> None:
    """Only the four required fields: the reward, target and position indexes get no
    entry, the hash no field, from columns that hold no value at all."""
    data = [{"agent_id": f"a{i % 5}", "simulation_id": "s", "step_number": i // 5,
             "action_type": "move"} for i in range(40)]
    stored = [a.action_id for a in connect().actions.add_many([Action(**d) for d in data])]
    want = data_keys(r)
    r.flushdb()
    mem = traced.connect()
    ids: list[str] = []
    assert traced.ran(lambda: ids.extend(mem.actions.add_rows(data))) == (False, True)
    assert ids == stored
    assert data_keys(r) == want


def test_one_call_of_many_steps_caps_and_splits_as_add_many(r: redis.Redis, connect: Any,
                                                           traced: Traced) -> None:
    """2,400 actions of 2 agents in one call: 1,200 per agent (the capped relative index
    keeps 20), 2,400 members of the simulation's list (groups of at most 1,000
    arguments), the step counters and sorted set of steps."""
    data = steps(2, 1200, sims=1)
    mem = connect(batch_size=5000)
    mem.actions.add_many([Action(**d) for d in data])
    want = snapshot(r)
    assert r.zcard("agent:agent_0:action:relative_index") == 20
    assert r.llen("simulation:sim0:actions") == 2400
    r.flushdb()
    assert traced.ran(lambda: traced.connect(batch_size=5000).actions.add_rows(data)) == \
        (False, True)
    assert snapshot(r) == want


def test_retired_ids_renumbered_as_add_many(r: redis.Redis, connect: Any) -> None:
    """Steps at or below an agent's retired mark (its actions of those steps may have
    left memory) get ``.r<n>`` ids from the server, in the column form too."""
    data = steps(6, 5, sims=1)

    def mark() -> None:
        r.hset("agent:agent_2:retired", "sim0", 3)
        r.hset("agent:agent_4:retired", ":any", 1)

    mark()
    mem = connect()
    stored = [a.action_id for a in mem.actions.add_many([Action(**d) for d in data])]
    want = snapshot(r)
    assert [s.rsplit(".", 1)[1] for s in stored if ".r" in s] == [
        "r1", "r1", "r2", "r2", "r3", "r4"]  # agent_2's steps 0-3, agent_4's 0-1
    r.flushdb()
    mark()
    assert connect().actions.add_columns(as_columns(data)) == stored
    assert snapshot(r) == want


class Snap(Record):
    snap_id: str | None = None
    agent_id: Identifier
    sim: Identifier
    step: int
    health: float
    mood: str = "calm"
    note: str | None = None


SNAPS = declare(
    Snap, key="agent:{agent_id}:snap:{snap_id}", id="snap_id", id_template="{agent_id}-{step}",
    ttl=600,
    indexes=[
        SortedIndex("by_step", "agent:{agent_id}:snap:timeline", score="step"),
        SortedIndex("by_health", "agent:{agent_id}:snap:health", score="health", cap=3),
        SetIndex("by_mood", "agent:{agent_id}:snap:mood:{mood}"),
        SetIndex("moods", "sim:{sim}:moods:set", member="mood"),
        SortedIndex("moods_seen", "sim:{sim}:moods", score="step", member="mood"),
        ListIndex("log", "sim:{sim}:snaps"),
        ListIndex("notes", "sim:{sim}:notes", member="note"),
        CounterIndex("mood_count", "sim:{sim}:moodcount", field="mood"),
        CounterIndex("steps", "sim:{sim}:{mood}:steps", field="step"),
    ],
)


def test_a_declared_model_as_columns(r: redis.Redis, mem: agentmem.Memory,
                                     traced: Traced) -> None:
    data = [{"agent_id": f"a{i % 4}", "sim": f"s{i % 3}", "step": i // 4, "health": i / 10,
             "mood": ("calm", "sad", "glad")[i % 3], "note": None if i % 2 else f"n{i}"}
            for i in range(60)]
    repo = mem.repository(SNAPS)
    stored = [s.snap_id for s in repo.add_many([Snap(**d) for d in data])]
    want = snapshot(r)
    r.flushdb()
    traced_repo = traced.connect().repository(SNAPS)
    assert traced.ran(lambda: traced_repo.add_rows(data)) == (False, True)
    assert snapshot(r) == want
    r.flushdb()
    cols = {k: [d[k] for d in data] for k in data[0]}
    assert repo.add_columns(cols) == stored
    assert snapshot(r) == want


def test_repeated_or_given_ids_go_as_before_in_one_script(r: redis.Redis, connect: Any,
                                                         traced: Traced) -> None:
    data = steps(5, 3)
    twice = [*data, data[0]]
    given = [*data, {**data[1], "action_id": "agent_1-0-custom"}]
    for rows in (twice, given):
        r.flushdb()
        stored = [a.action_id for a in connect().actions.add_many([Action(**d) for d in rows])]
        want = snapshot(r)
        r.flushdb()
        mem = traced.connect()
        ids: list[str] = []
        assert traced.ran(lambda rows=rows, mem=mem, ids=ids: ids.extend(
            mem.actions.add_rows(rows))) == (True, False)
        assert ids == stored
        assert snapshot(r) == want


def test_a_key_of_another_type_refuses_the_same_records(r: redis.Redis,
                                                       mem: agentmem.Memory) -> None:
    data = steps(8, 2)
    r.set("agent:agent_3:action:rewards", "x")
    with pytest.raises(WriteError) as many:
        mem.actions.add_many([Action(**d) for d in data])
    want = data_keys(r)
    r.flushdb()
    r.set("agent:agent_3:action:rewards", "x")
    with pytest.raises(WriteError) as rows:
        mem.actions.add_rows(data)
    assert rows.value.failed == many.value.failed
    assert sorted(rows.value.failed) == [3, 11]  # agent_3's actions with a reward
    assert data_keys(r) == want


@pytest.mark.parametrize("cell", [1.0, 4.0, 0.001, 7.5, 1e-300, 1e300])
def test_grid_codes_of_whole_columns_are_those_of_each_position(cell: float) -> None:
    rnd = np.random.default_rng(7)
    edge = [0.0, -0.0, 5e-324, -5e-324, 1e308, -1e308, 2.0**25, -(2.0**25), 2.0**25 - 1e-9,
            3.9999999999999996, 4.0, -4.0, 12.3, 99.99]
    xs: list[float | None] = [*edge, *rnd.uniform(-1e9, 1e9, 500).tolist(),
                              *rnd.uniform(-300, 300, 500).tolist()]
    ys: list[float | None] = list(reversed(xs))
    xs[3] = None
    ys[7] = None
    want = [None if x is None or y is None else str(code(x, y, cell))
            for x, y in zip(xs, ys, strict=True)]
    assert grid_codes(xs, ys, cell) == want
    # at most GRID_LOOP_MAX positions: one at a time, the same codes (the edges among them)
    assert len(xs) > GRID_LOOP_MAX
    for a in range(0, len(xs) - GRID_LOOP_MAX, GRID_LOOP_MAX):
        b = a + GRID_LOOP_MAX
        assert grid_codes(xs[a:b], ys[a:b], cell) == want[a:b]
        assert grid_codes(edge, xs[a:a + len(edge)], cell) == [
            None if y is None else str(code(x, y, cell))
            for x, y in zip(edge, xs[a:a + len(edge)], strict=True)]
    some = [x for x in xs if x is not None][:9]
    assert [c.decode() if type(c) is bytes else c  # (texts of a whole column as bytes)
            for c in grid_codes(some, edge[:9], cell)] == [
        str(code(x, y, cell)) for x, y in zip(some, edge[:9], strict=True)]


async def test_async_rows_as_columns(r: redis.Redis, amem: agentmem.AsyncMemory,
                                    traced: Traced) -> None:
    data = steps(30, 4)
    stored = [a.action_id for a in await amem.actions.add_many([Action(**d) for d in data])]
    want = data_keys(r)
    r.flushdb()
    mem = agentmem.connect_async(traced.url)
    traced.rows.hits = traced.cols.hits = 0
    try:
        assert await mem.actions.add_columns(as_columns(data)) == stored
    finally:
        await mem.close()
    assert (traced.rows.hits, traced.cols.hits > 0) == (0, True)
    assert data_keys(r) == want


class Tagged(Record):
    tid: str | None = None
    agent_id: Identifier
    tag: Identifier
    step: int


TAGGED = declare(Tagged, key="t:{agent_id}:{tid}", id="tid", id_template="{tag}.{step}",
                 indexes=[SortedIndex("by_step", "t:{agent_id}:steps", score="step"),
                          ListIndex("all", "tags:{tag}")])


@pytest.mark.parametrize("batch_size", [1, 2, 3, 100])
def test_ids_that_share_a_root_across_agents_are_cut_as_add_many_cuts(
        r: redis.Redis, connect: Any, batch_size: int) -> None:
    """Ids ``x.1`` of two agents (one root ``x``, two scopes) and dotted ids: the calls
    are cut where ``add_many`` cuts them, and the same is stored."""
    data = [{"agent_id": f"a{i % 2}", "tag": "x", "step": i // 2} for i in range(6)]
    data += [{"agent_id": "a3", "tag": f"y{i}", "step": 1} for i in range(3)]
    mem = connect(batch_size=batch_size)
    repo = mem.repository(TAGGED)
    stored = [t.tid for t in repo.add_many([Tagged(**d) for d in data])]
    want = snapshot(r)
    r.flushdb()
    assert repo.add_rows(data) == stored
    assert snapshot(r) == want


@pytest.mark.parametrize("form", ["add_many", "add_rows"])
def test_a_retired_mark_of_another_type_refuses_its_agents_records(
        r: redis.Redis, mem: agentmem.Memory, form: str) -> None:
    """The script refuses the call for the agent's retired-mark key (a set where a hash
    belongs): that agent's records are refused, the others stored, and the write ends
    (it used to send the refused record again for ever)."""
    data = steps(4, 2, sims=1)
    r.sadd("agent:agent_2:retired", "x")
    write = (lambda: mem.actions.add_many([Action(**d) for d in data])) \
        if form == "add_many" else (lambda: mem.actions.add_rows(data))
    with pytest.raises(WriteError) as err:
        write()
    assert sorted(err.value.failed) == [2, 6]
    assert all("agent:agent_2:retired" in why for why in err.value.failed.values())
    assert len(err.value.stored) == 6
    assert r.zcard("agent:agent_1:action:timeline") == 2
    assert not r.exists("agent:agent_2:action:timeline")


class Ev(Record):
    ev_id: str | None = None
    agent_id: Identifier
    step: int
    g: Identifier = "x"
    h: Identifier = "y"
    who: Identifier = "w"
    score: float = 0.0


def _ev(*indexes: Any) -> Any:
    return declare(Ev, key="ev:{agent_id}:{ev_id}", id="ev_id",
                   id_template="{agent_id}-{step}", indexes=list(indexes))


# what the column script would store otherwise than add_many (a review's findings):
# two indexes writing one key (one group per key in add_many: its list order, its last
# score, its cap), and a capped sorted set of field values (add_many trims the call's
# pairs first, so an old member keeps a higher score)
NOT_AS_COLUMNS = {
    "two lists on one key": (
        _ev(ListIndex("l1", "log:{g}"), ListIndex("l2", "log:{h}")),
        [[{"agent_id": "a", "step": 0, "g": "x", "h": "p"},
          {"agent_id": "a", "step": 1, "g": "x", "h": "x"}]]),
    "two sorted sets of field values on one key": (
        _ev(SortedIndex("z1", "z:{g}", score="step", member="who"),
            SortedIndex("z2", "z:{h}", score="step", member="who")),
        [[{"agent_id": "a", "step": 0, "g": "x", "h": "p", "who": "w"},
          {"agent_id": "a", "step": 1, "g": "x", "h": "q", "who": "v"},
          {"agent_id": "a", "step": 2, "g": "y", "h": "x", "who": "w"}]]),
    "a capped and an uncapped index on one key": (
        _ev(SortedIndex("capped", "z:{agent_id}", score="step", cap=1),
            SortedIndex("plain", "z:{agent_id}", score="score")),
        [[{"agent_id": f"a{i}", "step": i, "score": 5.0} for i in range(3)]]),
    "sorted sets of ids and of field values on one key": (
        _ev(SortedIndex("ids", "z:{agent_id}", score="step"),
            SortedIndex("vals", "z:{agent_id}", score="step", member="who")),
        [[{"agent_id": "a", "step": i, "who": f"w{i % 2}"} for i in range(3)]]),
    "a capped sorted set of field values": (
        _ev(SortedIndex("best", "best:{agent_id}", score="score", member="who", cap=1)),
        [[{"agent_id": "a", "step": 0, "who": "m0", "score": 100.0}],
         [{"agent_id": "a", "step": i + 1, "who": f"m{i}", "score": float(i)}
          for i in range(5)]]),
}


@pytest.mark.parametrize("case", sorted(NOT_AS_COLUMNS))
def test_declarations_the_column_script_would_store_otherwise_go_as_add_many(
        r: redis.Redis, connect: Any, traced: Traced, case: str) -> None:
    spec, writes = NOT_AS_COLUMNS[case]
    r.zadd("z:a0", {"old1": 10, "old2": 20})
    many = connect().repository(spec)
    stored = [[e.ev_id for e in many.add_many([Ev(**d) for d in w])] for w in writes]
    want = snapshot(r)
    r.flushdb()
    r.zadd("z:a0", {"old1": 10, "old2": 20})
    rows = traced.connect().repository(spec)
    got: list[list[str]] = []
    for w in writes:
        assert traced.ran(lambda w=w: got.append(rows.add_rows(w))) == (True, False)
    assert got == stored
    assert snapshot(r) == want


def test_more_keys_than_the_cache_holds_from_threads_sharing_a_store(
        r: redis.Redis, connect: Any) -> None:
    """9,000 agents (more than the 8,192 keys an index remembers) written by 4 threads
    through one store, one simulation each: the keys past the cache are rendered per
    call, no thread loses a key from under another, and every key holds what add_many
    stores (compared key by key on a sample, counted on all)."""

    data = steps(9000, 1, sims=4)
    parts = [data[i::4] for i in range(4)]  # thread i: simulation i
    # every script unknown to the server: the threads' first calls race to load it (the
    # calls a thread sent before another loaded it were refused, sent again after those
    # that ran, and wrote their list entries out of order; now each runner loads a
    # script before its first call)
    many = connect(batch_size=500)
    stored = [[a.action_id for a in many.actions.add_many([Action(**d) for d in part])]
              for part in parts]
    sample = [*r.scan_iter(match="*agent_8*", count=1000),
              *r.scan_iter(match="simulation:*", count=1000)]
    want = _contents(r, sample)
    size = r.dbsize()
    r.flushdb()
    r.script_flush()
    mem = connect(batch_size=500)
    got: dict[int, list[str]] = {}

    def write(i: int) -> None:
        got[i] = mem.actions.add_rows(parts[i])

    assert in_threads(write, 4) == []
    assert [got[i] for i in range(4)] == stored
    assert r.dbsize() == size
    assert _contents(r, sample) == want


def test_threads_writing_the_same_new_numbers_store_every_field(
        r: redis.Redis, connect: Any) -> None:
    """4 threads through one store, each write of the same values new to the store's
    memo of number texts (shared by the threads): every hash holds every number, as
    add_many stores it (a text another thread remembered meanwhile once came back
    None: the field and the entries scored by it were left out)."""
    import sys

    mem = connect(batch_size=5000)
    n, rounds = 64, 40
    errors: list[BaseException] = []
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for trial in range(rounds):
            vals = [trial * 1000 + i + 0.5 for i in range(n)]

            def write(k: int, trial: int = trial, vals: list[float] = vals) -> None:
                mem.actions.add_columns({
                    "agent_id": [f"t{k}_{i}" for i in range(n)],
                    "simulation_id": ["s"] * n, "step_number": [trial] * n,
                    "action_type": ["move"] * n, "resources_before": list(vals),
                    "resources_after": list(vals), "reward": list(vals)})

            errors += in_threads(write, 4)
    finally:
        sys.setswitchinterval(interval)
    assert errors == []
    hashes = [k for k in r.scan_iter(match="agent:t*:action:t*", count=5000)
              if r.type(k) == b"hash"]
    assert len(hashes) == rounds * 4 * n
    fields = (b"step_number", b"resources_before", b"resources_after", b"reward")
    assert [k for k in hashes if len(r.hmget(k, fields)) != 4 or None in r.hmget(k, fields)
            ] == []
    assert sum(r.zcard(f"agent:t{k}_{i}:action:timeline") for k in range(4)
               for i in range(n)) == rounds * 4 * n
    assert sum(r.zcard(f"agent:t{k}_{i}:action:rewards") for k in range(4)
               for i in range(n)) == rounds * 4 * n


def in_threads(write: Callable[[int], None], n: int) -> list[BaseException]:
    """``write(k)`` for k in 0..n-1, each in a thread of its own, all at once; what
    they raised."""
    import threading

    errors: list[BaseException] = []

    def run(k: int) -> None:
        try:
            write(k)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def _contents(r: redis.Redis, keys: list[bytes]) -> dict[bytes, Any]:
    """:func:`test_rows.snapshot` of ``keys`` only (the write time only as present)."""
    out: dict[bytes, Any] = {}
    for key in keys:
        t = r.type(key)
        if t == b"hash":
            h = r.hgetall(key)
            h.pop(b"stored_at", None)
            out[key] = (t, h)
        elif t == b"zset":
            out[key] = (t, r.zrange(key, 0, -1, withscores=True))
        elif t == b"set":
            out[key] = (t, sorted(r.smembers(key)))
        else:
            out[key] = (t, r.dump(key))
    return out


OUTBOX = ("agentmem:outbox:t", "agentmem:outboxes", "agentmem:outbox:t:lease", 60_000)


@pytest.mark.parametrize("layout", [1, 3, 4])
def test_a_write_with_an_outbox_as_columns_stores_what_rows_store(
        r: redis.Redis, traced: Traced, layout: int) -> None:
    """A dual writer's writes (with its outbox group) go as rows by default, as columns
    with ``write_columns=True``: the same records, indices, outbox list (final ids, in
    order), registry and lease."""
    data = steps(30, 8)
    models = [Action(**d) for d in data]
    rows = traced.connect(layout_version=layout).actions.with_outbox(*OUTBOX)
    want_out: list[Action] = []
    assert traced.ran(lambda: want_out.extend(rows.add_many(models))) == (True, False)
    want_out += rows.add_many(models[:50])  # ids taken: renumbered, listed as stored
    want = snapshot(r)
    assert len(want[OUTBOX[0].encode()][1]) == len(data) + 50
    r.flushdb()
    cols = traced.connect(layout_version=layout, write_columns=True).actions.with_outbox(
        *OUTBOX)
    out: list[Action] = []
    assert traced.ran(lambda: out.extend(cols.add_many(models))) == (False, True)
    assert traced.ran(lambda: out.extend(cols.add_many(models[:50]))) == (False, True)
    assert [a.action_id for a in out] == [a.action_id for a in want_out]
    assert out[len(data)].action_id.endswith(".1")
    assert [a.model_dump(exclude={"stored_at"}) for a in out] == \
        [a.model_dump(exclude={"stored_at"}) for a in want_out]
    assert snapshot(r) == want


def test_write_columns_chooses_the_form_of_every_write(r: redis.Redis,
                                                      traced: Traced) -> None:
    """``write_columns``: None sends add_many as rows and add_rows as columns; True both
    as columns; False both as rows. Each stores the same. A write of fewer than
    MIN_RECORDS records goes as rows whatever the setting."""
    data = steps(10, 4)
    assert len(data) >= MIN_RECORDS
    want: dict[bytes, Any] | None = None
    for setting, many, rows in ((None, (True, False), (False, True)),
                                (True, (False, True), (False, True)),
                                (False, (True, False), (True, False))):
        mem = traced.connect(write_columns=setting)
        for write, form in (
                (lambda m=mem: m.actions.add_many([Action(**d) for d in data]), many),
                (lambda m=mem: m.actions.add_rows(data), rows)):
            r.flushdb()
            assert traced.ran(write) == form, setting
            if want is None:
                want = data_keys(r)
            assert data_keys(r) == want
    mem = traced.connect(write_columns=True)
    few = data[:MIN_RECORDS - 1]
    assert traced.ran(lambda: mem.actions.add_rows(few)) == (True, False)
    assert traced.ran(lambda: mem.actions.add_many([Action(**d) for d in few])) == (True, False)
    with pytest.raises(ConfigError, match="write_columns"):
        traced.connect(write_columns="yes")


def test_a_dual_writer_with_write_columns_archives_every_action_once(
        r: redis.Redis, traced: Traced, tmp_path: Any) -> None:
    """A DualWriter on a store with ``write_columns=True``: its steps (waited for and
    sent ahead) go as columns, every action is archived once, under the id Redis gave
    it (some renumbered: taken), and its outbox is empty at close."""
    from agentmem.backends.sql import open_archive
    from agentmem.dualwrite.writer import DualWriter

    data = steps(40, 6)
    mem = traced.connect(write_columns=True)
    with open_archive(tmp_path / "a.db") as archive:
        w = DualWriter(mem, archive)
        assert traced.ran(lambda: w.add_many([Action(**d) for d in data[:120]])) \
            == (False, True)
        w.send_many([Action(**d) for d in data[120:]])  # as EVAL with the script's text
        again = w.add_many([Action(**d) for d in data[:40]])  # ids taken: .1
        assert again is not None
        assert all(a.action_id.endswith(".1") for a in again)
        w.close()
        archived = archive.read("sim0") + archive.read("sim1")
    stored = {a.action_id for a in mem.actions.simulation_actions("sim0")} | \
        {a.action_id for a in mem.actions.simulation_actions("sim1")}
    assert len(archived) == len(data) + 40
    assert sorted(a.action_id for a in archived) == sorted(stored)
    assert not [k for k in r.scan_iter("agentmem:outbox*") if r.type(k) == b"list"
                and r.llen(k)]


def test_a_batchs_repositories_follow_write_columns(r: redis.Redis, traced: Traced) -> None:
    """``mem.batch()``'s repository of a declared model, and its actions, send the form
    ``write_columns`` says, as the store's own repositories do."""
    data = [{"agent_id": f"a{i % 4}", "sim": f"s{i % 3}", "step": i // 4, "health": i / 10,
             "mood": ("calm", "sad", "glad")[i % 3], "note": None} for i in range(60)]
    for setting, rows_form, many_form in ((False, (True, False), (True, False)),
                                          (True, (False, True), (False, True)),
                                          (None, (False, True), (True, False))):
        mem = traced.connect(write_columns=setting)

        def queued(write: Any, mem: agentmem.Memory = mem) -> None:
            with mem.batch() as b:
                handle = write(b)
            handle.result()
        for write, form in (
                (lambda b: b.repository(SNAPS).add_rows(data), rows_form),
                (lambda b: b.repository(SNAPS).add_many([Snap(**d) for d in data]), many_form),
                (lambda b: b.actions.add_rows(steps(40, 1)), rows_form),
                (lambda b: b.actions.add_many([Action(**d) for d in steps(40, 1)]), many_form)):
            r.flushdb()
            assert traced.ran(lambda write=write: queued(write)) == form, setting


@pytest.mark.parametrize("n", [MIN_RECORDS, 100, GRID_LOOP_MAX, GRID_LOOP_MAX + 1,
                               PACK_MIN - 1, PACK_MIN])
@pytest.mark.parametrize("present", [True, False])
def test_writes_either_side_of_the_packing_and_grid_sizes_store_what_add_many_stores(
        r: redis.Redis, connect: Any, traced: Traced, n: int, present: bool) -> None:
    """A write of fewer than PACK_MIN records sends its numbers' texts one by one, of
    at most GRID_LOOP_MAX its grid codes computed one at a time: the same bytes stored
    as add_many's, with every position given and with some absent, odd numbers among
    them (tiny, negative zero, 2**40)."""
    rnd = random.Random(n)
    odd = [-0.0, 0.0, 1e-05, 1 / 3, 1e15, -123456.000001, 2.5, 5e-324]
    data = [{"agent_id": f"a{i % 25}", "simulation_id": "s", "step_number": i // 25,
             "action_type": "move", "reward": rnd.choice(odd) if i % 9 == 0
             else rnd.uniform(-1, 1), "resources_before": round(rnd.uniform(0, 50), 2),
             "resources_after": rnd.choice([0, -1, 2 ** 40, i]),
             "position": (rnd.uniform(-50, 50), float(i % 9))
             if present or i % 4 else None} for i in range(n)]
    stored = [a.action_id for a in connect().actions.add_many([Action(**d) for d in data])]
    want = snapshot(r)
    r.flushdb()
    cols = as_columns(data)
    cols["reward"] = np.array(cols["reward"])
    if present:
        cols["position"] = np.array(cols["position"])
    mem = traced.connect()
    ids: list[str] = []
    assert traced.ran(lambda: ids.extend(mem.actions.add_columns(cols))) == (False, True)
    assert ids == stored
    assert snapshot(r) == want


@pytest.mark.parametrize("tiny", [0, 3, 65])
def test_numbers_of_every_kind_as_whole_columns_store_what_add_many_stores(
        r: redis.Redis, connect: Any, tiny: int) -> None:
    """Columns with no value absent go packed a whole column at a time
    (``plans/wirepack.py``): orjson's texts, tiny values' (``1e-05``, which orjson
    writes ``0.00001``) by ``repr``, up to 64 of them; more, value by value."""
    rnd = random.Random(tiny)
    odd = [-0.0, 0.0, 1e-4, 1 / 3, 0.1 + 0.2, 1e15, -123456.000001, 20.00001, 2.5]
    n = PACK_MIN + 100  # packed: a write of fewer records sends the texts one by one
    rewards = [rnd.choice(odd) if i % 7 == 0 else round(rnd.uniform(-5, 5), rnd.randrange(6))
               for i in range(n)]
    for i in rnd.sample(range(n), tiny):
        rewards[i] = rnd.choice([1e-05, -4.7630159891731694e-05, 7.2e-05, 9.99e-05])
    data = [{"agent_id": f"a{i % 20}", "simulation_id": "s", "step_number": i // 20,
             "action_type": "move", "reward": rewards[i], "resources_before": i * 1e-3,
             "resources_after": rnd.choice([0, -1, 2 ** 40, i]),
             "position": (rnd.uniform(-50, 50), float(i % 9))} for i in range(n)]
    stored = [a.action_id for a in connect().actions.add_many([Action(**d) for d in data])]
    want = snapshot(r)
    r.flushdb()
    cols = as_columns(data)
    cols["position"] = np.array(cols["position"])
    cols["reward"] = np.array(cols["reward"])
    assert (packed_texts(rewards, repr) is None) == (tiny > 64)  # the path taken
    assert connect().actions.add_columns(cols) == stored
    assert snapshot(r) == want
