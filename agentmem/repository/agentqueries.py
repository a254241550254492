"""The specification's per-agent queries (section 4.2-4.4) and the cross-tier history."""

from __future__ import annotations

from typing import Any

from agentmem.errors import InvalidInput
from agentmem.lua.scripts import (
    RELATIVE_FETCH,
)
from agentmem.lua.tiers import HISTORY
from agentmem.model.records import Action, IMAction
from agentmem.plans.plan import (
    Arg,
    Plan,
    check_index,
    check_limit,
    score_arg,
    script_call,
    single,
)
from agentmem.plans.runner import operation
from agentmem.repository.actioncore import ActionCore


class AgentQueries(ActionCore):
    """Per-agent queries: by type, by target, high reward, successful interactions,
    the timeline, recent, relative and the history across STM and IM."""

    @operation
    def by_type(self, /, agent_id: str, action_type: str, limit: int | None = None
                ) -> Plan[list[Action]]:
        """The agent's actions of one type, newest first (by step, then id)."""
        return self._of_one(
            self._key("types", agent_id=agent_id, action_type=action_type), agent_id, limit)

    @operation
    def by_target(self, /, agent_id: str, target_id: str, limit: int | None = None
                  ) -> Plan[list[Action]]:
        """The agent's actions aimed at ``target_id``, newest first."""
        return self._of_one(
            self._key("targets", agent_id=agent_id, action_target_id=target_id), agent_id,
            limit)

    def _of_one(self, key: str, agent_id: str, limit: int | None) -> Plan[list[Action]]:
        """The actions of a types or targets key, newest first: on layout 4 its newest
        entries (a sorted set by step, work bounded by the limit), on layouts 1-3 the set
        ordered by the timeline."""
        if self.sorted_families:
            lim = check_limit(limit)
            if lim == 0:
                return Plan((), lambda raw: [])
            return self._zrange(key, agent_id, "rank", "0", str(lim - 1) if lim > 0 else "-1",
                                newest_first=True, limit=limit)
        return self._sorted_members(key, self._key("timeline", agent_id=agent_id), agent_id,
                                    limit=limit)

    @operation
    def high_reward(self, /, agent_id: str, min_reward: float = 0.5, limit: int | None = 10
                    ) -> Plan[list[Action]]:
        """Actions with ``reward >= min_reward``, highest reward first.

        The specification's code returns the *lowest* rewards above the threshold
        first; agentmem returns the highest, which is what "high reward" asks for.
        """
        return self._zrange(self._key("rewards", agent_id=agent_id), agent_id, "score",
                            score_arg(min_reward, "-inf"), "+inf", newest_first=True,
                            limit=limit)

    @operation
    def successful_interactions(self, /, agent_id: str, target_id: str, limit: int | None = 3
                                ) -> Plan[list[Action]]:
        """Actions aimed at ``target_id`` with ``reward > 0``, highest reward first."""
        return self._sorted_members(
            self._key("targets", agent_id=agent_id, action_target_id=target_id),
            self._key("rewards", agent_id=agent_id), agent_id, limit=limit, min_score=0.0,
            exclusive=True, skind=self.families_kind)

    @operation
    def timeline(self, /, agent_id: str, start: int | None = None, end: int | None = None, *,
                 newest_first: bool = False, limit: int | None = None) -> Plan[list[Action]]:
        """Actions with ``start <= step_number <= end`` (either bound open), oldest first."""
        return self._zrange(self._key("timeline", agent_id=agent_id), agent_id, "score",
                            score_arg(start, "-inf"), score_arg(end, "+inf"),
                            newest_first=newest_first, limit=limit)

    @operation
    def recent(self, /, agent_id: str, n: int = 10) -> Plan[list[Action]]:
        """The ``n`` most recent actions, newest first (expired ones skipped)."""
        n = check_limit(n)
        if n == 0:
            return Plan((), lambda raw: [])
        return self._zrange(self._key("timeline", agent_id=agent_id), agent_id, "rank", "0",
                            str(n - 1), newest_first=True, limit=n)

    @operation
    def relative(self, /, agent_id: str, position: int = 0) -> Plan[Action | None]:
        """The action at a relative position: 0 is the newest, -1 the one before, …

        Positions within the relative index (20 by default) read it; older ones
        read the timeline. The specification's formula maps -1 to the *oldest*
        entry; here -k is the k-th before the newest.
        """
        position = check_index("relative position", position)
        if position > 0:
            raise InvalidInput(f"relative position must be an int <= 0, got {position!r}")
        prefix, suffix = self._agent(agent_id)
        argv: list[Arg] = [self._key("relative_index", agent_id=agent_id),
                           self._key("timeline", agent_id=agent_id), prefix, suffix, -position]
        decode = self.spec.codec.decode
        return single(script_call(RELATIVE_FETCH, argv),
                      lambda raw: decode(raw[0]) if raw else None)

    @operation
    def history(self, /, agent_id: str, start: int | None = None, end: int | None = None, *,
                newest_first: bool = False, limit: int | None = None
                ) -> Plan[list[Action | IMAction]]:
        """The agent's actions in short-term **and** intermediate memory with
        ``start <= step_number <= end``, as one sequence ordered by step then id, in
        one round trip: STM entries are :class:`Action`, IM entries :class:`IMAction`
        (see ``docs/tiers.md``)."""
        prefix, suffix = self._agent(agent_id)
        iprefix, isuffix = self.layout.record_key_parts("im_action", agent_id=agent_id)
        argv: list[Arg] = [self._key("timeline", agent_id=agent_id), prefix, suffix,
                           self._key("im_timeline", agent_id=agent_id), iprefix, isuffix,
                           score_arg(start, "-inf"), score_arg(end, "+inf"),
                           "1" if newest_first else "0", check_limit(limit)]
        stm_decode = self.spec.codec.decode
        im_decode = self.layout.im_action.codec.decode

        def parse(raw: Any) -> list[Action | IMAction]:
            return [stm_decode(raw[i + 1]) if raw[i] in (b"s", "s") else im_decode(raw[i + 1])
                    for i in range(0, len(raw), 2)]

        return single(script_call(HISTORY, argv), parse)
