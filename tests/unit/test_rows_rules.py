"""add_rows/add_columns' validation (no server): every row refused by ``Action(**row)``
(or by add_many's checks after it) is refused the same way, every accepted row gives
the encoded values and id add_many's path gives."""

from __future__ import annotations

import enum
import re
from typing import Annotated, Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, Field, field_validator

from agentmem import AsJson, Identifier, Record, Split, Vector, WriteTime, declare
from agentmem.errors import AgentMemError, InvalidInput
from agentmem.model.codec import Codec
from agentmem.model.records import Action
from agentmem.model.rowcodec import RowCodec
from agentmem.plans.write import Prepared
from agentmem.repository.actions import ActionRepository

BASE: dict[str, Any] = {"agent_id": "a1", "simulation_id": "s1", "step_number": 3,
                        "action_type": "move"}


class Kind(enum.Enum):
    EAT = "eat"


def repo(**options: Any) -> ActionRepository:
    return ActionRepository(None, **options)  # plans are built without a server


def by_model(rp: ActionRepository, rows: list[Any]) -> list[Prepared]:
    """add_many's path: Action(**row), the repository's check, the planner's prepare."""
    out = []
    for n, row in enumerate(rows):
        try:
            rec = Action(**row)
            rp.check(rec)
            out.append(rp.writer.prepare(rec))
        except InvalidInput as exc:
            raise type(exc)(f"row {n}: {exc}") from None
    return out


def by_rows(rp: ActionRepository, rows: list[Any]) -> list[Prepared]:
    return rp._row_planner().prepare_rows(rows, rp.check, rp.check_values)


def outcome(f: Any, *args: Any) -> Any:
    try:
        return [(p.mode, p.base, p.vals) for p in f(*args)]
    except AgentMemError as exc:
        return type(exc), str(exc)


def same(rows: list[Any], **options: Any) -> Any:
    rp = repo(**options)
    expected = outcome(by_model, rp, rows)
    assert outcome(by_rows, rp, rows) == expected
    columns = {k: [r[k] for r in rows] for k in rows[0]} if all(
        r.keys() == rows[0].keys() for r in rows) else None
    if columns is not None:
        got = outcome(lambda: rp._row_planner().prepare_columns(
            columns, rp.check, rp.check_values))
        assert got == expected
    return expected


def test_action_has_a_fast_path() -> None:
    assert RowCodec(Action, Codec(Action)).fast is not None


REFUSED: list[dict[str, Any]] = [
    {"agent_id": None}, {"agent_id": ""}, {"agent_id": "a:b"}, {"agent_id": "a b"},
    {"agent_id": "a\n"}, {"agent_id": "x" * 65}, {"agent_id": 5}, {"agent_id": True},
    {"agent_id": "a\u200b"}, {"agent_id": "a\ud800"}, {"agent_id": "a{b"},
    {"simulation_id": "s}"}, {"simulation_id": ""}, {"simulation_id": b"s\x00"},
    {"step_number": -1}, {"step_number": 2**53 + 1}, {"step_number": 1.5},
    {"step_number": "x"}, {"step_number": True}, {"step_number": None},
    {"step_number": float("nan")}, {"step_number": np.bool_(True)},
    {"action_type": "a-b"}, {"action_type": "a.b"}, {"action_type": "x" * 21},
    {"action_type": ""}, {"action_type": None}, {"action_type": "a\tb"},
    {"action_id": "a1-3-move-x"}, {"action_id": "b1-3-move"}, {"action_id": "x" * 129},
    {"action_id": "a1-3-"}, {"action_id": 7}, {"action_id": ""},
    {"action_target_id": ""}, {"action_target_id": 3}, {"action_target_id": "t:1"},
    {"state_before_id": "x" * 129}, {"state_after_id": "x\ud800"},
    {"state_after_id": 1.0},
    {"reward": float("nan")}, {"reward": float("inf")}, {"reward": -float("inf")},
    {"reward": "abc"}, {"reward": True}, {"reward": 10**400}, {"reward": "nan"},
    {"resources_before": float("nan")}, {"resources_after": [1.0]},
    {"details": float("nan")}, {"details": {"a": {1, 2}}}, {"details": object()},
    {"details": "x\ud800"}, {"details": [float("inf")]}, {"details": {"a": {"b": "\udfff"}}},
    {"details": {"a": "\ud800"}}, {"details": {"\ud800": 1}}, {"details": {"a": float("nan")}},
    {"details": {"a": [1, float("inf")]}}, {"details": {"a": Kind.EAT}},
    {"position": (1.0,)}, {"position": (1.0, 2.0, 3.0)}, {"position": (float("nan"), 1.0)},
    {"position": ("a", 1.0)}, {"position": (True, 1.0)}, {"position": 5},
    {"position": (1.0, None)}, {"position": "ab"},
    {"embedding": [1.0, 2.0]}, {"embedding": np.ones(3)}, {"embedding": np.ones((2, 2),
                                                                               np.float32)},
    {"embedding": np.ones(0, np.float32)}, {"embedding": np.array([np.nan], np.float32)},
    {"module_type": "x" * 51}, {"module_id": "x" * 65}, {"module_id": 3},
    {"stored_at": "abc"}, {"stored_at": 1.5}, {"foo": 1},
]


@pytest.mark.parametrize("change", REFUSED, ids=lambda c: re.sub(r" at 0x[0-9a-f]+", "", repr(c)))
def test_refused_like_the_model(change: dict[str, Any]) -> None:
    rows = [dict(BASE), {**BASE, "step_number": 4, **change}]
    cls, message = same(rows)
    assert issubclass(cls, InvalidInput)
    assert message.startswith("row 1: ")
    field = next(iter(change))
    assert field in message or (field == "action_id" and "action id" in message)


@pytest.mark.parametrize("missing", ["agent_id", "simulation_id", "step_number", "action_type"])
def test_required_field_missing(missing: str) -> None:
    row = {k: v for k, v in BASE.items() if k != missing}
    cls, message = same([row])
    assert cls is InvalidInput
    assert missing in message
    assert message.startswith("row 0: ")


ACCEPTED: list[dict[str, Any]] = [
    {}, {"step_number": "5"}, {"step_number": 5.0}, {"step_number": np.int64(7)},
    {"step_number": 0}, {"step_number": 2**53}, {"reward": 1}, {"reward": "1.5"},
    {"reward": np.float64(2.5)}, {"reward": np.float32(0.1)}, {"reward": -0.0},
    {"reward": 2**60}, {"resources_before": 1e300}, {"action_type": Kind.EAT},
    {"action_type": 12}, {"agent_id": "agént"}, {"simulation_id": b"bytes-id"},
    {"action_id": "a1-3-custom"}, {"action_target_id": "t1"}, {"state_before_id": "ü" * 128},
    {"details": {"a": (1, 2), "b": [None, True, 1.5, "x"]}}, {"details": (1, 2)},
    {"details": {1: "int key"}}, {"details": np.arange(3)}, {"details": 2**70},
    {"details": {"f": 1e16}}, {"details": ""}, {"details": 0}, {"details": False},
    {"position": [1, 2]}, {"position": (np.float64(1.5), 2)}, {"position": (0.1, -0.0)},
    {"position": (2**53, 1.0)}, {"position": None}, {"embedding": np.ones(4, np.float32)},
    {"embedding": np.arange(6, dtype=np.float32)[::2]}, {"module_type": "m" * 50},
    {"module_id": "x" * 64}, {"stored_at": 123}, {"stored_at": None},
]


@pytest.mark.parametrize("change", ACCEPTED, ids=repr)
def test_accepted_like_the_model(change: dict[str, Any]) -> None:
    rows = [{**BASE, **change}, {**BASE, "step_number": 9, **change}]
    if "step_number" in change:
        rows[1]["agent_id"] = "a2"
    if "action_id" in change:
        rows = rows[:1]
    result = same(rows)
    assert isinstance(result, list)
    assert len(result) == len(rows)


def test_embedding_dimension_of_the_repository() -> None:
    rows = [{**BASE, "embedding": np.ones(4, np.float32)}]
    assert isinstance(same(rows, embedding_dim=4), list)
    cls, message = same(rows, embedding_dim=3)
    assert cls is InvalidInput
    assert "embedding has 4 dimensions" in message


def test_not_a_mapping() -> None:
    rp = repo()
    with pytest.raises(InvalidInput, match="row 1: expected a mapping"):
        by_rows(rp, [dict(BASE), 5])


def test_columns_of_unequal_length_refused() -> None:
    rp = repo()
    with pytest.raises(InvalidInput, match="'step_number' has 1 values"):
        rp._row_planner().prepare_columns({"agent_id": ["a", "b"], "step_number": [1]},
                                          rp.check, rp.check_values)
    with pytest.raises(InvalidInput, match="not a sequence"):
        rp._row_planner().prepare_columns({"agent_id": 5}, rp.check, rp.check_values)
    with pytest.raises(InvalidInput, match="'agent_id' is not a sequence of values"):
        rp._row_planner().prepare_columns({"agent_id": "abc"}, rp.check, rp.check_values)


def test_numpy_columns_give_the_values_of_python_rows() -> None:
    rp = repo()
    n = 6
    columns = {"agent_id": np.array([f"a{i % 2}" for i in range(n)]),
               "simulation_id": ["s"] * n, "step_number": np.arange(n),
               "action_type": np.array(["move", "eat"] * 3), "reward": np.linspace(0, 1, n),
               "position": np.arange(2 * n, dtype=np.float64).reshape(n, 2),
               "embedding": np.ones((n, 3), np.float32)}
    got = rp._row_planner().prepare_columns(columns, rp.check, rp.check_values)
    rows = [{"agent_id": f"a{i % 2}", "simulation_id": "s", "step_number": i,
             "action_type": ["move", "eat"][i % 2], "reward": float(columns["reward"][i]),
             "position": (float(2 * i), float(2 * i + 1)),
             "embedding": np.ones(3, np.float32)} for i in range(n)]
    assert [(p.base, p.vals) for p in got] == [(p.base, p.vals) for p in by_model(rp, rows)]
    bad = dict(columns, reward=np.array([0.0, 1.0, np.nan, 0.0, 0.0, 0.0]))
    with pytest.raises(InvalidInput, match=r"row 2: .*reward"):
        rp._row_planner().prepare_columns(bad, rp.check, rp.check_values)


VALUES = {
    "agent_id": st.sampled_from(["a1", "a2", "", "a:b", "ä", "x" * 64, "x" * 65, 5, None]),
    "simulation_id": st.sampled_from(["s1", "s 1", "s\x7f", "s1"]),
    "step_number": st.one_of(st.integers(-2, 2**53 + 1), st.floats(allow_nan=True),
                             st.sampled_from(["3", True, None])),
    "action_type": st.sampled_from(["move", "eat", "a-b", "a.b", "x" * 20, "x" * 21, 3]),
    "reward": st.one_of(st.none(), st.floats(), st.integers(-(2**60), 2**60),
                        st.sampled_from(["1", True])),
    "details": st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=4)),
        lambda inner: st.one_of(st.lists(inner, max_size=3),
                                st.dictionaries(st.text(max_size=3), inner, max_size=3)),
        max_leaves=6),
    "position": st.one_of(st.none(), st.tuples(st.floats(), st.floats()),
                          st.lists(st.integers(-5, 5), min_size=1, max_size=3)),
    "module_type": st.one_of(st.none(), st.text(max_size=55)),
}


@given(st.lists(st.fixed_dictionaries({}, optional=VALUES), min_size=1, max_size=4))
def test_any_rows_refused_or_stored_like_the_model(changes: list[dict[str, Any]]) -> None:
    rows = [{**BASE, "step_number": n, **c} for n, c in enumerate(changes)]
    same(rows)


# -- any declared model ------------------------------------------------------


class Reading(Record):
    reading_id: str | None = None
    sensor_id: Identifier
    at: Annotated[int, Field(ge=0)]
    value: Annotated[float, Field(gt=-100, le=100)]
    unit: str = "C"
    pair: Annotated[tuple[int, int] | None, Split("p0", "p1")] = None
    raw: Annotated[Any, AsJson()] = None
    vec: Annotated[np.ndarray | None, Vector("float32", dim=2)] = None
    saved: Annotated[int | None, WriteTime()] = None


READINGS = declare(Reading, key="sensor:{sensor_id}:reading:{reading_id}", id="reading_id",
                   id_template="{sensor_id}-{at}", indexes=[])


def test_a_declared_model_refused_and_accepted_like_pydantic() -> None:
    from agentmem.repository.base import Repository

    rp: Repository[Reading] = Repository(None, READINGS)
    assert rp._row_planner().codec.fast is not None
    rows: list[dict[str, Any]] = [
        {"sensor_id": "x", "at": 1, "value": 5}, {"sensor_id": "x", "at": 2, "value": 100.0},
        {"sensor_id": "x", "at": 3, "value": -100}, {"sensor_id": "x", "at": -1, "value": 1.0},
        {"sensor_id": "x", "at": 4, "value": 1.0, "unit": 3},
        {"sensor_id": "x", "at": 5, "value": 1.0, "pair": [1, 2]},
        {"sensor_id": "x", "at": 6, "value": 1.0, "pair": (1.5, 2)},
        {"sensor_id": "x", "at": 7, "value": 1.0, "vec": np.ones(3, np.float32)},
        {"sensor_id": "x", "at": 8, "value": 1.0, "vec": np.ones(2, np.float32)},
        {"sensor_id": "x", "at": 9, "value": 1.0, "raw": {"k": [1]}},
    ]
    for row in rows:
        try:
            rec = Reading(**row)
            want: Any = (rp.writer.prepare(rec).vals,)
        except AgentMemError as exc:
            want = (type(exc), str(exc))
        try:
            got: Any = (rp._row_planner().prepare_rows([row], rp.check, None)[0].vals,)
        except AgentMemError as exc:
            got = (type(exc), str(exc).removeprefix("row 0: "))
        assert got == want, row


class Plain(BaseModel):
    """Not a Record: pydantic's own error, as InvalidInput; a validator: no fast path."""

    pid: str | None = None
    name: str

    @field_validator("name")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()


PLAIN = declare(Plain, key="plain:{pid}", id="pid", id_template="{name}", indexes=[])


def test_a_model_the_fast_path_does_not_know_goes_through_pydantic() -> None:
    from agentmem.repository.base import Repository

    rp: Repository[Plain] = Repository(None, PLAIN)
    planner = rp._row_planner()
    assert planner.codec.fast is None
    assert "validator" in planner.codec.why_slow
    [p] = planner.prepare_rows([{"name": "ab"}], rp.check, None)
    assert p.base == "AB"
    with pytest.raises(InvalidInput, match="row 0: invalid Plain: name"):
        planner.prepare_rows([{"name": 5}], rp.check, None)


def test_common_rows_take_the_fast_path() -> None:
    codec = RowCodec(Action, Codec(Action))
    rows = [dict(BASE), {**BASE, "reward": 1, "details": {"a": [1, "x"]}, "position": (1, 2.5),
                         "action_target_id": "t1", "resources_before": 3.5,
                         "embedding": np.ones(2, np.float32), "module_type": "m",
                         "action_id": "a1-3-mine", "state_after_id": "é"}]
    for row in rows:
        fast = codec.encode_row(row)
        assert fast is not None
        assert fast == Codec(Action).encode(Action(**row))


class Moody(Record):
    """Defaults are not validated (unless validate_default): a validator is not run on them."""

    mid: str | None = None
    name: Identifier
    mood: str = "calm"
    level: Annotated[int, Field(validate_default=True)] = 2

    @field_validator("mood", "level", mode="before")
    @classmethod
    def _shout(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value * 10


MOODY = declare(Moody, key="moody:{mid}", id="mid", id_template="{name}", indexes=[])


def test_defaults_and_validators_as_pydantic_has_them() -> None:
    from agentmem.repository.base import Repository

    rp: Repository[Moody] = Repository(None, MOODY)
    planner = rp._row_planner()
    assert planner.codec.fast is not None
    rows: list[dict[str, Any]] = [{"name": "a"}, {"name": "b", "mood": "sad", "level": 3}]
    got = [p.vals for p in planner.prepare_rows(rows, rp.check, None)]
    assert got == [rp.writer.prepare(Moody(**row)).vals for row in rows]
    assert got[0][2:] == ["calm", 20]
    assert got[1][2:] == ["SAD", 30]


def test_a_repository_check_without_a_values_twin_sees_every_row_as_a_model() -> None:
    from agentmem.repository.base import Repository

    seen: list[Reading] = []

    class Checked(Repository[Reading]):
        def check(self, record: Reading) -> None:
            seen.append(record)
            if record.value > 50:
                raise InvalidInput("too hot")

    rp = Checked(None, READINGS)
    values, fast = rp._row_checks()
    assert values is None
    assert fast is False
    rows = [{"sensor_id": "x", "at": 1, "value": 5}, {"sensor_id": "x", "at": 2, "value": 60}]
    with pytest.raises(InvalidInput, match="row 1: too hot"):
        Checked.add_rows.build(rp, rows)
    assert [r.at for r in seen] == [1, 2]
    assert all(isinstance(r, Reading) for r in seen)


def test_a_check_set_on_the_class_after_its_first_write_applies_to_the_next() -> None:
    """The facts of a repository class's methods are looked up once per class and
    methods: a ``check`` set on it later (at run time, ``monkeypatch``) is a new lookup."""
    from agentmem.repository.base import Repository

    class Later(Repository[Reading]):
        pass

    rp = Later(None, READINGS)
    columns = {"sensor_id": ["x", "x"], "at": [1, 2], "value": [5.0, 60.0]}
    Later.add_columns.build(rp, columns)  # the first write: the class's facts looked up

    def check(self: Any, record: Reading) -> None:
        if record.value > 50:
            raise InvalidInput("too hot")

    Later.check = check  # type: ignore[method-assign]
    assert rp._row_checks()[1] is False
    with pytest.raises(InvalidInput, match="row 1: too hot"):
        Later.add_columns.build(rp, columns)
