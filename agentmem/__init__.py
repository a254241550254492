"""agentmem: a fast, queryable, typed memory of what agents did.

    import agentmem
    mem = agentmem.connect("redis://127.0.0.1:6379/0")
    a = mem.actions.record(agent_id="a1", simulation_id="sim01", step_number=5,
                           action_type="move", reward=0.4, position=(1.0, 2.0))
    mem.actions.by_type("a1", "move", limit=10)
"""

from agentmem.backends.redis import AsyncMemory, Memory, connect, connect_async
from agentmem.errors import (
    AgentMemError,
    BackendError,
    ConfigError,
    DecodeError,
    DuplicateId,
    InvalidId,
    InvalidInput,
    LayoutError,
    Refused,
    SchemaError,
    Unavailable,
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
from agentmem.plans.keyspace import layout
from agentmem.plans.radius import Near
from agentmem.repository.actions import ActionRepository, AsyncActionRepository
from agentmem.repository.agent import AgentMemoryMixin
from agentmem.repository.base import AsyncRepository, Repository

__version__ = "0.1.0"

__all__ = [
    "ID", "Action", "ActionRepository", "AgentMemError", "AgentMemoryMixin", "AsJson",
    "AsyncActionRepository", "AsyncMemory", "AsyncRepository", "BackendError", "ConfigError",
    "CounterIndex", "DecodeError", "DuplicateId", "GridIndex",
    "IMAction", "Identifier", "InvalidId",
    "InvalidInput", "LayoutError", "Lesson", "ListIndex", "Memory", "Near", "Record", "RecordSpec",
    "Refused",
    "Repository", "SchemaError", "SequenceAnalysis", "SetIndex", "SortedIndex", "Split",
    "StoredAs", "Unavailable", "Vector", "WriteError", "WriteTime", "action_importance",
    "connect", "connect_async", "declare", "layout",
]
