"""The SQL archive: AgentFarm's ``agent_actions`` table, written with SQLAlchemy Core.

``open_archive()`` opens (and creates when missing) a database holding AgentFarm's
``simulations``, ``agents`` and ``agent_actions`` tables plus agentmem's side table
``agentmem_action_extras``, which keeps what exists only in the Redis memory (the
string action id, the position, the embedding, the write time) and the full text of
``details`` longer than the column allows, keyed to the SQL row. ``agent_actions``
therefore stays column-compatible with AgentFarm: an archive created here opens with
AgentFarm's models, and an existing AgentFarm database (either generation of the
table) is used as it is. See ``docs/archive.md``; PostgreSQL writes with ``COPY``
(:mod:`~agentmem.backends.sqlcopy`).
"""

from __future__ import annotations

import contextlib
import operator
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    Engine,
    func,
    inspect,
    select,
)
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.sql import Select

from agentmem.backends.farmtables import Generation
from agentmem.backends.sqlcopy import copy_rows, serial_sequence
from agentmem.backends.sqlengine import (
    SQLITE_BUSY_TIMEOUT_MS,
    check_file,
    create_missing,
    make_engine,
)
from agentmem.backends.sqlrows import backend_error, decode_row, select_actions
from agentmem.backends.sqltables import (
    DETAILS_MAX_LENGTH,
    OPTIONAL_ACTION_COLUMNS,
    REQUIRED_ACTION_COLUMNS,
    SCHEMAS,
    action_extras,
    agent_actions,
    agentfarm_details,
    agents,
    metadata,
    simulations,
    split_details,
)
from agentmem.backends.sqlwrite import (
    FLOAT_FIELDS,
    SIDE_COLUMNS,
    SQLITE_TOP,
    WRITE_ATTEMPTS,
    Attempt,
    Batch,
    assign_ids,
    contended,
    existing,
    existing_ids,
    float32_columns,
    foreign_key_violation,
    lookup,
    pause,
    prepare_batch,
    stored_actions,
    unique_violation,
)
from agentmem.errors import BackendError, DuplicateId, InvalidInput
from agentmem.model.records import Action

__all__ = [
    "DETAILS_MAX_LENGTH", "SQLITE_BUSY_TIMEOUT_MS", "Archive", "action_extras",
    "agent_actions", "agents", "backend_error", "decode_row", "metadata", "open_archive",
    "select_actions", "simulations",
]

T = TypeVar("T")


class Archive:
    """An opened SQL archive; made by :func:`open_archive`.

    ``action_columns`` names the columns the database's ``agent_actions`` has;
    only those are written and read.
    """

    def __init__(self, engine: Engine, location: str, *, file: Path | None = None,
                 generation: Generation | None = None) -> None:
        self.engine = engine
        self.location = location
        self._file: tuple[Path, tuple[int, int]] | None = None
        try:
            self.generation: Generation = create_missing(engine, generation)
            """The database's AgentFarm schema generation (``docs/archive.md``)."""
            self.tables = SCHEMAS[self.generation]
            """The tables of :attr:`generation` (AgentFarm's and the side table)."""
            with engine.begin() as conn:
                self.action_columns = self._check_schema(conn)
                self.float32_fields = float32_columns(conn)
                """Action fields whose column holds a float32 (``REAL`` on PostgreSQL):
                compared at that precision when an id is archived again."""
                # the old generation's action_target_id references agents
                self._fk_target = any(
                    fk["constrained_columns"] == ["action_target_id"]
                    for fk in inspect(conn).get_foreign_keys("agent_actions")
                )
        except SQLAlchemyError as exc:
            engine.dispose()
            raise backend_error(exc) from exc
        except BaseException:
            engine.dispose()
            raise
        self._sqlite = engine.dialect.name == "sqlite"
        self._split_details: Callable[[Any], tuple[str | None, str | None]] = split_details
        if file is not None:
            st = os.stat(file)  # the schema is in: the file exists
            self._file = (file, (st.st_dev, st.st_ino))
        self._returning = bool(engine.dialect.insert_returning)
        columns = self.action_columns
        plain = tuple(c for c in (*REQUIRED_ACTION_COLUMNS[1:], *OPTIONAL_ACTION_COLUMNS)
                      if c in columns and c != "details")
        self._has_details = "details" in columns
        # agent_actions columns written, in the order of a prepared row (details last)
        self._main_columns = plain + (("details",) if self._has_details else ())
        self._main_values = operator.itemgetter(*plain)
        # action fields the table lacks: kept in agentmem_action_extras.extra_fields
        self._extra_names = tuple(c for c in OPTIONAL_ACTION_COLUMNS
                                  if c not in columns and c != "details")
        # SQLite stores a REAL -0.0 as 0: such a zero is also kept in extra_fields
        self._zero_sign = (*(c for c in FLOAT_FIELDS if c in columns), "position") \
            if self._sqlite else ()
        quote = engine.dialect.identifier_preparer.quote
        main_cols = ", ".join(quote(c) for c in self._main_columns)
        marks = ", ".join("?" * len(self._main_columns))
        self._sql_main = f"INSERT INTO agent_actions ({main_cols}) VALUES ({marks})"
        self._sql_main_returning = self._sql_main + " RETURNING action_id"
        self._sql_main_keyed = (f"INSERT INTO agent_actions ({main_cols}, action_id) "
                                f"VALUES ({marks}, ?)")
        self._sql_side = (
            f"INSERT INTO agentmem_action_extras ({', '.join(quote(c) for c in SIDE_COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(SIDE_COLUMNS))})")
        # simulations and agents rows seen committed by this archive: not looked up again
        self._known_sims: set[str] = set()
        self._known_agents: set[str] = set()
        self._known_lock = threading.Lock()
        self._seq: str | None = ""  # agent_actions' id sequence on PostgreSQL (sqlcopy)

    # -- set-up -------------------------------------------------------------------------

    @staticmethod
    def _check_schema(conn: Connection) -> frozenset[str]:
        columns = frozenset(c["name"] for c in inspect(conn).get_columns("agent_actions"))
        lacking = [c for c in REQUIRED_ACTION_COLUMNS if c not in columns]
        if lacking:
            raise BackendError(
                "the database's agent_actions table is not AgentFarm's: it lacks "
                + ", ".join(lacking)
            )
        return columns

    def write_details_as_agentfarm(self) -> None:
        """From now on write ``details`` as AgentFarm does (``json.dumps`` text, whole
        on SQLite; the details rule where the length is enforced: docs/archive.md)."""
        self._split_details = agentfarm_details(None if self._sqlite else DETAILS_MAX_LENGTH)

    def close(self) -> None:
        """Release the engine's connections."""
        self.engine.dispose()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ------------------------------------------------------------------------

    def write(self, actions: Sequence[Action]) -> int:
        """Archive ``actions`` in one transaction; return how many rows were inserted.

        Missing ``simulations`` and ``agents`` rows are written first. Inserts are
        keyed by each action's identity, (simulation, agent, action id): an action
        already archived under its id, with the same content but for the write time,
        is not inserted again, so writing the same actions twice, or from several
        writers at once, inserts each once. An action without an id gets
        ``{agent_id}-{step_number}-{action_type}``, with the next free ``.1``,
        ``.2`` … suffix (as the Redis repository does).

        Any number of writers and processes may write into one archive: a
        transaction that loses a race for a key (another writer inserted it after
        this one looked) or for the database's lock is run again, up to
        :data:`WRITE_ATTEMPTS` times. An action whose id the archive holds with
        *other* content is never dropped silently: the others are archived, then
        :class:`~agentmem.errors.DuplicateId` is raised, with ``stored`` (the ids
        written) and ``failed`` (position -> reason).
        """
        for n, action in enumerate(actions):
            if not isinstance(action, Action):
                raise InvalidInput(f"record {n}: expected an Action, got {type(action).__name__}")
        if not actions:
            return 0
        if self._file is not None:
            check_file(*self._file)
        attempt = Attempt(True)

        def run(conn: Connection) -> Batch:
            nonlocal attempt
            attempt = Attempt(attempt.use_cache)
            return self._write(conn, actions, attempt)

        def stale_parents(exc: IntegrityError) -> bool:
            if attempt.relied_on_cache and foreign_key_violation(exc):
                # a parent row the cache vouched for may have been deleted since:
                # forget what the cache knows and write the whole call again, checked
                self._forget_parents()
                attempt.use_cache = False
                return True
            return False

        batch = self._transact(run, stale_parents)
        # committed: from now on these parent rows are known to exist
        self._remember_parents(attempt.sims, attempt.agents)
        if batch.conflicts:
            raise DuplicateId(
                f"{len(batch.conflicts)} of {len(actions)} actions not archived: another "
                f"action holds their id ({next(iter(batch.conflicts.values()))})",
                stored=batch.ids, failed=batch.conflicts)
        return len(batch.main)

    def _transact(self, run: Callable[[Connection], T],
                  retry: Callable[[IntegrityError], bool] = lambda _: False) -> T:
        """``run`` in a write transaction, run again when it lost a race to another writer
        (a key taken after it looked, a serialization failure or deadlock), up to
        :data:`WRITE_ATTEMPTS` times, or when ``retry`` says so; database errors as
        :class:`~agentmem.errors.BackendError`."""
        races = 0
        while True:
            try:
                with self._write_transaction() as conn:
                    return run(conn)
            except (IntegrityError, OperationalError) as exc:
                if isinstance(exc, IntegrityError) and retry(exc):
                    continue
                raced = unique_violation(exc) if isinstance(exc, IntegrityError) \
                    else contended(exc)
                if not raced or races >= WRITE_ATTEMPTS:
                    raise backend_error(exc) from exc
                races += 1
                pause(races)
            except SQLAlchemyError as exc:
                raise backend_error(exc) from exc

    @contextlib.contextmanager
    def _write_transaction(self) -> Iterator[Connection]:
        """A transaction that writes: on SQLite it takes the write lock at ``BEGIN``
        (``BEGIN IMMEDIATE``), so what it looks up stays true until it commits."""
        with self.engine.connect() as conn:
            if self._sqlite:
                conn.execution_options(agentmem_immediate=True)
            with conn.begin():
                yield conn

    def existing_ids(self, actions: Sequence[Action]) -> set[tuple[str, str, str]]:
        """Archived ``(simulation_id, agent_id, action_id)`` that ``actions`` could
        collide with: their own ids, and for actions without one every archived
        ``{agent_id}-{step}-{type}`` id and its ``.n`` suffixes."""
        try:
            with self.engine.connect() as conn:
                return existing_ids(conn, actions)
        except SQLAlchemyError as exc:
            raise backend_error(exc) from exc

    def archived(self, keys: Iterable[tuple[str, str, str]]) -> set[tuple[str, str, str]]:
        """Which of the ``(simulation_id, agent_id, action_id)`` are archived."""
        try:
            with self.engine.connect() as conn:
                return lookup(conn, dict.fromkeys(keys), set())
        except SQLAlchemyError as exc:
            raise backend_error(exc) from exc

    def rename_id(self, simulation_id: str, agent_id: str, old: str, new: str) -> bool:
        """Give the archived action ``old`` of an agent the string id ``new``.

        Returns whether a row was renamed (``False``: no row has ``old``). Used
        when a replayed action finds its id taken in Redis by another action.
        """
        x = action_extras.c
        stmt = (action_extras.update()
                .where(x.simulation_id == simulation_id, x.agent_id == agent_id,
                       x.action_id == old)
                .values(action_id=new))
        try:
            with self.engine.begin() as conn:
                return bool(conn.execute(stmt).rowcount)
        except SQLAlchemyError as exc:
            raise backend_error(exc) from exc

    def _write_parents(self, conn: Connection, batch: Batch, attempt: Attempt) -> None:
        """Insert the ``simulations`` and ``agents`` rows ``batch`` needs and lacks.

        Rows this archive saw committed before are not looked up again (when
        ``attempt.use_cache``); ``attempt`` records the parents of the call.
        """
        use_cache = attempt.use_cache
        known_sims = self._known_sims if use_cache else frozenset()
        known_agents = self._known_agents if use_cache else frozenset()
        attempt.sims = list(batch.sims)
        attempt.agents = list(batch.agents)
        sims = sorted(s for s in batch.sims if s not in known_sims)
        agent_ids = sorted(a for a in batch.agents if a not in known_agents)
        if len(sims) < len(batch.sims) or len(agent_ids) < len(batch.agents):
            attempt.relied_on_cache = True
        if sims:
            have_sims = existing(conn, simulations.c.simulation_id, sims)
            new_sims = [s for s in sims if s not in have_sims]
            if new_sims:
                path = self.location[:255]
                conn.execute(simulations.insert(), [
                    {"simulation_id": s, "status": "pending", "parameters": {},
                     "simulation_db_path": path} for s in new_sims])
        if agent_ids:
            have_agents = existing(conn, agents.c.agent_id, agent_ids)
            new_agents = [a for a in agent_ids if a not in have_agents]
            if new_agents:
                conn.execute(agents.insert(), [
                    {"agent_id": a, "simulation_id": batch.agents[a]} for a in new_agents])

    def _remember_parents(self, sims: Sequence[str], agent_ids: Sequence[str]) -> None:
        with self._known_lock:
            self._known_sims.update(sims)
            self._known_agents.update(agent_ids)

    def _forget_parents(self) -> None:
        with self._known_lock:
            self._known_sims.clear()
            self._known_agents.clear()

    def _write(self, conn: Connection, actions: Sequence[Action], attempt: Attempt) -> Batch:
        taken = existing_ids(conn, actions)
        explicit = [k for a in actions if a.action_id is not None
                    and (k := (a.simulation_id, a.agent_id, a.action_id)) in taken]
        stored = stored_actions(conn, self.action_columns, explicit) if explicit else {}
        batch = prepare_batch(actions, taken, stored=stored, main_values=self._main_values,
                              has_details=self._has_details, extra_names=self._extra_names,
                              fk_target=self._fk_target, split=self._split_details,
                              zero_sign=self._zero_sign, float32=self.float32_fields)
        if not batch.main:
            return batch
        self._write_parents(conn, batch, attempt)
        if self._sqlite:
            keys = self._insert_sqlite(conn, batch.main)
        elif (seq := self._sequence(conn)) is not None:  # PostgreSQL: COPY (sqlcopy)
            copy_rows(conn, seq, agent_actions, self._main_columns, batch.main, action_extras,
                      SIDE_COLUMNS, batch.side)
            return batch
        else:
            names = self._main_columns
            stmt = agent_actions.insert().returning(agent_actions.c.action_id,
                                                    sort_by_parameter_order=True)
            keys = list(conn.execute(stmt, [dict(zip(names, row, strict=True))
                                            for row in batch.main]).scalars())
        if len(keys) != len(batch.main):
            raise BackendError(f"the database returned {len(keys)} keys for "
                               f"{len(batch.main)} inserted rows")
        side = [(*row, key) for row, key in zip(batch.side, keys, strict=True)]
        if self._sqlite:
            conn.exec_driver_sql(self._sql_side, side)
        else:
            conn.execute(action_extras.insert(),
                         [dict(zip(SIDE_COLUMNS, row, strict=True)) for row in side])
        return batch

    def _sequence(self, conn: Connection) -> str | None:
        if self._seq == "":  # not looked up yet: once per archive
            self._seq = serial_sequence(conn, agent_actions, "action_id")
        return self._seq

    def _insert_sqlite(self, conn: Connection, rows: list[tuple[Any, ...]]) -> Sequence[int]:
        """Insert ``agent_actions`` rows on SQLite; their row ids, in order.

        The first row gets its id from SQLite; from then on this transaction
        holds SQLite's write lock (no other connection writes or changes the
        schema until it ends), so if that id is the table's largest and no
        trigger fires on the table, the next ids are free and are exactly those
        SQLite would assign one by one: the other rows go in with them, in one
        ``executemany``. Otherwise every row is inserted alone and its id read back.
        """
        first = self._insert_one(conn, rows[0])
        if len(rows) == 1:
            return [first]
        top, triggers = conn.exec_driver_sql(SQLITE_TOP).one()
        if top == first and not triggers:
            conn.exec_driver_sql(self._sql_main_keyed,
                                 [(*row, first + n) for n, row in enumerate(rows) if n])
            return range(first, first + len(rows))
        return [first, *(self._insert_one(conn, row) for row in rows[1:])]

    def _insert_one(self, conn: Connection, row: tuple[Any, ...]) -> int:
        if self._returning:
            key = conn.exec_driver_sql(self._sql_main_returning, row).scalar_one()
        else:
            key = conn.exec_driver_sql(self._sql_main, row).lastrowid
        if not isinstance(key, int):
            raise BackendError(f"the database returned the row id {key!r}")
        return key

    # -- reading ------------------------------------------------------------------------

    def read(self, simulation_id: str) -> list[Action]:
        """Every archived action of ``simulation_id``, in insertion (row id) order.

        Side fields (id, position, embedding, write time), the full ``details``
        and fields kept beside an older table come back as they were written.
        Rows written by AgentFarm itself have no side row: their ``action_id``,
        ``position``, ``embedding`` and ``stored_at`` are ``None``.
        """
        return [action for _, action in self.read_rows(simulation_id)]

    def _select_actions(self, simulation_id: str) -> Select[Any]:
        """Action rows of a simulation joined with their side rows, in row-id order."""
        return (select_actions(self.action_columns)
                .where(agent_actions.c.simulation_id == simulation_id)
                .order_by(agent_actions.c.action_id))

    def read_rows(
        self, simulation_id: str, *, after: int | None = None, limit: int | None = None
    ) -> list[tuple[int, Action]]:
        """``(row id, Action)`` pairs of ``simulation_id`` in row-id order.

        Only rows whose ``agent_actions.action_id`` is greater than ``after`` (when
        given), at most ``limit`` of them (when given): a way to read a large
        simulation in chunks. The actions are those :meth:`read` returns.
        """
        stmt = self._select_actions(simulation_id)
        if after is not None:
            stmt = stmt.where(agent_actions.c.action_id > after)
        if limit is not None:
            stmt = stmt.limit(limit)
        return [(int(r["action_id"]), decode_row(r)) for r in self.rows(stmt)]

    def rows(self, stmt: Select[Any]) -> list[RowMapping]:
        """Run a ``SELECT`` (one connection) and return its rows as mappings."""
        try:
            with self.engine.connect() as conn:
                return [r._mapping for r in conn.execute(stmt)]
        except SQLAlchemyError as exc:
            raise backend_error(exc) from exc

    def assign_ids(self, simulation_id: str) -> int:
        """Give an agentmem string id to every row of ``simulation_id`` that has none.

        Rows written by AgentFarm itself have no side row; each gets one holding
        ``{agent_id}-{step_number}-{action_type}``, with the first free ``.1``,
        ``.2`` … suffix, in row-id order (the rule :meth:`write` and the Redis
        repository follow). Rows that have an id keep it, so a second call assigns
        nothing. Returns how many rows were given an id. Runs as :meth:`write` does
        (a write transaction; run again when another caller assigned them first).
        """
        return self._transact(lambda conn: assign_ids(conn, simulation_id))

    def count(self, simulation_id: str | None = None) -> int:
        """Rows in ``agent_actions`` (of one simulation when given)."""
        stmt = select(func.count()).select_from(agent_actions)
        if simulation_id is not None:
            stmt = stmt.where(agent_actions.c.simulation_id == simulation_id)
        with self.engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())


def open_archive(url_or_path: str | os.PathLike[str] | None = None, *,
                 generation: Generation | None = None) -> Archive:
    """Open the SQL archive at ``url_or_path``, creating the tables it lacks.

    ``None`` is the SQLite file ``agentmem.db`` in the current directory; a path
    is a SQLite file; a string containing ``://`` is any SQLAlchemy URL (e.g.
    ``postgresql+psycopg://user@host/db``). SQLite connections run with WAL, a
    busy timeout of :data:`SQLITE_BUSY_TIMEOUT_MS` and ``foreign_keys=ON``; a
    SQLite file that does not exist is created readable by its owner only.

    A new database gets AgentFarm's tables of ``generation`` (``"current"``, the
    default, or ``"original"``: see :mod:`agentmem.backends.farmtables`), exactly as
    AgentFarm's own ``create_all`` makes them, plus agentmem's side table; an
    existing one keeps its own generation (asking for another raises ``ConfigError``).
    """
    engine, location, path = make_engine(url_or_path)
    return Archive(engine, location, file=path, generation=generation)
