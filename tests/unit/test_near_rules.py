"""The parts of test_near.py that need no server (moved from tests/integration)."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from agentmem import declare
from agentmem.errors import SchemaError
from agentmem.model.schema import GridIndex
from agentmem.plans.grid import OFFSET, TOP, cell_of, code, interleave

# -- the grid, without a server ------------------------------------------------------


def test_cells_clamp_at_the_edges() -> None:
    assert cell_of(0.0, 1.0) == OFFSET
    assert cell_of(-0.5, 1.0) == OFFSET - 1
    assert cell_of(2.5, 0.5) == OFFSET + 5
    assert cell_of(1e300, 1.0) == TOP
    assert cell_of(-1e300, 1.0) == 0
    assert code(0.0, 0.0, 1.0) == interleave(OFFSET, OFFSET)


def test_a_quotient_beyond_every_float_is_the_edge_cell() -> None:
    # 1.7e308 / 0.001 is infinite: math.floor raised OverflowError on the write path
    assert cell_of(1.7e308, 0.001) == TOP
    assert cell_of(-1.7e308, 0.001) == 0
    assert code(1.7e308, -1.7e308, 0.001) == interleave(TOP, 0)


# -- against a server ----------------------------------------------------------------


class Beacon(BaseModel):
    beacon_id: str
    zone: str
    x: float
    y: float
    power: int = 0


def test_declarations_of_grid_indices_are_checked() -> None:
    with pytest.raises(SchemaError, match="int or a float"):
        declare(Beacon, key="b:{beacon_id}", id="beacon_id",
                indexes=[GridIndex("g", "g", x="zone", y="y")])
    with pytest.raises(SchemaError, match="cell"):
        declare(Beacon, key="b:{beacon_id}", id="beacon_id",
                indexes=[GridIndex("g", "g", x="x", y="y", cell=0.0)])
    with pytest.raises(SchemaError, match="unknown fields"):
        declare(Beacon, key="b:{beacon_id}", id="beacon_id",
                indexes=[GridIndex("g", "g", x="x", y="nope")])
