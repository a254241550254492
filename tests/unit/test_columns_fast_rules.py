"""add_columns' column-wise fast path (``plans/colplan.py``, ``model/colcodec.py``), no
server: for any columns it gives either None (the row path runs) or exactly the
``Prepared`` records of the row path (mode, base and values, element by element, with
their types: ``1`` is not ``1.0``, ``-0.0`` is not ``0.0``); and ``prepare_columns``
with it gives the row path's records or the row path's error."""

from __future__ import annotations

import enum
import itertools
from typing import Annotated, Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field, field_validator

from agentmem import (
    AsJson,
    Identifier,
    Record,
    SetIndex,
    SortedIndex,
    Split,
    Vector,
    WriteTime,
    declare,
)
from agentmem.errors import AgentMemError, InvalidInput
from agentmem.model import colcodec
from agentmem.model.records import IMAction
from agentmem.plans.keyspace import layout
from agentmem.plans.rows import RowPlanner
from agentmem.plans.write import Prepared
from agentmem.repository.actions import ActionRepository
from agentmem.repository.base import Repository
from benchmarks.bench import make_actions
from benchmarks.ingest import to_columns


class Kind(enum.Enum):
    EAT = "eat"


class StrKind(enum.StrEnum):
    EAT = "eat"


class Text(str):
    pass


def typed(v: Any) -> Any:
    """A value with its type, so that equal values of other types differ (``repr``
    tells ``-0.0`` from ``0.0`` and keeps NaN equal to itself)."""
    if type(v) is list or type(v) is tuple:
        return type(v).__name__, [typed(x) for x in v]
    return type(v).__name__, repr(v)


def records(prepared: list[Prepared]) -> list[Any]:
    return [(p.mode, typed(p.base), typed(list(p.vals))) for p in prepared]


def row_path(planner: RowPlanner[Any], columns: Any, rp: Any) -> Any:
    """The row path alone (the column path switched off): its records or its error."""
    saved, planner.columns = planner.columns, None
    try:
        return records(planner.prepare_columns(columns, rp.check, rp.check_values))
    except AgentMemError as exc:
        return type(exc), str(exc)
    finally:
        planner.columns = saved


def check(rp: Any, columns: Any, fast: bool | None = None) -> Any:
    """The column path gives None or the row path's records; ``prepare_columns`` gives
    the row path's outcome; ``fast``: whether the column path must (not) take them."""
    planner = rp._row_planner()
    want = row_path(planner, columns, rp)
    got = planner.columns.prepare(columns, rp.check_values) if planner.columns else None
    if got is not None:
        assert isinstance(want, list), want
        assert records(got) == want
        assert all(type(p) is Prepared for p in got)
    if planner.columns:  # rows checked only where the columns show something to check
        seen = planner.columns.prepare(columns, rp.check_values, rp._rows_ok())
        assert (seen is None) is (got is None)
        if seen is not None:
            assert records(seen) == want
    if fast is not None:
        assert (got is not None) is fast, (want, planner.columns and
                                           planner.columns.codec.why_slow)
    try:
        through: Any = records(planner.prepare_columns(columns, rp.check, rp.check_values))
    except AgentMemError as exc:
        through = type(exc), str(exc)
    assert through == want
    return want


def action_repo(**options: Any) -> ActionRepository:
    return ActionRepository(None, **options)


N = 4
COLS: dict[str, Any] = {
    "agent_id": ["a1", "a2", "a1", "a2"], "simulation_id": ["s1"] * N,
    "step_number": [3, 3, 4, 4], "action_type": ["move", "eat", "move", "eat"],
}


def with_(**changes: Any) -> dict[str, Any]:
    return {**COLS, **changes}


# -- the benchmark's columns ---------------------------------------------------


@pytest.mark.parametrize("version", [1, 2, 3])
def test_the_benchmarks_columns_take_the_column_path(version: int) -> None:
    rp = action_repo(layout_version=version)
    columns = to_columns(make_actions(12, 9, 3))
    want = check(rp, columns, fast=True)
    assert len(want) == 108
    assert {m for m, _, _ in want} == {"g"}
    assert {t for _, (t, _), _ in want} == {"str"}


def test_the_column_path_returns_prepared_records_not_a_copy_of_the_columns() -> None:
    rp = action_repo()
    columns = with_(reward=np.array([0.5, -0.0, 1.0, 2.0]))
    [p0, p1, _, _] = rp._row_planner().prepare_columns(columns, rp.check, rp.check_values)
    assert p0.base == "a1-3-move"
    assert p1.vals is not p0.vals
    reward = rp.writer.names.index("reward")
    assert typed(p1.vals[reward]) == ("float", "-0.0")


# -- hand-written edge cases -----------------------------------------------------

FAST: list[dict[str, Any]] = [
    {}, {"step_number": np.arange(N)}, {"step_number": np.array([3, 3, 4, 4], np.uint8)},
    {"step_number": [0, 2**53, 7, 7]}, {"reward": np.array([1, 2, 3, -4])},
    {"reward": np.array([0.1, -0.0, 0.0, 1e300])}, {"reward": [0.5, None, -0.0, 2.5]},
    {"reward": np.array([0.5, 1.5, 2, 3], np.float32)}, {"reward": (0.5, 1.5, 2.5, 3.5)},
    {"resources_before": [None] * N}, {"action_target_id": ["t1", None, "t1", "t:2"[0]]},
    {"agent_id": np.array(["a1", "a2", "a1", "a2"])}, {"agent_id": ["x" * 64] * N},
    {"action_type": ["x" * 20] * N},
    {"details": [{"a": 1, "b": "x", "c": True, "d": None}, {}, {"f": 1.5}, {"e": "é"}]},
    {"details": [None, {"a": 1}, None, {"b": 2.5}]}, {"details": [None] * N},
    {"details": [{"a": "x},{y"}, {"b": "},{"}, {"c": "}"}, {"d": "{"}]},
    {"details": [{"a": "x:null", "b": 0.5}, {}, {"c": -0.0}, {"e": 1e308}]},
    {"details": np.array([{"a": 1}, {"b": 2}, {}, {}], dtype=object)},
    {"details": [{"a": [1, 2], "b": {"c": None}}, {"a": (1, 2)}, {}, {}]},
    {"position": np.arange(8, dtype=np.float64).reshape(N, 2)},
    {"position": np.arange(8).reshape(N, 2)}, {"position": [(1.0, 2.0), [3.0, 4.0]] * 2},
    {"position": [(1.0, 2.0), None, (-0.0, 1e-300), None]}, {"position": [None] * N},
    {"embedding": [np.ones(3, np.float32)] * N}, {"embedding": np.ones((N, 3), np.float32)},
    {"embedding": [None, np.ones(2, np.float32), None, None]},
    {"stored_at": [1, None, 3, 4]}, {"stored_at": np.arange(N)},
    {"action_id": [None] * N}, {"state_before_id": ["ü" * 128, None, "x", "y"]},
    {"module_type": ["m" * 50] * N}, {"module_id": ("x", "y", None, "z")},
    {"action_type": [Kind.EAT, "move", "eat", "move"]}, {"action_type": [12, 12, 13, 13]},
    {"action_id": ["a1-3-move", "a2-3-eat", "a1-4-move", "a2-4-x" + "y" * 122]},
]
"""Columns the column path takes (the others of each row from COLS)."""


@pytest.mark.parametrize("change", FAST, ids=repr)
def test_common_columns_take_the_column_path(change: dict[str, Any]) -> None:
    check(action_repo(), with_(**change), fast=True)


ROW_PATH: list[dict[str, Any]] = [
    # refused by the row path (the column path gives None, the row path explains)
    {"agent_id": ["a1", "", "a1", "a2"]}, {"agent_id": ["a1", "a:b", "a1", "a2"]},
    {"agent_id": ["a1", "a{b", "a1", "a2"]}, {"agent_id": ["a1", "x" * 65, "a1", "a2"]},
    {"agent_id": ["a1", "a\x00", "a1", "a2"]}, {"agent_id": ["a1", "a\ud800", "a1", "a2"]},
    {"agent_id": ["a1", "a\u200b", "a1", "a2"]}, {"agent_id": ["a1", None, "a1", "a2"]},
    {"agent_id": ["a1", 5, "a1", "a2"]}, {"simulation_id": ["s1", "s}", "s1", "s1"]},
    {"step_number": [3, -1, 4, 4]}, {"step_number": [3, 2**53 + 1, 4, 4]},
    {"step_number": np.array([3, -1, 4, 4])}, {"step_number": [3, True, 4, 4]},
    {"step_number": np.array([True, False, True, True])}, {"step_number": [3, None, 4, 4]},
    {"step_number": np.array([3.0, 3.0, 4.0, 4.0])}, {"step_number": [3, 10**30, 4, 4]},
    {"action_type": ["move", "a-b", "move", "eat"]}, {"action_type": ["x" * 21] * N},
    {"action_type": ["move", "a.b", "move", "eat"]}, {"action_type": ["move", None, "m", "e"]},
    {"reward": [0.5, float("nan"), 1.0, 1.0]}, {"reward": np.array([0.5, np.inf, 1.0, 1.0])},
    {"reward": [0.5, -float("inf"), 1.0, 1.0]}, {"reward": [0.5, True, 1.0, 1.0]},
    {"reward": np.array([True, False, True, True])}, {"reward": [1e308, 1e308, 1e308, 0.0]},
    {"reward": np.array([2**60, 1, 2, 3])}, {"reward": [2**60, 1.0, 2.0, 3.0]},
    {"reward": [1, 2, 3.5, 4]}, {"reward": [np.float64(1.5), 1.0, 2.0, 3.0]},
    {"reward": ["1.5", 1.0, 2.0, 3.0]},
    {"reward": np.array([1.0, 2.0, 3.0, 4.0], np.longdouble)},
    {"details": [{"a": float("nan")}, {}, {}, {}]},
    {"details": [{"a": None}, {"b": float("nan")}, {}, {}]},
    {"details": [{"a": float("-inf"), "b": "x:null"}, {"c": 1.5}, {}, {}]},
    {"details": [{"a": "x},{y", "f": float("nan")}, {}, {}, {}]},
    {"details": [{"a": [float("inf")]}, {}, {}, {}]},
    {"details": [{1: "x"}, {}, {}, {}]}, {"details": [{Text("k"): 1}, {}, {}, {}]},
    {"details": [{"a": Text("v")}, {}, {}, {}]}, {"details": [{"a": "\ud800"}, {}, {}, {}]},
    {"details": [{"\udfff": 1}, {}, {}, {}]}, {"details": [{"a": np.float64(1.5)}, {}, {}, {}]},
    {"details": [{"a": np.arange(2)}, {}, {}, {}]}, {"details": [{"a": Kind.EAT}, {}, {}, {}]},
    {"details": [{"a": 2**70}, {}, {}, {}]}, {"details": [{"a": {1, 2}}, {}, {}, {}]},
    {"details": [float("nan"), {}, {}, {}]}, {"details": [(1, 2), [1], "x", 0]},
    {"position": [(1.0,), (1.0, 2.0), (1.0, 2.0), (1.0, 2.0)]},
    {"position": [(float("nan"), 1.0)] * N}, {"position": [(True, 1.0)] * N},
    {"position": np.ones((N, 3))}, {"position": np.ones(N)},
    {"position": np.array([[1.0, np.nan]] * N)}, {"position": [(1, 2)] * N},
    {"position": [(np.float64(1.5), 2.0)] * N}, {"position": [(2**60, 1.0)] * N},
    {"position": np.ones((N, 2), bool)}, {"position": [np.ones(2)] * N},
    {"embedding": [[1.0, 2.0]] * N}, {"embedding": [np.ones(3)] * N},
    {"embedding": np.ones((N, 0), np.float32)}, {"stored_at": [1.5, 1, 2, 3]},
    {"stored_at": ["x", 1, 2, 3]}, {"module_type": ["m" * 51] * N}, {"module_id": [3] * N},
    {"state_after_id": ["x\x00", None, None, None]}, {"state_after_id": ["x\ud800"] * N},
    {"action_id": ["a1-3-move", None, "a1-4-move", "a2-4-eat"]},
    {"action_id": ["a1-3-move", "a2-3-eat", "a1-4-move", "a2-4-x" + "y" * 123]},
    {"action_id": ["b-3-move", "a2-3-eat", "a1-4-move", "a2-4-eat"]},
    {"action_id": ["x" * 129] * N}, {"action_id": ["a:1"] * N}, {"action_id": [7] * N},
    {"agent_id": [Text("a1"), "a2", "a1", "a2"]}, {"agent_id": ["a1", Text("a1"), "a1", "a2"]},
    {"action_type": ["eat", StrKind.EAT, "eat", "move"]},
    {"action_type": [StrKind.EAT, "move", "eat", "move"]}, {"foo": [1] * N},
    {"step_number": [3, 3, 4]}, {"agent_id": "abcd"}, {"agent_id": 5},
    {"step_number": np.array(3)}, {"agent_id": ["agént", "a2", "a1", "a2"]},
]
"""Columns the column path leaves to the row path (which stores or refuses them)."""


@pytest.mark.parametrize("change", ROW_PATH, ids=repr)
def test_unusual_columns_are_left_to_the_row_path(change: dict[str, Any]) -> None:
    check(action_repo(), with_(**change))


def test_what_the_column_path_leaves_is_refused_or_converted_by_the_row_path() -> None:
    rp = action_repo()
    # ids given: checked as the row path checks them (mode 'f'), or left to it
    assert check(rp, with_(action_id=["a1-3-move", "a2-3-eat", "a1-4-move", "a2-4-eat"])
                 )[0][0] == "f"
    refused = check(rp, with_(step_number=[3, -1, 4, 4]))
    assert refused[1].startswith("row 1: ")
    converted = check(rp, with_(reward=[1, 2, 3.5, 4]))
    assert isinstance(converted, list)


def test_zero_rows_and_no_columns() -> None:
    rp = action_repo()
    assert check(rp, {k: [] for k in COLS}) == []
    assert check(rp, {"agent_id": np.array([]), "foo": []}) == []
    assert check(rp, {}) == []


class NoNegativeRewards(ActionRepository):
    """A subclass with a rule of its own, in ``check`` and ``check_values``."""

    def check(self, record: Any) -> None:
        super().check(record)
        if record.reward is not None and record.reward < 0:
            raise InvalidInput("no negative rewards")

    def check_values(self, vals: list[Any]) -> None:
        super().check_values(vals)
        reward = vals[self.writer.names.index("reward")]
        if reward is not None and float(reward) < 0:
            raise InvalidInput("no negative rewards")


def test_a_subclass_check_values_runs_on_every_row_of_columns() -> None:
    # ActionCore.rows_ok speaks for ActionCore.check_values only
    assert action_repo()._rows_ok() is not None
    rp = NoNegativeRewards(None)
    assert rp._rows_ok() is None
    cols = with_(reward=[0.5, -1.0, 1.0, 1.0])
    assert check(rp, cols)[0] is InvalidInput
    with pytest.raises(InvalidInput, match="no negative rewards"):
        type(rp).add_columns.build(rp, cols)


class NoNegativeCheck(ActionRepository):
    """A subclass with a rule in ``check`` only: rows are built as models for it."""

    def check(self, record: Any) -> None:
        super().check(record)
        if record.reward is not None and record.reward < 0:
            raise InvalidInput("no negative rewards")


def test_a_subclass_check_alone_runs_on_every_row() -> None:
    rp = NoNegativeCheck(None)
    assert rp._row_checks()[1] is False
    assert action_repo()._row_checks()[1] is True
    assert NoNegativeRewards(None)._row_checks()[1] is True
    cols = with_(reward=[0.5, -1.0, 1.0, 1.0])
    with pytest.raises(InvalidInput, match="no negative rewards"):
        type(rp).add_columns.build(rp, cols)
    rows = [dict(zip(cols, vals, strict=True)) for vals in zip(*cols.values(), strict=True)]
    with pytest.raises(InvalidInput, match="no negative rewards"):
        type(rp).add_rows.build(rp, rows)


def test_embedding_dimension_checked_on_every_row() -> None:
    columns = with_(embedding=[np.ones(4, np.float32)] * N)
    assert isinstance(check(action_repo(embedding_dim=4), columns, fast=True), list)
    _, message = check(action_repo(embedding_dim=3), columns)
    assert "row 0: embedding has 4 dimensions" in message


# -- IMAction (ids given) and the layouts -----------------------------------------


@pytest.mark.parametrize("version", [1, 2, 3])
def test_im_actions_take_the_column_path_with_their_ids(version: int) -> None:
    rp: Repository[IMAction] = Repository(None, layout(version).im_action)
    columns = {"action_id": ["a1-3-move", "a2-3-eat"], "agent_id": ["a1", "a2"],
               "simulation_id": ["s", "s"], "step_number": np.array([3, 3]),
               "action_type": ["move", "eat"], "reward": [0.5, None],
               "importance": np.array([0.0, 1.0])}
    want = check(rp, columns, fast=True)
    assert [(m, b) for m, (_, b), _ in want] == [("f", "'a1-3-move'"), ("f", "'a2-3-eat'")]
    check(rp, {**columns, "importance": [0.5, 1.5]}, fast=False)
    check(rp, {**columns, "importance": np.array([-0.0, 1.0])}, fast=True)
    check(rp, {**columns, "action_id": ["timeline", "x"]}, fast=False)
    check(rp, {**columns, "action_id": ["a", "b:c"]}, fast=False)
    check(rp, {**columns, "action_id": ["a", None]}, fast=False)
    check(rp, {**columns, "action_id": ["x" * 128, "y"]}, fast=True)
    check(rp, {**columns, "action_id": ["x" * 129, "y"]}, fast=False)
    check(rp, {**columns, "action_id": ["a\x00", "y"]}, fast=False)
    check(rp, {k: v for k, v in columns.items() if k != "action_id"}, fast=False)


# -- declared models -----------------------------------------------------------------


class Reading(Record):
    reading_id: str | None = None
    sensor_id: Identifier
    at: Annotated[int, Field(ge=0)]
    value: Annotated[float, Field(gt=-100, le=100)]
    unit: str = "C"
    ok: bool = True
    pair: Annotated[tuple[int, int] | None, Split("p0", "p1")] = None
    raw: Annotated[Any, AsJson()] = None
    vec: Annotated[np.ndarray | None, Vector("float32", dim=2)] = None
    saved: Annotated[int | None, WriteTime()] = None


READINGS = declare(Reading, key="sensor:{sensor_id}:reading:{reading_id}", id="reading_id",
                   id_template="{sensor_id}-{at}-{unit}", indexes=[])


@pytest.mark.parametrize(("change", "fast"), [
    ({}, True), ({"value": [100, -99.5]}, True), ({"value": [100, True]}, False),
    ({"value": np.array([100.0, -99.5])}, True),
    ({"value": np.array([100.0, -100.0])}, False), ({"value": np.array([101, 5])}, False),
    ({"at": np.array([0, 5])}, True), ({"at": [-1, 5]}, False), ({"unit": ["C", "F"]}, True),
    ({"unit": ["C", "a:b"]}, False), ({"unit": ["", "F"]}, True),
    ({"ok": [True, False]}, True), ({"ok": np.array([True, False])}, True),
    ({"ok": [1, 0]}, False), ({"pair": [(1, 2), [3, 4]]}, True),
    ({"pair": np.array([[1, 2], [3, 4]])}, True), ({"pair": [(1.5, 2), (3, 4)]}, False),
    ({"pair": np.array([[1.0, 2.0], [3.0, 4.0]])}, False), ({"raw": [{"k": [1]}, 5]}, True),
    ({"vec": [np.ones(2, np.float32), None]}, True), ({"saved": [1, None]}, True),
    ({"vec": [np.ones(3, np.float32), None]}, False),
])
def test_a_declared_model(change: dict[str, Any], fast: bool) -> None:
    rp: Repository[Reading] = Repository(None, READINGS)
    columns = {"sensor_id": ["x", "y"], "at": [1, 2], "value": [1.5, -0.0], **change}
    check(rp, columns, fast=fast)


class Moody(Record):
    mid: str | None = None
    name: Identifier
    mood: str = "calm"
    level: Annotated[int, Field(validate_default=True)] = 2

    @field_validator("mood", "level", mode="before")
    @classmethod
    def _shout(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value * 10


MOODY = declare(Moody, key="moody:{mid}", id="mid", id_template="{name}", indexes=[])


def test_validators_run_on_each_distinct_value_and_defaults_as_pydantic_has_them() -> None:
    rp: Repository[Moody] = Repository(None, MOODY)
    want = check(rp, {"name": ["a", "b", "c"], "mood": ["sad", "sad", "ok"],
                      "level": [1, 2, 2]}, fast=True)
    assert [v[1][2:] for _, _, v in want] == [
        [("str", "'SAD'"), ("int", "10")], [("str", "'SAD'"), ("int", "20")],
        [("str", "'OK'"), ("int", "20")]]
    # level's default is validated (validate_default): the row path builds it
    check(rp, {"name": ["a", "b"]}, fast=False)


def test_values_checked_once_are_remembered_across_writes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A text column's distinct values are checked once and remembered, with what a
    validator made of them; a refused value is never remembered; past the codec's
    room (``colcodec.KNOWN``) values are checked each time, stored the same."""
    for room in (1 << 14, 3):
        monkeypatch.setattr(colcodec, "KNOWN", room)
        rp: Repository[Moody] = Repository(None, MOODY)
        moods = ["sad", "ok", "sad", "meh", "joy", "ok", "zen", "sad"]
        for i in range(4):
            names = [f"n{i}{j}" for j in range(len(moods))]
            want = check(rp, {"name": names, "mood": moods, "level": [1] * len(moods)},
                         fast=True)
            assert [v[1][2] for _, _, v in want] == [("str", repr(m.upper())) for m in moods]
            moods = [*moods[1:], f"m{i}"]
        for _ in range(2):  # refused each time: the row path explains
            assert check(rp, {"name": ["n1", "a:b"], "mood": ["sad", "sad"]},
                         fast=False)[0] is InvalidInput
        rp2: ActionRepository = action_repo()
        for i in range(3):
            cols = with_(agent_id=[f"a{i}", f"a{i + 1}", "a1", "a2"])
            check(rp2, cols, fast=True)
        check(rp2, with_(agent_id=["a1", "a{b", "a1", "a2"]), fast=False)
        check(rp2, with_(agent_id=["a1", "a{b", "a1", "a2"]), fast=False)


ALLOWED = {"red", "blue"}


class Paint(Record):
    pid: str | None = None
    name: Identifier
    color: str

    @field_validator("color", mode="before")
    @classmethod
    def _known(cls, value: Any) -> Any:  # reads the world: not pure
        if value not in ALLOWED:
            raise ValueError(f"unknown color {value!r}")
        return value


PAINT = declare(Paint, key="paint:{pid}", id="pid", id_template="{name}", indexes=[])


def test_a_models_own_validators_run_on_every_write() -> None:
    """A value a model's validator accepted once is checked again in the next write
    (the validator may read what changed); agentmem's own are remembered."""
    rp: Repository[Paint] = Repository(None, PAINT)
    check(rp, {"name": ["a", "b"], "color": ["red", "blue"]}, fast=True)
    ALLOWED.discard("red")
    try:
        assert check(rp, {"name": ["c", "d"], "color": ["red", "blue"]})[0] is InvalidInput
    finally:
        ALLOWED.add("red")


COUNTER = itertools.count()


class Stamped(Record):
    sid: str | None = None
    name: Identifier
    n: int = Field(default_factory=lambda: next(COUNTER))
    tag: str = "x"


STAMPED = declare(Stamped, key="stamped:{sid}", id="sid", id_template="{name}", indexes=[])


def test_a_missing_columns_default_is_made_as_each_row_makes_it() -> None:
    """A column not given: a default value is stored in every row (encoded once per
    codec), a default factory runs for each row of each write."""
    rp: Repository[Stamped] = Repository(None, STAMPED)
    planner = rp._row_planner()
    got = [p.vals for names in (["a", "b"], ["c", "d"])
           for p in planner.prepare_columns({"name": names}, rp.check, rp.check_values)]
    assert len({vals[2] for vals in got}) == 4
    assert {vals[3] for vals in got} == {"x"}
    assert planner.columns is not None
    assert planner.columns.codec._fields["tag"].missing == ("x",)
    assert planner.columns.codec._fields["n"].missing is None


class Plain(BaseModel):
    pid: str | None = None
    name: str

    @field_validator("name")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()


def test_a_model_without_a_row_fast_path_has_no_column_path() -> None:
    rp: Repository[Plain] = Repository(None, declare(
        Plain, key="plain:{pid}", id="pid", id_template="{name}", indexes=[]))
    assert rp._row_planner().columns is None
    assert check(rp, {"name": ["ab", "cd"]})[0][1] == ("str", "'AB'")


# -- generated columns ------------------------------------------------------------------

AGENTS = st.sampled_from(["a1", "a2", "a3", "", "a:b", "ä", "x" * 64, "x" * 65, None,
                          "a\x00", "a\ud800", Text("a1")])
FLOATS = st.one_of(st.floats(-10, 10), st.sampled_from(
    [0.0, -0.0, 2.5, float("nan"), float("inf"), 1, True, 2**53, 2**54, None]))
DETAILS = st.one_of(
    st.none(),
    st.dictionaries(st.sampled_from(["a", "b", "é", "\ud800", 1]), st.one_of(
        st.none(), st.booleans(), st.integers(-(2**65), 2**65), st.floats(),
        st.sampled_from(["x", "é", "\udfff", Text("t")]), st.lists(st.integers(), max_size=2)),
        max_size=3),
    st.lists(st.integers(), max_size=2), st.sampled_from([0, "x", (1, 2)]))
POSITIONS = st.one_of(st.none(), st.tuples(FLOATS, FLOATS),
                      st.lists(st.floats(-5, 5), min_size=1, max_size=3))


def column(values: st.SearchStrategy[Any], n: int, numpy: str | None = None
           ) -> st.SearchStrategy[Any]:
    """n values as a list, a tuple or (numbers of one kind) a numpy array."""
    lists = st.lists(values, min_size=n, max_size=n)
    kinds = [lists, lists.map(tuple)]
    if numpy == "int":
        kinds.append(st.lists(st.integers(0, 2**53), min_size=n, max_size=n).map(np.array))
        kinds.append(st.lists(st.integers(-3, 2**53 + 1), min_size=n, max_size=n).map(
            np.array))
    elif numpy == "float":
        kinds.append(st.lists(st.floats(width=32), min_size=n, max_size=n).map(
            lambda v: np.array(v, dtype=np.float64)))
    elif numpy == "position":
        kinds.append(st.lists(st.floats(-5, 5), min_size=2 * n, max_size=2 * n).map(
            lambda v: np.array(v).reshape(n, 2)))
    return st.one_of(*kinds)


GOOD_AGENTS = st.sampled_from(["a1", "a2", "a3", "x" * 64, "b1"])
GOOD_FLOATS = st.one_of(st.floats(-10, 10), st.sampled_from([0.0, -0.0, 2.5, 1, -3, None]))
GOOD_DETAILS = st.one_of(st.none(), st.dictionaries(
    st.sampled_from(["a", "b", "é"]), st.one_of(
        st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1),
        st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(["x", "é"])),
    max_size=3))
GOOD_POSITIONS = st.one_of(st.none(), st.tuples(st.floats(-5, 5), st.floats(-5, 5)),
                           st.lists(st.floats(-5, 5), min_size=2, max_size=2))


@st.composite
def action_columns(draw: st.DrawFn) -> dict[str, Any]:
    """Columns of Action: mostly valid ones (``good``), or any values."""
    n = draw(st.integers(1, 5))
    good = draw(st.booleans())
    agents, floats, details, positions = (
        (GOOD_AGENTS, GOOD_FLOATS, GOOD_DETAILS, GOOD_POSITIONS) if good
        else (AGENTS, FLOATS, DETAILS, POSITIONS))
    steps = st.integers(0, 9) if good else st.one_of(
        st.integers(0, 9), st.sampled_from([-1, 2**53 + 1, 2**70, 1.0, True]))
    types = ["move", "eat", "share"] if good else [
        "move", "eat", "move", "a-b", "x" * 21, Kind.EAT, StrKind.EAT, 3]
    out: dict[str, Any] = {
        "agent_id": draw(st.one_of(st.just(["a1"] * n), column(agents, n))),
        "simulation_id": ["s1"] * n,
        "step_number": draw(st.one_of(st.just(list(range(n))), column(steps, n, "int"))),
        "action_type": draw(column(st.sampled_from(types), n)),
    }
    optional = {
        "reward": column(floats, n, "float"), "resources_before": column(floats, n, "float"),
        "details": column(details, n), "position": column(positions, n, "position"),
        "action_target_id": column(agents, n), "stored_at": column(st.sampled_from(
            [None, 1] if good else [None, 1, 1.5]), n),
        "module_type": column(st.sampled_from(
            [None, "m", "é" * 50] if good else [None, "m", "m" * 51, "\x00"]), n),
        "action_id": st.just([None] * n),
    }
    for name, strategy in optional.items():
        if draw(st.booleans()):
            out[name] = draw(strategy)
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(action_columns())
def test_any_columns_give_none_or_the_row_paths_records(columns: dict[str, Any]) -> None:
    check(action_repo(), columns)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["x", "y", "", "a:b"]), st.integers(-1, 3),
                          FLOATS, st.sampled_from(["C", "F", None]),
                          st.sampled_from([None, (1, 2), (1.0, 2), [3, 4]])),
                min_size=1, max_size=4))
def test_any_columns_of_a_declared_model(rows: list[tuple[Any, ...]]) -> None:
    rp: Repository[Reading] = Repository(None, READINGS)
    names = ("sensor_id", "at", "value", "unit", "pair")
    columns = {name: [r[k] for r in rows] for k, name in enumerate(names)}
    if all(r[3] is None for r in rows):
        del columns["unit"]
    check(rp, columns)


# -- the planner's key, index and score checks (plain str and int fields) ----------


class Note(Record):
    nid: str | None = None
    owner: str
    slot: int
    tag: str = "t"
    rank: int = 0
    body: str = "b"


NOTES = declare(Note, key="owner:{owner}:{nid}", id="nid", id_template="{owner}-{slot}",
                indexes=[SetIndex("by_tag", "owner:{owner}:tag:{tag}"),
                         SortedIndex("ranked", "owner:{owner}:ranked", score="rank"),
                         SetIndex("by_slot", "slot:{slot}:notes"),
                         SetIndex("bodies", "owner:{owner}:bodies", member="body")])


@pytest.mark.parametrize(("change", "fast"), [
    ({}, True), ({"owner": ["a:b", "b"]}, False), ({"owner": ["", "b"]}, False),
    ({"owner": ["x" * 128, "b"]}, True), ({"owner": ["x" * 129, "b"]}, False),
    ({"owner": ["a\u200b", "b"]}, False), ({"owner": ["a{", "b"]}, False),
    ({"owner": ["a\ud800", "b"]}, False), ({"slot": [-1, 2]}, False),
    ({"slot": np.array([-1, 2])}, False), ({"tag": ["", "u"]}, False),
    ({"tag": ["x y", "u"]}, False), ({"tag": ["x" * 128, "u"]}, True),
    ({"rank": [2**53, -(2**53)]}, True),
    ({"rank": [2**53 + 1, 0]}, False), ({"rank": np.array([-(2**53) - 1, 0])}, False),
    ({"nid": ["n1", "n2"]}, True), ({"nid": ["timeline", "n2"]}, True),
    ({"nid": ["ranked", "n2"]}, False), ({"nid": ["n:1", "n2"]}, False),
    ({"body": ["", "x"]}, False), ({"body": ["a b", "x:y"]}, True),
])
def test_the_planners_checks_on_distinct_values(change: dict[str, Any], fast: bool) -> None:
    rp: Repository[Note] = Repository(None, NOTES)
    check(rp, {"owner": ["a", "b"], "slot": [1, 2], **change}, fast=fast)
