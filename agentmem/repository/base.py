"""The repository: store and query any declared model, blocking or asyncio.

Each method builds a plan once; :class:`~agentmem.plans.runner.operation` runs it on
the instance's runner, so :class:`Repository` and :class:`AsyncRepository`
share every definition and differ only in the I/O underneath.
"""

from __future__ import annotations

import copy as copying
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Generic, Self, TypeVar

from pydantic import BaseModel, ValidationError

from agentmem.config import DEFAULT_BATCH_SIZE
from agentmem.errors import (
    InvalidId,
    InvalidInput,
    SchemaError,
)
from agentmem.lua.scripts import GET_MANY, SET_SORTED_FETCH, ZRANGE_FETCH
from agentmem.model.explain import explain
from agentmem.model.schema import ID, GridIndex, RecordSpec, SetIndex, SortedIndex, Template
from agentmem.plans.colwrite import ColumnBatcher
from agentmem.plans.plan import (
    Arg,
    Plan,
    check_limit,
    command,
    paused_gc,
    score_arg,
    script_call,
    single,
)
from agentmem.plans.radius import Circle, Filters, Near, near_call, parse_near
from agentmem.plans.rows import RowPlanner
from agentmem.plans.runner import Asynchronous, Blocking, operation
from agentmem.plans.write import Prepared, WritePlanner
from agentmem.plans.writeargs import Marker
from agentmem.repository.steplog import AsyncStepLogs, StepLogs
from agentmem.repository.verbs import RecordVerbs
from agentmem.repository.writing import BULK, _Write

M = TypeVar("M", bound=BaseModel)

GET_CHUNK = 250
"""Ids per script call of ``get_many``."""
"""Writes of at least this many records run with the garbage collector paused."""


def build(model: type[M], **fields: Any) -> M:
    """Construct a model, turning pydantic's error into :class:`InvalidInput`."""
    try:
        return model(**fields)
    except ValidationError as exc:
        raise InvalidInput(explain(exc)) from exc


class RecordOps(RecordVerbs[M], Generic[M]):
    """Operations on one declared model. Use :class:`Repository` or :class:`AsyncRepository`."""

    def __init__(self, runner: Any, spec: RecordSpec[M], *,
                 batch_size: int = DEFAULT_BATCH_SIZE, write_columns: bool | None = None
                 ) -> None:
        self.runner = runner
        self.spec = spec
        self.cluster = bool(getattr(runner, "cluster", False))
        """A Redis Cluster runner: writes and simulation-level reads are split per slot."""
        self.writer = WritePlanner(spec, batch_size=batch_size, cluster=self.cluster)
        self._rows: RowPlanner[M] | None = None
        self._cols: ColumnBatcher | None = None
        self.write_columns = write_columns
        """Which writes go as columns (``RedisSettings.write_columns``): None automatic."""

    def with_outbox(self, key: str, registry: str, lease_key: str, lease_ms: int,
                    marker: Marker | None = None) -> Self:
        """This repository, with writes that also append each record's key to the outbox
        list ``key`` in the same atomic step (see :meth:`WritePlanner.with_outbox`): how
        a dual writer hands what Redis acknowledged to the archive durably."""
        out = copying.copy(self)
        for name in [n for n, v in vars(out).items() if callable(v)
                     and isinstance(getattr(type(out), n, None), operation)]:
            del out.__dict__[name]  # methods bound to this instance
        out.writer = self.writer.with_outbox(key, registry, lease_key, lease_ms, marker)
        out._rows = None
        return out

    # -- writing ----------------------------------------------------------

    def check(self, record: M) -> None:
        """Extra validation before encoding; subclasses add model-specific rules."""

    check_values: Any = None
    """``check``'s twin for ``add_rows``/``add_columns``: a method taking a record's encoded
    values (in the order of ``writer.names``), or None. A subclass that overrides
    ``check`` without it has each row built as a model object and checked by ``check``."""

    rows_ok: Any = None
    """``check_values``' test of whole columns (``add_columns``): a method taking the
    encoded columns and returning True when ``check_values`` passes every row of them
    (the rows are then never built), or None: every row is checked. Used only where the
    class that defines it defines ``check_values`` too (a subclass that overrides
    ``check_values`` alone has every row checked)."""

    def _rows_ok(self) -> Any:
        """:attr:`rows_ok`, when it speaks for this class's ``check_values``."""
        if self.rows_ok is None or not _owners(type(self))[2]:
            return None
        return self.rows_ok

    def _write_plan(self, records: Sequence[M]) -> Plan[list[M]]:
        """All records validated and encoded now; sent batch by batch when run."""
        model = self.spec.model
        for n, rec in enumerate(records):
            if not isinstance(rec, model):
                raise InvalidInput(
                    f"record {n}: expected a {model.__name__}, got {type(rec).__name__}")
            try:
                self.check(rec)
            except InvalidInput as exc:
                raise type(exc)(f"record {n}: {exc}") from None
        with paused_gc(len(records) >= BULK):
            write = _Write(self.spec, self.writer, records,
                           columns=self._column_batcher(models=True))
        return write.plan(list(range(len(records))))

    @operation
    def add(self, /, record: M) -> Plan[M]:
        """Store one record and all its indices atomically, in one round trip.

        Returns the record as stored (with its id and write time filled in).
        """
        return self._write_plan([record]).map(lambda out: out[0])

    @operation
    def add_many(self, /, records: Iterable[M]) -> Plan[list[M]]:
        """Store many records in one round trip; each record is all-or-nothing.

        Every record is validated before anything is sent. If the server refuses
        some (an id that exists, a key of the wrong type), the others are stored
        and :class:`~agentmem.errors.WriteError` lists both.
        """
        return self._write_plan(_listed(records, "add_many", "records"))

    def _row_planner(self) -> RowPlanner[M]:
        if self._rows is None:
            self._rows = RowPlanner(self.writer)
        return self._rows

    def _column_batcher(self, *, models: bool = False) -> ColumnBatcher | None:
        """The calls as columns (``core/write_cols.lua``), or None: as rows. ``models``: a
        write of model objects (``add``, ``add_many``, a dual writer's), as columns only
        when ``write_columns`` is True; rows (``add_rows``, ``add_columns``) unless it is
        False."""
        wanted = self.write_columns
        if wanted is None:
            wanted = not models
        if not wanted:
            return None
        if self._cols is None or self._cols.planner is not self.writer:
            self._cols = ColumnBatcher(self.writer)
        return self._cols if self._cols.ok else None

    def _rows_plan(self, prepared: Sequence[Prepared]) -> Plan[list[str]]:
        """Prepared rows, sent batch by batch when run; the result is their ids."""
        write: _Write[M] = _Write(self.spec, self.writer, None, prepared,
                                  columns=self._column_batcher())
        return write.plan(list(range(len(prepared)))).map(lambda _: write.final_ids())

    def _row_checks(self) -> tuple[Any, bool]:
        """``check_values`` and whether rows may skip model objects (see ``check_values``):
        they may when ``check`` is RecordOps' own, or when ``check_values`` is defined by
        the class that defines ``check`` or by a subclass of it (a subclass's ``check``
        alone has every row built and checked by it)."""
        own, under, _ = _owners(type(self))
        return self.check_values, own or (self.check_values is not None and under)

    @operation
    def add_rows(self, /, rows: Iterable[Mapping[str, Any]]) -> Plan[list[str]]:
        """Store records given as mappings of field values, like ``add_many`` of
        ``Model(**row)`` for each row, without building the model objects.

        The same validation as the model's (the same rows refused, with
        :class:`~agentmem.errors.InvalidInput` naming the row), every row checked
        before anything is sent, the same bytes stored. Returns the stored ids, in order.
        """
        values, fast = self._row_checks()
        with paused_gc(True):
            prepared = self._row_planner().prepare_rows(_listed(rows, "add_rows", "mappings"),
                                                        self.check, values, fast)
        return self._rows_plan(prepared)

    @operation
    def add_columns(self, /, columns: Mapping[str, Sequence[Any]]) -> Plan[list[str]]:
        """Store records given as columns: field name to a sequence of values (a list, a
        tuple, a numpy array), all of one length; row ``i`` is ``{name: column[i]}``.

        As :meth:`add_rows`. A column with ``tolist()`` (a numpy array) is read as its
        list of Python values, except an arbitrary type's (an embedding matrix, whose
        rows are the vectors). Returns the stored ids, in order.
        """
        return self._rows_plan(self._prepare_columns(columns))

    def _prepare_columns(self, columns: Mapping[str, Sequence[Any]], copy: bool = True
                         ) -> Sequence[Prepared]:
        """``add_columns``' validation: every row of ``columns`` prepared, or raises;
        ``copy=False``: see :meth:`ColumnPlanner.prepare
        <agentmem.plans.colplan.ColumnPlanner.prepare>`."""
        values, fast = self._row_checks()
        with paused_gc(True):
            return self._row_planner().prepare_columns(columns, self.check, values, fast,
                                                       self._rows_ok(), copy)

    # -- reading ----------------------------------------------------------

    def _around(self, scope: dict[str, Any]) -> tuple[str, str]:
        return self.spec.key.around(self.spec.id, scope)

    def _decode_list(self, raw: list[Any]) -> list[M]:
        decode = self.spec.codec.decode
        return [decode(h) for h in raw]

    @operation
    def get(self, /, id: str | int, **scope: str | int) -> Plan[M | None]:
        """The record with ``id`` (``scope`` fills the other key fields), or None."""
        return self._get_many(scope, [id]).map(lambda out: out[0])

    @operation
    def get_many(self, /, ids: Sequence[str | int], **scope: str | int) -> Plan[list[M | None]]:
        """Records by id, in order, ``None`` where absent; one round trip."""
        return self._get_many(scope, ids)

    def _get_many(self, scope: dict[str, Any], ids: Sequence[str | int]) -> Plan[list[M | None]]:
        prefix, suffix = self._around(scope)
        checked = [Template.parse("{id}").render({"id": i}) for i in ids]
        for i in checked:
            if i in self.spec.reserved_ids:
                raise InvalidId(f"{self.spec.id} {i!r} is reserved: it names an index key")
        decode = self.spec.codec.decode

        def parse(raw: list[Any]) -> list[M | None]:
            out: list[M | None] = []
            for part in raw:
                if isinstance(part, Exception):
                    raise part
                out += [decode(h) if h else None for h in part]
            return out

        # one script call per GET_CHUNK ids, all in one round trip: no call grows
        # with the request (a server reads each call whole before running it)
        calls = [script_call(GET_MANY, [prefix, suffix, *checked[i:i + GET_CHUNK]])
                 for i in range(0, len(checked), GET_CHUNK)]
        return Plan(tuple(calls), parse)

    def _index_key(self, name: str, kind: type, scope: dict[str, Any]) -> str:
        ix = self.spec.index(name)
        if not isinstance(ix, kind):
            raise SchemaError(f"index {name!r} is not a {kind.__name__}")
        if getattr(ix, "member", ID) != ID:
            raise SchemaError(f"index {name!r} holds field values, not record ids")
        return Template.parse(ix.key).render(scope)

    @operation
    def range(
        self, /,
        index: str,
        *,
        min: float | None = None,
        max: float | None = None,
        newest_first: bool = False,
        limit: int | None = None,
        **scope: str | int,
    ) -> Plan[list[M]]:
        """Records of a sorted index with ``min <= score <= max``, in one round trip.

        Ordered by score (highest first with ``newest_first``); records whose hash
        has expired are skipped.
        """
        zkey = self._index_key(index, SortedIndex, scope)
        prefix, suffix = self._around(scope)
        argv: list[Arg] = [zkey, prefix, suffix, "score", score_arg(min, "-inf"),
                           score_arg(max, "+inf"), "1" if newest_first else "0",
                           check_limit(limit)]
        return single(script_call(ZRANGE_FETCH, argv), self._decode_list)

    @operation
    def members(
        self, /,
        index: str,
        *,
        order_by: str | None = None,
        newest_first: bool = True,
        limit: int | None = None,
        **scope: str | int,
    ) -> Plan[list[M]]:
        """Records of a set index, ordered by the score they have in sorted index ``order_by``."""
        skey = self._index_key(index, SetIndex, scope)
        zkey = self._index_key(order_by, SortedIndex, scope) if order_by else ""
        prefix, suffix = self._around(scope)
        argv: list[Arg] = [skey, zkey, prefix, suffix, "1" if newest_first else "0",
                           check_limit(limit), "", "0"]
        return single(script_call(SET_SORTED_FETCH, argv), self._decode_list)

    @operation
    def near(
        self, /,
        index: str,
        x: float,
        y: float,
        radius: float,
        *,
        limit: int | None = None,
        **scope: str | int,
    ) -> Plan[list[Near[M]]]:
        """Records of a grid index within ``radius`` of ``(x, y)``, nearest first (ties
        by id), as :class:`~agentmem.plans.radius.Near` ``(record, distance)`` pairs; exact,
        one round trip. Records whose hash has expired are skipped."""
        ix = self.spec.index(index)
        if not isinstance(ix, GridIndex) or ix.member != ID:
            raise SchemaError(f"index {index!r} is not a grid index of record ids")
        key = Template.parse(ix.key).render(scope)
        prefix, suffix = self._around(scope)
        circle = Circle.of(x, y, radius, ix.cell, limited=limit is not None)
        wire = self.spec.codec.wire
        call = near_call(circle, mode="r", shape=(prefix, "", suffix),
                         fields=(wire(ix.x), wire(ix.y)),
                         limit=limit, filters=Filters(), keys=[(key, "")], route=key)
        return single(call, parse_near(self.spec.codec.decode))

    @operation
    def count(self, /, index: str, **scope: str | int) -> Plan[int]:
        """Number of entries in an index (ZCARD, SCARD or LLEN)."""
        ix = self.spec.index(index)
        key = Template.parse(ix.key).render(scope)
        cmd = {"zset": "ZCARD", "set": "SCARD", "list": "LLEN", "hash": "HLEN"}[ix.kind]
        return single(command(cmd, key), int)


class Repository(RecordOps[M], Blocking, StepLogs):
    """Blocking repository of one declared model."""


class AsyncRepository(RecordOps[M], Asynchronous, AsyncStepLogs):
    """asyncio repository of one declared model (every method is awaited)."""


_OWNERS: dict[tuple[Any, ...], tuple[bool, bool, bool]] = {}


def _listed(items: Any, verb: str, what: str) -> list[Any]:
    """``items`` as a list; not an iterable (``None``, a number): :class:`InvalidInput`
    (review 120: ``add_rows(None)`` raised a bare ``TypeError``)."""
    if isinstance(items, list):
        return items
    try:
        return list(items)
    except TypeError:
        raise InvalidInput(f"{verb} takes an iterable of {what}, "
                           f"got {type(items).__name__}") from None


def _owners(cls: type) -> tuple[bool, bool, bool]:
    """Of a repository class: whether ``check`` is :class:`RecordOps`' own, whether
    ``check_values`` is defined by the class that defines ``check`` or a subclass of
    it, and whether ``rows_ok`` is defined by the class that defines ``check_values``.
    Looked up once per class and methods (a write of each step asks): a method set on
    the class, or on a class it derives from, after its first write is a new key."""
    key = (cls, cls.check, cls.check_values, cls.rows_ok)  # type: ignore[attr-defined]
    got = _OWNERS.get(key)
    if got is None:
        def owner(name: str) -> type:
            return next(c for c in cls.__mro__ if name in c.__dict__)

        check = owner("check")
        got = _OWNERS[key] = (check is RecordOps, issubclass(owner("check_values"), check),
                              owner("rows_ok") is owner("check_values"))
    return got
