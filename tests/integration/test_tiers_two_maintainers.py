"""Two processes running ``maintain`` on one agent while it is updated, on a real Redis
or Valkey and a real SQLite file, the first maintainer a process of its own.

``maintain`` reads the leaving actions (with the digest of each hash), archives the
version it read, replacing the archived row of the same action, then moves what is
still that version to IM. The first maintainer read v1 and was slow to reach its
archive transaction; the action was updated to v2; the second maintainer read v2,
archived it and moved it to IM (whose compressed form keeps no details). The first
then replaced the archived v2 with v1, and its move found the hash gone: v2 was lost
from every tier. Now the archive write asks, in its write transaction, whether STM
still holds the version read (``tiers/archiving.current_in_stm``): the hash is gone, so
the first keeps the archived v2.

The first maintainer is held after its read without a sleep: the test holds the
archive's write lock (``BEGIN IMMEDIATE`` from another connection), waits until the
server has run the maintainer's read (one more script call in ``INFO commandstats``),
stops the process (SIGSTOP: SQLite's busy wait runs in the process, which holds no
lock then), lets go of the lock, updates, runs the second maintainer and resumes the
first (SIGCONT).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import create_engine, text
from test_sql_archive import db_of
from test_tiers_update_during_move import MAINTAINER, scripts_run

import agentmem
from agentmem import Action
from agentmem.backends.archivedelete import write_updating
from agentmem.backends.sql import open_archive
from agentmem.tiers.archiving import archive_leaving, current_in_stm, read_versions
from agentmem.tiers.maintenance import TierPolicy, Tiers
from agentmem.tiers.shapes import Shapes

SIM = "sim_two"


def test_a_slow_maintainer_keeps_the_version_another_archived_and_moved(
        server: Any, r: redis.Redis, tmp_path: Path) -> None:
    mem = agentmem.connect(server.url)
    stored = mem.actions.add_many([Action(agent_id="x", simulation_id=SIM, step_number=s,
                                          action_type="move", reward=0.1, details={"v": 1})
                                   for s in range(6)])
    path = str(tmp_path / "archive.db")
    with open_archive(path) as archive:
        assert archive.write(stored) == 6  # as a dual writer archives them (v1)
    script = tmp_path / "maintainer.py"
    script.write_text(MAINTAINER)
    kid = subprocess.Popen([sys.executable, str(script), server.url, path],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    stopped = False
    try:
        assert kid.stdin is not None
        assert kid.stdout is not None
        assert kid.stdout.readline().strip() == "ready"
        lock = sqlite3.connect(path, isolation_level=None)
        try:
            lock.execute("BEGIN IMMEDIATE")
            before = scripts_run(r)
            kid.stdin.write("go\n")
            kid.stdin.flush()
            deadline = time.monotonic() + 60
            while scripts_run(r) == before:  # M1's read (get_many) has run: v1
                assert time.monotonic() < deadline, "the maintainer never read STM"
                time.sleep(0.005)
            os.kill(kid.pid, signal.SIGSTOP)  # before its archive transaction
            stopped = True
        finally:
            lock.execute("COMMIT")
            lock.close()
        v1 = mem.actions.get("x-0-move", agent_id="x")
        assert v1 is not None
        mem.actions.update(v1.model_copy(update={"reward": 0.9, "details": {"v": 2}}))
        with open_archive(path) as archive:  # M2: archives v2 (replacing v1), moves it
            second = Tiers(mem, TierPolicy(stm_steps=3), archive=archive).maintain(
                agent_ids=["x"], now_step=5)
        assert (second.to_im, second.changed, second.refused) == (3, 0, [])
        assert mem.actions.get("x-0-move", agent_id="x") is None
        os.kill(kid.pid, signal.SIGCONT)
        stopped = False
        out = kid.communicate(timeout=120)[0]
    finally:
        if stopped:
            os.kill(kid.pid, signal.SIGCONT)
        if kid.poll() is None:
            kid.kill()
            kid.wait()
    assert kid.returncode == 0
    first = json.loads(out.strip().splitlines()[-1])
    # M1 read x-0..x-2 before M2 moved them (else it would have read none): all gone
    assert first == {"to_im": 0, "missing": 3, "changed": 0, "refused": []}
    with open_archive(path) as archive:
        rows = {a.action_id: a for a in archive.read(SIM)}
    assert len(rows) == 6
    assert (rows["x-0-move"].reward, rows["x-0-move"].details) == (0.9, {"v": 2})
    im = mem.im_actions.get_many(["x-0-move"], agent_id="x")[0]
    assert im is not None
    assert im.reward == 0.9
    mem.close()


def test_current_in_stm_rules(server: Any, r: redis.Redis, tmp_path: Path) -> None:
    """Which versions read are still the ones STM holds: unchanged -> yes; updated since
    -> no; the hash gone (moved by another maintainer, deleted, or expired with its id
    still in the timeline) -> no: an expired update may have been archived by a sync
    before it expired, newer than the version read (review 105). Then ``maintain``'s
    archive write replaces the archived rows of the current ones only."""
    mem = agentmem.connect(server.url)
    stored = mem.actions.add_many(
        [Action(agent_id=agent, simulation_id=SIM, step_number=s, action_type="move",
                reward=0.1, details={"v": 1}) for agent in ("x", "y") for s in range(5)])
    ids = [f"x-{s}-move" for s in range(5)]
    read = mem.runner.run(read_versions(mem, "x", ids))
    leaving = [("x", [x for x in read if x is not None]),
               ("y", [x for x in mem.runner.run(read_versions(mem, "y", ["y-0-move"]))
                      if x is not None])]
    assert [len(acts) for _, acts in leaving] == [5, 1]
    # x-0 unchanged; x-1 updated; x-2 moved to IM; x-3 deleted; x-4 expired; y-0 unchanged
    mem.actions.update(read[1][0].model_copy(update={"details": {"v": 2}}))
    assert Tiers(mem, TierPolicy()).transition("x", ["x-2-move"]) == ["x-2-move"]
    assert mem.actions.delete("x-3-move", agent_id="x")
    sh = Shapes(mem.actions.layout, "x")
    assert r.delete(sh.hash[0] + "x-4-move" + sh.hash[1]) == 1  # only the hash key
    assert r.zscore(sh.timeline, "x-4-move") is not None
    current = current_in_stm(mem, leaving)
    assert list(current(range(6))) == [0, 5]
    assert list(current([1, 3, 4])) == []
    assert list(current([])) == []

    # the archive write: every row archived (v0 content), then each read version
    # written again with other content; only the current ones replace their row
    path = str(tmp_path / "archive.db")
    flat = [a for _, acts in leaving for a, _ in acts]
    with open_archive(path) as archive:
        assert archive.write(stored) == 10
        changed = [(agent, [(a.model_copy(update={"details": {"v": 9}}), seen)
                            for a, seen in acts]) for agent, acts in leaving]
        inserted, kept = archive_leaving(mem, archive, changed)
        assert (inserted, kept) == (2, [])
        rows = {a.action_id: a.details for a in archive.read(SIM)}
    assert {a.action_id for a in flat} <= set(rows)
    assert {k: v for k, v in rows.items() if v == {"v": 9}}.keys() == {
        "x-0-move", "y-0-move"}
    assert rows["x-1-move"] == rows["x-2-move"] == rows["x-3-move"] == rows["x-4-move"] \
        == {"v": 1}
    mem.close()


@pytest.mark.parametrize("replace", [False, True])
def test_write_updating_without_a_callback_unchanged(
        server: Any, r: redis.Redis, tmp_path: Path, replace: bool) -> None:
    """No ``current``: ``replace`` replaces every row of the same action, as before; the
    callback is not asked without ``replace``."""
    mem = agentmem.connect(server.url)
    stored = mem.actions.add_many([Action(agent_id="x", simulation_id=SIM, step_number=s,
                                          action_type="move", details={"v": 1})
                                   for s in range(2)])
    newer = [a.model_copy(update={"details": {"v": 2}}) for a in stored]

    def never(positions: Any) -> list[int]:
        raise AssertionError("asked")

    with open_archive(str(tmp_path / "archive.db")) as archive:
        archive.write(stored)
        assert write_updating(archive, newer, replace=replace,
                              current=None if replace else never) == (2 if replace else 0, [])
        details = {a.details["v"] for a in archive.read(SIM) if a.details}
    assert details == ({2} if replace else {1})
    mem.close()


def _blocked_behind(engine: Any, holder: int) -> int:
    """How many sessions wait, directly or through another waiter, on backend ``holder``."""
    with engine.connect() as conn:
        return int(conn.execute(text(
            "WITH first AS (SELECT pid FROM pg_stat_activity"
            " WHERE :h = ANY(pg_blocking_pids(pid)))"
            " SELECT count(*) FROM pg_stat_activity WHERE :h = ANY(pg_blocking_pids(pid))"
            " OR pg_blocking_pids(pid) && ARRAY(SELECT pid FROM first)"), {"h": holder}
        ).scalar())


def test_on_postgresql_a_maintainer_that_finds_the_row_archived_meanwhile_looks_again(
        server: Any, r: redis.Redis, tmp_path: Path) -> None:
    """PostgreSQL's write transactions overlap: A archives v1 and B, which read v2 and
    looked up the row before A committed, finds the identity taken by A's row when it
    inserts. B looks again (a new transaction): the same action, STM still holds v2, so
    it replaces A's row and moves v2. Before, B reported it ``refused`` (logged as an id
    another action holds) and left v1 archived until the next ``maintain``.

    The order is forced by a row lock a third session holds on the action's row (no
    sleep): A waits on it after its checks, B waits behind A."""
    location = db_of("postgresql", tmp_path)
    db = next(location)
    try:
        _race_on_postgresql(server, tmp_path, db.url)
    finally:
        location.close()  # the schema dropped


def _race_on_postgresql(server: Any, tmp_path: Path, url: str) -> None:
    mem = agentmem.connect(server.url)
    stored = mem.actions.add_many([Action(agent_id="x", simulation_id=SIM, step_number=s,
                                          action_type="move", reward=0.0, details={"v": 0})
                                   for s in range(6)])
    with open_archive(url) as archive:
        archive.write(stored)  # v0, as a dual writer archives them
    v1 = stored[0].model_copy(update={"details": {"v": 1}, "reward": 0.1})
    mem.actions.update(v1)
    script = tmp_path / "maintainer.py"
    script.write_text(MAINTAINER)
    kids = [subprocess.Popen([sys.executable, str(script), server.url, url],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            for _ in range(2)]
    engine = create_engine(url)
    try:
        for kid in kids:
            assert kid.stdout is not None
            assert kid.stdout.readline().strip() == "ready"
        second = kids[1]
        with engine.connect() as lock, lock.begin():
            holder = int(lock.execute(text("SELECT pg_backend_pid()")).scalar_one())
            lock.execute(text("SELECT row_id FROM agentmem_action_extras WHERE "
                              "action_id = 'x-0-move' FOR UPDATE")).all()
            for n, kid in enumerate(kids, 1):
                assert kid.stdin is not None
                if kid is second:  # B reads v2
                    mem.actions.update(v1.model_copy(
                        update={"details": {"v": 2}, "reward": 0.2}))
                kid.stdin.write("go\n")
                kid.stdin.flush()
                deadline = time.monotonic() + 60
                while _blocked_behind(engine, holder) < n:
                    assert kid.poll() is None, "a maintainer did not wait"
                    assert time.monotonic() < deadline, "no maintainer waited"
                    time.sleep(0.01)
        reports = [json.loads(kid.communicate(timeout=120)[0].strip().splitlines()[-1])
                   for kid in kids]
    finally:
        for kid in kids:
            if kid.poll() is None:
                kid.kill()
                kid.wait()
        engine.dispose()
    assert [kid.returncode for kid in kids] == [0, 0]
    # A archived v1, then found v2 in STM (changed: left for later); B archived v2, moved it
    assert reports[0] == {"to_im": 2, "missing": 0, "changed": 1, "refused": []}
    assert reports[1] == {"to_im": 1, "missing": 2, "changed": 0, "refused": []}
    with open_archive(url) as archive:
        rows = {a.action_id: a for a in archive.read(SIM)}
    assert (rows["x-0-move"].reward, rows["x-0-move"].details) == (0.2, {"v": 2})
    assert mem.actions.get("x-0-move", agent_id="x") is None
    mem.close()
