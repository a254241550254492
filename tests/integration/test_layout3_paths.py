"""Layout 3 (compact hash fields): the read, tier, search and radius paths that
test_layout3's scenario does not reach, on one real server.

Each scenario runs on layout 2 and on layout 3 (the database flushed between) and the
results must be equal; where a path compares a hash field (the simulation id of a
simulation-level read, the importance and simulation id of an IM eviction), a hash is
changed by hand under the layout's own field name to show that the field is read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
from _support import act
from test_layout2 import _no_time

import agentmem
from agentmem.backends.sql import Archive, open_archive
from agentmem.dualwrite.sync import archive_to_sql, load_from_sql
from agentmem.plans import keyspace
from agentmem.search.sequences import analyze, read_window
from agentmem.search.similarity import SimilarityIndex, brute_force
from agentmem.tiers import reads as tierreads
from agentmem.tiers.maintenance import TierPolicy, Tiers

SHORT = set(keyspace.COMPACT_FIELDS.values())


def _stm_field(version: int, name: str) -> str:
    return keyspace.layout(version).action.codec.wire(name)


def _on_both(server: Any, r: redis.Redis, run: Callable[[agentmem.Memory], Any],
             **options: Any) -> tuple[Any, Any]:
    """``run`` on a fresh layout-2 store, then on a fresh layout-3 store."""
    out = []
    for version in (2, 3):
        r.flushdb()
        with agentmem.connect(server.url, layout_version=version, **options) as mem:
            out.append(_no_time(run(mem)))
    return out[0], out[1]


def _write(mem: agentmem.Memory) -> None:
    """Two agents of s1 with positions, embeddings, targets; an agent of s2."""
    mem.actions.add_many(
        [act("a1", s, "eat" if s % 2 else "move", sim="s1", reward=s / 10 - 0.3,
             action_target_id="a2" if s % 3 == 0 else None,
             position=(float(s), float(-s)),
             embedding=np.array([1.0, float(s), 0.5], dtype=np.float32))
         for s in range(12)]
        + [act("a2", s, "move", sim="s1", reward=0.5, position=(float(s), 0.0))
           for s in range(5)]
        + [act("b1", s, "eat", sim="s2", position=(0.0, 0.0)) for s in range(3)])


def _pages(mem: agentmem.Memory, query: str, *args: Any) -> list[list[str | None]]:
    out, cursor = [], None
    while True:
        page = mem.actions.page(query, *args, cursor=cursor, size=3)
        out.append([a.action_id for a in page.items])
        cursor = page.cursor
        if cursor is None:
            return out


PAGED = [("recent", ("a1",)), ("timeline", ("a1",)), ("high_reward", ("a1", 0.2)),
         ("by_type", ("a1", "eat")), ("by_target", ("a1", "a2")),
         ("successful_interactions", ("a1", "a2")), ("at_step", ("s1", 3)),
         ("simulation_actions", ("s1",))]


def test_pages_of_every_listing_query(server: Any, r: redis.Redis) -> None:
    def run(mem: agentmem.Memory) -> Any:
        _write(mem)
        return {q: _pages(mem, q, *args) for q, args in PAGED}

    two, three = _on_both(server, r, run)
    assert three == two
    assert sum(len(p) for p in three["simulation_actions"]) == 17
    assert three["at_step"] == [["a1-3-eat", "a2-3-move"]]


def _foreign(mem: agentmem.Memory, r: redis.Redis, key: str) -> None:
    """The hash of ``key`` now says another simulation (an id given again after its
    action left memory), under the layout's name of the field."""
    r.hset(key, _stm_field(mem.actions.layout.version, "simulation_id"), "s9")


def test_simulation_level_reads_skip_a_hash_of_another_simulation(
        server: Any, r: redis.Redis) -> None:
    def run(mem: agentmem.Memory) -> Any:
        _write(mem)
        a = mem.actions
        out: dict[str, Any] = {"before": [x.action_id for x in a.at_step("s1", 3)]}
        _foreign(mem, r, a.layout.key("action", agent_id="a1", action_id="a1-3-eat"))
        out["at_step"] = a.at_step("s1", 3)
        out["simulation_actions"] = [x.action_id for x in a.simulation_actions("s1")]
        out["pages"] = _pages(mem, "at_step", "s1", 3) + _pages(mem, "simulation_actions", "s1")
        out["near_at"] = [(n.record.action_id, n.distance)
                          for n in a.near_at("s1", 3.0, -3.0, 3.5, step=3)]
        out["near_at_span"] = [n.record.action_id for n in a.near_at("s1", 3.0, -3.0, 5.0)]
        out["get"] = [getattr(a.get("a1-3-eat", **scope), "action_id", None) for scope in (
            {}, {"simulation_id": "s1"}, {"simulation_id": "s9"},
            {"agent_id": "a1", "simulation_id": "s1"})]
        out["exists"] = [a.exists("a1-3-eat"), a.exists("a1-3-eat", simulation_id="s1")]
        out["delete_other"] = a.delete("a1-3-eat", simulation_id="s1")
        out["delete_own"] = a.delete("a1-3-eat", simulation_id="s9")
        out["after"] = a.get("a1-3-eat")
        return out

    two, three = _on_both(server, r, run)
    assert three == two
    assert three["before"] == ["a1-3-eat", "a2-3-move"]
    assert [x.action_id for x in three["at_step"]] == ["a2-3-move"]
    assert "a1-3-eat" not in three["simulation_actions"]
    assert "a1-3-eat" not in [i for p in three["pages"] for i in p]
    assert three["near_at"] == [["a2-3-move", 3.0]]
    assert "a1-3-eat" not in three["near_at_span"]
    assert three["get"] == ["a1-3-eat", None, "a1-3-eat", None]
    assert three["exists"] == [True, False]
    assert (three["delete_other"], three["delete_own"], three["after"]) == (False, True, None)


def test_delete_by_id_and_simulation_reaches_intermediate_memory(
        server: Any, r: redis.Redis) -> None:
    """An id only IM holds: the simulation is read from the IM hash (its own field name)."""
    def run(mem: agentmem.Memory) -> Any:
        _write(mem)
        Tiers(mem).transition("a1", ["a1-4-move", "a1-5-eat"])
        im_key = mem.actions.layout.key("im_action", agent_id="a1", action_id="a1-4-move")
        fields = sorted(k.decode() for k in r.hkeys(im_key))
        gone = [mem.actions.delete("a1-4-move", simulation_id="s2"),
                mem.actions.delete("a1-4-move", simulation_id="s1"),
                mem.actions.delete("a1-5-eat")]
        return fields, gone, [x.action_id for x in mem.actions.history("a1", 3, 6)]

    two, three = _on_both(server, r, run)
    assert three[1:] == two[1:]
    assert three[1] == [False, True, True]
    assert three[2] == ["a1-3-eat", "a1-6-move"]
    assert set(three[0]) <= SHORT
    assert {keyspace.COMPACT_FIELDS[k] for k in two[0]} == set(three[0])


def test_radius_filters(server: Any, r: redis.Redis) -> None:
    def run(mem: agentmem.Memory) -> Any:
        _write(mem)
        a = mem.actions

        def rows(found: list[Any]) -> list[tuple[str | None, float]]:
            return [(n.record.action_id, round(n.distance, 9)) for n in found]

        return {
            "all": rows(a.near("a1", 5.0, -5.0, 4.0)),
            "limit": rows(a.near("a1", 5.0, -5.0, 40.0, limit=3)),
            "type": rows(a.near("a1", 5.0, -5.0, 40.0, action_type="eat")),
            "types_steps": rows(a.near("a1", 5.0, -5.0, 40.0, action_type=["eat", "move"],
                                       start=3, end=6)),
            "open_end": rows(a.near("a1", 5.0, -5.0, 40.0, start=9)),
            "at_step": rows(a.near_at("s1", 2.0, 0.0, 3.0, step=2)),
            "span_type": rows(a.near_at("s1", 2.0, 0.0, 30.0, start=1, end=4,
                                        action_type="move", limit=4)),
            "other_sim": rows(a.near_at("s2", 0.0, 0.0, 1.0)),
        }

    two, three = _on_both(server, r, run)
    assert three == two
    assert [i for i, _ in three["type"]] == ["a1-5-eat", "a1-3-eat", "a1-7-eat", "a1-1-eat",
                                             "a1-9-eat", "a1-11-eat"]
    assert [i for i, _ in three["types_steps"]] == ["a1-5-eat", "a1-4-move", "a1-6-move",
                                                    "a1-3-eat"]
    assert [i for i, _ in three["open_end"]] == ["a1-9-eat", "a1-10-move", "a1-11-eat"]
    assert [i for i, _ in three["other_sim"]] == ["b1-0-eat", "b1-1-eat", "b1-2-eat"]
    assert three["span_type"]


def test_sequences_and_similarity_across_tiers(server: Any, r: redis.Redis) -> None:
    def run(mem: agentmem.Memory) -> Any:
        _write(mem)
        Tiers(mem).transition("a1", ["a1-0-move", "a1-1-eat", "a1-2-move"])
        both = read_window(mem, "a1", tiers="all")
        newest = read_window(mem, "a1", 1, 10, tiers="all", limit=4)
        report = analyze(mem, "a1", tiers="all", n=2)
        with SimilarityIndex(mem) as idx:
            q = [1.0, 3.0, 0.5]
            found = [(m.action.action_id, round(m.score, 6)) for m in idx.search("a1", q, 4)]
            eat = [m.action.action_id for m in idx.search("a1", q, 3, action_type="eat",
                                                          start=5)]
        brute = [(m.action.action_id, round(m.score, 6)) for m in brute_force(mem, "a1", q, 4)]
        return {"ids": both.ids, "tiers": both.tiers, "types": both.types,
                "rewards": [round(x, 9) for x in both.rewards.tolist()],
                "newest": newest.ids, "ngrams": report.ngrams,
                "transitions": str(report.transitions), "found": found, "eat": eat,
                "brute": brute}

    two, three = _on_both(server, r, run)
    assert three == two
    assert three["tiers"][:3] == ["i", "i", "i"]
    assert three["types"][:4] == ["move", "eat", "move", "eat"]
    assert not np.isnan(three["rewards"]).any()
    assert three["newest"] == ["a1-7-eat", "a1-8-move", "a1-9-eat", "a1-10-move"]
    assert three["found"] == three["brute"]
    assert three["found"][0][0] == "a1-3-eat"
    assert three["eat"] == ["a1-5-eat", "a1-7-eat", "a1-9-eat"]


def _recording(archive: Archive) -> list[tuple[str, str, str]]:
    """The (simulation, agent, id) triples the eviction asks the archive about."""
    seen: list[tuple[str, str, str]] = []
    ask = archive.archived

    def archived(keys: Any) -> set[tuple[str, str, str]]:
        keys = list(keys)
        seen.extend(keys)
        return ask(keys)

    archive.archived = archived  # type: ignore[method-assign]
    return seen


@pytest.mark.parametrize("weight", [0.0, 3.0])
def test_im_eviction_ranks_by_importance_and_names_the_simulation(
        server: Any, r: redis.Redis, tmp_path: Path, weight: float) -> None:
    """maintain moves to IM (with the importance) and evicts over im_capacity, ranked on
    the server by the IM hashes' importance and step; the victims' simulation ids come
    from the IM hashes. IM entries written by other code are archived when evicted."""
    def importance(a: agentmem.Action) -> float:
        return 1.0 if a.action_type == "eat" else 0.0

    def run(mem: agentmem.Memory) -> Any:
        _write(mem)
        mem.im_actions.add_many([agentmem.IMAction(
            action_id=f"c1-{s}-move", agent_id="c1", simulation_id="s3", step_number=s,
            action_type="move", reward=0.1, importance=s / 10) for s in range(4)])
        with open_archive(tmp_path / f"a{len(list(tmp_path.iterdir()))}.db") as archive:
            seen = _recording(archive)
            tiers = Tiers(mem, TierPolicy(stm_steps=3, im_capacity=4, importance_weight=weight,
                                          importance=importance), archive=archive)
            report = tiers.maintain(now_step=11)
            im = {a: [x.action_id for x in mem.im_actions.range("im_timeline", agent_id=a)]
                  for a in ("a1", "a2", "b1", "c1")}
            counts = {s: archive.count(s) for s in ("s1", "s2", "s3")}
            c1 = sorted((x.action_id, x.simulation_id) for x in archive.read("s3"))
        return {"evicted": report.evicted, "im": im, "asked": sorted(set(seen)),
                "archived": counts, "c1": c1}

    two, three = _on_both(server, r, run)
    assert three == two
    if weight:  # importance outlives age: the eats stay
        assert three["im"]["a1"] == ["a1-3-eat", "a1-5-eat", "a1-7-eat", "a1-8-move"]
    else:
        assert three["im"]["a1"] == ["a1-5-eat", "a1-6-move", "a1-7-eat", "a1-8-move"]
    assert three["im"]["c1"] == [f"c1-{s}-move" for s in range(4)]  # within capacity
    assert three["evicted"] == 6  # a1: 9 moved, a2: 5
    assert {sim for sim, _, _ in three["asked"]} == {"s1"}
    assert ["s1", "a1", "a1-0-move"] in three["asked"]
    assert three["archived"] == {"s1": 14, "s2": 3, "s3": 0}
    assert three["c1"] == []


def test_im_eviction_archives_what_only_im_held(
        server: Any, r: redis.Redis, tmp_path: Path) -> None:
    def run(mem: agentmem.Memory) -> Any:
        mem.im_actions.add_many([agentmem.IMAction(
            action_id=f"c1-{s}-move", agent_id="c1", simulation_id="s3", step_number=s,
            action_type="move", reward=0.1, importance=s / 10) for s in range(4)])
        with open_archive(tmp_path / f"a{len(list(tmp_path.iterdir()))}.db") as archive:
            seen = _recording(archive)
            report = Tiers(mem, TierPolicy(im_capacity=1, importance_weight=1.0),
                           archive=archive).maintain()
            rows = sorted((x.action_id, x.simulation_id, x.reward) for x in archive.read("s3"))
        left = [x.action_id for x in mem.im_actions.range("im_timeline", agent_id="c1")]
        return report.evicted, sorted(seen), rows, left

    two, three = _on_both(server, r, run)
    assert three == two
    evicted, asked, rows, left = three
    assert evicted == 3
    assert asked == [["s3", "c1", f"c1-{s}-move"] for s in range(3)]
    assert rows == [[f"c1-{s}-move", "s3", 0.1] for s in range(3)]
    assert left == ["c1-3-move"]


def test_reads_across_tiers(server: Any, r: redis.Redis, tmp_path: Path) -> None:
    def run(mem: agentmem.Memory) -> Any:
        _write(mem)
        with open_archive(tmp_path / f"a{len(list(tmp_path.iterdir()))}.db") as archive:
            tiers = Tiers(mem, TierPolicy(stm_steps=4, im_capacity=3), archive=archive)
            tiers.pin("a1", "a1-2-move")
            tiers.maintain(now_step=11)
            found = [tierreads.find(mem, "a1", i, archive) for i in
                     ("a1-10-move", "a1-6-move", "a1-3-eat", "a1-2-move", "nope")]
        return {
            "found": [(type(x).__name__, getattr(x, "action_id", None)) for x in found],
            "by_type": tierreads.by_type(mem, "a1", "eat"),
            "by_type_limit": tierreads.by_type(mem, "a1", "move", 2),
            "by_target": tierreads.by_target(mem, "a1", "a2", 3),
            "high_reward": tierreads.high_reward(mem, "a1", 0.3),
            "recent": tierreads.recent(mem, "a1", 6),
            "relative": tierreads.relative(mem, "a1", -5),
            "pinned": tiers.pinned("a1"),
            "history": mem.actions.history("a1", newest_first=True, limit=7),
        }

    two, three = _on_both(server, r, run)
    assert three == two
    assert three["found"] == [["Action", "a1-10-move"], ["IMAction", "a1-6-move"],
                              ["Action", "a1-3-eat"], ["Action", "a1-2-move"],
                              ["NoneType", None]]
    assert three["pinned"] == {"a1-2-move"}
    assert {type(x).__name__ for x in three["history"]} == {"Action", "IMAction"}


def test_sync_both_ways(server: Any, r: redis.Redis, tmp_path: Path) -> None:
    """archive_to_sql reads a layout-3 simulation; load_from_sql fills an empty layout-3
    Redis from the archive (ids intermediate memory holds are skipped)."""
    def run(mem: agentmem.Memory) -> Any:
        _write(mem)
        Tiers(mem).transition("a1", ["a1-0-move", "a1-1-eat"])
        with open_archive(tmp_path / f"a{len(list(tmp_path.iterdir()))}.db") as archive:
            first = archive_to_sql(mem, archive, "s1", chunk=4)
            mem.actions.delete("a1-5-eat", agent_id="a1")  # gone from Redis, archived
            for a in ("a2",):
                for x in mem.actions.timeline(a):
                    mem.actions.delete(str(x.action_id), agent_id=a)
            loaded = load_from_sql(archive, mem, "s1", chunk=5)
            again = load_from_sql(archive, mem, "s1")
        return first, loaded, again, [x.action_id for x in mem.actions.simulation_actions("s1")]

    two, three = _on_both(server, r, run)
    assert three == two
    assert three[:3] == [15, 6, 0]  # the 17 of s1 less the two in IM; a1-5-eat and a2's back


def test_asyncio_store_on_layout_3(server: Any, r: redis.Redis) -> None:
    async def main() -> Any:
        m = agentmem.connect_async(server.url, layout_version=3)
        try:
            await m.actions.add_many([act("a1", s, sim="s1", position=(float(s), 0.0))
                                      for s in range(5)])
            return ([a.action_id for a in await m.actions.at_step("s1", 2)],
                    [a.action_id for a in await m.actions.simulation_actions("s1", 1, 2)],
                    [n.record.action_id for n in await m.actions.near_at("s1", 0.0, 0.0, 1.5)],
                    (await m.actions.get("a1-4-move", simulation_id="s1")) is not None)
        finally:
            await m.close()

    assert asyncio.run(main()) == (["a1-2-move"], ["a1-1-move", "a1-2-move"],
                                   ["a1-0-move", "a1-1-move"], True)
    assert r.get(keyspace.LAYOUT_KEY) == b"3"
