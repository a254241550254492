"""The ``details`` of actions written by the specification's code, as agentmem writes them.

The specification's ``store_agent_action`` stores ``json.dumps(details)``: a space
after every ``,`` and ``:`` and every non-ASCII character as a ``\\uXXXX`` escape
(six bytes for ``é``, twelve for an emoji). agentmem stores the same value as
compact UTF-8 JSON (``agentmem.model.jsonvalue.dumps``). Both read back to the same
value, but the bytes differ: data written by both holds two forms of one value,
and the specification's form takes more memory. The upgrade rewrites each
action hash's ``details`` in the compact form; the downgrade writes them back in
the specification's form (``json.dumps`` with its defaults).

Text that is not JSON, or JSON that agentmem would refuse (NaN, infinities), is
left as it is (``skipped``). Each rewrite is a compare-and-set on the server
(``HSET`` only if the field still holds what was read, and the hash still exists,
which keeps its TTL), so writers may run meanwhile and a batch run twice changes
nothing the second time. Counters: ``hashes`` (action hashes seen), ``rewritten``
(``to_rewrite`` in a dry run), ``skipped``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from agentmem.errors import InvalidInput
from agentmem.lua.migrations import DETAILS_CAS
from agentmem.migrations.redis import Context
from agentmem.model.jsonvalue import dumps
from agentmem.plans.keyspace import layout as get_layout
from agentmem.plans.plan import command, every_reply, script_call

revision = "0003"
down_revision: str | None = "0002"
description = "details written by the specification's code (json.dumps) as compact JSON"
layout = 2

CAS = DETAILS_CAS
"""The compare-and-set of one hash's ``details`` (``agentmem/lua/src/migrations``)."""


def _reject(name: str) -> Any:
    raise ValueError(name)


def _value(raw: bytes) -> tuple[bool, Any]:
    try:
        return True, json.loads(raw, parse_constant=_reject)
    except ValueError:
        return False, None


def compact(raw: bytes) -> bytes | None:
    ok, value = _value(raw)
    if not ok:
        return None
    try:
        return dumps(value)
    except (InvalidInput, ValueError, TypeError):
        return None


def spec_form(raw: bytes) -> bytes | None:
    ok, value = _value(raw)
    return json.dumps(value).encode() if ok else None


def upgrade(ctx: Context) -> None:
    rewrite(ctx, compact)


def downgrade(ctx: Context) -> None:
    rewrite(ctx, spec_form)


def rewrite(ctx: Context, encode: Callable[[bytes], bytes | None]) -> None:
    lay = get_layout(ctx.data_layout)
    head = lay.plain("action").split("{", 1)[0]
    for keys in ctx.scan("rewrite", match=head + "*"):
        hashes = []
        for k in keys:
            found = lay.parse(k)
            if found and found[0] == "action":
                hashes.append(k)
        if not hashes:
            continue
        ctx.count("hashes", len(hashes))
        todo = []
        field = lay.action.codec.wire("details")  # a dry run may see layout 3's hashes
        for k, raw in zip(hashes, every_reply(ctx.replies(command("HGET", k, field)
                                                      for k in hashes)), strict=True):
            if raw is None:
                continue
            new = encode(raw)
            if new is None:
                ctx.count("skipped")
            elif new != raw:
                todo.append((k, raw, new))
        if ctx.dry_run:
            ctx.count("to_rewrite", len(todo))
            continue
        done = ctx.replies(script_call(CAS, (raw, new), (k,)) for k, raw, new in todo)
        ctx.count("rewritten", sum(int(x) for x in every_reply(done)))

