"""The archive is exactly-once and safe under concurrency (agentmem.backends.sql).

Real SQLite files and a real PostgreSQL (a schema per test), real concurrent
processes: any number of writers archiving overlapping actions into one archive
never fail and insert each action once; a different action under an archived id
is refused loudly (``DuplicateId``), never dropped; a deleted archive file is an
error, never silent loss; a new archive file is private to its owner.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select
from test_sql_archive import Db, db, make_actions  # noqa: F401 - db: the sqlite/postgresql fixture

from agentmem.backends.sql import action_extras, agent_actions, open_archive
from agentmem.errors import AgentMemError, BackendError, DuplicateId

WRITERS = 4
ACTIONS = 600


def _archive_in_chunks(url: str, seed: int, start: mp.synchronize.Event,
                       results: mp.Queue) -> None:  # type: ignore[type-arg]
    """One writer process: every action, in its own random order and chunk sizes."""
    try:
        actions = make_actions(ACTIONS)
        rng = random.Random(seed)
        rng.shuffle(actions)
        inserted = 0
        with open_archive(url) as archive:
            start.wait(30)
            i = 0
            while i < len(actions):
                n = rng.randint(1, 80)
                inserted += archive.write(actions[i:i + n])
                i += n
        results.put(("ok", inserted))
    except BaseException as exc:  # reported to the test, which fails with it
        results.put(("error", f"{type(exc).__name__}: {exc}"))


def _rows(where: Db) -> tuple[int, int]:
    engine = where.engine()
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(func.count()).select_from(agent_actions)).scalar_one()
            keys = conn.execute(select(func.count()).select_from(
                select(action_extras.c.simulation_id, action_extras.c.agent_id,
                       action_extras.c.action_id).distinct().subquery())).scalar_one()
        return rows, keys
    finally:
        engine.dispose()


@pytest.mark.slow
def test_concurrent_writers_never_fail_and_insert_each_action_once(db: Db) -> None:  # noqa: F811
    with open_archive(db.url):
        pass  # the schema exists before the writers race
    ctx = mp.get_context("spawn")
    start = ctx.Event()
    results: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    procs = [ctx.Process(target=_archive_in_chunks, args=(db.url, seed, start, results))
             for seed in range(WRITERS)]
    for p in procs:
        p.start()
    start.set()
    outcomes = [results.get(timeout=240) for _ in procs]
    for p in procs:
        p.join(30)
    errors = [o[1] for o in outcomes if o[0] == "error"]
    assert not errors, errors
    inserted = sum(int(o[1]) for o in outcomes)
    assert inserted == ACTIONS  # each action inserted by exactly one writer
    assert _rows(db) == (ACTIONS, ACTIONS)
    with open_archive(db.url) as archive:
        by_id = {(a.agent_id, a.action_id): a for a in archive.read("sim_3f9a2c1d")}
    assert len(by_id) == ACTIONS
    for a in make_actions(ACTIONS):
        assert by_id[(a.agent_id, a.action_id)].model_copy(update={"stored_at": None}) \
            == a.model_copy(update={"stored_at": None})


def test_a_different_action_under_an_archived_id_is_refused_not_dropped(db: Db) -> None:  # noqa: F811
    actions = make_actions(20)
    with open_archive(db.url) as archive:
        assert archive.write(actions[:10]) == 10
        other = actions[3].model_copy(update={"reward": 123.0, "step_number": 77})
        batch = [actions[10], other, actions[11], actions[4]]
        with pytest.raises(DuplicateId) as info:
            archive.write(batch)
        err = info.value
        assert isinstance(err, AgentMemError)
        assert list(err.failed) == [1]
        assert actions[3].action_id in err.failed[1]
        assert err.stored == [actions[10].action_id, actions[11].action_id]
        assert archive.count() == 12  # the two new ones are in, the conflict is not
        kept = {a.action_id: a for a in archive.read("sim_3f9a2c1d")
                if a.agent_id == actions[3].agent_id}
        assert kept[actions[3].action_id].reward == actions[3].reward  # never overwritten


def test_the_same_action_archived_again_is_skipped_whatever_its_write_time(db: Db) -> None:  # noqa: F811
    actions = make_actions(30)
    with open_archive(db.url) as archive:
        assert archive.write(actions) == 30
        again = [a.model_copy(update={"stored_at": 1_800_000_000}) for a in actions]
        assert archive.write(again) == 0
        assert archive.write(actions + actions) == 0  # twice in one call too
        assert archive.count() == 30


def test_one_call_with_two_different_actions_under_one_id(db: Db) -> None:  # noqa: F811
    a = make_actions(1)[0]
    b = a.model_copy(update={"action_type": "attack"})
    with open_archive(db.url) as archive, pytest.raises(DuplicateId) as info:
        archive.write([a, b])
    assert list(info.value.failed) == [1]
    assert info.value.stored == [a.action_id]


def test_a_deleted_archive_file_is_an_error_not_silent_loss(tmp_path: Path) -> None:
    path = tmp_path / "archive.db"
    actions = make_actions(10)
    with open_archive(path) as archive:
        assert archive.write(actions[:5]) == 5
        for suffix in ("", "-wal", "-shm"):
            if Path(f"{path}{suffix}").exists():
                os.unlink(f"{path}{suffix}")
        with pytest.raises(BackendError, match="deleted"):
            archive.write(actions[5:])
    with open_archive(path) as archive:  # opened again: a new, empty archive
        assert archive.count() == 0
        assert archive.write(actions[5:]) == 5


def test_a_replaced_archive_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "archive.db"
    with open_archive(path) as archive:
        archive.write(make_actions(3))
        os.replace(path, tmp_path / "moved.db")
        with open_archive(path):
            pass  # a new file at the same path
        with pytest.raises(BackendError, match="replaced"):
            archive.write(make_actions(5)[3:])


def test_a_new_archive_file_is_private_to_its_owner(tmp_path: Path) -> None:
    path = tmp_path / "private.db"
    with open_archive(path) as archive:
        archive.write(make_actions(3))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_processes_opening_a_new_archive_at_once_all_succeed(db: Db) -> None:  # noqa: F811
    """Eight processes open one archive that does not exist yet (each creates the tables
    it finds missing): none fails, and the tables exist once."""
    script = (
        "import sys\n"
        "from agentmem.backends.sql import open_archive\n"
        "open_archive(sys.argv[1]).close()\n")
    procs = [subprocess.Popen([sys.executable, "-c", script, db.url], stderr=subprocess.PIPE,
                              text=True) for _ in range(8)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, [e for e in errors if e][:1]
    with open_archive(db.url) as archive:
        assert archive.count() == 0
