"""Prepare writes from plain rows or columns of field values, without model objects.

The columnar ingest path of :meth:`~agentmem.repository.base.RecordOps.add_rows` and
``add_columns`` (issue 19): each row is validated and encoded by the model's
:class:`~agentmem.model.rowcodec.RowCodec` straight into the encoded values
:meth:`WritePlanner.prepare` takes from a model object; a row the fast path does not
take is built with pydantic, exactly as ``Model(**row)`` is, so the same rows are
refused with the same errors and the same bytes are stored either way. Columns are
first tried column by column (:mod:`agentmem.plans.colplan`), which gives the same
records or None (then the rows are prepared here, one by one). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from agentmem.errors import InvalidInput
from agentmem.model.codec import SCALAR_ENCODERS
from agentmem.model.explain import explain
from agentmem.model.rowcodec import RowCodec
from agentmem.plans.colplan import ColumnPlanner, RowsOk
from agentmem.plans.write import Prepared, WritePlanner

M = TypeVar("M", bound=BaseModel)

CheckRecord = Callable[[Any], None]
"""A repository's extra checks of one model object (``RecordOps.check``)."""
CheckValues = Callable[[list[Any]], None]
"""The same checks on a record's encoded values (``RecordOps.check_values``); ``None``:
there are none. A repository whose ``check`` has no such twin passes ``fast_ok=False``:
each row is then built as a model object and checked by ``check``."""


class RowPlanner(Generic[M]):
    """Turns rows or columns of one declaration's model into :class:`Prepared` records."""

    def __init__(self, writer: WritePlanner[M]) -> None:
        self.writer = writer
        self.model = writer.spec.model
        self.codec = RowCodec(self.model, writer.spec.codec)
        self.columns: ColumnPlanner[M] | None = (
            ColumnPlanner(writer) if self.codec.fast is not None else None)
        """The column-wise fast path of :meth:`prepare_columns` (None: the model has
        no row fast path either)."""
        # a column with tolist() (a numpy array, a pandas Series) is read as its list
        # of Python values, except an arbitrary type's (an embedding matrix: its rows
        # are the vectors)
        self._listed = frozenset(
            f.name for f in writer.spec.codec.fields
            if f.split or f.json or f.write_time or f.encode in SCALAR_ENCODERS)

    def _slow(self, row: Any, check: CheckRecord) -> Prepared:
        """``row`` built with pydantic: the model's own validation and message."""
        if not isinstance(row, Mapping):
            raise InvalidInput(f"expected a mapping of field values, got {type(row).__name__}")
        try:
            record = self.model(**row)
        except ValidationError as exc:  # a model that is not an agentmem Record
            raise InvalidInput(explain(exc)) from exc
        except TypeError as exc:  # keys that are not strings
            raise InvalidInput(f"invalid {self.model.__name__}: {exc}") from None
        check(record)
        return self.writer.prepare(record)

    def _prepare(self, encoded: Iterator[list[Any] | None], row_at: Callable[[int], Any],
                 check: CheckRecord, check_values: CheckValues | None, fast_ok: bool
                 ) -> list[Prepared]:
        writer = self.writer
        fast, prepare = writer._fast, writer.prepare_encoded
        out: list[Prepared] = []
        ap = out.append
        n = 0
        try:
            for vals in encoded:
                if vals is None or not fast_ok:
                    ap(self._slow(row_at(n), check))
                else:
                    if check_values is not None:
                        check_values(vals)
                    p = fast(vals)
                    ap(p if p is not None else prepare(vals))
                n += 1
        except InvalidInput as exc:
            raise type(exc)(f"row {n}: {exc}") from None
        return out

    def prepare_rows(self, rows: Iterable[Mapping[str, Any]], check: CheckRecord,
                     check_values: CheckValues | None, fast_ok: bool = True) -> list[Prepared]:
        """Every row (a mapping of field name to value) validated and encoded, in order;
        the first bad one raises :class:`InvalidInput` naming its position."""
        rows = rows if isinstance(rows, list) else list(rows)
        encode = self.codec.encode_row

        def encoded() -> Iterator[list[Any] | None]:
            for row in rows:
                yield encode(row) if type(row) is dict or isinstance(row, Mapping) else None

        return self._prepare(encoded(), rows.__getitem__, check, check_values,
                             fast_ok)

    def prepare_columns(self, columns: Mapping[str, Sequence[Any]], check: CheckRecord,
                        check_values: CheckValues | None, fast_ok: bool = True,
                        rows_ok: RowsOk | None = None, copy: bool = True
                        ) -> Sequence[Prepared]:
        """Every row of ``columns`` (field name to a sequence of values, all of one
        length) validated and encoded, in order; see :meth:`prepare_rows`. On the
        column path, held as columns (:class:`~agentmem.plans.colplan.ColumnRows`);
        ``rows_ok`` and ``copy``: see :meth:`ColumnPlanner.prepare
        <agentmem.plans.colplan.ColumnPlanner.prepare>`."""
        if not isinstance(columns, Mapping):
            raise InvalidInput(f"expected a mapping of field name to values, got "
                               f"{type(columns).__name__}")
        if fast_ok and self.columns is not None:
            # column by column when nothing is unusual; else row by row, below
            done = self.columns.prepare(columns, check_values, rows_ok, copy)
            if done is not None:
                return done
        cols: dict[str, Sequence[Any]] = {}
        length: int | None = None
        first = ""
        for name, col in columns.items():
            if name in self._listed and hasattr(col, "tolist"):
                col = col.tolist()
            try:
                # text is one value; a mapping or a set has no value per row position
                if isinstance(col, str | bytes | Mapping | AbstractSet):
                    raise TypeError
                size = len(col)
            except TypeError:
                raise InvalidInput(f"column {name!r} is not a sequence of values "
                                   f"({type(col).__name__})") from None
            if length is None:
                length, first = size, name
            elif size != length:
                raise InvalidInput(f"column {name!r} has {size} values, column {first!r} "
                                   f"{length}: every column needs one value per row")
            cols[name] = col
        n = length or 0

        def row_at(i: int) -> dict[str, Any]:
            return {name: col[i] for name, col in cols.items()}

        return self._prepare(self.codec.encode_columns(cols, n), row_at, check, check_values,
                             fast_ok)
