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
   run twice changes nothing the second time. A hash that also holds a field under
   one of the new names (another program's field) is left alone too: renaming would
   overwrite it, and the new layout would read it as its own (``conflicts``).
   Counters: ``hashes.<family>`` (seen), ``renamed`` (``to_rename`` in a dry run).
2. ``verify``: every action and IM hash is read again; one still holding an old name
   (``left``) stops the revision with :class:`~agentmem.migrations.redis.MigrationError`
   (naming the conflicts, if any), and the next run renames what is left and verifies
   again. A runner killed during the verify keeps the count of the batches it verified.

The downgrade is the same walk with the names swapped. The revision is opt-in:
``agentmem migrate upgrade`` (to ``head``) stops at ``0003``; ``agentmem migrate upgrade
0004`` applies it, and stores then open the data with ``layout_version=3``.
"""

from __future__ import annotations

from agentmem.lua.migrations import RENAME_FIELDS
from agentmem.migrations.redis import Context, MigrationError
from agentmem.plans.keyspace import Layout
from agentmem.plans.keyspace import layout as get_layout
from agentmem.plans.plan import Arg, command, every_reply, script_call

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
    lay = get_layout(ctx.data_layout)  # the keys as they are (a dry run moves none)
    pairs = {f: renames(get_layout(3), f) if to_short else
             [(w, s) for s, w in renames(get_layout(3), f)] for f in FAMILIES}
    argv: dict[str, list[Arg]] = {
        f: [len(p), *(o for o, _ in p), *(n for _, n in p)] for f, p in pairs.items()}
    head = lay.plain("action").split("{", 1)[0]  # agent:  (both families start so)
    conflicted: list[str] = []  # this run's (a resumed run counts the earlier ones)
    for keys in ctx.scan("rename", match=head + "*"):
        found = _hashes(lay, keys)
        for _, fam in found:
            ctx.count(f"hashes.{fam}")
        if not found:
            continue
        if ctx.dry_run:
            held = every_reply(ctx.replies(
                command("HMGET", k, *(o for o, _ in pairs[fam])) for k, fam in found))
            ctx.count("to_rename", sum(1 for vals in held if any(v is not None for v in vals)))
            continue
        done = [int(x) for x in every_reply(ctx.replies(
            script_call(RENAME_FIELDS, argv[fam], (k,)) for k, fam in found))]
        ctx.count("renamed", sum(1 for x in done if x == 1))
        ctx.count("conflicts", sum(1 for x in done if x == -1))
        conflicted += [k for (k, _), x in zip(found, done, strict=True) if x == -1]
    if ctx.dry_run:
        return
    for keys in ctx.scan("verify", match=head + "*"):
        found = _hashes(lay, keys)
        if not found:
            continue
        calls = [command("HMGET", k, *(old for old, _ in pairs[fam])) for k, fam in found]
        for vals in every_reply(ctx.replies(calls)):
            if any(v is not None for v in vals):
                ctx.count("left")
    left, conflicts = ctx.counters.get("left", 0), ctx.counters.get("conflicts", 0)
    if left:
        names = sorted({n for p in pairs.values() for _, n in p})
        for prefix in ("left", "conflicts", "renamed", "hashes."):
            ctx.reset(prefix)  # the next run counts again from the start
        ctx.restart("rename")
        some = f" (e.g. {', '.join(conflicted[:3])})" if conflicted else ""
        why = (f"{conflicts} of them{some} also hold a field under a name the layout uses "
               f"(one of {', '.join(names)}), left as they are: rename or delete that "
               "field of the other program, then " if conflicts else
               "written while the revision ran? ")
        raise MigrationError(
            f"{left} action or IM hashes still hold fields under their names of layout "
            f"{2 if to_short else 3}; {why}run the same command again to rename them")


def _hashes(lay: Layout, keys: list[str]) -> list[tuple[str, str]]:
    out = []
    for k in keys:
        found = lay.parse(k)
        if found is not None and found[0] in FAMILIES:
            out.append((k, found[0]))
    return out
