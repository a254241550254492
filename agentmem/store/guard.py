"""A store whose actions are archived refuses to add actions outside its dual writer.

``agentmem.open(..., archive_url=...)`` builds a :class:`~agentmem.DualWriter`: an action
it acknowledges is in Redis and listed for the archive (``docs/durability.md``). An
action added through the store's action repository (``store.actions.add``, or a
batch's ``b.actions.add``) would be in Redis only, and would leave memory with its TTL
without ever reaching the archive. So on such a store those adds raise
:class:`~agentmem.errors.ConfigError` before anything is sent; reads, and every other
repository, are as on the connection.
"""

from __future__ import annotations

from typing import Any, TypeVar

from agentmem.errors import ConfigError
from agentmem.model.schema import RecordSpec
from agentmem.plans.plan import Plan
from agentmem.repository.batch import rebind

__all__ = ["ARCHIVED_ADDS", "RefuseAdds", "refusing_adds"]

R = TypeVar("R")
T = TypeVar("T")

ARCHIVED_ADDS = (
    "this store archives its actions: add them with store.add, store.add_many or "
    "store.record (its dual writer: Redis and the archive); store.actions would store "
    "them in Redis only, never archived")


class RefuseAdds:
    """A runner that raises :class:`~agentmem.errors.ConfigError` for a plan that adds
    records of the key pattern ``pattern`` (``Plan.adds``) and runs every other plan on
    ``inner``."""

    def __init__(self, inner: Any, pattern: str, why: str = ARCHIVED_ADDS) -> None:
        self.inner = inner
        self.pattern = pattern
        self.why = why

    def run(self, plan: Plan[T]) -> Any:
        if plan.adds == self.pattern:
            raise ConfigError(self.why)
        return self.inner.run(plan)

    def refusal(self, pattern: str) -> str | None:
        """Why adds of records of the key pattern ``pattern`` are refused, or None (a
        :class:`~agentmem.repository.steplog.StepLog` asks when it is made)."""
        return self.why if pattern == self.pattern else None

    def __getattr__(self, name: str) -> Any:  # the inner runner's other attributes
        return getattr(self.inner, name)


def refusing_adds(repo: R, actions: RecordSpec[Any]) -> R:
    """A copy of the repository ``repo`` whose adds of the store's actions (records of
    their key pattern: a repository of a declaration of them again adds them too) raise
    (see :class:`RefuseAdds`); other repositories' adds go through."""
    runner = RefuseAdds(repo.runner, actions.key.pattern)  # type: ignore[attr-defined]
    return rebind(repo, type(repo), runner)  # type: ignore[arg-type, type-var]
