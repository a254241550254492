"""``agentmem maintain`` runs maintenance in batches of agents and sums their reports:
every count a report has is summed (``changed`` was left out when it came), the refused
ids joined."""

from __future__ import annotations

from dataclasses import fields

from agentmem.cli.maintenance import _add
from agentmem.tiers import MaintainReport


def test_every_count_of_the_batches_reports_is_summed() -> None:
    counts = [f.name for f in fields(MaintainReport)
              if type(getattr(MaintainReport(), f.name)) is int]
    assert {"to_im", "archived", "evicted", "missing", "pinned", "changed"} <= set(counts)
    total, one, two = MaintainReport(), MaintainReport(), MaintainReport()
    for n, name in enumerate(counts, 1):
        setattr(one, name, n)
        setattr(two, name, 10 * n)
    one.refused, two.refused = ["a"], ["b"]
    _add(total, one)
    _add(total, two)
    assert {name: getattr(total, name) for name in counts} == {
        name: 11 * n for n, name in enumerate(counts, 1)}
    assert total.refused == ["a", "b"]
    assert total.dry_run is False
