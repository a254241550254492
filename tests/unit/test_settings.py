"""The settings models and their reader, without a server: types, bounds, precedence,
the text of URLs and the environment, and the messages of ConfigError."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

import agentmem
from agentmem.config import (
    DEFAULT_ACTION_TTL,
    MAX_TTL,
    DualWriteSettings,
    RedisSettings,
    StoreSettings,
    TierSettings,
    option_names,
    read,
    read_store,
    split_query,
)
from agentmem.model import schema


def test_the_defaults_are_those_of_connect() -> None:
    s = RedisSettings()
    assert (s.layout_version, s.ttl, s.relative_index_size, s.batch_size, s.grid_cell,
            s.grids, s.spin_us) == (1, DEFAULT_ACTION_TTL, 20, 100, 1.0, True, None)
    assert MAX_TTL == schema.MAX_TTL  # the config layer may not import the model's constant


@pytest.mark.parametrize(("field", "bad"), [
    ("batch_size", True), ("batch_size", 0), ("batch_size", 1.5), ("batch_size", "500"),
    ("ttl", MAX_TTL + 1), ("spin_us", -1), ("grid_cell", float("inf")), ("grid_cell", 0),
    ("embedding_dim", False),
])
def test_arguments_are_strict(field: str, bad: object) -> None:
    with pytest.raises(agentmem.ConfigError, match=field) as err:
        read(RedisSettings, {field: bad}, env={})
    assert isinstance(err.value, ValueError)
    assert isinstance(err.value, agentmem.AgentMemError)


def test_a_float_field_takes_an_int_but_not_a_bool() -> None:
    assert read(DualWriteSettings, {"interval": 5}, env={}).interval == 5.0
    with pytest.raises(agentmem.ConfigError, match="interval"):
        read(DualWriteSettings, {"interval": True}, env={})


def test_text_of_urls_and_the_environment_is_converted() -> None:
    s = read(RedisSettings, query={"spin_us": "0", "ttl": "none", "grid_cell": "2.5"},
             env={"AGENTMEM_EMBEDDING_DIM": "3"})
    assert (s.spin_us, s.ttl, s.grid_cell, s.embedding_dim) == (0, None, 2.5, 3)
    w = read(DualWriteSettings, env={"AGENTMEM_BACKGROUND": "true", "AGENTMEM_JOURNAL": "/j"})
    assert w.background is True
    assert w.journal == "/j"


def test_precedence_arguments_url_environment_base_defaults() -> None:
    env = {"AGENTMEM_BATCH_SIZE": "3", "AGENTMEM_SPIN_US": "30", "AGENTMEM_TTL": "60"}
    s = read(RedisSettings, {"batch_size": 1}, query={"batch_size": "2", "spin_us": "20"},
             env=env, base={"layout_version": 2, "ttl": 5, "relative_index_size": 9})
    assert s.batch_size == 1  # argument
    assert s.spin_us == 20  # URL over environment
    assert s.ttl == 60  # environment over base
    assert s.relative_index_size == 9  # base over default
    assert s.layout_version == 2
    assert s.grid_cell == 1.0  # default


def test_aliases_in_urls_and_the_environment() -> None:
    assert read(RedisSettings, query={"layout": "2"}, env={}).layout_version == 2
    assert read(RedisSettings, env={"AGENTMEM_LAYOUT": "2"}).layout_version == 2


def test_messages_name_the_option_and_its_source() -> None:
    with pytest.raises(agentmem.ConfigError, match=r"spin_us \(from the URL query\).*'x'"):
        read(RedisSettings, query={"spin_us": "x"}, env={})
    with pytest.raises(agentmem.ConfigError, match=r"ttl \(from \$AGENTMEM_TTL\)"):
        read(RedisSettings, env={"AGENTMEM_TTL": "-5"})
    with pytest.raises(agentmem.ConfigError, match="unknown option 'spin'"):
        read(RedisSettings, {"spin": 1}, env={})


def test_settings_are_frozen_and_strict_models() -> None:
    s = RedisSettings(spin_us=0)
    with pytest.raises(ValidationError):
        s.spin_us = 5  # type: ignore[misc]
    with pytest.raises(ValidationError):
        RedisSettings(batch_size=True)


def test_journal_takes_a_path() -> None:
    assert read(DualWriteSettings, {"journal": Path("/tmp/j")}, env={}).journal == "/tmp/j"


def test_split_query_keeps_the_other_parameters() -> None:
    url, mine = split_query("redis://h:1/0?spin_us=0&socket_keepalive=true&layout=2",
                            ["spin_us", "layout"])
    assert url == "redis://h:1/0?socket_keepalive=true"
    assert mine == {"spin_us": "0", "layout": "2"}
    assert split_query("redis://h:1/0", ["spin_us"]) == ("redis://h:1/0", {})


def test_every_option_name_belongs_to_one_concern() -> None:
    names = option_names()
    assert names["spin_us"] == "redis"
    assert names["buffer_size"] == "writer"
    assert names["stm_steps"] == "tiers"
    assert names["archive_url"] == "archive"
    assert names["redis_url"] == "store"
    fields = [*RedisSettings.model_fields, *DualWriteSettings.model_fields,
              *TierSettings.model_fields]
    assert len(fields) == len(set(fields))  # a flat option names one field


def test_read_store_routes_flat_options() -> None:
    s = read_store("redis://h:6379/0?spin_us=0&layout=2", archive_url="a.db",
                   buffer_size=10, stm_steps=4, failover=False, env={})
    assert s.redis_url == "redis://h:6379/0"
    assert (s.redis.spin_us, s.redis.layout_version) == (0, 2)
    assert s.archive.archive_url == "a.db"
    assert (s.writer.buffer_size, s.writer.strict) == (10, True)
    assert s.use_tiers
    assert s.tiers.stm_steps == 4


def test_read_store_tiers_are_off_unless_asked() -> None:
    assert not read_store(env={}).use_tiers
    assert read_store(tiers=True, env={}).use_tiers
    assert read_store(env={"AGENTMEM_STM_CAPACITY": "5"}).use_tiers
    assert not read_store(tiers=False, stm_steps=3, env={}).use_tiers
    assert read_store(tiers={"im_capacity": 3}, env={}).tiers.im_capacity == 3


def test_read_store_takes_a_settings_object_as_arguments() -> None:
    base = StoreSettings(redis=RedisSettings(batch_size=50))
    s = read_store(settings=base, env={"AGENTMEM_BATCH_SIZE": "9", "AGENTMEM_TTL": "99"})
    assert s.redis.batch_size == 50  # set in the object: an argument
    assert s.redis.ttl == 99  # left unset: the environment applies
    with pytest.raises(agentmem.ConfigError, match="StoreSettings"):
        read_store(settings=RedisSettings(), env={})  # type: ignore[arg-type]


def test_read_store_refuses_unknown_options_and_bad_parts() -> None:
    with pytest.raises(agentmem.ConfigError, match="unknown option 'buffersize'"):
        read_store(buffersize=3, env={})
    with pytest.raises(agentmem.ConfigError, match="tiers must be"):
        read_store(tiers=3, env={})
    with pytest.raises(agentmem.ConfigError, match="failover must be a bool"):
        read_store(failover=1, env={})  # type: ignore[arg-type]
    with pytest.raises(agentmem.ConfigError, match="failover or strict"):
        read_store(failover=True, strict=True, env={})


def test_a_concern_of_store_settings_is_not_an_environment_variable() -> None:
    s = read(StoreSettings, env={"AGENTMEM_REDIS": "x", "AGENTMEM_DATA": "/d"})
    assert s.data == "/d"
    assert s.redis == RedisSettings()


def test_tier_policy_validates_through_tier_settings() -> None:
    with pytest.raises(agentmem.ConfigError, match="stm_steps"):
        agentmem.TierPolicy(stm_steps=True)  # type: ignore[arg-type]
    policy = agentmem.TierPolicy.from_settings(TierSettings(stm_steps=3, maintain_interval=2))
    assert policy.stm_steps == 3


def test_connect_rejects_options_before_connecting() -> None:
    with pytest.raises(agentmem.ConfigError, match="batch_size"):
        agentmem.connect("redis://127.0.0.1:1/0?batch_size=0")
    with pytest.raises(agentmem.ConfigError, match="either settings"):
        agentmem.connect("redis://127.0.0.1:1/0", settings=RedisSettings(), batch_size=3)
    with agentmem.connect("redis://127.0.0.1:1/0", settings=RedisSettings(batch_size=4)) as m:
        assert m._options["batch_size"] == 4  # nothing is sent until the first call
