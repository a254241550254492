"""Each Lua script on a real server (Redis 7 and Valkey 9): it loads under its SHA1,
and the scripts with a small contract are called directly with the KEYS and ARGV
their header states, their reply and writes checked. The large ones (the write,
the tier move, integrity, radius search, sequence and history, the fetch scripts,
the outbox) are called directly in test_lua_contracts_large.py, the tier and
integrity scripts (the cluster parts of the move included) in
test_lua_contracts_tiers.py, the read scripts in test_lua_contracts_reads.py and
``evict_plan`` against a reference ranking in test_evict_plan.py; here, a parity
test per read script against the repository query."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import redis

import agentmem
from agentmem import Action
from agentmem.lua import cluster, migrations, scripts, search, tiers
from agentmem.lua.loader import Script

MODULES = ["scripts", "tiers", "integrity", "cluster", "search", "radius", "migrations",
           "dualwrite"]


def _all() -> list[Script]:
    out: dict[str, Script] = {}
    for m in MODULES:
        for v in vars(importlib.import_module(f"agentmem.lua.{m}")).values():
            if isinstance(v, Script):
                out[v.name] = v
    return sorted(out.values(), key=lambda s: s.name)


@pytest.mark.parametrize("script", _all(), ids=lambda s: s.name)
def test_every_script_loads_under_its_sha(r: redis.Redis, script: Script) -> None:
    assert r.script_load(script.source) == script.sha


def _run(r: redis.Redis, script: Script, keys: list[str], *argv: object) -> object:
    return r.evalsha(script.sha, len(keys), *keys, *argv) if r.script_exists(script.sha)[0] \
        else r.eval(script.source, len(keys), *keys, *argv)


def test_claim_records_once(r: redis.Redis) -> None:
    assert _run(r, scripts.CLAIM, ["cfg"], "1.5") is None
    assert r.get("cfg") == b"1.5"
    assert _run(r, scripts.CLAIM, ["cfg"], "2.0") == b"1.5"


def test_claim_layout(r: redis.Redis) -> None:
    assert _run(r, scripts.CLAIM_LAYOUT, ["agentmem:layout"], "1") is None  # 1: nothing kept
    assert _run(r, scripts.CLAIM_LAYOUT, ["agentmem:layout"], "2") == b"2"
    assert _run(r, scripts.CLAIM_LAYOUT, ["agentmem:layout"], "3") == b"2"


def test_claim_layout_cluster(r: redis.Redis) -> None:
    assert _run(r, cluster.CLAIM_LAYOUT_CLUSTER, ["agentmem:layout"], "2", "0") is None
    assert _run(r, cluster.CLAIM_LAYOUT_CLUSTER, ["agentmem:layout"], "2", "1") == b"2"


def test_get_many(r: redis.Redis) -> None:
    r.hset("h:1:x", mapping={"a": "1"})
    assert _run(r, scripts.GET_MANY, [], "h:", ":x", "1", "2") == [[b"a", b"1"], []]


def test_pin_and_unpin(r: redis.Redis) -> None:
    assert _run(r, tiers.PIN, ["pins", "stm", "im"], "1", "a1-1-move", "100", "50") == 0
    assert not r.exists("pins")  # no such action: nothing pinned
    r.hset("stm", "f", "1")
    r.expire("stm", 100)
    r.hset("im", "f", "1")
    assert _run(r, tiers.PIN, ["pins", "stm", "im"], "1", "a1-1-move", "100", "50") == 1
    assert r.smembers("pins") == {b"a1-1-move"}
    assert r.ttl("stm") == -1
    assert _run(r, tiers.PIN, ["pins", "stm", "im"], "0", "a1-1-move", "100", "50") == 1
    assert r.smembers("pins") == set()
    assert 0 < r.ttl("stm") <= 100
    assert 0 < r.ttl("im") <= 50
    r.delete("stm")
    assert _run(r, tiers.PIN, ["pins", "stm", "im"], "1", "a1-1-move", "100", "50") == 2


def test_evict_im(r: redis.Redis) -> None:
    r.hset("im:a:x", "f", "1")
    r.hset("im:c:x", "f", "1")
    r.zadd("itl", {"a": 1, "b": 2, "c": 3})
    r.sadd("pins", "c")
    assert _run(r, tiers.EVICT_IM, [], "im:", ":x", "itl", "pins", "a", "b", "c") == 1
    assert r.zrange("itl", 0, -1) == [b"c"]  # pinned: stays
    assert r.exists("im:c:x")
    assert _run(r, tiers.EVICT_IM, [], "im:", ":x", "itl", "", "c") == 1
    assert r.zcard("itl") == 0


def test_set_counters_only_when_the_list_did_not_change(r: redis.Redis) -> None:
    r.rpush("list", "a", "b")
    assert _run(r, cluster.SET_COUNTERS, [], "list", "counts", 3, "move", 2) == 0
    assert _run(r, cluster.SET_COUNTERS, [], "list", "counts", 2, "move", 2) == 1
    assert r.hgetall("counts") == {b"move": b"2"}


def test_migration_state_replaces_the_progress_hash(r: redis.Redis) -> None:
    keys = ["agentmem:layout", "agentmem:layout:revision", "agentmem:layout:progress"]
    assert _run(r, migrations.MIGRATION_STATE, keys, "1>2", "", "phase", "move", "n:a", "3") == 1
    assert r.get("agentmem:layout") == b"1>2"
    assert not r.exists("agentmem:layout:revision")
    assert r.hgetall(keys[2]) == {b"phase": b"move", b"n:a": b"3"}
    _run(r, migrations.MIGRATION_STATE, keys, "", "", "phase", "verify")
    assert r.hgetall(keys[2]) == {b"phase": b"verify"}  # replaced, not merged
    assert r.get("agentmem:layout") == b"1>2"  # '' leaves it
    _run(r, migrations.MIGRATION_STATE, keys, "2", "0002")
    assert (r.get(keys[0]), r.get(keys[1]), r.exists(keys[2])) == (b"2", b"0002", 0)


def test_details_cas_writes_only_over_what_was_read(r: redis.Redis) -> None:
    r.hset("h", mapping={"details": '{"a": 1}', "step": 3})
    r.expire("h", 100)
    assert _run(r, migrations.DETAILS_CAS, ["h"], '{"a": 2}', '{"a":2}') == 0
    assert _run(r, migrations.DETAILS_CAS, ["h"], '{"a": 1}', '{"a":1}') == 1
    assert r.hget("h", "details") == b'{"a":1}'
    assert r.ttl("h") > 0
    assert _run(r, migrations.DETAILS_CAS, ["gone"], '{"a": 1}', "x") == 0
    assert not r.exists("gone")


def test_timeline_text(r: redis.Redis) -> None:
    r.zadd("tl", {"a1-1-move": 1, "a1-2-eat": 2})
    assert _run(r, search.TIMELINE, [], "tl") == b"a1-1-move\n1\na1-2-eat\n2"


def test_vectors(r: redis.Redis) -> None:
    emb = np.arange(3, dtype="<f4").tobytes()
    r.hset("h:1", mapping={"t": "move", "e": emb})
    reply = _run(r, search.VECTORS, [], "h:", "", "t", "e", "1", "2")
    assert reply == [b"move", emb, None, None]  # false (nil here) where the hash is gone


@pytest.mark.parametrize("version", [1, 2])
def test_read_scripts_agree_with_their_queries(connect, version: int) -> None:
    """Parity: the fetch scripts return what the repository queries decode."""
    mem: agentmem.Memory = connect(layout_version=version)
    acts = [Action(agent_id="a1", simulation_id="s1", step_number=i, action_type="move",
                   reward=i / 10, action_target_id="a2") for i in range(6)]
    mem.actions.add_many(acts)
    assert [a.step_number for a in mem.actions.recent("a1", 3)] == [5, 4, 3]
    assert [a.step_number for a in mem.actions.by_type("a1", "move", 2)] == [5, 4]
    assert [a.step_number for a in mem.actions.high_reward("a1", 0.3)] == [5, 4, 3]
    assert mem.actions.relative("a1", -1).step_number == 4
    assert [a.step_number for a in mem.actions.at_step("s1", 2)] == [2]
    assert [a.step_number for a in mem.actions.history("a1")] == list(range(6))
