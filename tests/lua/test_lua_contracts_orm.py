"""The ORM scripts called directly with the ARGV their headers state: ``delete``,
``update`` and ``page`` (lib/unindex.lua's section format), replies and writes checked."""

from __future__ import annotations

import redis

from agentmem.lua import scripts
from agentmem.lua.loader import Script


def _run(r: redis.Redis, script: Script, *argv: object) -> object:
    return r.eval(script.source, 0, *argv)


# one index: a set "tag:{tag}" of ids; one counter "count" of field tag; a sorted set of
# the value of step ("steps") witnessed by the set "step:{step}"; no retired marks
BODY = [4,
        "s", "", 2, "Ltag:", "Ftag", 0,
        "h", "tag", 1, "Lcount", 0,
        "z", "step", 1, "Lsteps", 2, "Lstep:", "Fstep",
        "s", "", 2, "Lstep:", "Fstep", 0,
        0]


def _store(r: redis.Redis) -> None:
    r.hset("rec:1", mapping={"id": "1", "tag": "x", "step": "5"})
    r.sadd("tag:x", "1", "2")
    r.hset("count", mapping={"x": 1})
    r.zadd("steps", {"5": 5})
    r.sadd("step:5", "1")
    r.sadd("pins", "1")


def test_delete_contract(r: redis.Redis) -> None:
    _store(r)
    assert _run(r, scripts.DELETE, 1, "rec:1", "1", *BODY, 1, "pins") == 1
    assert not r.exists("rec:1", "count", "steps", "step:5", "pins")
    assert r.smembers("tag:x") == {b"2"}
    assert _run(r, scripts.DELETE, 1, "rec:1", "1", *BODY, 0) == 0


def test_delete_refuses_a_key_of_another_type(r: redis.Redis) -> None:
    _store(r)
    r.delete("tag:x")
    r.set("tag:x", "oops")
    assert _run(r, scripts.DELETE, 1, "rec:1", "1", *BODY, 0) == [b"\0WRONGTYPE", b"tag:x"]
    assert r.exists("rec:1")


def test_update_contract(r: redis.Redis) -> None:
    _store(r)
    r.expire("rec:1", 100)
    head = ["rec:1", "1", *BODY, 0, "id", ""]
    tail = [4, "tag", "y", "step", "5", 3, "S", "tag:y", 1, "1", "h", "count", 2, "y", 1,
            "S", "step:5", 1, "1"]
    assert _run(r, scripts.UPDATE, *head, 1, "step", "1", "6", *tail) == \
        [b"\0FIXED", b"step", b"5"]
    assert _run(r, scripts.UPDATE, *head, 1, "step", "1", "5", *tail) == [b"\0OK", b""]
    assert r.hgetall("rec:1") == {b"id": b"1", b"tag": b"y", b"step": b"5"}
    assert 0 < r.ttl("rec:1") <= 100
    assert r.smembers("tag:x") == {b"2"}
    assert r.smembers("tag:y") == {b"1"}
    assert r.hgetall("count") == {b"y": b"1"}
    assert r.zrange("steps", 0, -1) == [b"5"]
    r.delete("rec:1")
    assert _run(r, scripts.UPDATE, *head, 0, *tail) == [b"\0MISSING"]


def test_page_contract(r: redis.Redis) -> None:
    r.zadd("z", {"a": 1, "b": 1, "c": 2, "d": 3})
    for m in "abd":
        r.hset(f"h:{m}", "id", m)
    common = ["h:", "", "", "", ""]
    one = _run(r, scripts.PAGE, "z", "z", "", "-inf", "+inf", "0", 2, "", "", *common)
    assert one == [[[b"id", b"a"], [b"id", b"b"]], b"1", b"1", b"b"]
    two = _run(r, scripts.PAGE, "z", "z", "", "-inf", "+inf", "0", 2, "1", "b", *common)
    assert two == [[[b"id", b"d"]], b"0", b"", b""]  # c has no hash
    r.rpush("l", "a", "b", "d")
    first = _run(r, scripts.PAGE, "l", "l", "", "", "", "0", 1, "", "", *common)
    assert first == [[[b"id", b"a"]], b"1", b"1", b""]
    r.sadd("s", "d", "a")
    walked = _run(r, scripts.PAGE, "s", "s", "z", "-inf", "+inf", "1", 5, "", "", *common)
    assert walked == [[[b"id", b"d"], [b"id", b"a"]], b"0", b"", b""]
    by_id = _run(r, scripts.PAGE, "i", "s", "", "", "", "0", 1, "", "", *common)
    assert by_id == [[[b"id", b"a"]], b"1", b"i", b"a"]
