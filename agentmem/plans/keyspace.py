"""Every key of the agent-action layout, in one place, per layout version.

Pure: renders and checks key names, never talks to a server. Version 1 is the
specification's exact layout (sections 3.1, 3.3, 3.4, 3.5 and the IM keys of
section 6); version 2 is the same families with the agent id or simulation id
wrapped in braces, a Redis Cluster hash tag (``agent:{a1}:action:timeline``), so
that every key of one agent (of one simulation) lives in one slot.
:func:`layout` gives the declarations of :class:`~agentmem.model.records.Action`
and :class:`~agentmem.model.records.IMAction` for a version, and :func:`key_table` the
table that ``docs/keyspace.md`` shows (a test keeps the two equal).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from agentmem.config.settings import (  # the defaults are declared with the options
    DEFAULT_ACTION_TTL as DEFAULT_ACTION_TTL,
)
from agentmem.config.settings import DEFAULT_GRID_CELL as DEFAULT_GRID_CELL
from agentmem.config.settings import DEFAULT_IM_TTL as DEFAULT_IM_TTL
from agentmem.config.settings import (
    DEFAULT_RELATIVE_INDEX_SIZE as DEFAULT_RELATIVE_INDEX_SIZE,
)
from agentmem.errors import ConfigError, InvalidId, LayoutError
from agentmem.model.fields import ACTION_ID_MAX_LENGTH, ACTION_TYPE_MAX_LENGTH, check_id
from agentmem.model.records import Action, IMAction
from agentmem.model.schema import (
    CounterIndex,
    GridIndex,
    ListIndex,
    RecordSpec,
    Retired,
    SetIndex,
    SortedIndex,
    Template,
    declare,
)
from agentmem.plans.cells import GRID_CELL_KEY as GRID_CELL_KEY
from agentmem.plans.cells import NO_GRIDS as NO_GRIDS
from agentmem.plans.cells import check_recorded_cell as check_recorded_cell
from agentmem.plans.cells import grid_cell_text as grid_cell_text
from agentmem.plans.cells import recorded_cell as recorded_cell

CURRENT_VERSION = 1
SUPPORTED_VERSIONS = (1, 2, 3, 4)

LAYOUT_KEY = "agentmem:layout"
"""The key where a server records the layout version of its data (``"1"``, ``"2"``).

Outside every family of every layout (those start with ``agent:`` or
``simulation:``). Absent: the data is layout 1 (written by an older agentmem or
by the specification's own code). While a migration between layouts runs it
holds ``"<from>><to>"`` (e.g. ``"1>2"``), which no client accepts.
"""


ACTION_ID_TEMPLATE = "{agent_id}-{step_number}-{action_type}"

_V1 = {
    "action": "agent:{agent_id}:action:{action_id}",
    "timeline": "agent:{agent_id}:action:timeline",
    "relative_index": "agent:{agent_id}:action:relative_index",
    "types": "agent:{agent_id}:action:types:{action_type}",
    "targets": "agent:{agent_id}:action:targets:{action_target_id}",
    "rewards": "agent:{agent_id}:action:rewards",
    "grid": "agent:{agent_id}:action:grid",
    "sim_actions": "simulation:{simulation_id}:actions",
    "sim_step": "simulation:{simulation_id}:actions:{step_number}",
    "sim_steps": "simulation:{simulation_id}:actions:steps",
    "sim_by_type": "simulation:{simulation_id}:actions:by_type",
    "sim_grid": "simulation:{simulation_id}:actions:{step_number}:grid",
    "im_action": "agent:{agent_id}:im:action:{action_id}",
    "im_timeline": "agent:{agent_id}:im:action:timeline",
    "pinned": "agent:{agent_id}:pinned",
    "retired": "agent:{agent_id}:retired",
}

# Version 2: the agent id / simulation id is a hash tag ({{ and }} are literal braces).
_V2 = {
    "action": "agent:{{{agent_id}}}:action:{action_id}",
    "timeline": "agent:{{{agent_id}}}:action:timeline",
    "relative_index": "agent:{{{agent_id}}}:action:relative_index",
    "types": "agent:{{{agent_id}}}:action:types:{action_type}",
    "targets": "agent:{{{agent_id}}}:action:targets:{action_target_id}",
    "rewards": "agent:{{{agent_id}}}:action:rewards",
    "grid": "agent:{{{agent_id}}}:action:grid",
    "sim_actions": "simulation:{{{simulation_id}}}:actions",
    "sim_step": "simulation:{{{simulation_id}}}:actions:{step_number}",
    "sim_steps": "simulation:{{{simulation_id}}}:actions:steps",
    "sim_by_type": "simulation:{{{simulation_id}}}:actions:by_type",
    "sim_grid": "simulation:{{{simulation_id}}}:actions:{step_number}:grid",
    "im_action": "agent:{{{agent_id}}}:im:action:{action_id}",
    "im_timeline": "agent:{{{agent_id}}}:im:action:timeline",
    "pinned": "agent:{{{agent_id}}}:pinned",
    "retired": "agent:{{{agent_id}}}:retired",
}

# Version 3: version 2's keys; the hashes' fields under short names (COMPACT_FIELDS).
# Version 4: version 3 with the types and targets indices as sorted sets scored by step.
_PATTERNS = {1: _V1, 2: _V2, 3: _V2, 4: _V2}

COMPACT_FIELDS = {
    "action_id": "i", "agent_id": "a", "simulation_id": "s", "step_number": "n",
    "action_type": "t", "action_target_id": "g", "state_before_id": "sb",
    "state_after_id": "sa", "resources_before": "rb", "resources_after": "ra",
    "reward": "r", "details": "d", "position_x": "x", "position_y": "y",
    "embedding": "e", "module_type": "mt", "module_id": "mi", "stored_at": "w",
    "importance": "m",
}
"""Layout 3's hash field of each field of Action and IMAction (``docs/layouts.md``)."""


def sorted_families(version: int) -> bool:
    """Whether a layout keeps the types and targets indices as sorted sets scored by
    step (layout 4), so that a query of one type or target reads its newest entries
    directly; layouts 1-3 keep them as sets, as the specification does."""
    return version >= 4


def compact_names(version: int) -> dict[str, str] | None:
    """The hash field names of a layout's action and IM hashes (``None``: the fields'
    own names, layouts 1 and 2)."""
    return dict(COMPACT_FIELDS) if version >= 3 else None

_TYPES = {
    "action": "hash", "timeline": "zset", "relative_index": "zset", "types": "set",
    "targets": "set", "rewards": "zset", "sim_actions": "list", "sim_step": "set",
    "sim_steps": "zset", "sim_by_type": "hash", "im_action": "hash", "im_timeline": "zset",
    "pinned": "set", "grid": "zset", "sim_grid": "zset", "retired": "hash",
}

_PURPOSE = {
    "action": "one action: the fields of section 3.2",
    "timeline": "action ids scored by step",
    "relative_index": "the newest action ids scored by step, trimmed to 20",
    "types": "action ids of one type",
    "targets": "action ids aimed at one target",
    "rewards": "action ids scored by (raw) reward",
    "grid": "ids of actions with a position, scored by the Z-order code of its grid cell",
    "sim_actions": "every action id of a simulation, in write order",
    "sim_step": "action ids of one step",
    "sim_steps": "steps that have actions (member = score = step)",
    "sim_by_type": "action count per type",
    "sim_grid": "ids of one step's actions with a position, scored as in grid",
    "im_action": "a compressed intermediate-memory action",
    "im_timeline": "intermediate-memory action ids scored by step",
    "pinned": "ids of the agent's pinned actions, which maintenance leaves in their tier",
    "retired": "per simulation, the highest step of the agent's actions that left STM; "
               "':any', a mark of every simulation; ':seq', the counter of .r ids "
               "(docs/keyspace.md)",
}


@dataclass(frozen=True)
class KeyFamily:
    """One row of the key table: a family name, its pattern and its Redis type."""

    name: str
    pattern: str
    type: str
    purpose: str


@dataclass(frozen=True)
class Layout:
    """The keys and the Action / IMAction declarations of one layout version."""

    version: int
    patterns: dict[str, str]
    action: RecordSpec[Action]
    im_action: RecordSpec[IMAction]

    def template(self, family: str) -> Template:
        return Template.parse(self.patterns[family])

    def key(self, family: str, **parts: str | int) -> str:
        """Render one key; every part is checked first (:class:`~agentmem.errors.InvalidId`).

        Agent, simulation and target ids: at most 64 characters; action types: 20;
        action ids: 128; steps: non-negative ints.
        """
        if family not in self.patterns:
            raise LayoutError(f"layout {self.version} has no key family {family!r}")
        for name, value in parts.items():
            check_part(name, value)
        return self.template(family).render(parts)

    def record_key_parts(self, family: str, **scope: str | int) -> tuple[str, str]:
        """A record key around its ``action_id``: (prefix, suffix), scope ids checked."""
        return self.template(family).around("action_id", scope)

    def plain(self, family: str) -> str:
        """The pattern with its literal braces written once (``agent:{{agent_id}}:pinned``
        for version 2): the form in which ``{name}`` is the only brace-word, as Lua-side
        rendering and key parsers read it."""
        return "".join(v if k == "L" else "{" + v + "}" for k, v in self.template(family).parts)

    def parse(self, key: str) -> tuple[str, dict[str, str]] | None:
        """The family and ids of a key of this layout, or ``None`` for any other key."""
        for family, rx in _matchers(self.version):
            m = rx.match(key)
            if m:
                return family, m.groupdict()
        return None


@cache
def _matchers(version: int) -> tuple[tuple[str, re.Pattern[str]], ...]:
    """A regex per family, most literal first (``...:timeline`` before ``...:{id}``);
    an id matches no ``:``, ``{`` or ``}``, as the id rules allow none."""
    lay = layout(version)
    rows = []
    for family in lay.patterns:
        parts = lay.template(family).parts
        rx = "".join(re.escape(v) if k == "L" else
                     (rf"(?P<{v}>\d+)" if v == "step_number" else rf"(?P<{v}>[^:{{}}]+)")
                     for k, v in parts)
        fields = sum(1 for k, _ in parts if k == "F")
        literal = sum(len(v) for k, v in parts if k == "L")
        rows.append((fields, -literal, family, re.compile(rx + r"\Z", re.S)))
    rows.sort(key=lambda row: row[:3])
    return tuple((family, rx) for _, _, family, rx in rows)


def hash_tag(key: str) -> str:
    """The part of ``key`` a Redis Cluster hashes to choose its slot: the text between
    its first ``{`` and the next ``}`` when that is not empty, else the whole key."""
    start = key.find("{")
    if start >= 0:
        end = key.find("}", start + 1)
        if end > start + 1:
            return key[start + 1:end]
    return key


def layout_key() -> str:
    """The name of the key that records the server's layout version (:data:`LAYOUT_KEY`)."""
    return LAYOUT_KEY


def parse_layout_value(raw: bytes | str | None) -> int | None:
    """The version a server records (``None``: no key, layout 1 assumed).

    Raises :class:`LayoutError` for a migration in progress (``"1>2"``), a value that
    is not a version, or a version this agentmem does not know.
    """
    if raw is None:
        return None
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    if ">" in text:
        old, _, new = text.partition(">")
        back = _LAST_REVISION.get(int(new), "base") if new.isdigit() else "base"
        how = ("`agentmem migrate upgrade`" if old < new
               else f"`agentmem migrate downgrade {back}`")
        raise LayoutError(
            f"a migration of the key layout from version {old} to {new} is in progress "
            f"(or was interrupted) on this server ({LAYOUT_KEY} = {text!r}); finish it with "
            f"{how} before using the data")
    if not text.isdigit() or int(text) not in SUPPORTED_VERSIONS:
        raise LayoutError(
            f"the server's data is in key layout version {text!r} ({LAYOUT_KEY}), which "
            f"this agentmem does not know (it knows {list(SUPPORTED_VERSIONS)}); upgrade "
            "agentmem, or migrate the data")
    return int(text)


def check_recorded_version(raw: bytes | str | None, version: int) -> int:
    """Check a client opened with layout ``version`` against what the server records.

    Returns the server's version (1 when it records none); raises :class:`LayoutError`
    when they differ or the recorded value is unknown.
    """
    recorded = parse_layout_value(raw)
    found = 1 if recorded is None else recorded
    if found != version:
        how = f"records layout version {found}" if recorded is not None else (
            "records no layout version, so its data is taken to be layout 1")
        raise LayoutError(
            f"this store was opened with key layout version {version}, but the server "
            f"{how} ({LAYOUT_KEY}); open it with layout_version={found}, or migrate the "
            f"data with {migrate_command(found, version)}")
    return found


_LAST_REVISION = {1: "base", 2: "0003", 3: "0004", 4: "0005"}
"""The last revision of each layout version (``agentmem/migrations/redis/versions``)."""


def migrate_command(found: int, wanted: int) -> str:
    """The ``agentmem migrate`` command that brings data of layout ``found`` to ``wanted``
    (``upgrade`` alone stops before the opt-in layouts 3 and 4)."""
    target = _LAST_REVISION.get(wanted, "head")
    if wanted > found:
        return "`agentmem migrate upgrade" + ("`" if wanted == 2 else f" {target}`")
    return f"`agentmem migrate downgrade {target}`"


def check_action_id(value: object) -> str:
    """Check an action id used in a key (at most 128 characters, not a reserved name)."""
    try:
        check_id(value, what="action id", max_length=ACTION_ID_MAX_LENGTH)  # type: ignore[arg-type]
    except ValueError as exc:
        raise InvalidId(str(exc)) from None
    assert isinstance(value, str)
    if value in layout().action.reserved_ids:
        raise InvalidId(f"action id {value!r} is reserved: it names an index key of the layout")
    return value


def check_action_type(value: object) -> str:
    """Check an action type: at most 20 characters, no ``-`` or ``.`` (id separators)."""
    try:
        check_id(value, what="action type", max_length=ACTION_TYPE_MAX_LENGTH)  # type: ignore[arg-type]
    except ValueError as exc:
        raise InvalidId(str(exc)) from None
    assert isinstance(value, str)
    if "-" in value or "." in value:
        raise InvalidId(f"action type {value!r} contains '-' or '.'; '-' separates the parts "
                        "of action ids and '.' starts the suffix of a duplicate")
    return value


def check_part(name: str, value: object) -> None:
    """Check one named part of a key (agent_id, step_number, action_type, ...)."""
    if name == "step_number":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidId(f"step_number must be a non-negative int, got {value!r}")
    elif name == "action_type":
        check_action_type(value)
    elif name == "action_id":
        check_action_id(value)
    else:
        try:
            check_id(value, what=name)  # type: ignore[arg-type]
        except ValueError as exc:
            raise InvalidId(str(exc)) from None


def _action_spec(p: dict[str, str], relative_size: int,
                 names: dict[str, str] | None = None, *,
                 sorted_ix: bool = False) -> RecordSpec[Action]:
    names = {k: v for k, v in (names or {}).items() if k != "importance"}
    by_type: SortedIndex | SetIndex = (
        SortedIndex("types", p["types"], score="step_number") if sorted_ix
        else SetIndex("types", p["types"]))
    by_target: SortedIndex | SetIndex = (
        SortedIndex("targets", p["targets"], score="step_number") if sorted_ix
        else SetIndex("targets", p["targets"]))
    return declare(
        Action,
        key=p["action"],
        id="action_id",
        id_template=ACTION_ID_TEMPLATE,
        ttl=DEFAULT_ACTION_TTL,
        unique_in="timeline",
        retired=Retired(p["retired"], scope="simulation_id", order="step_number",
                        moved_to=p["im_action"]),
        indexes=[
            SortedIndex("timeline", p["timeline"], score="step_number"),
            SortedIndex("relative_index", p["relative_index"], score="step_number",
                        cap=relative_size),
            by_type,
            by_target,
            SortedIndex("rewards", p["rewards"], score="reward"),
            ListIndex("sim_actions", p["sim_actions"]),
            SetIndex("sim_step", p["sim_step"]),
            SortedIndex("sim_steps", p["sim_steps"], score="step_number", member="step_number"),
            CounterIndex("sim_by_type", p["sim_by_type"], field="action_type"),
            GridIndex("grid", p["grid"], x="position_x", y="position_y",
                      cell=DEFAULT_GRID_CELL),
            GridIndex("sim_grid", p["sim_grid"], x="position_x", y="position_y",
                      cell=DEFAULT_GRID_CELL),
        ],
        hash_names=names,
    )


IM_FIELDS = ("action_id", "agent_id", "simulation_id", "step_number", "action_type", "reward",
             "importance", "action_target_id")


def _im_spec(p: dict[str, str], names: dict[str, str] | None = None) -> RecordSpec[IMAction]:
    return declare(
        IMAction,
        key=p["im_action"],
        id="action_id",
        ttl=DEFAULT_IM_TTL,
        indexes=[SortedIndex("im_timeline", p["im_timeline"], score="step_number")],
        hash_names={k: v for k, v in (names or {}).items() if k in IM_FIELDS},
    )


@cache
def layout(version: int = CURRENT_VERSION) -> Layout:
    """The layout of ``version``; an unknown version raises :class:`LayoutError`."""
    if version not in SUPPORTED_VERSIONS:
        raise LayoutError(
            f"key layout version {version!r} is unknown to this agentmem; "
            f"it knows {list(SUPPORTED_VERSIONS)}"
        )
    patterns = dict(_PATTERNS[version])
    names = compact_names(version)
    return Layout(version, patterns,
                  _action_spec(patterns, DEFAULT_RELATIVE_INDEX_SIZE, names,
                               sorted_ix=sorted_families(version)),
                  _im_spec(patterns, names))


def key_table(version: int = CURRENT_VERSION) -> list[KeyFamily]:
    """The rows of the key table in ``docs/keyspace.md``."""
    lay = layout(version)
    sorted_ix = sorted_families(version)
    return [KeyFamily(n, lay.patterns[n],
                      "zset" if sorted_ix and n in ("types", "targets") else _TYPES[n],
                      _PURPOSE[n] + (", scored by step" if sorted_ix and n in ("types", "targets")
                                     else ""))
            for n in lay.patterns]


def candidate_agents(action_id: str, step: str = "") -> list[str]:
    """The agents an id of a simulation-level index may belong to, as SIM_FETCH tries
    them: what precedes ``-<digits>-`` (matching ``step`` when given), nearest the end first."""
    dashes = [n for n, c in enumerate(action_id) if c == "-"]
    out = []
    for k in range(len(dashes) - 2, -1, -1):
        part = action_id[dashes[k] + 1:dashes[k + 1]]
        if part.isdigit() and part.isascii() and (not step or part == step) and dashes[k] > 0:
            out.append(action_id[:dashes[k]])
    return out


def id_steps(action_id: str, step: str = "") -> list[tuple[str, int]]:
    """The (agent, step) pairs a generated id ``{agent_id}-{step}-{rest}`` of a
    simulation-level index may stand for, as :func:`candidate_agents` splits it (none for
    an id of another shape)."""
    return [(agent, int(action_id[len(agent) + 1:].split("-", 1)[0]))
            for agent in candidate_agents(action_id, step)]


def key_pieces(template: Template, fixed: dict[str, str], variables: Sequence[str]) -> list[str]:
    """The literal text around ``variables`` (in the order they appear) with ``fixed``
    rendered: ``len(variables) + 1`` pieces, the shapes the scripts build keys from
    (``pieces[0] .. v1 .. pieces[1] .. v2 .. pieces[2]``)."""
    out, cur = [], []
    seen = []
    for kind, v in template.parts:
        if kind == "L":
            cur.append(v)
        elif v in variables:
            out.append("".join(cur))
            cur = []
            seen.append(v)
        else:
            cur.append(Template(template.pattern, (("F", v),)).render(fixed))
    out.append("".join(cur))
    if seen != list(variables):
        raise ConfigError(f"key pattern {template.pattern!r} does not have {variables} in order")
    return out
