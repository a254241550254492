"""Actions archived, then updated in STM (``actions.update`` keeps their write time),
moved out by two processes running ``maintain`` at once, on a real Redis and a real
SQLite file or PostgreSQL schema (review 81).

Both take the archive's replace path (``archivedelete.write_updating``): the archived
row of each action is replaced by its STM version. Replaced in two transactions (the
old row deleted, then the new one written), one process could delete rows the other
had just replaced and then be killed, or raise (``database is locked`` on SQLite; a
``DuplicateId`` after the other's eviction archived IM's compressed form): actions
lost from every tier, or archived without their details. Replaced in one transaction,
every action ends in the archive exactly once, in its updated version, and neither
process raises.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis
from test_sql_archive import Db, db  # noqa: F401 - the sqlite/postgresql fixture

import agentmem
from agentmem import Action
from agentmem.backends.archivedelete import write_updating
from agentmem.backends.sql import open_archive
from agentmem.tiers.maintenance import TierPolicy, Tiers

SIM = "sim_upd"
POLICY = {"stm_steps": 5, "stm_capacity": 6, "im_capacity": 8}

MAINTAINER = """
import sys
import agentmem
from agentmem.backends.sql import open_archive
from agentmem.tiers.maintenance import TierPolicy, Tiers
url, archive_url = sys.argv[1], sys.argv[2]
mem = agentmem.connect(url)
with open_archive(archive_url) as archive:
    tiers = Tiers(mem, TierPolicy(stm_steps=5, stm_capacity=6, im_capacity=8),
                  archive=archive)
    print("ready", flush=True)
    sys.stdin.readline()
    try:
        report = tiers.maintain(now_step=10_000)
        print("ok", len(report.refused), flush=True)
    except Exception as exc:
        import traceback; traceback.print_exc()
        print("error", type(exc).__name__, exc, flush=True)
mem.close()
"""


@pytest.mark.slow
def test_two_maintainers_replace_updated_actions_each_archived_once_updated(
        server: Any, r: redis.Redis, db: Db, tmp_path: Path) -> None:  # noqa: F811
    mem = agentmem.connect(server.url)
    acts = [Action(agent_id=f"a{a}", simulation_id=SIM, step_number=s, action_type="move",
                   reward=0.1, details={"v": 1}) for a in range(20) for s in range(30)]
    stored = mem.actions.add_many(acts)
    with open_archive(db.url) as archive:
        assert archive.write(stored) == 600  # as a dual writer archives them
    for a in stored:
        mem.actions.update(a.model_copy(update={"reward": 0.9, "details": {"v": 2}}))
    script = tmp_path / "maintainer.py"
    script.write_text(MAINTAINER)
    kids = [subprocess.Popen([sys.executable, str(script), server.url, db.url],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            for _ in range(2)]
    for kid in kids:
        assert kid.stdout is not None
        assert kid.stdout.readline().strip() == "ready"
    for kid in kids:  # both at once
        assert kid.stdin is not None
        kid.stdin.write("go\n")
        kid.stdin.flush()
    outs = [kid.communicate(timeout=300)[0].strip() for kid in kids]
    assert [o.split()[0] for o in outs] == ["ok", "ok"], outs
    with open_archive(db.url) as archive:
        tiers = Tiers(mem, TierPolicy(**POLICY), archive=archive)
        report = tiers.maintain(now_step=10_000)
        assert report.refused == []
        in_stm = [a for n in range(20) for a in mem.actions.timeline(f"a{n}")]
        assert write_updating(archive, in_stm, replace=True)[1] == []
        rows = archive.read(SIM)
    mem.close()
    keys = [(a.agent_id, a.action_id) for a in rows]
    assert len(keys) == 600
    assert set(keys) == {(a.agent_id, a.action_id) for a in stored}
    assert {(a.reward, str(a.details)) for a in rows} == {(0.9, "{'v': 2}")}
