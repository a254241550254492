"""The settings models: every store option with its type, default and bounds.

One model per concern. Each field is an option of the same name: a keyword of
:func:`agentmem.open` (and of the function or class that uses it), an
``AGENTMEM_<NAME>`` environment variable and, for :class:`RedisSettings`, a query
parameter of the Redis URL. The models are strict: a bool is not an int and a
string is not a number (values read from URLs and the environment are text and
converted first, see :mod:`agentmem.config.reader`).
"""

from __future__ import annotations

import os
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

__all__ = [
    "DEFAULT_ACTION_TTL", "DEFAULT_BUFFER_SIZE", "DEFAULT_GRID_CELL", "DEFAULT_IM_TTL",
    "DEFAULT_INTERVAL", "DEFAULT_QUEUE_SIZE", "DEFAULT_RELATIVE_INDEX_SIZE",
    "DEFAULT_RETRY_INTERVAL", "MAX_SPIN_US", "MAX_TTL", "ArchiveSettings", "DualWriteSettings",
    "RedisSettings", "Settings", "StoreSettings", "TierSettings",
]

MAX_TTL = 2**31 - 1
"""The longest TTL Redis takes, in seconds (the same as ``agentmem.model.schema.MAX_TTL``)."""
MAX_SPIN_US = 100_000
"""The longest poll for a reply, in microseconds (see ``agentmem.backends.spin``)."""
DEFAULT_ACTION_TTL = 24 * 3600
"""Action hashes expire after a day (the specification's STM)."""
DEFAULT_RELATIVE_INDEX_SIZE = 20
DEFAULT_GRID_CELL = 1.0
DEFAULT_BATCH_SIZE = 100
"""Records per write-script call: a few ms of server time at most, the longest another
client waits for one call; calls whose records repeat agents share fewer commands when
smaller (docs/performance.md, "Bounded server work")."""
DEFAULT_BUFFER_SIZE = 1000
DEFAULT_INTERVAL = 30.0
DEFAULT_QUEUE_SIZE = 10_000
DEFAULT_RETRY_INTERVAL = 1.0
DEFAULT_IM_TTL = 7 * 86400
"""IM hashes expire after a week unless maintained (a safety net, like the STM TTL)."""


def _path_text(value: object) -> object:
    return os.fspath(value) if isinstance(value, os.PathLike) else value


Positive = Annotated[int, Field(ge=1)]
Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
PathText = Annotated[str, BeforeValidator(_path_text)]


class Settings(BaseModel):
    """The base of the settings models: strict, frozen, unknown names refused."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")

    aliases: ClassVar[dict[str, str]] = {}
    """Other names of fields in URL queries and the environment (``layout``)."""


class RedisSettings(Settings):
    """How a store talks to Redis or Valkey (:func:`agentmem.connect`).

    Also read from the Redis URL's query: ``redis://h:6379/0?layout=2&spin_us=0``.
    """

    aliases: ClassVar[dict[str, str]] = {"layout": "layout_version"}

    layout_version: int = 1
    """The key layout (``docs/layouts.md``; an unknown one is a ``LayoutError``); alias
    ``layout``. A Redis Cluster needs 2."""
    ttl: Annotated[int, Field(ge=1, le=MAX_TTL)] | None = DEFAULT_ACTION_TTL
    """Seconds an action hash lives (``None``: no expiry)."""
    relative_index_size: Positive = DEFAULT_RELATIVE_INDEX_SIZE
    """How many ids an agent's relative index keeps."""
    embedding_dim: Positive | None = None
    """The length every stored embedding must have (``None``: any)."""
    batch_size: Positive = DEFAULT_BATCH_SIZE
    """Records per script call of ``add_many``."""
    grid_cell: Seconds = DEFAULT_GRID_CELL
    """The side of a cell of the radius-search grid (the same for every client)."""
    grids: bool = True
    """Keep the radius-search grids (``False``: no grid entries, fewer bytes per action;
    ``near``/``near_at`` then raise ``ConfigError``; the same for every client)."""
    write_columns: bool | None = None
    """Send writes of 32 records or more as columns (``core/write_cols.lua``): less of
    the client's CPU per record, about 1.2x the server's (``docs/performance.md``).
    ``None``: ``add_rows`` and ``add_columns`` as columns, writes of model objects
    (``add_many``, a dual writer's) as rows; ``True``: every write that can; ``False``:
    none."""
    spin_us: Annotated[int, Field(ge=0, le=MAX_SPIN_US)] | None = None
    """Microseconds a blocking call polls for its reply (``None``: automatic)."""
    socket_timeout: Seconds | None = None
    """Seconds a reply may stay silent: a call fails once no byte of it came for this
    long, within about twice it (``None``: redis-py's default: 5 s with redis-py 8,
    none with 5-7)."""
    socket_connect_timeout: Seconds | None = None
    """Seconds connecting may take (``None``: redis-py's default: 5 s with
    redis-py 8, none with 5-7)."""
    max_connections: Positive | None = None
    """The connection pool's size (``None``: redis-py's default)."""

    def pool_options(self) -> dict[str, Any]:
        """The options that go to redis-py's connection pool (those set)."""
        names = ("socket_timeout", "socket_connect_timeout", "max_connections")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}

    def store_options(self) -> dict[str, Any]:
        """The options of the store itself (what a ``Memory`` records)."""
        names = ("layout_version", "ttl", "relative_index_size", "embedding_dim",
                 "batch_size", "grid_cell", "grids", "write_columns")
        return {n: getattr(self, n) for n in names}


class ArchiveSettings(Settings):
    """Where the SQL archive is (:func:`agentmem.open_archive`)."""

    archive_url: str | None = None
    """A SQLAlchemy URL or a SQLite file path (``None``: no archive)."""


class DualWriteSettings(Settings):
    """How a :class:`~agentmem.DualWriter` archives and survives a Redis outage."""

    buffer_size: Positive = DEFAULT_BUFFER_SIZE
    """Rows buffered before an archive write."""
    interval: Seconds = DEFAULT_INTERVAL
    """Seconds between archive writes at most."""
    background: bool = False
    """All I/O in a daemon thread fed by a bounded queue."""
    queue_size: Positive = DEFAULT_QUEUE_SIZE
    """The background queue's bound."""
    strict: bool = False
    """Raise connection errors instead of failing over (no journal)."""
    journal: PathText | None = None
    """The replay journal's file (``None``: beside a SQLite archive, else per URL)."""
    retry_interval: Annotated[float, Field(ge=0, allow_inf_nan=False)] = \
        DEFAULT_RETRY_INTERVAL
    """Seconds between probes of a Redis that was unreachable."""
    durability: Literal["buffered", "redis", "archived"] | None = None
    """When a write returns (``docs/durability.md``): ``buffered`` (queued in the process:
    the background thread), ``redis`` (stored in Redis with its outbox entry),
    ``archived`` (committed to the archive too). ``None``: ``buffered`` with
    ``background``, else ``redis``."""
    lease: Seconds = 30.0
    """Seconds a writer's outbox stays its own after its last write; then any other
    writer, or ``agentmem archive``, may drain it."""
    archive_thread: bool = False
    """``durability="redis"`` only: due archive writes run in a thread of their own while
    the caller goes on writing to Redis (``docs/dualwrite.md``)."""


class TierSettings(Settings):
    """How much each agent keeps in each tier (the fields of :class:`~agentmem.TierPolicy`)."""

    stm_steps: Positive | None = None
    """STM keeps the actions of the newest ``stm_steps`` steps."""
    stm_seconds: Seconds | None = None
    """STM keeps actions written less than this long ago."""
    stm_capacity: Positive | None = None
    """At most this many actions per agent in STM after maintenance."""
    im_capacity: Positive | None = None
    """At most this many actions per agent in IM after maintenance."""
    im_ttl: Annotated[int, Field(ge=1, le=MAX_TTL)] | None = DEFAULT_IM_TTL
    """Seconds an IM hash lives without maintenance (``None``: no TTL)."""
    importance_weight: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0
    """How much importance outweighs age when a tier is over capacity."""
    maintain_interval: Seconds | None = None
    """:func:`agentmem.open` only: run maintenance every this many seconds in a thread."""

    def policy_fields(self) -> dict[str, Any]:
        """The fields :class:`~agentmem.TierPolicy` takes."""
        return self.model_dump(exclude={"maintain_interval"})


class StoreSettings(Settings):
    """Everything :func:`agentmem.open` builds a store from."""

    redis_url: str | None = None
    """The Redis or Valkey URL (``None``: the embedded server of the data folder)."""
    data: PathText | None = None
    """The embedded server's data folder (``None``: ``./agentmem-data``)."""
    dual_write: bool = True
    """Write through a :class:`~agentmem.DualWriter` when an archive is given."""
    use_tiers: bool = False
    """Apply a :class:`~agentmem.TierPolicy` (on when a tier option is given)."""
    redis: RedisSettings = RedisSettings()
    archive: ArchiveSettings = ArchiveSettings()
    writer: DualWriteSettings = DualWriteSettings()
    tiers: TierSettings = TierSettings()
