"""Bad input: a clear agentmem error, and nothing written; bad configuration: ConfigError."""

from __future__ import annotations

import math

import pytest
import redis
import redis.asyncio
from _support import BAD_FIELDS, BASE, act

import agentmem
from agentmem import Action
from agentmem.errors import (
    AgentMemError,
    BackendError,
    ConfigError,
    DecodeError,
    DuplicateId,
    InvalidId,
    InvalidInput,
    LayoutError,
    SchemaError,
    Unavailable,
    WriteError,
)

CHECKED_ON_WRITE = ("reserved-action-id", "foreign-action-id")


@pytest.mark.parametrize("bad", [v for k, v in BAD_FIELDS.items() if k not in CHECKED_ON_WRITE],
                         ids=[k for k in BAD_FIELDS if k not in CHECKED_ON_WRITE])
def test_constructing_a_bad_action_raises_invalid_input(bad):
    with pytest.raises(agentmem.InvalidInput):
        Action(**{**BASE, **bad})


# -- configuration -----------------------------------------------------------------

@pytest.mark.parametrize("url", [
    "localhost:6379",
    "http://x",
    "redis://h:notaport",
    "redis://h/abc",
    "redis://h:6379/0?decode_responses=true",
    "redis://h:6379/0?decode_responses=True",
    "redis://h:6379/0?decode_responses=1",
    "redis://h:70000/0",
    "redis://",
    "redis://:6379/0",
    "unix://",
    "",
])
def test_malformed_url_raises_config_error(url):
    with pytest.raises(ConfigError):
        agentmem.connect(url)
    with pytest.raises(ConfigError):
        agentmem.connect_async(url)


def test_non_string_url_raises_config_error():
    with pytest.raises(ConfigError):
        agentmem.connect(None)  # type: ignore[arg-type]


def test_client_that_decodes_responses_is_refused():
    client = redis.Redis(decode_responses=True)
    with pytest.raises(ConfigError, match="decode"):
        agentmem.connect(client=client)
    client.close()


async def test_async_client_that_decodes_responses_is_refused():
    client = redis.asyncio.Redis(decode_responses=True)
    with pytest.raises(ConfigError, match="decode"):
        agentmem.connect_async(client=client)
    await client.aclose()


@pytest.mark.parametrize("batch_size", [0, -1, 1.5, "10"])
def test_bad_batch_size_raises_config_error(batch_size):
    with pytest.raises(ConfigError):
        agentmem.connect("redis://127.0.0.1:1/0", batch_size=batch_size)


@pytest.mark.parametrize("options", [
    {"embedding_dim": 0}, {"embedding_dim": 2.0}, {"ttl": 0}, {"ttl": -5}, {"ttl": 1.5},
    {"relative_index_size": -1}, {"relative_index_size": 0}, {"batch_size": True},
], ids=["dim-0", "dim-float", "ttl-0", "ttl-negative", "ttl-float", "rel-negative", "rel-0",
        "batch-bool"])
def test_bad_store_options_raise_config_error(options):
    with pytest.raises(ConfigError):
        agentmem.connect("redis://127.0.0.1:1/0", **options)
    with pytest.raises(ConfigError):
        agentmem.connect_async("redis://127.0.0.1:1/0", **options)


def test_connecting_to_an_unreachable_server_fails_only_on_first_use():
    from agentmem.servers.local import free_port

    m = agentmem.connect(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(Unavailable) as info:
        m.actions.add(act())
    assert isinstance(info.value, ConnectionError)
    assert isinstance(info.value, BackendError)
    with pytest.raises(Unavailable):
        m.actions.by_type("a1", "move")
    m.close()


def test_error_hierarchy():
    for cls in (InvalidInput, InvalidId, ConfigError, LayoutError, BackendError, Unavailable,
                DecodeError, WriteError, DuplicateId, SchemaError):
        assert issubclass(cls, AgentMemError)
    assert issubclass(InvalidId, InvalidInput)
    assert issubclass(InvalidInput, ValueError)
    assert issubclass(ConfigError, ValueError)
    assert issubclass(Unavailable, ConnectionError)
    assert issubclass(DuplicateId, WriteError)
    err = WriteError("x", stored=["a"], failed={2: "why"})
    assert err.stored == ["a"]
    assert err.failed == {2: "why"}


# -- connecting to servers of our own ----------------------------------------------------


def test_local_server_with_a_password_starts():
    from agentmem.servers.local import LocalServer, find_binary

    if find_binary("redis") is None:
        pytest.skip("no redis server binary")
    srv = LocalServer("redis", extra_args=("--requirepass", "s3cret"))
    try:
        srv.start(timeout=1.0)
        assert srv.process is not None
    finally:
        srv.close()


def test_connect_refuses_an_asyncio_client():
    with pytest.raises(ConfigError):
        agentmem.connect(client=redis.asyncio.Redis())


def test_connect_async_refuses_a_blocking_client():
    client = redis.Redis()
    try:
        with pytest.raises(ConfigError):
            agentmem.connect_async(client=client)
    finally:
        client.close()


@pytest.mark.parametrize("bad", [{"importance": 1.5}, {"importance": -0.1},
                                 {"reward": math.nan}, {"step_number": -1},
                                 {"action_type": "x" * 21}],
                         ids=["importance-above-1", "importance-below-0", "nan-reward",
                              "negative-step", "long-type"])
def test_bad_im_action_raises_invalid_input(bad):
    fields = {"action_id": "a1-1-move", "agent_id": "a1", "simulation_id": "s",
              "step_number": 1, "action_type": "move", **bad}
    with pytest.raises(agentmem.InvalidInput):
        agentmem.IMAction(**fields)


def test_im_action_defaults():
    im = agentmem.IMAction(action_id="a1-1-move", agent_id="a1", simulation_id="s",
                           step_number=1, action_type="move")
    assert im.reward is None  # absent, as an action without a reward
    assert im.importance == 0.0
    assert im.action_target_id is None
