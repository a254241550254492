"""Renaming archived actions' ids several at a time (``backends.archiverename``), on
SQLite and PostgreSQL: chains and swaps land, each row once; a new id another row keeps
renames nothing; repeated or colliding renames are refused before anything changes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from test_sql_archive import db_of

from agentmem import Action
from agentmem.backends.archiverename import rename_archived
from agentmem.backends.sql import Archive, open_archive
from agentmem.errors import BackendError, InvalidInput

SIM = "sim_r"


@pytest.fixture(params=["sqlite", "postgresql"])
def archive(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Archive]:
    for db in db_of(request.param, tmp_path):
        a = open_archive(db.url)
        yield a
        a.close()


def act(aid: str, reward: float, agent: str = "a1") -> Action:
    return Action(agent_id=agent, simulation_id=SIM, step_number=2, action_type="move",
                  action_id=aid, reward=reward)


def ids(archive: Archive) -> list[tuple[str, str, float]]:
    return sorted((a.agent_id, str(a.action_id), a.reward or 0.0)
                  for a in archive.read(SIM))


def test_a_chain_and_a_swap_land_each_row_once(archive: Archive) -> None:
    archive.write([act("a1-2-move", 1.0), act("a1-2-move.1", 2.0), act("a1-2-move.2", 3.0),
                   act("x", 4.0, "a2"), act("y", 5.0, "a2")])
    n = rename_archived(archive, [
        (SIM, "a1", "a1-2-move", "a1-2-move.1"), (SIM, "a1", "a1-2-move.1", "a1-2-move.2"),
        (SIM, "a1", "a1-2-move.2", "a1-2-move.3"),
        (SIM, "a2", "x", "y"), (SIM, "a2", "y", "x")])
    assert n == 5
    assert ids(archive) == [("a1", "a1-2-move.1", 1.0), ("a1", "a1-2-move.2", 2.0),
                            ("a1", "a1-2-move.3", 3.0), ("a2", "x", 5.0), ("a2", "y", 4.0)]


def test_an_id_the_archive_lacks_renames_nothing(archive: Archive) -> None:
    archive.write([act("a1-2-move", 1.0)])
    assert rename_archived(archive, [(SIM, "a1", "absent", "a1-2-move.5"),
                                     (SIM, "a1", "a1-2-move", "a1-2-move.1")]) == 1
    assert ids(archive) == [("a1", "a1-2-move.1", 1.0)]
    assert rename_archived(archive, []) == 0


def test_a_new_id_another_row_keeps_renames_nothing(archive: Archive) -> None:
    archive.write([act("a1-2-move", 1.0), act("a1-2-move.1", 2.0), act("z", 3.0)])
    before = ids(archive)
    with pytest.raises(BackendError):
        rename_archived(archive, [(SIM, "a1", "z", "z.1"),
                                  (SIM, "a1", "a1-2-move", "a1-2-move.1")])
    assert ids(archive) == before


@pytest.mark.parametrize("renames", [
    [(SIM, "a1", "p", "q"), (SIM, "a1", "p", "r")],  # one row renamed twice
    [(SIM, "a1", "p", "r"), (SIM, "a1", "q", "r")],  # two rows to one id
])
def test_repeated_or_colliding_renames_are_refused(archive: Archive,
                                                   renames: list[tuple[str, ...]]) -> None:
    archive.write([act("p", 1.0), act("q", 2.0)])
    before = ids(archive)
    with pytest.raises(InvalidInput, match="renamed once"):
        rename_archived(archive, renames)  # type: ignore[arg-type]
    assert ids(archive) == before
