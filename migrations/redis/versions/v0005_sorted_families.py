"""Layout 3 -> 4: the types and targets indices as sorted sets scored by step, and back.

Layout 4 is layout 3 with each ``types`` and ``targets`` key a sorted set whose members
are scored by their action's step (:func:`~agentmem.plans.keyspace.sorted_families`),
so that a query of one type or target reads its newest entries directly. Every other
key, member, score and hash field stays as it is.

Two phases, each a resumable SCAN over the agent key space in batches:

1. ``convert``: for each types or targets key of the batch that is a set (a sorted set,
   downgrading), one script per key and chunk (``agentmem/lua/src/migrations/
   index_kind.lua``) reads one ``SSCAN`` (``ZSCAN``) page of ``batch`` members into a
   temporary key of the same hash tag, and the last chunk replaces the key with it in
   one step, keeping its TTL: a very large set never holds the server for long. Each
   member is scored by the agent's ``timeline`` score of it, else by the step of its
   action hash (field ``n``); a member with neither (an orphan entry) is left out
   (``orphans``), and a key with no member left is deleted (``emptied``). A key
   already of the target type (converted by a run that was killed before it saved its
   cursor) is left alone, so a batch run twice changes nothing the second time.
   Counters: ``keys.<family>`` (seen), ``converted``, ``members`` (of the converted
   keys), ``orphans``, ``emptied``, ``already`` (of the target type), ``other_type``
   (of neither type, left alone), ``gone`` (expired while converted).
   A dry run counts the same (``to_convert`` for ``converted``) and writes nothing.
2. ``verify``: every types and targets key is read again; one still of the old type
   (``left``) stops the revision with :class:`~agentmem.migrations.redis.MigrationError`,
   and the next run converts what is left and verifies again.

The downgrade is the same walk from sorted sets to sets (the scores dropped, no member
left out). The revision is opt-in like ``0004``: ``agentmem migrate upgrade`` (to
``head``) stops at ``0003``; ``agentmem migrate upgrade 0005`` applies ``0004`` too when
the data is of layout 2, and stores then open the data with ``layout_version=4``.
"""

from __future__ import annotations

import re

from agentmem.lua.migrations import INDEX_KIND
from agentmem.migrations.redis import Context, MigrationError
from agentmem.plans.keyspace import Layout, hash_tag
from agentmem.plans.keyspace import layout as get_layout
from agentmem.plans.plan import command, every_reply, script_call

revision = "0005"
down_revision: str | None = "0004"
description = ("layout 3 -> 4: the types and targets indices as sorted sets, each member "
               "scored by its action's step")
layout = 4
opt_in = True
"""``upgrade`` to ``head`` stops before this revision: name it (``0005``) to apply it."""

FAMILIES = ("types", "targets")
TEMP_PREFIX = "agentmem:migrating:"
"""The temporary key of an index key ``k`` is ``agentmem:migrating:{<k's hash tag>}:k``:
in ``k``'s slot, outside the agent key space the walk scans."""

_STATES = {0: "already", 2: "converted", 3: "emptied", -1: "other_type", -2: "gone"}


def upgrade(ctx: Context) -> None:
    convert(ctx, to_sorted=True)


def downgrade(ctx: Context) -> None:
    convert(ctx, to_sorted=False)


def temp_key(key: str) -> str:
    return f"{TEMP_PREFIX}{{{hash_tag(key)}}}:{key}"


def convert(ctx: Context, *, to_sorted: bool) -> None:
    lay = get_layout(ctx.data_layout)  # the keys as they are (a dry run moves none)
    old = "set" if to_sorted else "zset"
    match = scan_match(lay)
    for keys in ctx.scan("convert", match=match):
        found = _indices(lay, keys)
        for _, fam, _ in found:
            ctx.count(f"keys.{fam}")
        if found:
            _chunks(ctx, lay, found, to_sorted)
    if ctx.dry_run:
        return
    for keys in ctx.scan("verify", match=match):
        found = _indices(lay, keys)
        if not found:
            continue
        kinds = every_reply(ctx.replies(command("TYPE", k) for k, _, _ in found))
        ctx.count("left", sum(1 for t in kinds if _text(t) == old))
    left = ctx.counters.get("left", 0)
    if left:
        for prefix in ("left", "keys.", "converted", "members", "orphans", "emptied",
                       "other_type", "already", "gone"):
            ctx.reset(prefix)  # the next run counts again from the start
        ctx.restart("convert")
        raise MigrationError(
            f"{left} types or targets keys are still {old}s (written while the revision "
            "ran?); run the same command again to convert them")


def _chunks(ctx: Context, lay: Layout, found: list[tuple[str, str, str]],
            to_sorted: bool) -> None:
    """Convert (count, in a dry run) the keys of one batch: the first chunk of every key
    in one round trip, then the next chunk of each key not done, until none is left."""
    field = lay.action.codec.wire("step_number")
    mode, write = "z" if to_sorted else "s", "0" if ctx.dry_run else "1"
    done = "to_convert" if ctx.dry_run else "converted"
    pending = [(key, agent, "0") for key, _, agent in found]
    while pending:
        calls = []
        for key, agent, cursor in pending:
            before, after = _around(lay, "action", "action_id", agent)
            calls.append(script_call(
                INDEX_KIND, [mode, write, cursor, ctx.batch, before, after, field],
                (key, temp_key(key), _render(lay, "timeline", agent_id=agent))))
        nxt = []
        for (key, agent, _), reply in zip(pending, every_reply(ctx.replies(calls)),
                                          strict=True):
            state, cursor, members, orphans = reply
            state = int(state)
            ctx.count("members", int(members))
            ctx.count("orphans", int(orphans))
            if state == 1:
                nxt.append((key, agent, _text(cursor)))
            elif state == 2:
                ctx.count(done)
            elif state in _STATES:
                ctx.count(_STATES[state])
        pending = nxt


def scan_match(lay: Layout) -> str:
    """A ``SCAN`` ``MATCH`` glob that every types and targets key of ``lay`` matches
    (the text both patterns start with, then ``*``); each key found is parsed anyway."""
    first, *rest = ("".join(re.sub(r"([*?\[\]\\])", r"\\\1", v) if k == "L" else "*"
                            for k, v in lay.template(f).parts) for f in FAMILIES)
    common = first
    for glob in rest:
        common = common[:next((i for i, (x, y) in enumerate(zip(common, glob, strict=False))
                               if x != y), min(len(common), len(glob)))]
    return common.removesuffix("\\") + "*"


def _indices(lay: Layout, keys: list[str]) -> list[tuple[str, str, str]]:
    """(key, family, agent id) of each types or targets key among ``keys``."""
    out = []
    for k in keys:
        found = lay.parse(k)
        if found is not None and found[0] in FAMILIES:
            out.append((k, found[0], found[1]["agent_id"]))
    return out


def _render(lay: Layout, family: str, **ids: str) -> str:
    """A key of ``lay`` with ``ids`` as they are (read from keys of the server: not
    checked again, as other programs' ids may be longer than agentmem writes)."""
    return "".join(v if k == "L" else ids[v] for k, v in lay.template(family).parts)


def _around(lay: Layout, family: str, part: str, agent: str) -> tuple[str, str]:
    """The text of a ``family`` key before and after ``part`` (the other ids: ``agent``)."""
    pieces: list[list[str]] = [[], []]
    side = 0
    for k, v in lay.template(family).parts:
        if k == "F" and v == part:
            side = 1
        else:
            pieces[side].append(v if k == "L" else agent)
    return "".join(pieces[0]), "".join(pieces[1])


def _text(raw: object) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)
