"""``pin`` and ``unpin``: keep an action in its tier (:meth:`agentmem.Tiers.pin`)."""

from __future__ import annotations

import click

from agentmem.cli import output
from agentmem.cli.exits import NotFound
from agentmem.cli.stores import Stores
from agentmem.tiers.maintenance import TierPolicy, Tiers

pass_stores = click.make_pass_decorator(Stores)


def _set(stores: Stores, agent: str, action_id: str, *, pin: bool, im_ttl: int,
         as_json: bool) -> None:
    tiers = Tiers(stores.memory, TierPolicy(im_ttl=im_ttl or None))
    tier = tiers.pin(agent, action_id) if pin else tiers.unpin(agent, action_id)
    if tier is None and pin:
        raise NotFound(f"agent {agent!r} has no action {action_id!r} in short-term or "
                       "intermediate memory; nothing pinned")
    result = {"agent": agent, "action_id": action_id, "pinned": pin, "tier": tier}
    if as_json:
        output.json_object(result)
    else:
        where = {"stm": "short-term memory", "im": "intermediate memory"}.get(tier or "",
                                                                               "neither tier")
        click.echo(f"{'pinned' if pin else 'unpinned'} {action_id} of {agent} ({where})")


@click.command()
@click.argument("agent")
@click.argument("action_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_stores
def pin(stores: Stores, agent: str, action_id: str, as_json: bool) -> None:
    """Pin an action: it stays in its tier (maintenance, transitions and eviction leave
    it) and never expires. Exit status 8 when the agent has no such action."""
    _set(stores, agent, action_id, pin=True, im_ttl=0, as_json=as_json)


@click.command()
@click.argument("agent")
@click.argument("action_id")
@click.option("--im-ttl", type=int, default=TierPolicy().im_ttl or 0, show_default=True,
              help="Seconds an IM entry lives once unpinned (0: no TTL).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_stores
def unpin(stores: Stores, agent: str, action_id: str, im_ttl: int, as_json: bool) -> None:
    """Unpin an action: maintenance may move it again, and its hash gets its tier's TTL
    back (the store's action TTL in STM, --im-ttl in IM)."""
    _set(stores, agent, action_id, pin=False, im_ttl=im_ttl, as_json=as_json)


COMMANDS = (pin, unpin)
