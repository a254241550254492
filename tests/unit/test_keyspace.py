"""The key layout: exact keys of the specification, id rules, no ambiguity (no server)."""

from __future__ import annotations

import re

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import agentmem
from agentmem.errors import AgentMemError, InvalidId, LayoutError
from agentmem.model.fields import FORBIDDEN, check_id, has_forbidden
from agentmem.plans import keyspace

LAYOUT = keyspace.layout(1)

# (family, parts, the key as the specification writes it)
SPEC_KEYS = [
    ("action", {"agent_id": "a123", "action_id": "1000"}, "agent:a123:action:1000"),
    ("timeline", {"agent_id": "a123"}, "agent:a123:action:timeline"),
    ("types", {"agent_id": "a123", "action_type": "move"}, "agent:a123:action:types:move"),
    ("targets", {"agent_id": "a123", "action_target_id": "a456"},
     "agent:a123:action:targets:a456"),
    ("rewards", {"agent_id": "a123"}, "agent:a123:action:rewards"),
    ("relative_index", {"agent_id": "a123"}, "agent:a123:action:relative_index"),
    ("sim_actions", {"simulation_id": "sim01"}, "simulation:sim01:actions"),
    ("sim_step", {"simulation_id": "sim01", "step_number": 1050}, "simulation:sim01:actions:1050"),
    ("sim_steps", {"simulation_id": "sim01"}, "simulation:sim01:actions:steps"),
    ("sim_by_type", {"simulation_id": "sim01"}, "simulation:sim01:actions:by_type"),
    ("im_action", {"agent_id": "a123", "action_id": "a123-5-move"},
     "agent:a123:im:action:a123-5-move"),
    ("im_timeline", {"agent_id": "a123"}, "agent:a123:im:action:timeline"),
]

SPEC_TYPES = {
    "action": "hash", "timeline": "zset", "relative_index": "zset", "types": "set",
    "targets": "set", "rewards": "zset", "sim_actions": "list", "sim_step": "set",
    "sim_steps": "zset", "sim_by_type": "hash", "im_action": "hash", "im_timeline": "zset",
}

RESERVED = {"timeline", "relative_index", "rewards", "grid"}

# Which part of a family is which kind of id (for the parser and the generators).
PART_KIND = {
    "agent_id": "id", "simulation_id": "id", "action_target_id": "id",
    "action_type": "type", "action_id": "action_id", "step_number": "step",
}

FORBIDDEN_SAMPLES = [
    ":", "{", "}", " ", "\t", "\n", "\r", "\x0b", "\x0c", "\x00", "\x01", "\x1b", "\x1f",
    "\x7f", "\x80", "\x85", "\x9f", "\xa0", "\u1680", "\u2000", "\u2007", "\u200a", "\u2028",
    "\u2029", "\u202f", "\u205f", "\u3000",
]


@pytest.mark.parametrize(("family", "parts", "expected"), SPEC_KEYS,
                         ids=[row[0] for row in SPEC_KEYS])
def test_every_family_renders_the_spec_key(family, parts, expected):
    assert LAYOUT.key(family, **parts) == expected


# agentmem's own families beside the specification's: (pattern, type)
EXTENSIONS = {
    "pinned": ("agent:{agent_id}:pinned", "set"),
    "retired": ("agent:{agent_id}:retired", "hash"),
    "grid": ("agent:{agent_id}:action:grid", "zset"),
    "sim_grid": ("simulation:{simulation_id}:actions:{step_number}:grid", "zset"),
}


def test_layout_has_exactly_the_spec_families_and_types():
    assert set(LAYOUT.patterns) == {row[0] for row in SPEC_KEYS} | set(EXTENSIONS)
    assert {row.name: row.type for row in keyspace.key_table()} == SPEC_TYPES | {
        name: typ for name, (_, typ) in EXTENSIONS.items()}
    assert {row.name: row.pattern for row in keyspace.key_table()} == LAYOUT.patterns


def test_extensions_name_no_key_of_the_spec_families():
    """``agent:{a}:pinned`` has three parts; every spec key of an agent has four or more
    (``agent:{a}:action:...``, ``agent:{a}:im:...``), and ids hold no ``:``.
    ``simulation:{s}:actions:{step}:grid`` has five; the spec's simulation keys at most
    four. ``agent:{a}:action:grid`` has the shape of an action hash whose id is
    ``grid``: that id is reserved, and the specification's ids (``{agent}-{step}-{type}``)
    always hold a ``-``."""
    for name, (pattern, _) in EXTENSIONS.items():
        assert LAYOUT.patterns[name] == pattern
        key = LAYOUT.key(name, agent_id="a1", simulation_id="s1", step_number=3)
        head = key.split(":", 1)[0]
        for _, _parts, expected in SPEC_KEYS:
            if expected.startswith(head) and key.count(":") == expected.count(":"):
                assert name == "grid"
                assert expected.split(":")[2] == "action"
    assert "grid" in LAYOUT.action.reserved_ids
    with pytest.raises(InvalidId, match="reserved"):
        keyspace.check_action_id("grid")


def test_action_declaration_uses_the_spec_patterns():
    assert LAYOUT.action.key.pattern == "agent:{agent_id}:action:{action_id}"
    assert LAYOUT.im_action.key.pattern == "agent:{agent_id}:im:action:{action_id}"
    assert LAYOUT.action.id_template == "{agent_id}-{step_number}-{action_type}"
    assert {ix.name: ix.key for ix in LAYOUT.action.indexes} == {
        name: LAYOUT.patterns[name]
        for name in ("timeline", "relative_index", "types", "targets", "rewards",
                     "sim_actions", "sim_step", "sim_steps", "sim_by_type", "grid", "sim_grid")
    }
    assert LAYOUT.action.index("relative_index").cap == 20
    assert LAYOUT.action.index("grid").cell == keyspace.DEFAULT_GRID_CELL == 1.0


def test_unknown_layout_version_raises_layout_error():
    assert keyspace.SUPPORTED_VERSIONS == (1, 2, 3, 4)
    for version in (0, 5, 9):
        with pytest.raises(LayoutError):
            keyspace.layout(version)
        with pytest.raises(LayoutError):
            agentmem.connect("redis://127.0.0.1:1/0", layout_version=version)
    assert issubclass(LayoutError, AgentMemError)


# -- layout 2: the same families, the agent / simulation id as a hash tag ----------

LAYOUT2 = keyspace.layout(2)


def _v2(key: str) -> str:
    """The layout-2 key of a layout-1 key: the id after agent:/simulation: in braces."""
    head, first, rest = key.split(":", 2)
    return f"{head}:{{{first}}}:{rest}"


@pytest.mark.parametrize(("family", "parts", "expected"), SPEC_KEYS,
                         ids=[row[0] for row in SPEC_KEYS])
def test_layout2_wraps_the_agent_or_simulation_id_in_a_hash_tag(family, parts, expected):
    key = LAYOUT2.key(family, **parts)
    assert key == _v2(expected)
    tag = key[key.index("{") + 1:key.index("}")]
    assert tag == parts.get("agent_id", parts.get("simulation_id"))
    assert LAYOUT2.parse(key) == (family, {k: str(v) for k, v in parts.items()})
    assert LAYOUT.parse(key) is None
    assert LAYOUT2.parse(expected) is None


def test_layout2_has_the_families_and_types_of_layout1():
    assert list(LAYOUT2.patterns) == list(LAYOUT.patterns)
    assert [(r.name, r.type, r.purpose) for r in keyspace.key_table(2)] == [
        (r.name, r.type, r.purpose) for r in keyspace.key_table(1)]
    assert LAYOUT2.key("pinned", agent_id="a1") == "agent:{a1}:pinned"
    assert LAYOUT2.plain("action") == "agent:{{agent_id}}:action:{action_id}"
    assert LAYOUT.plain("action") == LAYOUT.patterns["action"]


def test_layout2_declarations_use_its_patterns():
    assert LAYOUT2.action.key.pattern == LAYOUT2.patterns["action"]
    assert LAYOUT2.im_action.key.pattern == LAYOUT2.patterns["im_action"]
    assert {ix.name: ix.key for ix in LAYOUT2.action.indexes} == {
        ix.name: LAYOUT2.patterns[ix.name] for ix in LAYOUT.action.indexes}
    assert LAYOUT2.action.reserved_ids == RESERVED
    assert LAYOUT2.action.index("relative_index").cap == 20


def test_layout_key_is_outside_every_family():
    assert keyspace.layout_key() == keyspace.LAYOUT_KEY == "agentmem:layout"
    assert keyspace.GRID_CELL_KEY == "agentmem:grid_cell"
    for lay in (LAYOUT, LAYOUT2):
        for key in (keyspace.LAYOUT_KEY, keyspace.GRID_CELL_KEY):
            assert lay.parse(key) is None
            assert not key.startswith(("agent:", "simulation:"))


def test_recorded_grid_cells():
    assert keyspace.grid_cell_text(1) == "1.0"
    assert keyspace.grid_cell_text(0.1) == "0.1"
    keyspace.check_recorded_cell(None, 7.0)  # nothing recorded: any cell
    keyspace.check_recorded_cell(b"0.5", 0.5)
    keyspace.check_recorded_cell("2", 2.0)  # the same number, written otherwise
    assert keyspace.recorded_cell(b"0.25") == 0.25
    for raw in (None, b"nonsense", b"", b"0", b"-1", b"nan", b"inf"):
        assert keyspace.recorded_cell(raw) is None
    for raw in (b"0.5", b"1.00001", b"nonsense", b""):
        with pytest.raises(LayoutError, match="agentmem:grid_cell"):
            keyspace.check_recorded_cell(raw, 1.0)


def test_recorded_layout_values():
    assert keyspace.parse_layout_value(None) is None
    assert keyspace.parse_layout_value(b"2") == 2
    assert keyspace.check_recorded_version(None, 1) == 1
    assert keyspace.check_recorded_version(b"2", 2) == 2
    for raw, version in [(b"9", 1), (b"x", 1), (b"1>2", 2), (None, 2), (b"1", 2), (b"2", 1)]:
        with pytest.raises(LayoutError):
            keyspace.check_recorded_version(raw, version)


def test_unknown_family_raises_layout_error():
    with pytest.raises(LayoutError):
        LAYOUT.key("nope", agent_id="a1")


def test_reserved_action_ids_are_the_index_names():
    assert LAYOUT.action.reserved_ids == RESERVED


@pytest.mark.parametrize("reserved", sorted(RESERVED))
def test_reserved_action_id_is_rejected(reserved):
    with pytest.raises(InvalidId):
        LAYOUT.key("action", agent_id="a1", action_id=reserved)
    with pytest.raises(InvalidId):
        keyspace.check_action_id(reserved)


@pytest.mark.parametrize("bad", FORBIDDEN_SAMPLES, ids=[repr(c) for c in FORBIDDEN_SAMPLES])
@pytest.mark.parametrize(("family", "part"), [
    ("timeline", "agent_id"), ("sim_actions", "simulation_id"),
    ("targets", "action_target_id"), ("types", "action_type"), ("action", "action_id"),
])
def test_forbidden_character_in_any_id_is_rejected(family, part, bad):
    parts = {"agent_id": "a1", "simulation_id": "s1", "action_target_id": "t1",
             "action_type": "move", "action_id": "a1-1-move"}
    needed = {p: parts[p] for p in re.findall(r"{(\w+)}", LAYOUT.patterns[family])}
    needed[part] = f"x{bad}y"
    with pytest.raises(InvalidId):
        LAYOUT.key(family, **needed)


@pytest.mark.parametrize(("family", "part"), [
    ("timeline", "agent_id"), ("sim_actions", "simulation_id"),
    ("types", "action_type"), ("action", "action_id"),
])
def test_empty_id_is_rejected(family, part):
    parts = {"agent_id": "a1", "simulation_id": "s1", "action_type": "move",
             "action_id": "a1-1-move"}
    needed = {p: parts[p] for p in re.findall(r"{(\w+)}", LAYOUT.patterns[family])}
    needed[part] = ""
    with pytest.raises(InvalidId):
        LAYOUT.key(family, **needed)


def test_length_limits_of_the_model_ids():
    ok = {"agent_id": "a" * 64, "simulation_id": "s" * 64, "action_target_id": "t" * 64,
          "action_type": "m" * 20, "action_id": "i" * 128}
    a = agentmem.Action(step_number=1, **ok)
    assert a.agent_id == "a" * 64
    for field, value in [("agent_id", "a" * 65), ("simulation_id", "s" * 65),
                         ("action_target_id", "t" * 65), ("action_type", "m" * 21),
                         ("action_id", "i" * 129)]:
        with pytest.raises(agentmem.InvalidInput):
            agentmem.Action(step_number=1, **{**ok, field: value})


def test_length_limits_of_layout_keys():
    assert LAYOUT.key("types", agent_id="a1", action_type="m" * 20)
    with pytest.raises(InvalidId):
        LAYOUT.key("types", agent_id="a1", action_type="m" * 21)
    assert LAYOUT.key("action", agent_id="a1", action_id="i" * 128)
    with pytest.raises(InvalidId):
        LAYOUT.key("action", agent_id="a1", action_id="i" * 129)
    with pytest.raises(InvalidId):
        keyspace.check_action_type("m" * 21)


@pytest.mark.parametrize(("family", "part"), [
    ("timeline", "agent_id"), ("sim_actions", "simulation_id"), ("targets", "action_target_id"),
])
def test_layout_key_rejects_ids_longer_than_64(family, part):
    parts = {"agent_id": "a1", "simulation_id": "s1", "action_target_id": "t1"}
    needed = {p: parts[p] for p in re.findall(r"{(\w+)}", LAYOUT.patterns[family])}
    assert LAYOUT.key(family, **{**needed, part: "x" * 64})
    with pytest.raises(InvalidId):
        LAYOUT.key(family, **{**needed, part: "x" * 65})


@pytest.mark.parametrize("step", ["steps", "by_type", "5", 5.0, True, None])
def test_layout_key_rejects_a_step_that_is_not_an_int(step):
    """A string step 'steps' would render the key of the sim_steps family."""
    with pytest.raises(InvalidId):
        LAYOUT.key("sim_step", simulation_id="sim01", step_number=step)


@pytest.mark.parametrize("action_type", ["mo-ve", "-", "move-"])
def test_action_type_with_a_dash_is_rejected(action_type):
    """'-' separates the parts of an action id, so a type may not contain it."""
    with pytest.raises(InvalidId):
        LAYOUT.key("types", agent_id="a1", action_type=action_type)
    with pytest.raises(agentmem.InvalidInput):
        agentmem.Action(agent_id="a1", simulation_id="s", step_number=1,
                        action_type=action_type)


def test_negative_step_is_rejected():
    with pytest.raises(InvalidId):
        LAYOUT.key("sim_step", simulation_id="sim01", step_number=-1)


def test_non_string_id_is_rejected():
    with pytest.raises(InvalidId):
        LAYOUT.key("timeline", agent_id=1.5)  # type: ignore[arg-type]
    with pytest.raises(InvalidId):
        LAYOUT.key("timeline", agent_id=None)  # type: ignore[arg-type]


# -- property tests ----------------------------------------------------------------

ALLOWED = st.characters(
    blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp"),
    blacklist_characters=":{}\x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000\t\n\r\x0b\x0c",
)


def _valid(max_size: int) -> st.SearchStrategy[str]:
    return st.text(ALLOWED, min_size=1, max_size=max_size).filter(lambda s: not s.isspace()
                                                                    and check_ok(s, max_size))


def check_ok(value: str, max_length: int) -> bool:
    try:
        check_id(value, max_length=max_length)
    except ValueError:
        return False
    return True


VALID = {
    "id": _valid(64),
    "type": _valid(20).filter(lambda s: "-" not in s and "." not in s),
    "action_id": _valid(128).filter(lambda s: s not in RESERVED),
    "step": st.integers(min_value=0, max_value=2**63),
}


@st.composite
def family_and_parts(draw):
    family = draw(st.sampled_from(sorted(LAYOUT.patterns)))
    names = re.findall(r"{(\w+)}", LAYOUT.patterns[family])
    return family, {n: draw(VALID[PART_KIND[n]]) for n in names}


def _regex(pattern: str) -> re.Pattern[str]:
    out, pos = "", 0
    for m in re.finditer(r"{(\w+)}", pattern):
        out += re.escape(pattern[pos:m.start()])
        kind = PART_KIND[m.group(1)]
        out += rf"(?P<{m.group(1)}>\d+)" if kind == "step" else rf"(?P<{m.group(1)}>[^:]+)"
        pos = m.end()
    return re.compile(out + re.escape(pattern[pos:]) + r"\Z")


PARSERS = {family: _regex(p) for family, p in LAYOUT.patterns.items()}


def parse(key: str) -> list[tuple[str, dict[str, str]]]:
    """Every (family, parts) a key can be read as; reserved names are not action ids."""
    found = []
    for family, rx in PARSERS.items():
        m = rx.match(key)
        if m is None:
            continue
        if m.groupdict().get("action_id") in RESERVED:
            continue
        found.append((family, m.groupdict()))
    return found


@given(family_and_parts())
def test_valid_ids_render_a_key_that_parses_back_unambiguously(fp):
    family, parts = fp
    key = LAYOUT.key(family, **parts)
    assert parse(key) == [(family, {k: str(v) for k, v in parts.items()})]


@given(family_and_parts(), family_and_parts())
def test_no_two_families_render_the_same_key(fp1, fp2):
    (f1, p1), (f2, p2) = fp1, fp2
    assume(f1 != f2)
    assert LAYOUT.key(f1, **p1) != LAYOUT.key(f2, **p2)


@given(st.sampled_from(sorted(LAYOUT.patterns)), st.sampled_from(sorted(LAYOUT.patterns)),
       st.data())
def test_families_that_share_a_shape_differ_in_a_literal(f1, f2, data):
    """Render two families with the *same* id everywhere: still different keys."""
    assume(f1 != f2)
    same = data.draw(VALID["type"].filter(lambda s: s not in RESERVED and not s.isdigit()))
    step = data.draw(VALID["step"])

    def parts(family: str) -> dict[str, object]:
        return {n: (step if n == "step_number" else same)
                for n in re.findall(r"{(\w+)}", LAYOUT.patterns[family])}

    assert LAYOUT.key(f1, **parts(f1)) != LAYOUT.key(f2, **parts(f2))


def _with_forbidden(max_size: int) -> st.SearchStrategy[str]:
    return st.tuples(
        st.text(max_size=max_size // 2), st.sampled_from(FORBIDDEN_SAMPLES)
        | st.characters(whitelist_categories=("Cc", "Zs", "Zl", "Zp")),
        st.text(max_size=max_size // 2),
    ).map(lambda t: t[0] + t[1] + t[2])


@given(_with_forbidden(60))
def test_any_string_with_a_forbidden_char_is_rejected_everywhere(value):
    with pytest.raises(ValueError, match="contains"):
        check_id(value)
    with pytest.raises(InvalidId):
        LAYOUT.key("timeline", agent_id=value)
    with pytest.raises(InvalidId):
        LAYOUT.key("action", agent_id="a1", action_id=value)
    with pytest.raises(agentmem.InvalidInput):
        agentmem.Action(agent_id=value, simulation_id="s", step_number=0, action_type="m")
    with pytest.raises(agentmem.InvalidInput):
        agentmem.Action(agent_id="a", simulation_id=value, step_number=0, action_type="m")


@given(st.text(max_size=70))
def test_key_rule_and_model_rule_agree(value):
    """check_id (Python regex) and the pydantic Identifier (Rust regex) accept the same ids."""
    key_ok = check_ok(value, 64)
    try:
        agentmem.Action(agent_id=value, simulation_id="s", step_number=0, action_type="m")
        model_ok = True
    except agentmem.InvalidInput:
        model_ok = False
    assert key_ok == model_ok


def test_the_layout_error_names_the_migration_to_the_stores_layout() -> None:
    """``upgrade`` alone stops before the opt-in layout 3: the hint names the revision."""
    cases = {(1, 2): "`agentmem migrate upgrade`", (1, 3): "`agentmem migrate upgrade 0004`",
             (2, 3): "`agentmem migrate upgrade 0004`", (3, 2): "`agentmem migrate downgrade 0003`",
             (2, 1): "`agentmem migrate downgrade base`"}
    for (found, wanted), command in cases.items():
        assert keyspace.migrate_command(found, wanted) == command
        with pytest.raises(LayoutError) as info:
            keyspace.check_recorded_version(str(found), wanted)
        assert str(info.value).endswith(command)
    with pytest.raises(LayoutError, match="finish it with `agentmem migrate downgrade 0003`"):
        keyspace.parse_layout_value("3>2")
    with pytest.raises(LayoutError, match="finish it with `agentmem migrate upgrade` "):
        keyspace.parse_layout_value("2>3")


def test_has_forbidden_agrees_with_the_expression_on_every_character() -> None:
    # the ASCII path (bytes.translate) and the expression, one character at a time and
    # each character inside an ASCII id: the same answer for all of Unicode
    for c in range(0x110000):
        ch = chr(c)
        want = FORBIDDEN.search(ch) is not None
        assert has_forbidden(ch) is want, hex(c)
        assert has_forbidden(f"agent_{c}-{ch}-move") is want, hex(c)


@given(st.text(max_size=60))
def test_has_forbidden_agrees_with_the_expression_on_any_text(text: str) -> None:
    assert has_forbidden(text) is (FORBIDDEN.search(text) is not None)
