"""The write script's one MessagePack argument on real servers: every value the script
does not read as a count goes as text, whatever its size (an int beyond 64 bits does
not fit a MessagePack integer)."""

from __future__ import annotations

import redis
from pydantic import BaseModel

import agentmem
from agentmem import SortedIndex, declare
from agentmem.model.schema import Retired


class Tick(BaseModel):
    model_config = {"frozen": True}
    tick_id: str | None = None
    sim: str
    agent: str
    step: int
    seq: int  # the retired order: any int, not a sorted-set score


TICKS = declare(Tick, key="t:{agent}:{tick_id}", id="tick_id", id_template="{agent}-{step}",
                retired=Retired("t:{agent}:retired", scope="sim", order="seq"),
                indexes=[SortedIndex("tl", "t:{agent}:tl", score="step")])


def test_an_int_beyond_64_bits_as_retired_order_is_stored(mem: agentmem.Memory,
                                                          r: redis.Redis) -> None:
    # before 4bdd6d9 it was sent as text; now as a MessagePack int: OverflowError
    # (not an AgentMemError) from msgpack while the runner is writing the calls
    repo = mem.repository(TICKS)
    stored = repo.add(Tick(sim="s", agent="a", step=1, seq=2**64))
    assert stored.tick_id == "a-1"
    assert r.hget("t:a:a-1", "seq") == str(2**64).encode()


def test_a_record_beyond_the_first_batches_with_such_an_order_stores_every_record(
        connect, r: redis.Redis) -> None:
    # before the fix: the first batches were sent and run, then builtins.OverflowError
    # (no WriteError, no stored ids) when the call holding seq=2**64 was packed
    repo = connect(batch_size=100).repository(TICKS)
    ticks = [Tick(sim="s", agent="a", step=i, seq=1) for i in range(1, 3000)]
    ticks.append(Tick(sim="s", agent="a", step=5000, seq=-2**64))
    assert len(repo.add_many(ticks)) == 3000
    assert r.zcard("t:a:tl") == 3000
