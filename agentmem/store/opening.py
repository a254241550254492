"""``agentmem.open(...)``: a store from URLs and options, closed as one.

    with agentmem.open("redis://127.0.0.1:6379/0", archive_url="archive.db") as store:
        store.record(agent_id="a1", simulation_id="s1", step_number=1, action_type="move")
        store.actions.by_type("a1", "move")

What it opens, in order: the embedded Valkey server of the data folder when no
Redis URL is given (``AGENTMEM_REDIS_URL`` unset); the Redis connection
(``connect``, or ``connect_cluster`` for a ``redis+cluster://`` URL); the archive
when an archive URL is given; a :class:`~agentmem.DualWriter` over both (unless
``dual_write=False``); :class:`~agentmem.Tiers` when a tier policy or option is
given. :meth:`Store.close` closes them in reverse: the writer (its last archive
write), the tiers' runner, the archive, the connection, the embedded server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import fields
from typing import Any, TypeVar, cast

from pydantic import BaseModel

from agentmem.backends.archivedelete import delete_archived
from agentmem.backends.cluster import connect_cluster
from agentmem.backends.clusterurl import is_cluster_url
from agentmem.backends.redis import Memory, connect
from agentmem.backends.sql import Archive, open_archive
from agentmem.config import StoreSettings, read_store
from agentmem.dualwrite.writer import DualWriter
from agentmem.errors import ConfigError, InvalidInput
from agentmem.model.analytics import action_importance
from agentmem.model.records import Action, IMAction
from agentmem.model.schema import RecordSpec
from agentmem.plans.keyspace import candidate_agents
from agentmem.repository.actions import ActionRepository
from agentmem.repository.base import Repository, build
from agentmem.repository.batch import Batch
from agentmem.servers.embedded import Embedded
from agentmem.store.guard import ARCHIVED_ADDS, refusing_adds
from agentmem.tiers.maintenance import TierPolicy, Tiers

__all__ = ["Store", "open"]

MT = TypeVar("MT", bound=BaseModel)


class Store:
    """A store :func:`open` built: its parts, and :meth:`close` for all of them.

    ``memory`` is the Redis connection (:class:`~agentmem.Memory`), ``archive`` the
    SQL archive (or ``None``), ``writer`` the :class:`~agentmem.DualWriter` over both
    (or ``None``), ``tiers`` the :class:`~agentmem.Tiers` (or ``None``), ``embedded``
    the data folder's server when no Redis URL was given, ``settings`` what it was
    built from. Use it in a ``with`` block, or call :meth:`close`.
    """

    def __init__(self, settings: StoreSettings, memory: Memory, *,
                 archive: Archive | None = None, writer: DualWriter | None = None,
                 tiers: Tiers | None = None, embedded: Embedded | None = None) -> None:
        self.settings = settings
        self.memory = memory
        self.archive = archive
        self.writer = writer
        self.tiers = tiers
        self.embedded = embedded
        self.closed = False
        self._actions: ActionRepository | None = None

    def _open(self) -> None:
        if self.closed:
            raise ConfigError("this store is closed (agentmem.open gives a new one)")

    @property
    def actions(self) -> ActionRepository:
        """The action repository (Redis; reads here do not fall back to the archive:
        use ``writer`` for that). On a store with a dual writer its adds raise
        :class:`~agentmem.errors.ConfigError` (they would not be archived): add actions
        with :meth:`add`, :meth:`add_many`, :meth:`record`."""
        self._open()
        if self.writer is None:
            return self.memory.actions
        if self._actions is None:
            self._actions = refusing_adds(self.memory.actions, self.memory.actions.spec)
        return self._actions

    @property
    def im_actions(self) -> Repository[IMAction]:
        self._open()
        return self.memory.im_actions

    def repository(self, spec: RecordSpec[MT]) -> Repository[MT]:
        """A repository for any declared model, on this store's connection (on a store
        with a dual writer, one of the action declaration refuses adds, as :attr:`actions`)."""
        self._open()
        repo = self.memory.repository(spec)
        if self.writer is not None:
            return refusing_adds(repo, self.memory.actions.spec)
        return repo

    def batch(self) -> Batch:
        """Many operations in one round trip (:meth:`agentmem.Memory.batch`), on Redis. On
        a store with a dual writer, adding actions in it raises, as on :attr:`actions`."""
        self._open()
        batch = self.memory.batch()
        if self.writer is not None:
            batch.refuse_adds(self.memory.actions.spec.key.pattern, ARCHIVED_ADDS)
        return batch

    def add_many(self, actions: Iterable[Action]) -> list[Action] | None:
        """Store actions: through the writer when there is one (archived too), else in
        Redis. ``None`` from a background writer."""
        self._open()
        if self.writer is not None:
            return self.writer.add_many(actions)
        return self.memory.actions.add_many(actions)

    def add(self, action: Action) -> Action | None:
        """Store one action (see :meth:`add_many`)."""
        out = self.add_many([action])
        return None if out is None else out[0]

    def record(self, **fields: Any) -> Action | None:
        """Build an :class:`~agentmem.Action` from keyword fields and :meth:`add` it."""
        return self.add(build(Action, **fields))

    def delete(self, action_id: str, *, agent_id: str | None = None,
               simulation_id: str | None = None, archive: bool = False) -> bool:
        """Delete an action from Redis in every tier (:meth:`ActionRepository.delete`) and,
        with ``archive``, from the SQL archive too (of ``simulation_id``, else of the
        simulation the Redis record names; an action found only in the archive needs
        ``simulation_id``). True when something was deleted. An action still waiting in
        the dual writer's buffer or outbox is archived after this: :meth:`flush` first."""
        self._open()
        agent = agent_id
        sim = simulation_id
        if archive and (agent is None or sim is None):
            found = self.memory.actions.get(action_id, **({} if agent is None
                                                           else {"agent_id": agent}))
            if found is not None:
                agent, sim = agent or found.agent_id, sim or found.simulation_id
        scope = {} if agent is None else {"agent_id": agent}
        if simulation_id is not None:
            scope["simulation_id"] = simulation_id
        deleted = self.memory.actions.delete(action_id, **scope)
        if archive:
            if self.archive is None:
                raise ConfigError("archive=True needs a store opened with an archive")
            if agent is None or sim is None:
                candidates = candidate_agents(action_id)
                if sim is None or not candidates:
                    raise InvalidInput("deleting from the archive needs simulation_id (and "
                                       "agent_id) for an action that is not in Redis")
                agent = candidates[0]
            deleted = delete_archived(self.archive, agent, action_id, sim) > 0 or deleted
        return deleted

    def flush(self) -> int:
        """Archive what the writer holds; the rows inserted (0 without a writer)."""
        self._open()
        return 0 if self.writer is None else self.writer.flush()

    def close(self) -> None:
        """Close everything :func:`open` opened: the writer (its last archive write),
        the tiers' runner, the archive, the connection, the embedded server. Every
        part is closed even when one fails; the first error is raised then."""
        if self.closed:
            return
        self.closed = True
        steps: list[Callable[[], object]] = []
        if self.writer is not None:
            steps.append(self.writer.close)
        if self.tiers is not None:
            steps.append(self.tiers.stop)
        if self.archive is not None:
            steps.append(self.archive.close)
        steps.append(self.memory.close)
        if self.embedded is not None:
            steps.append(self.embedded.stop)
        _run_all(steps)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _run_all(steps: Iterable[Callable[[], object]]) -> None:
    first: BaseException | None = None
    for step in steps:
        try:
            step()
        except Exception as exc:
            first = first or exc
    if first is not None:
        raise first


def _policy_options(policy: TierPolicy) -> dict[str, Any]:
    return {f.name: getattr(policy, f.name) for f in fields(policy) if f.name != "importance"}


def open(
    redis_url: str | None = None,
    *,
    archive_url: str | None = None,
    tiers: TierPolicy | Any = None,
    dual_write: Any = None,
    failover: bool | None = None,
    settings: StoreSettings | None = None,
    **options: Any,
) -> Store:
    """Build a :class:`Store` from URLs and options.

    ``redis_url``: a Redis or Valkey URL (``redis://``, ``unix://``, ``valkey://``,
    ``redis+cluster://``), else ``$AGENTMEM_REDIS_URL``, else the embedded Valkey
    server of the data folder (``data=``, ``$AGENTMEM_DATA``, ``./agentmem-data``).
    ``archive_url``: a SQLAlchemy URL or a SQLite file (``$AGENTMEM_ARCHIVE_URL``);
    none: no archive. ``dual_write``: write through a :class:`~agentmem.DualWriter`
    when there is an archive (default; ``False``: no writer; a
    :class:`~agentmem.DualWriteSettings` or dict: its options). ``failover``:
    ``False`` is the writer's ``strict=True``. ``tiers``: ``True``, a
    :class:`~agentmem.TierPolicy`, a :class:`~agentmem.TierSettings` or a dict
    applies tiers (also on when a tier option such as ``stm_steps`` is given).
    ``settings``: a :class:`~agentmem.StoreSettings`. ``options``: any option of the
    settings models by name (``spin_us``, ``buffer_size``, ``stm_steps``, ...; see
    ``docs/configuration.md``). Arguments win over the Redis URL's query, which wins
    over ``AGENTMEM_*`` variables, which win over the defaults. A malformed or
    unknown option raises :class:`~agentmem.errors.ConfigError` naming it.
    """
    importance: Callable[..., float] = action_importance
    if isinstance(tiers, TierPolicy):
        importance = tiers.importance
        tiers = _policy_options(tiers)
    s = read_store(redis_url, archive_url=archive_url, tiers=tiers, dual_write=dual_write,
                   failover=failover, settings=settings, **options)
    if dual_write not in (None, False) and s.archive.archive_url is None:
        raise ConfigError("dual_write needs an archive: give archive_url")
    opened: list[Callable[[], object]] = []
    try:
        return _build(s, importance, opened)
    except BaseException:
        _run_all(reversed(opened))
        raise


def _build(s: StoreSettings, importance: Callable[..., float],
           opened: list[Callable[[], object]]) -> Store:
    embedded = None
    url = s.redis_url
    if url is None:
        embedded = Embedded(s.data).start()
        opened.append(embedded.stop)
        url = embedded.url
    redis = s.redis
    if is_cluster_url(url):
        if "layout_version" not in redis.model_fields_set:
            redis = redis.model_copy(update={"layout_version": 2})
        memory = cast(Memory, connect_cluster(url, settings=redis))
    else:
        memory = connect(url, settings=redis)
    opened.append(memory.close)
    archive = writer = tiers = None
    if s.archive.archive_url is not None:
        archive = open_archive(s.archive.archive_url)
        opened.append(archive.close)
        if s.dual_write:
            writer = DualWriter(memory, archive, **s.writer.model_dump())
            opened.append(writer.close)
    if s.use_tiers:
        policy = TierPolicy.from_settings(s.tiers, importance)
        tiers = Tiers(memory, policy, archive=archive)
        if s.tiers.maintain_interval is not None:
            tiers.start(s.tiers.maintain_interval)
            opened.append(tiers.stop)
    return Store(s, memory, archive=archive, writer=writer, tiers=tiers, embedded=embedded)
