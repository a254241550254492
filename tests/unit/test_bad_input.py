"""Bad input gets one clear error from one root (no server needed).

Ids may not hold characters that print as nothing (two ids that look alike are
the same id), numbers are not bools, and pydantic's ValidationError reaches the
user as :class:`agentmem.InvalidInput` (an ``AgentMemError`` and a ``ValueError``),
pydantic's own error kept as its cause.
"""

from __future__ import annotations

import numpy as np
import pydantic
import pytest

from agentmem import Action, IMAction
from agentmem.errors import AgentMemError, InvalidInput
from agentmem.model.fields import check_id

BASE = {"agent_id": "a1", "simulation_id": "s1", "step_number": 3, "action_type": "move"}
INVISIBLE = {
    "soft-hyphen": "\u00ad", "zero-width-space": "\u200b", "zero-width-joiner": "\u200d",
    "left-to-right-mark": "\u200e", "right-to-left-override": "\u202e",
    "word-joiner": "\u2060", "byte-order-mark": "\ufeff", "lone-surrogate": "\ud800",
    "variation-selector": "\ufe0f", "hangul-filler": "\u3164",
}


@pytest.mark.parametrize("field", ["agent_id", "simulation_id", "action_id",
                                   "action_target_id", "action_type"])
@pytest.mark.parametrize("char", INVISIBLE.values(), ids=INVISIBLE.keys())
def test_invisible_characters_are_refused_in_ids(field: str, char: str) -> None:
    value = f"ab{char}c"
    with pytest.raises(InvalidInput, match=field):
        Action(**{**BASE, field: value})
    with pytest.raises(ValueError, match="invisible"):
        check_id(value, what=field)


def test_visible_unicode_ids_are_still_ids() -> None:
    a = Action(**{**BASE, "agent_id": "agent_é_漢字_🙂"})
    assert a.agent_id == "agent_é_漢字_🙂"


@pytest.mark.parametrize("field", ["step_number", "reward", "resources_before",
                                   "resources_after"])
@pytest.mark.parametrize("value", [True, False, np.bool_(True)], ids=["True", "False", "np"])
def test_a_bool_is_not_a_number(field: str, value: object) -> None:
    with pytest.raises(InvalidInput, match="not a bool"):
        Action(**{**BASE, field: value})


def test_a_bool_is_not_a_coordinate_nor_an_im_number() -> None:
    with pytest.raises(InvalidInput, match="not a bool"):
        Action(**{**BASE, "position": (True, 1.0)})
    with pytest.raises(InvalidInput, match="not a bool"):
        IMAction(action_id="a1-3-move", agent_id="a1", simulation_id="s1", step_number=3,
                 action_type="move", reward=True)


def test_numpy_numbers_are_numbers() -> None:
    a = Action(**{**BASE, "step_number": np.int64(4), "reward": np.float32(0.5),
                  "position": (np.float64(1.5), np.int32(2))})
    assert (a.step_number, a.reward, a.position) == (4, 0.5, (1.5, 2.0))


def test_validation_errors_come_from_the_one_root() -> None:
    with pytest.raises(InvalidInput) as info:
        Action(**{**BASE, "step_number": -1})
    err = info.value
    assert isinstance(err, AgentMemError)
    assert isinstance(err, ValueError)
    assert isinstance(err.__cause__, pydantic.ValidationError)  # the details, kept
    assert "step_number" in str(err)


def test_model_validate_raises_the_same() -> None:
    with pytest.raises(InvalidInput, match="agent_id"):
        Action.model_validate({**BASE, "agent_id": "a:b"})
    assert Action.model_validate(BASE) == Action(**BASE)


def test_the_message_spells_the_id_rule_out() -> None:
    with pytest.raises(InvalidInput, match="agent_id 'a b' contains ' '; ids may not contain"):
        Action(**{**BASE, "agent_id": "a b"})
