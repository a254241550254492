"""The archive's write helpers: prepared batches, and which action ids it holds.

Id lookups go through the side table's unique (simulation, agent, action id)
index: on SQLite one probe per id, elsewhere one query per simulation and chunk.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import random
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from json.encoder import encode_basestring_ascii
from typing import Any

from sqlalchemy import Double, Float, and_, inspect, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.sql.sqltypes import REAL

from agentmem.backends.sqlrows import decode_row, select_actions
from agentmem.backends.sqltables import action_extras, agent_actions, split_details
from agentmem.errors import InvalidInput
from agentmem.model.records import Action, same_action

SIDE_COLUMNS = ("simulation_id", "agent_id", "action_id", "position_x", "position_y",
                 "embedding", "stored_at", "details_full", "extra_fields", "row_id")
"""The side table's columns in the order a prepared side row holds them (``row_id`` last:
it is known only once the ``agent_actions`` row is in)."""

LOOKUP_CHUNK = 300
"""Rows per id lookup query (three parameters each: under SQLite's oldest limit of 999)."""


class Batch:
    """Rows of one ``write`` call ready for the database, as plain tuples.

    ``main`` holds ``agent_actions`` rows in the column order of
    :attr:`Archive._main_columns`; ``side`` holds ``agentmem_action_extras``
    rows in :data:`SIDE_COLUMNS` order without the last one (``row_id``).
    """

    __slots__ = ("agents", "conflicts", "ids", "main", "present", "side", "sims")

    def __init__(self) -> None:
        self.main: list[tuple[Any, ...]] = []
        self.side: list[tuple[Any, ...]] = []
        self.ids: list[str] = []  # the action id of each row of ``main``
        self.sims: dict[str, None] = {}  # in first-seen order
        self.agents: dict[str, str] = {}  # agent id -> simulation of its first action
        self.present = 0  # actions archived already, with the same content
        # position in the input -> why it was refused: another action holds its id
        self.conflicts: dict[int, str] = {}


class Attempt:
    """One transaction of a ``write`` call: whether it may trust the parent cache, whether
    it did, and the parent rows it made sure of (remembered once it has committed)."""

    __slots__ = ("agents", "relied_on_cache", "sims", "use_cache")

    def __init__(self, use_cache: bool) -> None:
        self.use_cache = use_cache
        self.relied_on_cache = False
        self.sims: list[str] = []
        self.agents: list[str] = []


SQLITE_TOP = (
    "SELECT (SELECT max(action_id) FROM agent_actions), "
    "(SELECT count(*) FROM sqlite_master WHERE type = 'trigger' "
    "AND lower(tbl_name) = 'agent_actions')"
)
"""SQLite: the largest row id of ``agent_actions`` and how many triggers the table has."""


PG_LOOKUP = (
    "SELECT x.simulation_id, x.agent_id, x.action_id "
    "FROM unnest(%s::text[], %s::text[], %s::text[]) AS v(s, a, i) "
    "CROSS JOIN LATERAL (SELECT y.simulation_id, y.agent_id, y.action_id "
    "FROM agentmem_action_extras AS y "
    "WHERE y.simulation_id = v.s AND y.agent_id = v.a AND y.action_id = v.i LIMIT 1) AS x"
)
"""PostgreSQL: the archived ``(simulation_id, agent_id, action_id)`` among the triples of
three arrays, each sent as the text of an array literal (:func:`pg_text_array`). Three
parameters whatever the batch (psycopg prepares a statement run five
times, and PostgreSQL's generic plan of the ``IN`` list of 500 ids scanned the whole
simulation per id); the ``LATERAL ... LIMIT 1`` (the key is unique) keeps the plan one
probe of the side table's unique index per triple, whatever the statistics."""

def pg_text_array(values: Sequence[Any]) -> str | list[Any]:
    """A PostgreSQL array literal of ``values``, every element double-quoted (``\\`` and
    ``"`` escaped), for a ``%s::text[]`` parameter: what psycopg sends for a list of
    strings, built in one join (psycopg's own dumper checks each element in Python,
    about 5 times the client CPU). Values that are not all strings: the list itself."""
    try:
        text = '","'.join(values)
    except TypeError:
        return list(values)
    if "\\" in text or text.count('"') != 2 * len(values) - 2:  # beyond the separators
        text = '","'.join(v.replace("\\", "\\\\").replace('"', '\\"') for v in values)
    return '{"' + text + '"}' if values else "{}"


PG_LOOKUP_CHUNK = 10_000
"""Triples per :data:`PG_LOOKUP` query."""


@functools.lru_cache(maxsize=8)
def sqlite_lookup(rows: int) -> str:
    """SQLite: the archived ``(simulation_id, agent_id, action_id)`` among ``rows`` given
    triples, one probe of the side table's unique index per triple."""
    values = ",".join(["(?,?,?)"] * rows)
    return (
        "SELECT x.simulation_id, x.agent_id, x.action_id "
        f"FROM (VALUES {values}) AS v JOIN agentmem_action_extras AS x "
        "ON x.simulation_id = v.column1 AND x.agent_id = v.column2 AND x.action_id = v.column3"
    )


def foreign_key_violation(exc: IntegrityError) -> bool:
    """Whether the database refused a row for a missing parent (not, e.g., a duplicate)."""
    orig = exc.orig
    if getattr(orig, "sqlstate", None) == "23503":  # PostgreSQL foreign_key_violation
        return True
    if getattr(orig, "sqlite_errorname", None) == "SQLITE_CONSTRAINT_FOREIGNKEY":
        return True
    return "foreign key" in str(orig).lower()


def unique_violation(exc: IntegrityError) -> bool:
    """Whether the database refused a row because its key is taken (by a concurrent
    writer, since every key was looked up first in the same transaction)."""
    orig = exc.orig
    if getattr(orig, "sqlstate", None) == "23505":  # PostgreSQL unique_violation
        return True
    if getattr(orig, "sqlite_errorname", None) in ("SQLITE_CONSTRAINT_UNIQUE",
                                                   "SQLITE_CONSTRAINT_PRIMARYKEY"):
        return True
    return "unique constraint" in str(orig).lower()


def contended(exc: OperationalError) -> bool:
    """Whether a PostgreSQL transaction failed only because of other writers
    (serialization failure, deadlock). SQLite's busy timeout already waits for the
    lock (a write transaction takes it at ``BEGIN IMMEDIATE``): not retried."""
    return getattr(exc.orig, "sqlstate", None) in ("40001", "40P01")


def stored_actions(conn: Connection, columns: frozenset[str],
                   keys: Iterable[tuple[str, str, str]]) -> dict[tuple[str, str, str], Action]:
    """The archived actions under ``keys`` (simulation, agent, action id), decoded."""
    by_agent: dict[tuple[str, str], list[str]] = {}
    for sim, agent, aid in keys:
        by_agent.setdefault((sim, agent), []).append(aid)
    x = action_extras.c
    out: dict[tuple[str, str, str], Action] = {}
    for (sim, agent), ids in sorted(by_agent.items()):
        for chunk in chunks(sorted(ids), 500):
            stmt = select_actions(columns).where(
                x.simulation_id == sim, x.agent_id == agent, x.action_id.in_(chunk))
            for row in conn.execute(stmt).mappings():
                out[(sim, agent, row["x_action_id"])] = decode_row(row)
    return out


def existing(conn: Connection, column: Any, values: Sequence[str]) -> set[str]:
    """Which of ``values`` are already in ``column`` (a primary key), queried in chunks."""
    found: set[str] = set()
    for chunk in chunks(values, 500):
        found.update(conn.execute(select(column).where(column.in_(chunk))).scalars())
    return found


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def existing_ids(conn: Connection, actions: Sequence[Action]) -> set[tuple[str, str, str]]:
    """The archived ids that ``actions`` could collide with (never a whole simulation)."""
    wanted: dict[tuple[str, str, str], None] = {}
    bases: set[tuple[str, str, str]] = set()
    for a in actions:
        d = a.__dict__
        agent = d["agent_id"]
        if d["action_id"] is not None:
            wanted[(d["simulation_id"], agent, d["action_id"])] = None
        else:
            bases.add((d["simulation_id"], agent,
                       f"{agent}-{d['step_number']}-{d['action_type']}"))
    return lookup(conn, wanted, bases)

def lookup(conn: Connection, wanted: dict[tuple[str, str, str], None],
            bases: set[tuple[str, str, str]]) -> set[tuple[str, str, str]]:
    """Which ``wanted`` (simulation, agent, id) are archived, and every archived id
    of each (simulation, agent, base) in ``bases`` (the base or ``base.n``)."""
    x = action_extras.c
    found: set[tuple[str, str, str]] = set()
    columns = (x.simulation_id, x.agent_id, x.action_id)
    # SQLite: each id is one probe of the side table's unique (simulation, agent, action) index
    if conn.dialect.name == "sqlite":
        for chunk in chunks(list(wanted), LOOKUP_CHUNK):
            found.update(tuple(row) for row in conn.exec_driver_sql(
                sqlite_lookup(len(chunk)), tuple(itertools.chain.from_iterable(chunk))))
    elif conn.dialect.name == "postgresql":
        # one query per batch: each triple one probe of the unique index (docs/archive.md)
        for chunk in chunks(list(wanted), PG_LOOKUP_CHUNK):
            found.update(tuple(row) for row in conn.exec_driver_sql(
                PG_LOOKUP, tuple(pg_text_array(column) for column in zip(*chunk, strict=True))))
    else:  # other databases: the query as it was, per simulation and 500 ids
        explicit: dict[str, set[str]] = {}
        for sim, _agent, aid in wanted:
            explicit.setdefault(sim, set()).add(aid)
        for sim, ids in sorted(explicit.items()):
            for ids_chunk in chunks(sorted(ids), 500):
                stmt = select(*columns).where(x.simulation_id == sim,
                                              x.action_id.in_(ids_chunk))
                for s_id, a_id, act_id in conn.execute(stmt):
                    if (s_id, a_id, act_id) in wanted:
                        found.add((s_id, a_id, act_id))
    for group in chunks(sorted(bases), 100):
        stmt = select(*columns).where(or_(*[
            and_(x.simulation_id == sim, x.agent_id == agent,
                 or_(x.action_id == base, x.action_id.startswith(base + ".", autoescape=True)))
            for sim, agent, base in group
        ]))
        found.update((s_id, a_id, act_id) for s_id, a_id, act_id in conn.execute(stmt))
    return found


WRITE_ATTEMPTS = 50
"""How many times a write that lost a race to another writer is run again."""


def pause(attempt: int) -> None:
    """Back off before running a contended write again (up to ~50 ms, jittered)."""
    time.sleep(random.uniform(0, min(0.05, 0.001 * 2 ** min(attempt, 6))))


def extra_text(d: Mapping[str, Any], keys: Sequence[tuple[str, str]]) -> str | None:
    """``extra_fields``: ``json.dumps(..., separators=(",", ":"))`` of the non-``None`` values
    of the fields ``keys`` names (``(name, '"name":')`` pairs), ``None`` when there are none.
    Finite floats and strings, the fields' types, are written here exactly as ``json.dumps``
    writes them (``float.__repr__``; ASCII-escaped text); any other value makes the whole
    text ``json.dumps``'s."""
    parts = []
    for name, key in keys:
        v = d[name]
        if v is None:
            continue
        t = type(v)
        if t is float and v - v == 0.0:
            parts.append(f"{key}{v!r}")  # an exact float's repr is float.__repr__
        elif t is str:
            parts.append(key + encode_basestring_ascii(v))
        else:
            return json.dumps({n: d[n] for n, _ in keys if d[n] is not None},
                              separators=(",", ":"))
    return "{" + ",".join(parts) + "}" if parts else None


def negative_zero(value: Any) -> bool:
    """Whether ``value`` is ``-0.0``, or a tuple holding it (a position)."""
    if type(value) is tuple:
        return any(map(negative_zero, value))
    return type(value) is float and value == 0.0 and math.copysign(1.0, value) < 0


def prepare_batch(actions: Sequence[Action], taken: set[tuple[str, str, str]], *,
                  stored: Mapping[tuple[str, str, str], Action],
                  main_values: Callable[[dict[str, Any]], tuple[Any, ...]], has_details: bool,
                  extra_names: Sequence[str], fk_target: bool,
                  split: Callable[[Any], tuple[str | None, str | None]] = split_details,
                  zero_sign: Sequence[str] = (), float32: Collection[str] = ()) -> Batch:
    """The rows to insert for the actions whose id is not ``taken`` (ids are added).

    An action whose explicit id is taken is the same action archived again (it
    equals the archived one, ``stored``, or an earlier one of this call, but for its
    write time): it is counted in ``present`` and skipped. Any other action under a
    taken id is a conflict, recorded in ``conflicts`` and never written (``float32``:
    the fields compared as a ``REAL`` column keeps them, :func:`same_action`).

    ``zero_sign`` names the float fields whose column drops the sign of a zero (SQLite
    stores a REAL -0.0 as the integer 0): an action's ``-0.0`` there is also kept in
    ``extra_fields``, which :func:`~agentmem.backends.sqlrows.decode_row` reads last.
    """
    batch = Batch()
    main, side = batch.main, batch.side
    sims, agents = batch.sims, batch.agents
    targets: dict[str, str] = {}
    earlier: dict[tuple[str, str, str], Action] = {}
    extra_keys = tuple((name, f'"{name}":') for name in extra_names)
    zero_keys = tuple((name, f'"{name}":') for name in zero_sign)
    for n, action in enumerate(actions):
        d = action.__dict__  # the validated field values (a frozen pydantic model)
        sim, agent, aid = d["simulation_id"], d["agent_id"], d["action_id"]
        if aid is not None:
            key = (sim, agent, aid)
            if key in taken:
                held = earlier.get(key)
                if (held is not None and same_action(held, action)) or (
                        held is None and (held := stored.get(key)) is not None
                        and same_action(held, action, float32=float32)):
                    batch.present += 1
                else:
                    batch.conflicts[n] = (
                        f"action id {aid!r} of agent {agent!r} in simulation {sim!r} is "
                        "archived with other content; this action was not archived")
                continue
            earlier[key] = action
        else:
            base = f"{agent}-{d['step_number']}-{d['action_type']}"
            aid, suffix = base, 0
            key = (sim, agent, aid)
            while key in taken:
                suffix += 1
                aid = f"{base}.{suffix}"
                key = (sim, agent, aid)
            if len(aid) > 128:
                raise InvalidInput(f"record {n}: generated action id {aid!r} is too long")
        taken.add(key)
        batch.ids.append(aid)
        if d["details"] is None:
            details = details_full = None
        else:
            try:
                details, details_full = split(d["details"])
            except InvalidInput as exc:
                raise InvalidInput(f"record {n}: {exc}") from None
        if has_details:
            main.append((*main_values(d), details))
        else:
            main.append(main_values(d))
            if details_full is None:
                details_full = details  # no details column: the side table keeps the text
        keys = extra_keys
        if zero_keys and (signed := tuple(k for k in zero_keys if negative_zero(d[k[0]]))):
            keys = extra_keys + signed
        extra_fields = extra_text(d, keys) if keys else None
        position = d["position"]
        embedding = d["embedding"]
        if position is None:
            side.append((sim, agent, aid, None, None,
                         None if embedding is None else embedding.astype("<f4").tobytes(),
                         d["stored_at"], details_full, extra_fields))
        else:
            side.append((sim, agent, aid, position[0], position[1],
                         None if embedding is None else embedding.astype("<f4").tobytes(),
                         d["stored_at"], details_full, extra_fields))
        if sim not in sims:
            sims[sim] = None
        if agent not in agents:
            agents[agent] = sim
        if fk_target:  # the old generation: action_target_id references agents
            target = d["action_target_id"]
            if target is not None and target not in targets:
                targets[target] = sim
    for target, sim in targets.items():
        agents.setdefault(target, sim)
    return batch


FLOAT_FIELDS = ("resources_before", "resources_after", "reward")
"""Action fields that ``agent_actions`` keeps in float columns (when it has them)."""


def float32_columns(conn: Connection) -> frozenset[str]:
    """The float columns of ``agent_actions`` that hold a float32 (``REAL``, or
    ``FLOAT(p)`` with p <= 24): AgentFarm's own tables on PostgreSQL. On SQLite every
    ``REAL`` is 8 bytes."""
    if conn.dialect.name == "sqlite":
        return frozenset()
    out = set()
    for c in inspect(conn).get_columns("agent_actions"):
        t = c["type"]
        if c["name"] in FLOAT_FIELDS and isinstance(t, Float) and not isinstance(t, Double) \
                and (isinstance(t, REAL) or (t.precision or 53) <= 24):
            out.add(c["name"])
    return frozenset(out)


def assign_ids(conn: Connection, simulation_id: str) -> int:
    """``Archive.assign_ids`` in the transaction ``conn``: a side row with the id
    ``{agent_id}-{step_number}-{action_type}`` (first free ``.n``, in row-id order) for
    every row of the simulation that has none; returns how many."""
    a, x = agent_actions.c, action_extras.c
    pending = (
        select(a.action_id, a.agent_id, a.step_number, a.action_type)
        .select_from(agent_actions.outerjoin(action_extras, x.row_id == a.action_id))
        .where(a.simulation_id == simulation_id, x.row_id.is_(None))
        .order_by(a.action_id)
    )
    rows = conn.execute(pending).all()
    if not rows:
        return 0
    taken = {(agent, aid) for agent, aid in conn.execute(
        select(x.agent_id, x.action_id).where(x.simulation_id == simulation_id))}
    side: list[dict[str, Any]] = []
    for row_id, agent, step, kind in rows:
        base = f"{agent}-{step}-{kind}"
        aid, suffix = base, 0
        while (agent, aid) in taken:
            suffix += 1
            aid = f"{base}.{suffix}"
        if len(aid) > 128:
            raise InvalidInput(f"agent_actions row {row_id}: generated action id "
                               f"{aid!r} is too long")
        taken.add((agent, aid))
        side.append({"row_id": row_id, "simulation_id": simulation_id,
                     "agent_id": agent, "action_id": aid})
    for chunk in chunks(side, 5000):
        conn.execute(action_extras.insert(), list(chunk))
    return len(side)
