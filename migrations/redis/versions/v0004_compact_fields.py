"""Layout 2 -> 3: the action and IM hashes' fields under short names, and back.

Layout 3 has layout 2's keys; its action hashes and intermediate-memory hashes keep
each field under the short name of :data:`~agentmem.plans.keyspace.COMPACT_FIELDS`
(``step_number`` as ``n``, ``simulation_id`` as ``s``, ...), which takes about a fifth
less memory per action (``docs/performance.md``). Index keys, members and scores do
not change.

Two phases, each a resumable SCAN over the key space in batches:

1. ``rename``: for each action or IM hash of the batch, one script renames its fields
   in one step (``HSET`` of the new names, ``HDEL`` of the old ones, on the existing
   hash, so its TTL stays). A hash that holds none of the old names (renamed by a run
   that was killed before it saved its cursor, or expired) is left alone, so a batch
   run twice changes nothing the second time. Counters: ``hashes.<family>`` (seen),
   ``renamed`` (``to_rename`` in a dry run).
2. ``verify``: every action and IM hash is read again; one still holding an old name
   (``left``) stops the revision with :class:`~agentmem.migrations.redis.MigrationError`,
   and the next run renames what is left and verifies again.

The downgrade is the same walk with the names swapped. The revision is opt-in:
``agentmem migrate upgrade`` (to ``head``) stops at ``0003``; ``agentmem migrate upgrade
0004`` applies it, and stores then open the data with ``layout_version=3``.
"""

from __future__ import annotations

from agentmem.lua.migrations import RENAME_FIELDS
from agentmem.migrations.redis import Context, MigrationError
from agentmem.plans.keyspace import Layout
from agentmem.plans.keyspace import layout as get_layout
from agentmem.plans.plan import command, every_reply, script_call

revision = "0004"
down_revision: str | None = "0003"
description = ("layout 2 -> 3: the action and IM hashes' fields under short names "
               "(step_number as n, simulation_id as s, ...)")
layout = 3
opt_in = True
"""``upgrade`` to ``head`` stops before this revision: name it (``0004``) to apply it."""

FAMILIES = ("action", "im_action")


def renames(lay: Layout, family: str) -> list[tuple[str, str]]:
    """(storage name, hash field) of each field a layout keeps under another name."""
    codec = (lay.action if family == "action" else lay.im_action).codec
    return [(s, w) for s, w in zip(codec.storage_names, codec.hash_names, strict=True)
            if s != w]


def upgrade(ctx: Context) -> None:
    rename(ctx, to_short=True)


def downgrade(ctx: Context) -> None:
    rename(ctx, to_short=False)


def rename(ctx: Context, *, to_short: bool) -> None:
    lay = get_layout(3)
    pairs = {f: renames(lay, f) if to_short else [(w, s) for s, w in renames(lay, f)]
             for f in FAMILIES}
    head = lay.plain("action").split("{", 1)[0]  # agent:  (both families start so)
    for keys in ctx.scan("rename", match=head + "*"):
        found = _hashes(lay, keys)
        for _, fam in found:
            ctx.count(f"hashes.{fam}")
        if not found:
            continue
        if ctx.dry_run:
            olds = every_reply(ctx.replies(
                command("HEXISTS", k, pairs[fam][0][0]) for k, fam in found))
            ctx.count("to_rename", sum(int(x) for x in olds))
            continue
        done = ctx.replies(
            script_call(RENAME_FIELDS, [n for pair in pairs[fam] for n in pair], (k,))
            for k, fam in found)
        ctx.count("renamed", sum(int(x) for x in every_reply(done)))
    if ctx.dry_run:
        return
    ctx.reset("left")
    for keys in ctx.scan("verify", match=head + "*"):
        found = _hashes(lay, keys)
        if not found:
            continue
        calls = [command("HMGET", k, *(old for old, _ in pairs[fam])) for k, fam in found]
        for vals in every_reply(ctx.replies(calls)):
            if any(v is not None for v in vals):
                ctx.count("left")
    left = ctx.counters.get("left", 0)
    if left:
        ctx.restart("rename")
        raise MigrationError(
            f"{left} action or IM hashes still hold fields under their names of layout "
            f"{2 if to_short else 3} (written while the revision ran?); run the same "
            "command again to rename them")


def _hashes(lay: Layout, keys: list[str]) -> list[tuple[str, str]]:
    out = []
    for k in keys:
        found = lay.parse(k)
        if found is not None and found[0] in FAMILIES:
            out.append((k, found[0]))
    return out
