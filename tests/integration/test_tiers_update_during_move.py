"""An action updated while ``maintain`` moves it out of STM (review 97), on a real Redis
or Valkey and a real SQLite file or PostgreSQL schema, the maintainer a process of its
own.

``maintain`` reads the leaving actions, archives them, then moves them to IM
(``to_im``). An update acknowledged between the read and the move used to go to IM
(whose compressed form keeps no details) while the archive kept the version read, and
the STM hash was deleted: the update was lost. Now ``to_im`` moves a hash only when it
is still the one read (its digest), so the updated action stays in STM, reported as
``changed``, and the next ``maintain`` archives its new version before it moves it.

The maintainer is held between the two steps without a sleep: the test holds the
archive's write lock (SQLite ``BEGIN IMMEDIATE`` from another connection; PostgreSQL
``LOCK TABLE``), waits until the server has run the maintainer's read (one more script
call in ``INFO commandstats``: nothing else talks to the server then), updates, and
lets go of the lock.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import redis
from sqlalchemy import text
from test_sql_archive import Db, db  # noqa: F401 - the sqlite/postgresql fixture

import agentmem
from agentmem import Action
from agentmem.backends.sql import open_archive
from agentmem.tiers.maintenance import TierPolicy, Tiers

SIM = "sim_move"

MAINTAINER = """
import json, sys
import agentmem
from agentmem.backends.sql import open_archive
from agentmem.tiers.maintenance import TierPolicy, Tiers
url, archive_url = sys.argv[1], sys.argv[2]
mem = agentmem.connect(url)
with open_archive(archive_url) as archive:
    tiers = Tiers(mem, TierPolicy(stm_steps=3), archive=archive)
    mem.actions.get("x-5-move", agent_id="x")  # connected, scripts loaded
    print("ready", flush=True)
    sys.stdin.readline()
    report = tiers.maintain(agent_ids=["x"], now_step=5)
    print(json.dumps({"to_im": report.to_im, "missing": report.missing,
                      "changed": report.changed, "refused": report.refused}), flush=True)
mem.close()
"""


def scripts_run(r: redis.Redis) -> int:
    stats = r.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in ("evalsha", "eval"))


def test_an_update_during_the_move_is_archived_in_its_new_version(
        server: Any, r: redis.Redis, db: Db, tmp_path: Path) -> None:  # noqa: F811
    mem = agentmem.connect(server.url)
    mem.actions.add_many([Action(agent_id="x", simulation_id=SIM, step_number=s,
                                 action_type="move", reward=0.1, details={"v": 1})
                          for s in range(6)])
    open_archive(db.url).close()  # the tables, before the lock
    script = tmp_path / "maintainer.py"
    script.write_text(MAINTAINER)
    kid = subprocess.Popen([sys.executable, str(script), server.url, db.url],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert kid.stdin is not None
    assert kid.stdout is not None
    assert kid.stdout.readline().strip() == "ready"
    current = mem.actions.get("x-0-move", agent_id="x")
    assert current is not None
    newer = current.model_copy(update={"reward": 0.9, "details": {"v": 2}})
    engine = db.engine() if db.kind == "postgresql" else None
    lock: Any = None
    if engine is not None:
        lock = engine.connect()
        lock.begin()
        lock.execute(text("LOCK TABLE agent_actions IN ACCESS EXCLUSIVE MODE"))
    else:
        lock = sqlite3.connect(db.url, isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")
    try:
        before = scripts_run(r)
        kid.stdin.write("go\n")
        kid.stdin.flush()
        deadline = time.monotonic() + 60
        while scripts_run(r) == before:  # the maintainer's read (get_many) has run
            assert time.monotonic() < deadline, "the maintainer never read STM"
            time.sleep(0.005)
        mem.actions.update(newer)  # acknowledged while the maintainer waits on the archive
    finally:
        if engine is not None:
            lock.commit()
            lock.close()
            engine.dispose()
        else:
            lock.execute("COMMIT")
            lock.close()
    first = json.loads(kid.communicate(timeout=120)[0].strip().splitlines()[-1])
    assert kid.returncode == 0
    # x-1 and x-2 moved; x-0 changed meanwhile
    assert first == {"to_im": 2, "missing": 0, "changed": 1, "refused": []}
    stm = mem.actions.get("x-0-move", agent_id="x")
    assert stm is not None
    assert stm.details == {"v": 2}

    with open_archive(db.url) as archive:
        tiers = Tiers(mem, TierPolicy(stm_steps=3), archive=archive)
        second = tiers.maintain(agent_ids=["x"], now_step=5)
        assert (second.to_im, second.changed) == (1, 0)
        rows = {a.action_id: a for a in archive.read(SIM)}
    assert sorted(rows) == ["x-0-move", "x-1-move", "x-2-move"]  # each once
    assert (rows["x-0-move"].reward, rows["x-0-move"].details) == (0.9, {"v": 2})
    assert mem.actions.get("x-0-move", agent_id="x") is None
    im = mem.im_actions.get_many(["x-0-move"], agent_id="x")[0]
    assert im is not None
    assert im.reward == 0.9
    mem.close()


def test_unchanged_hashes_of_every_encoding_move_in_one_maintain(
        server: Any, r: redis.Redis) -> None:
    """Hash tables (details over 64 bytes, embeddings) give their fields in another
    order as they rehash, which the move's own lookups advance with no write: the digest
    does not depend on that order, so none is taken for changed (review 100: half of them
    were, and moved one or two maintains later)."""
    mem = agentmem.connect(server.url)
    rng = np.random.default_rng(0)
    mem.actions.add_many([
        Action(agent_id="x", simulation_id=SIM, step_number=s, action_type="move",
               reward=0.5, details={"note": "n" * 80} if s % 2 else {"i": s},
               embedding=rng.standard_normal(32).astype(np.float32) if s % 2 == 0 else None)
        for s in range(40)])
    assert {r.object("encoding", k) for k in r.scan_iter(match="agent:x:action:x-*")} \
        == {b"hashtable"}
    tiers = Tiers(mem, TierPolicy(stm_steps=1))
    moved = tiers.transition("x", [f"x-{s}-move" for s in range(10)])
    assert len(moved) == 10
    report = tiers.maintain(agent_ids=["x"], now_step=39)
    assert (report.to_im, report.changed) == (29, 0)
    mem.close()
