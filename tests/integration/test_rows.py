"""add_rows and add_columns on real servers: byte for byte what add_many of the same
Action objects stores (every hash and every index), ids in order, nothing written when
a row is refused, the server's refusals as add_many reports them; blocking and asyncio,
actions and a declared model."""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
import pytest
import redis
from pydantic import BeforeValidator, StringConstraints, field_validator

import agentmem
from agentmem.errors import DuplicateId, InvalidInput
from agentmem.model.records import Action


def rows(n: int = 300) -> list[dict[str, Any]]:
    types = ["move", "eat", "attack", "share"]
    out: list[dict[str, Any]] = []
    for i in range(n):
        row: dict[str, Any] = {
            "agent_id": f"agent_{i % 7}", "simulation_id": f"sim{i % 2}",
            "step_number": i // 14, "action_type": types[i % 4],
            "reward": ((i * 37) % 19) / 10 - 0.5, "details": {"i": i, "t": [i % 3, "x"]},
            "resources_before": float(i), "resources_after": i + 1,
        }
        if i % 3:
            row["action_target_id"] = f"agent_{(i + 1) % 7}"
        if i % 2:
            row["position"] = (i % 5, (i % 3) / 2)
        if i % 5 == 0:
            row["embedding"] = np.full(4, i, np.float32)
        if i % 11 == 0:
            row["module_type"], row["state_before_id"] = "m", f"st{i}"
        out.append(row)
    # the same agent, step and type again: renumbered .1, .2 within the call
    out += [{"agent_id": "agent_1", "simulation_id": "sim1", "step_number": 0,
             "action_type": "move", "reward": 1.0} for _ in range(3)]
    out.append({"agent_id": "agent_2", "simulation_id": "sim0", "step_number": 5,
                "action_type": "eat", "action_id": "agent_2-5-custom"})
    return out


def columns(data: list[dict[str, Any]]) -> dict[str, Any]:
    """The rows as columns: numpy arrays where a column is all numbers."""
    names = sorted({k for r in data for k in r})
    cols: dict[str, Any] = {n: [r.get(n) for r in data] for n in names}
    cols["step_number"] = np.array(cols["step_number"])
    cols["reward"] = np.array([np.nan if v is None else v for v in cols["reward"]])
    return cols


def snapshot(r: redis.Redis) -> dict[bytes, Any]:
    """Every key's type and content; a hash's write time (``stored_at``, layout 3's ``w``)
    only as present (it is the server's clock), its expiry as set or not."""
    out: dict[bytes, Any] = {}
    for key in r.scan_iter(count=1000):
        t = r.type(key)
        if t == b"hash":
            h = r.hgetall(key)
            for stamp in (b"stored_at", b"w"):  # the write time (layout 3 names it w)
                if stamp in h:
                    h[stamp] = b"<set>"
            content: Any = h
        elif t == b"zset":
            content = r.zrange(key, 0, -1, withscores=True)
        elif t == b"set":
            content = sorted(r.smembers(key))
        elif t == b"list":
            content = r.lrange(key, 0, -1)
        else:
            content = r.dump(key)
        out[key] = (t, content, r.ttl(key) > 0)
    return out


def data_keys(r: redis.Redis) -> dict[bytes, Any]:
    """:func:`snapshot` without the grid cell, which a store records on its first write."""
    return {k: v for k, v in snapshot(r).items() if k != b"agentmem:grid_cell"}


def test_rows_and_columns_store_what_add_many_stores(r: redis.Redis, mem: agentmem.Memory,
                                                     connect: Any) -> None:
    data = rows()
    stored = mem.actions.add_many([Action(**d) for d in data])
    want = snapshot(r)
    assert len(want) > 300
    r.flushdb()
    mem2 = connect()  # a store that has not seen the grid cell
    ids = mem2.actions.add_rows(data)
    assert ids == [a.action_id for a in stored]
    assert ids[-4:] == ["agent_1-0-move.1", "agent_1-0-move.2", "agent_1-0-move.3",
                        "agent_2-5-custom"]
    assert snapshot(r) == want
    r.flushdb()
    cols = columns(data)
    # the rows without a reward: the column is NaN there, refused; give None instead
    cols["reward"] = [None if np.isnan(v) else v for v in cols["reward"].tolist()]
    assert connect().actions.add_columns(cols) == ids  # again a store new to the grid cell
    assert snapshot(r) == want


def test_ids_taken_on_the_server_renumbered_as_add_many(r: redis.Redis,
                                                        mem: agentmem.Memory) -> None:
    row = {"agent_id": "a1", "simulation_id": "s", "step_number": 1, "action_type": "move"}
    mem.actions.add_rows([row])
    assert mem.actions.add_rows([row, row]) == ["a1-1-move.1", "a1-1-move.2"]
    given = {**row, "action_id": "a1-1-move"}
    with pytest.raises(DuplicateId, match="1 of 1 records refused"):
        mem.actions.add_rows([given])


def test_nothing_to_write(r: redis.Redis, mem: agentmem.Memory) -> None:
    assert mem.actions.add_rows([]) == []
    assert mem.actions.add_rows(iter([])) == []
    assert mem.actions.add_columns({}) == []
    assert mem.actions.add_columns({"agent_id": [], "step_number": np.array([])}) == []
    assert r.dbsize() == 0


def test_rows_from_a_generator(r: redis.Redis, mem: agentmem.Memory) -> None:
    data = rows(20)
    ids = mem.actions.add_rows(d for d in data)
    assert ids[:20] == [f"{d['agent_id']}-{d['step_number']}-{d['action_type']}"
                        for d in data[:20]]
    assert len(ids) == len(data) == sum(mem.actions.count("sim_actions", simulation_id=s)
                                        for s in ("sim0", "sim1"))


@pytest.mark.parametrize("bad", [None, 5, 2.5])
def test_not_an_iterable_of_records_is_invalid_input(r: redis.Redis, mem: agentmem.Memory,
                                                     bad: Any) -> None:
    """``add_rows(None)`` and ``add_many(5)`` raised a bare TypeError (review 120): now
    InvalidInput, as ``add_columns(None)`` and a step log's ``add(None)`` give, and
    nothing is written."""
    for write in (mem.actions.add_rows, mem.actions.add_many, mem.actions.add_columns,
                  lambda x: mem.actions.step_log().add(x)):
        with pytest.raises(InvalidInput):
            write(bad)
    assert r.dbsize() == 0


def test_a_bad_row_writes_nothing(r: redis.Redis, mem: agentmem.Memory) -> None:
    data = rows(50)
    data[37] = {**data[37], "reward": float("nan")}
    with pytest.raises(InvalidInput, match=r"row 37: .*reward"):
        mem.actions.add_rows(data)
    cols = columns(rows(50))
    cols["step_number"][12] = -3
    with pytest.raises(InvalidInput, match=r"row 12: .*step_number"):
        mem.actions.add_columns(cols)
    assert r.dbsize() == 0


async def test_async_rows(r: redis.Redis, amem: agentmem.AsyncMemory) -> None:
    data = rows(60)
    ids = await amem.actions.add_rows(data)
    want = data_keys(r)
    r.flushdb()
    stored = await amem.actions.add_many([Action(**d) for d in data])
    assert ids == [a.action_id for a in stored]
    assert data_keys(r) == want
    r.flushdb()
    assert await amem.actions.add_columns(columns(data) | {"reward": [
        d.get("reward") for d in data]}) == ids
    assert data_keys(r) == want


def test_declared_model_rows(r: redis.Redis, mem: agentmem.Memory) -> None:
    from agentmem.model.records import IMAction

    data = [{"action_id": f"a1-{i}-move", "agent_id": "a1", "simulation_id": "s1",
             "step_number": i, "action_type": "move", "reward": i / 4,
             "importance": 0.25} for i in range(20)]
    stored = mem.im_actions.add_many([IMAction(**d) for d in data])
    want = snapshot(r)
    r.flushdb()
    assert mem.im_actions.add_rows(data) == [a.action_id for a in stored]
    assert snapshot(r) == want
    with pytest.raises(InvalidInput, match=r"row 1: .*importance"):
        mem.im_actions.add_rows([data[0], {**data[1], "importance": 2.0}])


def _tail(value: Any, tail: str) -> Any:
    return value + tail if isinstance(value, str) else value


class Tagged(agentmem.Record):
    """Validators run in pydantic's order (the last given first); a pattern field."""

    tid: str | None = None
    name: agentmem.Identifier
    code: Annotated[str, StringConstraints(pattern=r"^[a-z]+$")]
    tag: Annotated[str, BeforeValidator(lambda v: _tail(v, "f")),
                   BeforeValidator(lambda v: _tail(v, "g"))]
    n: int

    @field_validator("n", mode="before")
    @classmethod
    def _times_three(cls, value: Any) -> Any:
        return value * 3 if type(value) is int else value

    @field_validator("n", mode="before")
    @classmethod
    def _plus_five(cls, value: Any) -> Any:
        return value + 5 if type(value) is int else value


TAGGED = agentmem.declare(Tagged, key="tagged:{tid}", id="tid", id_template="{name}",
                          indexes=[])


def test_rows_validated_in_pydantic_order_and_like_its_patterns(r: redis.Redis,
                                                                 mem: agentmem.Memory) -> None:
    repo = mem.repository(TAGGED)
    row = {"name": "t1", "code": "ab", "tag": "x", "n": 1}
    model = Tagged(**row)
    assert (model.tag, model.n) == ("xgf", 18)
    repo.add_many([model])
    want = snapshot(r)
    r.flushdb()
    assert repo.add_rows([row]) == ["t1"]
    assert snapshot(r) == want
    r.flushdb()
    assert repo.add_columns({k: [v] for k, v in row.items()}) == ["t1"]
    assert snapshot(r) == want
    r.flushdb()
    with pytest.raises(InvalidInput, match="code"):  # the model refuses it
        Tagged(**{**row, "code": ""})
    with pytest.raises(InvalidInput, match=r"row 0: .*code"):
        repo.add_rows([{**row, "code": ""}])
    assert r.dbsize() == 0


@pytest.mark.parametrize("column", [{"b", "a", "c"}, frozenset({"b", "a", "c"}),
                                    {"x": "b", "y": "a", "z": "c"}], ids=type)
def test_a_column_without_positions_is_refused(r: redis.Redis, mem: agentmem.Memory,
                                               column: Any) -> None:
    """A set or a mapping has no value per row: refused, not read in its own order."""
    cols = {"agent_id": column, "simulation_id": ["s"] * 3, "step_number": [1, 2, 3],
            "action_type": ["move"] * 3}
    with pytest.raises(InvalidInput, match="column 'agent_id' is not a sequence"):
        mem.actions.add_columns(cols)
    with pytest.raises(InvalidInput, match="column 'agent_id' is not a sequence"):
        mem.actions.add_columns({**cols, "step_number": [1, 2, -3]})
    assert r.dbsize() == 0
