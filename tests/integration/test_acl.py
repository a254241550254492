"""agentmem runs as the least-privileged ACL user of docs/security.md (Redis 7, Valkey 9).

The user is created from the page's rule, then every kind of work agentmem does
runs as that user: writes, every query, radius search, the tiers with an
archive and pins, sequence analytics, the similarity cache, check and repair.
What the rule does not grant is refused.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import redis

import agentmem
from agentmem import Action
from agentmem.backends.sql import open_archive
from agentmem.dualwrite.writer import DualWriter
from agentmem.integrity import check, repair
from agentmem.search.sequences import analyze, read_window
from agentmem.search.similarity import SimilarityIndex
from agentmem.tiers import TierPolicy, Tiers

SECURITY = Path(__file__).resolve().parents[2] / "docs" / "security.md"


def acl_rule(password: str) -> list[str]:
    """The ``ACL SETUSER`` command of docs/security.md, as arguments."""
    found = re.findall(r"^(ACL SETUSER agentmem .+)$", SECURITY.read_text(), re.M)
    assert len(found) == 1, "docs/security.md shows one ACL SETUSER agentmem rule"
    return found[0].replace("PASSWORD", password).split()


@pytest.fixture
def acl_url(server, r: redis.Redis) -> Iterator[str]:
    password = secrets.token_hex(16)
    r.execute_command(*acl_rule(password))
    host, port = r.connection_pool.connection_kwargs["host"], \
        r.connection_pool.connection_kwargs["port"]
    db = r.connection_pool.connection_kwargs.get("db", 0)
    try:
        yield f"redis://agentmem:{password}@{host}:{port}/{db}"
    finally:
        r.execute_command("ACL", "DELUSER", "agentmem")


def _actions() -> list[Action]:
    return [Action(agent_id=f"a{i % 5}", simulation_id="s1", step_number=i // 5,
                   action_type=("move", "eat")[i % 2], reward=i / 100,
                   position=(float(i % 7), float(i % 3)), action_target_id=f"a{(i + 1) % 5}",
                   embedding=np.arange(4, dtype=np.float32) + i)
            for i in range(200)]


def test_every_kind_of_work_runs_as_the_minimal_user(acl_url: str, tmp_path: Path) -> None:
    with agentmem.connect(acl_url) as mem:
        a = mem.actions
        a.add_many(_actions())
        a.add(Action(agent_id="a1", simulation_id="s1", step_number=99, action_type="move"))
        a.record(agent_id="a1", simulation_id="s1", step_number=100, action_type="move",
                 reward=1.0)
        assert [x.step_number for x in a.by_type("a1", "move", limit=2)] == [100, 99]
        assert a.by_target("a1", "a2", limit=3)
        assert a.high_reward("a1", 0.5)
        a.successful_interactions("a1", "a2")
        assert a.timeline("a1")
        assert len(a.recent("a1", 5)) == 5
        assert a.relative("a1", -1) is not None
        assert a.history("a1")
        a.near("a1", 1.0, 1.0, 3.0)
        a.near_at("s1", 1.0, 1.0, 3.0, step=3)
        assert a.at_step("s1", 3)
        assert a.simulation_actions("s1")
        assert a.steps("s1")
        assert a.type_counts("s1")
        a.learn_from_past_actions("a1", "move")
        a.analyze_action_sequence("a1")
        a.find_successful_interactions_with("a1", "a2")
        assert read_window(mem, "a1").types
        analyze(mem, "a1")

        index = SimilarityIndex(mem)
        q = np.arange(4, dtype=np.float32)
        first = index.search("a1", q, k=3)
        assert index.search("a1", q, k=3) == first  # the cache and its change feed
        index.close()

        with open_archive(tmp_path / "archive.db") as archive:
            tiers = Tiers(mem, TierPolicy(stm_steps=3), archive=archive)
            newest = a.recent("a1", 1)[0].action_id
            tiers.pin("a1", newest)
            assert tiers.pinned("a1") == {newest}
            report = tiers.maintain(now_step=40)
            assert report.to_im > 0
            tiers.unpin("a1", newest)
        assert check(mem).clean
        # the ORM verbs and a dual writer's outbox, as that user
        first = a.get("a1-3-move", agent_id="a1") or a.recent("a1", 1)[0]
        a.update(Action.model_validate({**first.model_dump(), "reward": 2.0}))
        assert a.delete(str(first.action_id), agent_id="a1") is True
        assert a.exists(str(first.action_id), agent_id="a1") is False
        with open_archive(tmp_path / "dual.db") as archive, DualWriter(mem, archive) as w:
            w.record(agent_id="a9", simulation_id="s9", step_number=1, action_type="move")
            assert w.flush() == 1
        repair(mem)


@pytest.mark.parametrize("command", [("FLUSHALL",), ("FLUSHDB",), ("CONFIG", "GET", "*"),
                                     ("KEYS", "*"), ("SET", "other:key", "1"),
                                     ("GET", "other:key"), ("CLIENT", "LIST"), ("ACL", "LIST")])
def test_what_the_rule_does_not_grant_is_refused(acl_url: str, command: tuple[str, ...]) -> None:
    client = redis.Redis.from_url(acl_url)
    try:
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.execute_command(*command)
    finally:
        client.close()


def test_a_user_without_script_load_runs_scripts_an_administrator_loaded(
        server, r: redis.Redis) -> None:
    """The rule without ``+script|load``, every core script loaded by an administrator:
    plans run, and the loads the server refused are not sent again with every plan
    (each costs the scripts' 74 kB)."""
    from agentmem.lua.scripts import ALL

    password = secrets.token_hex(16)
    rule = [p for p in acl_rule(password) if p != "+script|load"]
    assert len(rule) == len(acl_rule(password)) - 1
    r.execute_command(*rule)
    try:
        for script in ALL:
            r.script_load(script.source)
        kw = r.connection_pool.connection_kwargs
        url = f"redis://agentmem:{password}@{kw['host']}:{kw['port']}/{kw.get('db', 0)}"
        with agentmem.connect(url) as mem:
            stored = mem.actions.add_many(_actions()[:20])
            before = _loads(r)
            for a in stored[:10]:
                assert mem.actions.get(a.action_id, agent_id=a.agent_id) == a
            assert _loads(r) == before
    finally:
        r.execute_command("ACL", "DELUSER", "agentmem")


def test_a_user_without_script_load_is_refused_what_the_server_lacks(
        server, r: redis.Redis) -> None:
    """The rule without ``+script|load`` on a server without the scripts: the write is
    ``Refused`` (an ACL refusal, which waiting does not fix), and nothing of it is
    written."""
    from agentmem.errors import Refused

    password = secrets.token_hex(16)
    r.execute_command(*[p for p in acl_rule(password) if p != "+script|load"])
    r.script_flush()
    try:
        kw = r.connection_pool.connection_kwargs
        url = f"redis://agentmem:{password}@{kw['host']}:{kw['port']}/{kw.get('db', 0)}"
        with agentmem.connect(url) as mem, pytest.raises(Refused, match="load a script"):
            mem.actions.add_many(_actions()[:20])
        assert r.dbsize() <= 1  # at most the layout the store claimed
    finally:
        r.execute_command("ACL", "DELUSER", "agentmem")


def _loads(r: redis.Redis) -> int:
    """``SCRIPT LOAD`` commands the server has seen, run or refused (an ACL refusal
    counts as a rejected call)."""
    stats = r.info("commandstats").get("cmdstat_script|load", {})
    return int(stats.get("calls", 0)) + int(stats.get("rejected_calls", 0))
