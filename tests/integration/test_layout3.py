"""Layout version 3 (compact hashes) on one real server.

Layout 3 has layout 2's keys; the action and IM hashes keep their fields under short
names (``keyspace.COMPACT_FIELDS``). The scenario of ``test_layout2`` (writes, every
query, history, tier transitions, pins, check and repair) runs on layout 2 and on
layout 3: every result must be equal, and every key of the layout-3 run must be the
layout-2 key of the same type and content, its hash fields renamed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis
from _support import act
from test_layout2 import LAYOUT_KEY, _no_time, scenario
from test_layout2 import content as content_with_times

import agentmem
from agentmem.plans import keyspace

SHORT = {k.encode(): v.encode() for k, v in keyspace.COMPACT_FIELDS.items()}


def content(r: redis.Redis) -> dict[str, Any]:
    """``test_layout2.content`` without layout 3's write time either (``w``)."""
    out = content_with_times(r)
    for key, (t, value, ttl) in out.items():
        if t == "hash":
            out[key] = (t, {k: v for k, v in value.items() if k != b"w"}, ttl)
    return out


def scenario_on(server: Any, r: redis.Redis, tmp_path: Path, old: int, new: int
                ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    """``test_layout2``'s scenario on a fresh store of layout ``old``, then of ``new``:
    the results of each, then the content of each."""
    results, contents = [], []
    for version in (old, new):
        r.flushdb()
        with agentmem.connect(server.url, layout_version=version) as mem:
            results.append(scenario(mem, tmp_path))
        assert r.get(LAYOUT_KEY) == str(version).encode()
        contents.append(content(r))
    return results[0], results[1], contents[0], contents[1]


@pytest.fixture
def runs(server: Any, r: redis.Redis, tmp_path: Path
         ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    return scenario_on(server, r, tmp_path, 2, 3)


def compacted(c2: dict[str, Any]) -> dict[str, Any]:
    """Layout-2 content with the action and IM hashes' fields renamed as layout 3 keeps them."""
    lay = keyspace.layout(2)
    out = {}
    for key, (t, value, ttl) in c2.items():
        family = lay.parse(key)[0]  # type: ignore[index]
        if family in ("action", "im_action"):
            value = {SHORT[k]: v for k, v in value.items()}
        out[key] = (t, value, ttl)
    return out


def test_every_operation_gives_the_same_results_on_layout_3(runs) -> None:
    res2, res3, _, _ = runs
    assert res2.keys() == res3.keys()
    for name in res2:
        assert _no_time(res3[name]) == _no_time(res2[name]), name
    assert res3["history"]
    assert res3["transition"] == ["a1-3-eat", "a1-4-share"]


def test_layout_3_keys_are_layout_2_keys_with_short_hash_fields(runs) -> None:
    _, _, c2, c3 = runs
    assert compacted(c2) == c3
    lay = keyspace.layout(3)
    hashes = [v for k, (t, v, _) in c3.items() if lay.parse(k)[0] == "action"]  # type: ignore[index]
    assert hashes
    assert all(set(h) <= set(SHORT.values()) for h in hashes)
    assert {b"i", b"a", b"s", b"n", b"t"} <= set(hashes[0])


def test_a_layout_3_hash_takes_less_memory(server: Any, r: redis.Redis) -> None:
    used = {}
    for version in (2, 3):
        r.flushdb()
        with agentmem.connect(server.url, layout_version=version) as mem:
            mem.actions.add(act("a1", 1, "move", sim="s1", reward=0.5, position=(1.0, 2.0),
                                details={"k": 1}))
        used[version] = r.memory_usage("agent:{a1}:action:a1-1-move", samples=0)
    assert used[3] < used[2]


def test_layout_2_data_and_a_layout_3_client(server: Any, r: redis.Redis) -> None:
    with agentmem.connect(server.url, layout_version=2) as mem:
        mem.actions.add(act())
    before = content(r)
    with agentmem.connect(server.url, layout_version=3) as mem3, \
            pytest.raises(agentmem.LayoutError,
                          match=r"records layout version 2.*`agentmem migrate upgrade 0004`"):
        mem3.actions.add(act(step=2))
    assert content(r) == before


def test_a_refused_update_names_the_field_not_its_hash_field(server: Any, r: redis.Redis
                                                             ) -> None:
    with agentmem.connect(server.url, layout_version=3) as mem:
        stored = mem.actions.add(act("a1", 1, "move", sim="s1"))
        with pytest.raises(agentmem.InvalidInput, match=r"^simulation_id is part of"):
            mem.actions.update(stored.model_copy(update={"simulation_id": "s2"}))
        assert mem.actions.get(stored.action_id, agent_id="a1") == stored
