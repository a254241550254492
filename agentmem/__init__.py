"""agentmem: a fast, queryable, typed memory of what agents did.

    import agentmem
    with agentmem.open("redis://127.0.0.1:6379/0", archive_url="archive.db") as store:
        a = store.record(agent_id="a1", simulation_id="sim01", step_number=5,
                         action_type="move", reward=0.4, position=(1.0, 2.0))
        store.actions.by_type("a1", "move", limit=10)

Everything a user needs is imported from here (``docs/reference/agentmem.md``).
"""

from agentmem.backends.cluster import connect_cluster
from agentmem.backends.redis import AsyncMemory, Memory, connect, connect_async
from agentmem.backends.sql import Archive, open_archive
from agentmem.config import (
    ArchiveSettings,
    DualWriteSettings,
    RedisSettings,
    StoreSettings,
    TierSettings,
)
from agentmem.dualwrite.failover import Failover
from agentmem.dualwrite.writer import DualWriter
from agentmem.errors import (
    AgentMemError,
    BackendError,
    ConfigError,
    DecodeError,
    DuplicateId,
    InvalidId,
    InvalidInput,
    LayoutError,
    NotFound,
    NotRun,
    RedisLostData,
    Refused,
    SchemaError,
    Unavailable,
    Unsupported,
    WriteError,
)
from agentmem.model.analytics import Lesson, SequenceAnalysis, action_importance
from agentmem.model.fields import AsJson, Identifier, Split, StoredAs, Vector, WriteTime
from agentmem.model.records import Action, IMAction, Record
from agentmem.model.schema import (
    ID,
    CounterIndex,
    GridIndex,
    ListIndex,
    RecordSpec,
    SetIndex,
    SortedIndex,
    declare,
)
from agentmem.plans.batch import Handle
from agentmem.plans.ftindex import IndexStatus
from agentmem.plans.ftquery import Condition, Q, QueryFields
from agentmem.plans.keyspace import layout
from agentmem.plans.paging import Page
from agentmem.plans.radius import Near
from agentmem.repository.actions import ActionRepository, AsyncActionRepository
from agentmem.repository.agent import AgentMemoryMixin
from agentmem.repository.base import AsyncRepository, Repository
from agentmem.repository.batch import AsyncBatch, Batch
from agentmem.store import Store, open
from agentmem.tiers.maintenance import TierPolicy, Tiers

__version__ = "0.1.0"

__all__ = [
    "ID", "Action", "ActionRepository", "AgentMemError", "AgentMemoryMixin", "Archive",
    "ArchiveSettings", "AsJson", "AsyncActionRepository", "AsyncBatch", "AsyncMemory",
    "AsyncRepository", "BackendError", "Batch", "Condition", "ConfigError", "CounterIndex",
    "DecodeError", "DualWriteSettings", "DualWriter", "DuplicateId", "Failover", "GridIndex",
    "Handle", "IMAction", "Identifier", "IndexStatus", "InvalidId", "InvalidInput", "LayoutError",
    "Lesson", "ListIndex", "Memory", "Near", "NotFound", "NotRun", "Page", "Q", "QueryFields",
    "Record", "RecordSpec", "RedisLostData", "RedisSettings", "Refused", "Repository",
    "SchemaError", "SequenceAnalysis", "SetIndex", "SortedIndex", "Split", "Store",
    "StoreSettings", "StoredAs",
    "TierPolicy", "TierSettings", "Tiers", "Unavailable", "Unsupported", "Vector", "WriteError",
    "WriteTime", "action_importance", "connect", "connect_async", "connect_cluster", "declare",
    "layout", "open", "open_archive",
]
