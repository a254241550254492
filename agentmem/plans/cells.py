"""The grid cell a server's radius-search indices were written with, as the server
records it (pure: parses and checks the recorded value, never talks to a server)."""

from __future__ import annotations

import math

from agentmem.errors import LayoutError

GRID_CELL_KEY = "agentmem:grid_cell"
"""The key where a server records the grid cell of its radius-search indices (``"1.0"``).

A grid score is only meaningful with the cell it was computed with, so the first
store to use a server records its ``grid_cell`` here and every later store must
have the same (:func:`check_recorded_cell`). Outside every family, like
:data:`LAYOUT_KEY`.
"""

NO_GRIDS = "off"
"""What :data:`GRID_CELL_KEY` holds when the data's stores keep no radius-search grids
(``RedisSettings.grids=False``)."""


def grid_cell_text(cell: float) -> str:
    """How a grid cell is recorded in :data:`GRID_CELL_KEY` (``repr`` of the float)."""
    return repr(float(cell))


def recorded_cell(raw: bytes | str | None) -> float | None:
    """The grid cell a server records in :data:`GRID_CELL_KEY`; ``None`` when there is
    none or its value is no cell a store could have written."""
    if raw is None:
        return None
    try:
        cell = float(raw)
    except ValueError:
        return None
    return cell if math.isfinite(cell) and cell > 0 else None


def check_recorded_cell(raw: bytes | str | None, cell: float, *, grids: bool = True) -> None:
    """Check a store's ``grid_cell`` (and whether it keeps grids) against what the server
    records (``None``: nothing yet).

    Raises :class:`LayoutError` when they differ: grid entries written with one cell
    and searched with another would give wrong answers, and a store without grids
    writing beside stores with them would leave actions out of their searches.
    """
    if raw is None:
        return
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    if text == NO_GRIDS or not grids:
        if text == NO_GRIDS and not grids:
            return
        raise LayoutError(
            f"this store was opened with grids={grids}, but the server's data "
            + ("keeps no radius-search grids" if text == NO_GRIDS
               else f"has radius-search grids of cell {text}")
            + f" ({GRID_CELL_KEY}); open it with grids={not grids}, or change the data: "
            f"delete {GRID_CELL_KEY} and run agentmem.integrity.repair() with a store of the "
            "setting wanted")
    if recorded_cell(raw) == float(cell):
        return
    raise LayoutError(
        f"this store was opened with grid_cell={float(cell)!r}, but the server's radius-search "
        f"grids use {text!r} ({GRID_CELL_KEY}); open it with grid_cell={text}, or change the "
        f"cell of the data: delete {GRID_CELL_KEY} and run agentmem.integrity.repair() with a "
        "store of the new cell, which rescores every grid entry")
