"""A drop-in for AgentFarm's ``DataLogger``: the whole protocol, through agentmem.

``AgentFarmLogger(memory, archive, simulation_id)`` has every public method of
AgentFarm's ``DataLogger`` (commit db2f8f27) with its signature and effect.
Actions go to Redis (queryable at once) and to the archive's ``agent_actions``;
everything else lands in the archive's other AgentFarm tables as AgentFarm's
logger writes it (:mod:`agentmem.integrations.farmrows`); with ``database=``
(AgentFarm's ``SimulationDatabase``) through that database's transactions, as
AgentFarm's logger does (:mod:`agentmem.integrations.farmsession`). See
``docs/agentfarm.md`` for the modes and what each can lose.

May import: ``agentmem.backends``, ``agentmem.dualwrite``, ``agentmem.model``,
``agentmem.config``, ``agentmem.errors``, the other ``agentmem.integrations`` modules.
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any, Literal

from sqlalchemy.exc import SQLAlchemyError

from agentmem.backends.redis import Memory
from agentmem.backends.sql import Archive, backend_error
from agentmem.backends.sqlengine import create_missing
from agentmem.dualwrite.failover import DEFAULT_RETRY_INTERVAL
from agentmem.dualwrite.writer import DEFAULT_BUFFER_SIZE, DEFAULT_INTERVAL, DualWriter
from agentmem.errors import AgentMemError, ConfigError
from agentmem.integrations import farmrows
from agentmem.integrations.farmrecall import AgentRecall, step_memory
from agentmem.integrations.farmrows import id_text as _text
from agentmem.integrations.farmrows import plain
from agentmem.integrations.farmsession import FarmDatabase, SessionWriter
from agentmem.model.records import Action

__all__ = ["AgentFarmLogger", "AgentRecall", "LoggerDurability", "step_memory"]

LoggerDurability = Literal["buffered", "redis", "archived"]


class AgentFarmLogger:
    """AgentFarm's ``DataLogger`` protocol over a :class:`Memory` and an :class:`Archive`.

    ``durability`` says when ``log_agent_action`` has done its part
    (``docs/durability.md``): ``"buffered"`` (the default, like AgentFarm's own
    logger) keeps the action in this process until the next flush (once per step), which
    sends them to Redis in one call and returns before its reply (``send_ahead``), read
    by the logger's next call or a read through ``memory``: Redis holds every step's
    actions by the next step. ``"redis"`` stores each action before returning, ``"archived"`` in
    Redis and the archive. ``buffer_size`` and ``commit_interval`` are AgentFarm's
    names and defaults (1000 rows, 30 s) for the archive's bulk writes;
    ``background=True`` (with ``"buffered"``) does the Redis and archive writes in
    a thread; ``archive_thread=True`` (not with either, nor with ``"archived"``) only the
    archive writes (``docs/dualwrite.md``). ``database``: AgentFarm's
    ``SimulationDatabase`` of the archive's database (anything with
    ``_execute_in_transaction(func)``); the rows of the tables other than
    ``agent_actions`` are then written in its transactions, with
    ``session.bulk_insert_mappings`` and ``session.add`` as AgentFarm's logger does.
    """

    def __init__(
        self,
        memory: Memory,
        archive: Archive,
        simulation_id: str,
        *,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        commit_interval: float = DEFAULT_INTERVAL,
        durability: LoggerDurability = "buffered",
        background: bool = False,
        strict: bool = False,
        journal: str | os.PathLike[str] | None = None,
        retry_interval: float = DEFAULT_RETRY_INTERVAL,
        archive_thread: bool = False,
        database: FarmDatabase | None = None,
        send_ahead: bool = True,
    ) -> None:
        if not simulation_id:
            raise ConfigError("simulation_id is required for DataLogger")
        if durability not in ("buffered", "redis", "archived"):
            raise ConfigError(f"durability must be 'buffered', 'redis' or 'archived', "
                              f"not {durability!r}")
        if background and durability != "buffered":
            raise ConfigError("background=True needs durability='buffered'")
        self.simulation_id = simulation_id
        self.memory = memory
        self.archive = archive
        self.durability: LoggerDurability = durability
        self._buffer_size = buffer_size
        self._commit_interval = commit_interval
        try:
            create_missing(archive.engine, archive.generation, every=True)
        except SQLAlchemyError as exc:
            raise backend_error(exc) from exc
        archive.write_details_as_agentfarm()
        self.database = database
        self._session = None if database is None else SessionWriter(database, archive)
        self._known: set[Any] = set()  # (the text of) agents that have an agents row
        self._simulation_known = False  # its simulations row: written before the first row
        self.writer = DualWriter(
            memory, archive, buffer_size=buffer_size, interval=commit_interval,
            background=background, strict=strict, journal=journal,
            retry_interval=retry_interval,
            durability="buffered" if background else
            ("archived" if durability == "archived" else "redis"),
            archive_thread=archive_thread)
        # AgentFarm's buffer names (its subclasses and tests read them)
        self._action_buffer: list[Action] = []  # buffered: not in Redis yet
        self._health_incident_buffer: list[dict[str, Any]] = []
        self._learning_exp_buffer: list[dict[str, Any]] = []  # original generation
        self.reproduction_buffer: list[dict[str, Any]] = []  # original generation
        self._resource_buffer: list[dict[str, Any]] = []  # always empty: written at once
        self._step_buffer: list[dict[str, Any]] = []  # always empty: written at once
        self._last_commit_time = time.time()
        self._closed = False  # close() returned: every log_* call raises ConfigError
        # each flush's Redis write: sent ahead (its reply read by the next call), or waited for
        self._send = self.writer.send_many if send_ahead else self.writer.add_many
        # what is buffered here reaches the writer at interpreter exit and on SIGTERM too
        # (the writer turns SIGTERM into SystemExit; this hook runs before the writer's)
        atexit.register(self.close)

    # -- actions ------------------------------------------------------------------------

    def log_agent_action(
        self,
        step_number: int,
        agent_id: str,
        action_type: str,
        action_target_id: str | int | None = None,
        reward: float | None = None,
        details: dict[str, Any] | None = None,
        module_type: str | None = None,
        module_id: str | int | None = None,
        action_taken: Any = None,
        action_taken_mapped: Any = None,
        *,
        resources_before: float | None = None,
        resources_after: float | None = None,
        state_before_id: str | None = None,
        state_after_id: str | None = None,
    ) -> None:
        """Log one action as AgentFarm's ``DataLogger.log_agent_action`` does.

        ``step_number < 0`` raises ``ValueError`` and logs nothing; a non-string
        ``action_type`` is ``str()``-ed; ``details`` is deep-copied and gets
        ``action_taken`` / ``action_taken_mapped`` when not ``None`` (stored as
        ``NULL`` when empty); an int ``action_target_id`` or ``module_id`` is stored
        as its text, as AgentFarm's ``String`` columns hold it. The keyword-only
        fields are the original generation's columns.
        """
        if self._closed:
            self._refuse_closed()
        if type(step_number) is not int:
            step_number = plain(step_number)
        if step_number < 0:
            raise ValueError("step_number must be non-negative")
        if type(action_type) is not str:
            action_type = str(action_type)
        # only the fields given: the others keep their default (None) unvalidated
        fields: dict[str, Any] = {
            "agent_id": agent_id if type(agent_id) is str else _text(agent_id),
            "simulation_id": self.simulation_id, "step_number": step_number,
            "action_type": action_type}
        if action_target_id is not None:
            fields["action_target_id"] = _text(action_target_id)
        if reward is not None:
            fields["reward"] = reward if type(reward) is float else plain(reward)
        if action_taken is not None or action_taken_mapped is not None:
            # AgentFarm's copy with the two keys (the Action copies the whole value)
            details = (dict(details) if isinstance(details, dict)
                       else copy.deepcopy(details)) if details else {}
            if action_taken is not None:
                details["action_taken"] = plain(action_taken)
            if action_taken_mapped is not None:
                details["action_taken_mapped"] = plain(action_taken_mapped)
        if details:  # the Action holds a copy of its own; empty is stored as NULL
            fields["details"] = details
        if module_type is not None:
            fields["module_type"] = module_type
        if module_id is not None:
            fields["module_id"] = _text(module_id)
        if resources_before is not None:
            fields["resources_before"] = plain(resources_before)
        if resources_after is not None:
            fields["resources_after"] = plain(resources_after)
        if state_before_id is not None:
            fields["state_before_id"] = state_before_id
        if state_after_id is not None:
            fields["state_after_id"] = state_after_id
        # bad input raises here, before anything is kept (model_validate: no keyword
        # re-packing through Record.__init__, the same checks and InvalidInput)
        action = Action.model_validate(fields)
        if self.durability != "buffered":
            self.writer.add(action)
            return
        self._action_buffer.append(action)
        if len(self._action_buffer) >= self._buffer_size:
            self.flush_action_buffer()

    def _send_actions(self) -> None:
        """Store the buffered actions in Redis (one call, sent ahead unless
        ``send_ahead=False``) and queue them for the archive. They leave the buffer once
        the writer has taken them on (``DualWriter.accepted``: sent, stored, refused,
        journaled or queued), also when the call then raises or is cut short by Ctrl-C or
        SIGTERM (the writer journals a write whose reply it did not get). The others stay
        for the next flush: after an error the writer kept, all of them."""
        if not self._action_buffer:
            return
        actions = list(self._action_buffer)
        before = self.writer.accepted
        try:
            self._send(actions)
        except BaseException:
            del self._action_buffer[:self.writer.accepted - before]
            raise
        del self._action_buffer[:len(actions)]

    def recall(self, agent_ids: Iterable[Any], *, recent: int = 10,
               by_type: Sequence[str] = (), limit: int | None = 10
               ) -> dict[str, AgentRecall]:
        """For every agent of a step: its ``recent`` newest actions and its newest
        ``limit`` actions of each type of ``by_type``, in one round trip for all of them
        (:func:`~agentmem.integrations.farmrecall.step_memory`), keyed by agent id.

        The actions still buffered here are stored in Redis first (one more round trip
        when there are any, as ``flush_if_needed`` does), so the reads see every action
        logged so far. With ``background=True`` the thread stores them: call
        ``flush_action_buffer()`` first to read them (it waits for the thread)."""
        self._send_actions()
        return step_memory(self.memory, agent_ids, recent=recent, by_type=by_type,
                           limit=limit)

    # -- buffered rows of AgentFarm's other tables ----------------------------------------

    def _refuse_closed(self) -> None:
        raise ConfigError(f"this AgentFarmLogger ({self.simulation_id!r}) is closed: what "
                          "is logged after close() would never be written")

    def _buffer(self, buffer: list[dict[str, Any]], row: dict[str, Any],
                flush: Callable[[], None]) -> None:
        buffer.append(row)
        if len(buffer) >= self._buffer_size:
            flush()

    def _flush_rows(self, table: str, buffer: list[dict[str, Any]]) -> None:
        """Write a buffer's rows in one transaction (:meth:`_rows`); they stay buffered
        if that fails."""
        if buffer:
            rows = list(buffer)
            self._rows([(table, rows)])
            del buffer[:len(rows)]

    def _rows(self, batches: list[tuple[str, list[dict[str, Any]]]]) -> None:
        """Rows of tables other than ``agents``, in one transaction. When a row's agent
        (``agent_id``, ``parent_id``, ``offspring_id``) has no ``agents`` row yet, the
        pending actions are archived first: an agent known only by its actions gets its
        (bare) row with them. An agent known neither way gets a bare row (only its ids)
        in the rows' transaction, as an action's agent does, so one such row never
        blocks the others; a later ``log_agent`` completes it."""
        if self._closed:
            self._refuse_closed()
        refs = farmrows.referenced_agents(self.archive, batches)
        unknown = farmrows.unknown_agents(  # (background mode: pending is not known here)
            self.archive, {a for a in refs if _text(a) not in self._known})
        self._known.update(_text(a) for a in refs if a not in unknown)
        if unknown:
            self.flush_action_buffer()
        if self._session is not None:
            self._insert(partial(self._session.insert, batches,
                                 bare={a: refs[a] for a in unknown}), exclusive=True)
        else:
            self._insert(partial(farmrows.insert, self.archive, batches,
                                 bare_parents=bool(unknown)), exclusive=bool(unknown))

    def log_health_incident(self, step_number: int, agent_id: str, health_before: float,
                            health_after: float, cause: str,
                            details: dict[str, Any] | None = None) -> None:
        """Buffer a ``health_incidents`` row (written with the next flush)."""
        if self._closed:
            self._refuse_closed()
        self._buffer(self._health_incident_buffer, farmrows.health_row(
            self.simulation_id, step_number, agent_id, health_before, health_after, cause,
            details), self.flush_health_buffer)

    def log_learning_experience(self, step_number: int, agent_id: str, module_type: str,
                                module_id: int | str, action_taken: int,
                                action_taken_mapped: str, reward: float) -> None:
        """The original generation's ``learning_experiences`` row (buffered)."""
        if self._closed:
            self._refuse_closed()
        self._need("learning_experiences")
        self._buffer(self._learning_exp_buffer, farmrows.learning_row(
            self.simulation_id, step_number, agent_id, module_type, module_id, action_taken,
            action_taken_mapped, reward), self.flush_learning_buffer)

    def log_reproduction_event(
            self, step_number: int, parent_id: str, offspring_id: str | None, success: bool,
            parent_resources_before: float, parent_resources_after: float,
            offspring_initial_resources: float | None, failure_reason: str | None,
            parent_generation: int, offspring_generation: int | None,
            parent_position: tuple[float, float]) -> None:
        """The original generation's ``reproduction_events`` row (buffered)."""
        if self._closed:
            self._refuse_closed()
        self._need("reproduction_events")
        self._buffer(self.reproduction_buffer, farmrows.reproduction_row(
            self.simulation_id, step_number, parent_id, offspring_id, success,
            parent_resources_before, parent_resources_after, offspring_initial_resources,
            failure_reason, parent_generation, offspring_generation, parent_position),
            self.flush_reproduction_buffer)

    def _insert(self, work: Callable[[], None], *, exclusive: bool = False) -> None:
        """Rows of AgentFarm's other tables, written by ``work`` in one transaction, after
        the simulation's ``simulations`` row (written bare only if nothing wrote it before
        the logger's first row: AgentFarm's runner writes its own first). A transaction
        that reads before it writes (that row, ``agents`` rows, which an archived action
        may have written bare), and every one of ``database=``, runs with no archive
        write of the writer under way (``DualWriter.archive_paused``): its thread would
        race it (a duplicate key on PostgreSQL, a locked SQLite file). Each transaction
        of the archive takes SQLite's write lock at its start
        (:mod:`~agentmem.integrations.farmrows`), so other processes on the file wait."""
        if self._closed:
            self._refuse_closed()
        exclusive = exclusive or self._session is not None or not self._simulation_known
        with self.writer.archive_paused() if exclusive else contextlib.nullcontext():
            if not self._simulation_known:
                farmrows.ensure_simulation(self.archive, self.simulation_id)
                self._simulation_known = True
            work()

    def _need(self, table: str) -> None:
        if table not in self.archive.tables.tables:
            raise ConfigError(f"the archive's AgentFarm generation ({self.archive.generation!r}) "
                              f"has no {table} table: only the original one has")

    # -- agents, steps, resources: written at once, as AgentFarm does ----------------------

    def log_agent(self, agent_id: str, birth_time: int, agent_type: str,
                  position: tuple[float, float], initial_resources: float,
                  starting_health: float, genome_id: str | None = None, generation: int = 0,
                  action_weights: dict[str, float] | None = None, *,
                  starvation_threshold: int | None = None) -> None:
        """Write one ``agents`` row now (AgentFarm's ``log_agent``; ``starvation_threshold``
        is the original generation's column)."""
        self.log_agents_batch([{
            "simulation_id": self.simulation_id, "agent_id": agent_id,
            "birth_time": birth_time, "agent_type": agent_type, "position": position,
            "initial_resources": initial_resources, "starting_health": starting_health,
            "genome_id": genome_id, "generation": generation,
            "action_weights": farmrows.serialized_weights(action_weights),
            "starvation_threshold": starvation_threshold}])

    def log_agents_batch(self, agent_data_list: Sequence[Mapping[str, Any]]) -> None:
        """Write ``agents`` rows in one transaction (``log_agent``'s keys per entry; a
        missing required key raises ``ValueError`` and writes nothing)."""
        rows = [farmrows.agent_row(self.simulation_id, d) for d in agent_data_list]
        self._insert(partial(farmrows.insert_agents, self.archive, rows)
                     if self._session is None else
                     partial(self._session.insert_agents, rows), exclusive=True)
        self._known.update(r["agent_id"] for r in rows)

    def log_step(self, step_number: int, agent_states: Sequence[Sequence[Any]],
                 resource_states: Sequence[Sequence[Any]], metrics: Mapping[str, Any]
                 ) -> None:
        """Write a step's ``agent_states``, ``resource_states`` and ``simulation_steps``
        rows in one transaction, then flush if ``commit_interval`` has passed."""
        tables = self.archive.tables.tables
        step = plain(step_number)
        sim = self.simulation_id if self.archive.generation == "current" else ""
        self._rows([
            ("agent_states", farmrows.agent_state_rows(sim, step, agent_states,
                                                       self.simulation_id)),
            ("resource_states", farmrows.resource_rows(self.simulation_id, step,
                                                       resource_states)),
            ("simulation_steps", [farmrows.step_row(tables["simulation_steps"],
                                                    self.simulation_id, step, metrics)]),
        ])
        self._check_time_based_flush()

    def log_resource(self, resource_id: str, initial_amount: float,
                     position: tuple[float, float]) -> None:
        """Write a step-0 ``resource_states`` row now."""
        self._rows([("resource_states", farmrows.resource_rows(
            self.simulation_id, 0, [(resource_id, initial_amount, position[0],
                                     position[1])]))])

    # -- flushing ---------------------------------------------------------------------

    @property
    def needs_flush(self) -> bool:
        """True while any buffer holds rows not in the archive yet."""
        return bool(self._action_buffer or self._health_incident_buffer
                    or self._learning_exp_buffer or self.reproduction_buffer
                    or self.writer.pending)

    def _check_time_based_flush(self) -> None:
        now = time.time()
        if now - self._last_commit_time >= self._commit_interval:
            self.flush_all_buffers()
            self._last_commit_time = now

    def flush_if_needed(self) -> None:
        """Once per step: store the step's actions in Redis (one round trip); flush
        everything to the archive when ``commit_interval`` has passed since the last
        time-based flush (AgentFarm's rule)."""
        self._send_actions()
        if self.needs_flush:
            self._check_time_based_flush()

    def flush_action_buffer(self) -> None:
        """Store the buffered actions in Redis and archive every pending action (after
        ``close()``: nothing is pending, nothing to do)."""
        if self._closed:
            return
        self._send_actions()
        self.writer.flush()

    def flush_health_buffer(self) -> None:
        """Write the buffered health incidents (one transaction)."""
        self._flush_rows("health_incidents", self._health_incident_buffer)

    def flush_learning_buffer(self) -> None:
        """Write the buffered learning experiences (original generation)."""
        self._flush_rows("learning_experiences", self._learning_exp_buffer)

    def flush_reproduction_buffer(self) -> None:
        """Write the buffered reproduction events (original generation)."""
        self._flush_rows("reproduction_events", self.reproduction_buffer)

    def flush_all_buffers(self) -> None:
        """Write everything buffered: actions to Redis and the archive, the other rows."""
        self.flush_action_buffer()
        self.flush_health_buffer()
        self.flush_learning_buffer()
        self.flush_reproduction_buffer()

    def discard_pending_agents(self, agent_ids: Sequence[str]) -> int:
        """Drop the pending rows of ``agent_ids``, as AgentFarm drops what it has not
        written yet: buffered actions and health incidents, and actions stored in Redis
        but not archived yet (deleted from Redis too, so the memory never shows them;
        those stay while Redis is unreachable). Returns how many rows were dropped.
        Ids compare as the text an action holds: ``7``, ``"7"`` and ``np.int64(7)`` are
        one agent."""
        if not agent_ids or self._closed:  # closed: nothing is pending
            return 0
        drop = {_text(a) for a in agent_ids}
        before = len(self._action_buffer) + len(self._health_incident_buffer)
        self._action_buffer[:] = [a for a in self._action_buffer if a.agent_id not in drop]
        self._health_incident_buffer[:] = [r for r in self._health_incident_buffer
                                           if _text(r["agent_id"]) not in drop]
        dropped = before - len(self._action_buffer) - len(self._health_incident_buffer)

        def remove(action: Action) -> None:
            assert action.action_id is not None  # a stored action
            self.memory.actions.delete(action.action_id, agent_id=action.agent_id)

        dropped += len(self.writer.discard(lambda a: a.agent_id in drop, remove))
        return dropped

    def close(self) -> None:
        """Flush everything and close the writer (also run at interpreter exit and on
        SIGTERM, for a logger never closed). The actions are archived first, as
        ``flush_all_buffers`` does: the bare ``agents`` row an action brings is the
        parent of its agent's other rows; then the other buffers, then the writer closes.
        If a write fails, the error is raised and the logger stays open with what it
        could not write (close again, or the exit hook retries). Once it returned, every
        ``log_*`` call raises ``ConfigError``; closing again does nothing."""
        if self._closed:
            return
        kept: AgentMemError | None = None
        try:
            self._send_actions()
        except AgentMemError as exc:
            if not self._action_buffer:
                raise
            # an error the writer's thread kept, raised before this flush took anything:
            # send them (the exit hook's close is the last chance), raise it after
            kept = exc
            self._send_actions()
        self.writer.flush()
        self.flush_health_buffer()
        self.flush_learning_buffer()
        self.flush_reproduction_buffer()
        self.writer.close()
        self._closed = True
        atexit.unregister(self.close)
        if kept is not None:
            raise kept

    def __enter__(self) -> AgentFarmLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
