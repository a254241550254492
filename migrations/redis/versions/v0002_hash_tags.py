"""Layout 1 -> 2: every key renamed to its hash-tag name, and back.

``agent:a1:action:timeline`` becomes ``agent:{a1}:action:timeline``,
``simulation:s1:actions:7`` becomes ``simulation:{s1}:actions:7``: the families, the
types and the contents stay as they are. No value names a key (index members are
action ids, steps or types; hash fields are the action's fields), so renaming the
keys is the whole migration.

Three phases, each a resumable SCAN over the whole key space in batches:

1. ``count``: the keys of the old layout, per family (``before.<family>``);
2. ``move``: ``RENAMENX old new`` for each key of the old layout in the batch.
   ``RENAME`` keeps the key's remaining TTL. A key already renamed is no longer
   found under its old name, so a batch run twice (a runner killed before it
   saved its cursor) does nothing the second time; a key whose new name is taken
   is left in place and counted as a conflict (``conflicts``);
3. ``verify``: the keys of the new layout, per family (``after.<family>``), and
   what is left of the old one (``left``). Every family must have as many keys as
   before, except that hashes with a TTL may have expired meanwhile
   (``expired.<family>``); nothing of the old layout may be left.
"""

from __future__ import annotations

import re

from agentmem.errors import BackendError
from agentmem.migrations.redis import Context, MigrationError
from agentmem.plans.keyspace import Layout
from agentmem.plans.keyspace import layout as get_layout
from agentmem.plans.plan import command

revision = "0002"
down_revision: str | None = "0001"
description = "layout 1 -> 2: every key to its hash-tag name (agent:{a1}:..., simulation:{s1}:...)"
layout = 2

EXPIRING = ("action", "im_action")
"""Families whose keys have a TTL: their count may drop while a migration runs."""


def upgrade(ctx: Context) -> None:
    move(ctx, get_layout(1), get_layout(2))


def downgrade(ctx: Context) -> None:
    move(ctx, get_layout(2), get_layout(1))


def render(lay: Layout, family: str, ids: dict[str, str]) -> str:
    """The key of ``family`` with ``ids`` as parsed (no id rule is applied again)."""
    return re.sub(r"\{(\w+)\}", lambda m: ids[m[1]], lay.plain(family))


def move(ctx: Context, src: Layout, dst: Layout) -> None:
    for keys in ctx.scan("count"):
        for key in keys:
            found = src.parse(key)
            if found:
                ctx.count(f"before.{found[0]}")
    if ctx.dry_run:
        return
    for keys in ctx.scan("move"):
        renames = []
        for key in keys:
            found = src.parse(key)
            if found:
                renames.append((found[0], key, render(dst, *found)))
        if not renames:
            continue
        replies = ctx.replies(command("RENAMENX", old, new) for _, old, new in renames)
        for (family, _, _), done in zip(renames, replies, strict=True):
            if isinstance(done, BackendError):  # gone meanwhile (expired)
                ctx.count(f"vanished.{family}")
            elif done:
                ctx.count(f"moved.{family}")
            else:
                ctx.count("conflicts")
    for keys in ctx.scan("verify"):
        for key in keys:
            if src.parse(key):
                ctx.count("left")
            else:
                found = dst.parse(key)
                if found:
                    ctx.count(f"after.{found[0]}")
    verify(ctx, src)


def verify(ctx: Context, src: Layout) -> None:
    c = ctx.counters
    problems = []
    for family in src.patterns:
        before, after = c.get(f"before.{family}", 0), c.get(f"after.{family}", 0)
        if after == before:
            continue
        if family in EXPIRING and after < before:
            c[f"expired.{family}"] = before - after
            continue
        problems.append(f"{family}: {before} keys before, {after} after")
    if c.get("left"):
        problems.append(f"{c['left']} keys of layout {src.version} are left (a writer of "
                        "that layout still running?)")
    if c.get("conflicts"):
        problems.append(f"{c['conflicts']} keys exist under both names (not moved)")
    if problems:
        ctx.reset("after.")
        ctx.reset("expired.")
        ctx.counters.pop("left", None)
        ctx.counters.pop("conflicts", None)
        ctx.restart("move")  # a new run moves what is left, then verifies again
        raise MigrationError(
            f"revision {revision} ({ctx.direction}) did not verify: " + "; ".join(problems)
            + ". Stop the writers of the old layout and run the same command again.")
