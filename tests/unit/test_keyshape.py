"""Key templates that values can make one key (``agentmem.model.keyshape``), and the
declarations ``declare`` refuses for it: a record key that can be an index key of its
own (the write stopped half done at the second key's type), two indexes of different
Redis types that can name one key."""

from __future__ import annotations

import pytest

from agentmem import Identifier, Record, SetIndex, SortedIndex, declare
from agentmem.errors import SchemaError
from agentmem.model.keyshape import may_coincide
from agentmem.model.schema import Template


def parts(pattern: str) -> tuple[tuple[str, str], ...]:
    return Template.parse(pattern).parts


@pytest.mark.parametrize(("a", "b", "may"), [
    ("x:{a}:{b}", "x:{a}:{c}", True),
    ("x:{a}:{b}", "x:{a}", False),                 # segments
    ("x:{a}:{b}", "y:{a}:{b}", False),             # literal segments differ
    ("x:{a}:r{b}", "x:{a}:s{c}", False),           # literal heads differ
    ("x:{a}:{b}r", "x:{a}:{c}s", False),           # literal tails differ
    ("x:{a}:r{b}", "x:{a}:ra{c}", True),
    ("x:{a}:{b}", "x:{a}:timeline", True),
    ("x:{n}", "x:timeline", False),                # an int field is digits
    ("x:{n}", "x:-12", True),
    ("x:{n}", "x:{s}", True),
    ("x:a{b}c", "x:abc", True),
    ("x:a{b}c", "x:ac", False),                    # a field is never empty
    ("agent:{agent_id}:action:{action_id}", "agent:{agent_id}:actions:type:{t}", False),
])
def test_templates_that_values_can_make_one_key(a: str, b: str, may: bool) -> None:
    assert may_coincide(parts(a), parts(b), {"n"}) is may
    assert may_coincide(parts(b), parts(a), {"n"}) is may


class Tagged(Record):
    tag_id: Identifier | None = None
    a: Identifier
    kind: Identifier
    step: int


def tagged(key: str, *indexes: SetIndex | SortedIndex) -> object:
    return declare(Tagged, key=key, id="tag_id", id_template="{kind}", indexes=indexes)


@pytest.mark.parametrize("index", [
    SetIndex("k", "x:{a}:{kind}"),       # every record: its id is its kind
    SetIndex("k", "x:{a}:k{kind}"),      # an id "k..."
    SetIndex("k", "x:{kind}:{a}"),
], ids=["same-value", "prefixed-value", "other-fields"])
def test_a_record_key_that_can_be_an_index_key_is_refused(index: SetIndex) -> None:
    with pytest.raises(SchemaError, match="can be a record's key"):
        tagged("x:{a}:{tag_id}", index)


@pytest.mark.parametrize(("key", "index"), [
    ("x:{a}:{tag_id}", SetIndex("k", "x:{a}:timeline")),  # literal at the id: reserved
    ("x:{a}:{tag_id}", SetIndex("k", "y:{a}:{kind}")),
    ("x:{a}:{tag_id}", SetIndex("k", "x:{a}:{kind}:all")),
    ("x:r:{tag_id}", SortedIndex("k", "x:{step}:{kind}", score="step")),  # digits, not r
], ids=["reserved-id", "other-literal", "more-segments", "int-field-vs-literal"])
def test_index_keys_apart_from_the_record_key_are_declared(
        key: str, index: SetIndex | SortedIndex) -> None:
    tagged(key, index)


def test_the_reserved_id_is_still_refused_at_write_time() -> None:
    spec = tagged("x:{a}:{tag_id}", SetIndex("k", "x:{a}:timeline"))
    assert "timeline" in spec.reserved_ids  # type: ignore[attr-defined]


def test_two_indexes_of_different_types_that_can_name_one_key_are_refused() -> None:
    with pytest.raises(SchemaError, match="can name one key"):
        tagged("t:{a}:{tag_id}", SetIndex("s", "y:{a}"),
               SortedIndex("z", "y:{kind}", score="step"))
    # of one type they may share a key (their entries go to the one set)
    tagged("t:{a}:{tag_id}", SetIndex("s", "y:{a}"), SetIndex("s2", "y:{kind}"))
    # of different types with keys apart
    tagged("t:{a}:{tag_id}", SetIndex("s", "y:{a}"),
           SortedIndex("z", "z:{kind}", score="step"))
