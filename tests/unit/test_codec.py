"""The Action codec: encode -> HGETALL-shaped bytes -> decode, for every field type (no server)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from _support import actions, embeddings, id_text, numbers, types
from hypothesis import given
from hypothesis import strategies as st

from agentmem import Action, IMAction
from agentmem.errors import AgentMemError, DecodeError, InvalidInput
from agentmem.plans import keyspace

CODEC = keyspace.layout(1).action.codec
IM_CODEC = keyspace.layout(1).im_action.codec


def to_wire(value: object) -> bytes:
    """What Redis stores for an encoded value (redis-py/hiredis send floats as repr)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bool):
        raise AssertionError("the codec never hands a bool to the wire")
    if isinstance(value, int):
        return str(value).encode()
    if isinstance(value, float):
        return repr(value).encode()
    raise AssertionError(f"unexpected encoded value {value!r}")


def as_hash(codec, obj, **server_fields: bytes) -> dict[bytes, bytes]:
    """The HGETALL reply of the hash the write script would store for ``obj``."""
    out = {name.encode(): to_wire(v)
           for name, v in zip(codec.storage_names, codec.encode(obj), strict=True)
           if v is not None}
    out.update({k.encode(): v for k, v in server_fields.items()})
    return out


def round_trip(a: Action) -> Action:
    return CODEC.decode(as_hash(CODEC, a))


@given(actions())
def test_every_field_round_trips(a):
    assert round_trip(a) == a


@given(actions(), st.integers(min_value=0, max_value=2**40))
def test_round_trip_with_write_time(a, stamp):
    back = CODEC.decode(as_hash(CODEC, a, stored_at=str(stamp).encode()))
    assert back == a.model_copy(update={"stored_at": stamp})


@given(actions())
def test_decode_accepts_a_flat_hgetall_list(a):
    flat = [x for kv in as_hash(CODEC, a).items() for x in kv]
    assert CODEC.decode(flat) == a


@given(actions())
def test_absent_fields_are_not_stored(a):
    stored = as_hash(CODEC, a)
    for name, value in a.__dict__.items():
        if name == "position":
            assert (b"position_x" in stored) == (value is not None)
            assert (b"position_y" in stored) == (value is not None)
        elif name in ("details",):
            assert (b"details" in stored) == (value is not None)
        elif name == "stored_at":
            assert b"stored_at" not in stored  # the server sets it
        else:
            assert (name.encode() in stored) == (value is not None)


def test_field_names_are_the_spec_hash_fields():
    spec = {"action_id", "simulation_id", "step_number", "agent_id", "action_type",
            "action_target_id", "state_before_id", "state_after_id", "resources_before",
            "resources_after", "reward", "details", "position_x", "position_y", "embedding",
            "stored_at"}
    assert spec <= set(CODEC.storage_names)
    assert set(CODEC.storage_names) - spec == {"module_type", "module_id"}


@pytest.mark.parametrize("value", [1e308, -1e308, 5e-324, -5e-324, 1.7976931348623157e308,
                                   2.2250738585072014e-308, 0.1, 1 / 3, 123456789.12345679])
def test_extreme_finite_floats_are_exact(value):
    a = Action(agent_id="a", simulation_id="s", step_number=0, action_type="m", reward=value,
               resources_before=value, resources_after=-value, position=(value, -value),
               details={"v": value})
    back = round_trip(a)
    assert back.reward == value
    assert back.resources_before == value
    assert back.resources_after == -value
    assert back.position == (value, -value)
    assert back.details == {"v": value}


def test_negative_zero_keeps_its_sign():
    a = Action(agent_id="a", simulation_id="s", step_number=0, action_type="m", reward=-0.0,
               position=(-0.0, 0.0), details=[-0.0])
    back = round_trip(a)
    assert math.copysign(1.0, back.reward) == -1.0
    assert math.copysign(1.0, back.position[0]) == -1.0
    assert math.copysign(1.0, back.position[1]) == 1.0
    assert math.copysign(1.0, back.details[0]) == -1.0


def test_big_ints_round_trip():
    a = Action(agent_id="a", simulation_id="s", step_number=2**53, action_type="m",
               details={"big": 2**100, "neg": -(2**90), "u64": 2**64 - 1})
    back = round_trip(a)
    assert back.step_number == 2**53
    assert back.details == {"big": 2**100, "neg": -(2**90), "u64": 2**64 - 1}


def test_unicode_round_trips():
    a = Action(agent_id="agent-é-日本", simulation_id="sim-😀", step_number=1,
               action_type="mövé", action_target_id="ziel-Ω", state_before_id="état 1\x01",
               details={"ключ": "значение 😀", "": ["\u2028", "\x00"]}, module_type="модуль")
    assert round_trip(a) == a
    stored = as_hash(CODEC, a)
    assert stored[b"agent_id"] == "agent-é-日本".encode()


def test_nested_details_round_trip():
    details = {"a": [1, 2.5, {"b": [None, True, False, "x"]}], "c": {"d": {"e": {"f": []}}},
               "g": {}}
    a = Action(agent_id="a", simulation_id="s", step_number=1, action_type="m", details=details)
    assert round_trip(a).details == details


@pytest.mark.parametrize("details", ["plain text", 0, 1.5, False, [], {}],
                         ids=["str", "int", "float", "bool", "list", "dict"])
def test_scalar_and_empty_details_round_trip(details):
    a = Action(agent_id="a", simulation_id="s", step_number=1, action_type="m", details=details)
    back = round_trip(a)
    assert back.details == details
    assert type(back.details) is type(details)


def test_tuples_in_details_become_lists():
    a = Action(agent_id="a", simulation_id="s", step_number=1, action_type="m",
               details={"t": (1, (2, 3))})
    assert a.details == {"t": [1, [2, 3]]}
    assert round_trip(a).details == {"t": [1, [2, 3]]}


def test_numpy_values_in_details_are_converted():
    details = {"arr": np.arange(3), "f32": np.float32(0.5), "i64": np.int64(-7),
               "b": np.bool_(True), "m": np.array([[1.5, 2.5], [3.5, 4.5]]),
               "list": [np.uint8(255), np.float64(0.25)]}
    a = Action(agent_id="a", simulation_id="s", step_number=1, action_type="m", details=details)
    plain = {"arr": [0, 1, 2], "f32": 0.5, "i64": -7, "b": True,
             "m": [[1.5, 2.5], [3.5, 4.5]], "list": [255, 0.25]}
    assert a.details == plain
    assert type(a.details["i64"]) is int
    assert type(a.details["b"]) is bool
    assert round_trip(a).details == plain


@given(embeddings)
def test_embedding_is_raw_little_endian_float32_bytes(vec):
    a = Action(agent_id="a", simulation_id="s", step_number=1, action_type="m", embedding=vec)
    raw = as_hash(CODEC, a)[b"embedding"]
    assert raw == vec.astype("<f4").tobytes()
    assert len(raw) == 4 * vec.shape[0]
    back = round_trip(a).embedding
    assert back.dtype == np.float32
    assert back.shape == vec.shape
    assert back.tobytes() == vec.tobytes()


def test_embedding_is_not_base64():
    vec = np.array([1.0, -2.0], dtype=np.float32)
    a = Action(agent_id="a", simulation_id="s", step_number=1, action_type="m", embedding=vec)
    assert as_hash(CODEC, a)[b"embedding"] == b"\x00\x00\x80?\x00\x00\x00\xc0"


def test_decode_reads_a_hash_as_the_spec_writes_it():
    raw = {b"action_id": b"a1-5-move", b"simulation_id": b"sim01", b"step_number": b"5",
           b"agent_id": b"a1", b"action_type": b"move", b"stored_at": b"1700000000",
           b"reward": b"0.5", b"resources_before": b"10", b"details": b'{"k": [1, 2]}',
           b"position_x": b"1.5", b"position_y": b"-2"}
    a = CODEC.decode(raw)
    assert a == Action(agent_id="a1", simulation_id="sim01", step_number=5, action_type="move",
                       action_id="a1-5-move", reward=0.5, resources_before=10.0,
                       details={"k": [1, 2]}, position=(1.5, -2.0), stored_at=1700000000)


def test_decode_keeps_non_json_details_as_text():
    raw = {b"simulation_id": b"s", b"step_number": b"1", b"agent_id": b"a",
           b"action_type": b"m", b"details": b"not json {"}
    assert CODEC.decode(raw).details == "not json {"


def test_position_needs_both_halves():
    raw = {b"simulation_id": b"s", b"step_number": b"1", b"agent_id": b"a",
           b"action_type": b"m", b"position_x": b"1.0"}
    assert CODEC.decode(raw).position is None


@pytest.mark.parametrize("raw", [
    {b"simulation_id": b"s", b"step_number": b"x", b"agent_id": b"a", b"action_type": b"m"},
    {b"simulation_id": b"s", b"step_number": b"1", b"action_type": b"m"},
    {b"simulation_id": b"s", b"step_number": b"1", b"agent_id": b"a", b"action_type": b"m",
     b"reward": b"lots"},
    {b"simulation_id": b"s", b"step_number": b"1", b"agent_id": b"\xff", b"action_type": b"m"},
], ids=["bad-int", "missing-agent", "bad-float", "bad-utf8"])
def test_undecodable_hash_raises_decode_error(raw):
    with pytest.raises(DecodeError):
        CODEC.decode(raw)
    assert issubclass(DecodeError, AgentMemError)


def test_encode_refuses_non_finite_values_as_invalid_input():
    good = Action(agent_id="a", simulation_id="s", step_number=1, action_type="m")
    for field, value in [("reward", math.nan), ("resources_before", math.inf),
                         ("position", (0.0, -math.inf)), ("details", {1, 2}),
                         ("details", {"x": math.nan})]:
        bad = Action.model_construct(**{**good.__dict__, field: value})
        with pytest.raises(InvalidInput):
            CODEC.encode(bad)


@given(st.builds(
    IMAction, action_id=id_text, agent_id=id_text, simulation_id=id_text,
    step_number=st.integers(min_value=0, max_value=2**53), action_type=types, reward=numbers,
    importance=st.floats(min_value=0.0, max_value=1.0), action_target_id=st.none() | id_text))
def test_im_action_round_trips(im):
    assert IM_CODEC.decode(as_hash(IM_CODEC, im)) == im


def test_step_beyond_what_a_score_holds_exactly_is_refused():
    with pytest.raises(InvalidInput, match="step_number"):
        Action(agent_id="a", simulation_id="s", step_number=2**53 + 1, action_type="m")
