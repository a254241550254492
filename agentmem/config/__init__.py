"""Store options, declared once: the settings models and the reader that fills them.

Owns every option a store takes (its name, type, default and bounds), in one
pydantic model per concern (:class:`RedisSettings`, :class:`ArchiveSettings`,
:class:`DualWriteSettings`, :class:`TierSettings`) composed in
:class:`StoreSettings`, and :func:`read`, which takes values from keyword
arguments, URL query parameters and ``AGENTMEM_*`` environment variables (in
that order of precedence, then the defaults) and turns validation errors into
:class:`~agentmem.errors.ConfigError` naming the option and where it came from.
See ``docs/configuration.md``.

May import: ``agentmem.errors``. Nothing else of agentmem; no redis, no SQL.
"""

from agentmem.config.reader import ENV_PREFIX, read, split_query
from agentmem.config.settings import (
    DEFAULT_ACTION_TTL,
    DEFAULT_BATCH_SIZE,
    DEFAULT_BUFFER_SIZE,
    DEFAULT_GRID_CELL,
    DEFAULT_IM_TTL,
    DEFAULT_INTERVAL,
    DEFAULT_QUEUE_SIZE,
    DEFAULT_RELATIVE_INDEX_SIZE,
    DEFAULT_RETRY_INTERVAL,
    MAX_SPIN_US,
    MAX_TTL,
    ArchiveSettings,
    DualWriteSettings,
    RedisSettings,
    Settings,
    StoreSettings,
    TierSettings,
)
from agentmem.config.store import option_names, read_store

__all__ = [
    "DEFAULT_ACTION_TTL", "DEFAULT_BATCH_SIZE", "DEFAULT_BUFFER_SIZE", "DEFAULT_GRID_CELL",
    "DEFAULT_IM_TTL",
    "DEFAULT_INTERVAL", "DEFAULT_QUEUE_SIZE", "DEFAULT_RELATIVE_INDEX_SIZE",
    "DEFAULT_RETRY_INTERVAL", "ENV_PREFIX", "MAX_SPIN_US", "MAX_TTL", "ArchiveSettings",
    "DualWriteSettings", "RedisSettings", "Settings", "StoreSettings", "TierSettings",
    "option_names", "read", "read_store", "split_query",
]
