"""Reading the write script's reply: the write time, changed ids and refusals (a call
refused because Redis lost the dual writer's retired marks: :data:`UNSEEDED`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class BatchResult:
    """The script's answer for one batch."""

    written: bool
    stamp: int | None = None
    changed: dict[int, str] | None = None  # 0-based record -> id chosen on the server
    bad_keys: tuple[str, ...] = ()  # keys of a wrong type (nothing was written)
    conflicts: tuple[int, ...] = ()  # 0-based records whose given id exists (nothing written)
    unseeded: bool = False  # the dual writer's marker gone or changed (nothing written)


UNSEEDED = (
    "UNSEEDED: Redis lost the retired marks since this writer seeded them (the marker "
    "agentmem:ids is gone or holds another seeding's token: a flush, an eviction, a "
    "restart): this call wrote nothing")
"""The reason of each record of a call the write script refused for it
(``WriteError.failed``); the calls before it in the same write may have been stored."""


def parse_batch(reply: Sequence[Any]) -> BatchResult:
    items = [x.decode() if isinstance(x, bytes) else str(x) for x in reply]
    head = items[0]
    if head == "\x00WRONGTYPE":
        return BatchResult(False, bad_keys=tuple(items[1:]))
    if head == "\x00EXISTS":
        return BatchResult(False, conflicts=tuple(int(x) - 1 for x in items[1:]))
    if head == "\x00UNSEEDED":
        return BatchResult(False, unseeded=True)
    changed = {int(items[i]) - 1: items[i + 1] for i in range(1, len(items), 2)}
    return BatchResult(True, int(head) if head else None, changed)
