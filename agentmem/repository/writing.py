"""One write of a repository across its calls and (rare) retries: :class:`_Write`.

It sends the write planner's calls batch by batch, reads each call's reply (the ids
the server chose, the records it refused), asks for the retries and the cluster's
follow-ups, and builds the stored copies. Imports the plans only (no I/O of its own:
the repository's runner sends the calls).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from agentmem.errors import DuplicateId, WriteError
from agentmem.model.schema import RecordSpec
from agentmem.plans.colwrite import ColumnBatcher
from agentmem.plans.plan import Call, FollowUp, Plan
from agentmem.plans.write import Prepared, WritePlanner
from agentmem.plans.writeargs import _render
from agentmem.plans.writereply import UNSEEDED, parse_batch

__all__ = ["BULK", "_Write"]

M = TypeVar("M", bound=BaseModel)

BULK = 256



class _Write(Generic[M]):
    """The state of one write across its (rare) retries."""

    def __init__(self, spec: RecordSpec[M], writer: WritePlanner[M], records: Sequence[M] | None,
                 prepared: Sequence[Prepared] | None = None, *,
                 columns: ColumnBatcher | None = None):
        """``records`` or, for rows without model objects, ``prepared`` (the result is
        then an empty list; :meth:`final_ids` gives the ids)."""
        self.spec = spec
        self.writer = writer
        self.columns = columns
        """Builds the calls of a write it :meth:`~ColumnBatcher.takes` as columns; else
        ``writer.batch`` builds them."""
        self.records = records
        if records is not None:
            prepared = writer.prepare_all(records)
        assert prepared is not None
        self.prepared: Sequence[Prepared] = prepared
        self.total = n = len(prepared)
        self.ids: list[str | None] = [None] * n
        self.stamps: list[int | None] = [None] * n
        self.failed: dict[int, str] = {}
        self.error: Exception | None = None
        # cluster mode: records stored in their own slot whose entries in other slots
        # (simulation-level indices) are still to be written, with their final ids
        self.remote: list[int] = []
        # cluster mode with an outbox: stored records whose keys are not listed in it yet
        self.listing = writer.cluster and writer.outbox is not None
        self.unlisted: list[int] = []
        self.deferred: WriteError | None = None  # raised once the cluster's follow-ups ran
        # the records as stored, built while the server runs each batch; not
        # shared until finish() has put in the server's id changes and write time
        self.out: list[M | None] = [None] * n
        codec = spec.codec
        self.id_name = codec.field_for(spec.id).name
        stamp = codec.write_time_field
        self.stamp_name = stamp.name if stamp is not None else None

    def final_ids(self) -> list[str]:
        """The stored ids, in order (once the write succeeded)."""
        return [str(i) for i in self.ids]

    def plan(self, todo: list[int]) -> Plan[list[M]]:
        batches: list[list[int]] = []
        guesses: list[list[str]] = []

        def calls() -> Iterator[Call]:
            with_values = self.spec.codec.with_values
            records, out, id_name = self.records, self.out, self.id_name
            columns = self.columns
            chunks: Iterable[list[int]] | None = None
            if columns is not None:
                chunks = columns.chunks(self.prepared, todo)
                if chunks is None:
                    columns = None
            if chunks is None:
                chunks = self.writer.chunks(self.prepared, todo)
            for batch in chunks:
                batches.append(batch)
                call, guessed = columns.batch_of(self.prepared, batch) \
                    if columns is not None else \
                    self.writer.batch([self.prepared[j] for j in batch])
                guesses.append(guessed)
                yield call
                if records is None:
                    continue
                for j, rid in zip(batch, guessed, strict=True):
                    rec = records[j]
                    out[j] = with_values(rec, {id_name: rid}) \
                        if rec.__dict__[id_name] is None else with_values(rec, {})

        def parse(replies: list[Any]) -> list[M]:
            retry: list[int] = []
            for batch, guessed, reply in zip(batches, guesses, replies, strict=True):
                if isinstance(reply, Exception):  # the server refused the whole call
                    self.error = reply
                    for j in batch:
                        self.failed[j] = str(reply)
                    continue
                res = parse_batch(reply)
                if res.unseeded:  # refused whole: the dual writer journals them
                    for j in batch:
                        self.failed[j] = UNSEEDED
                    continue
                if res.written:
                    changed = res.changed or {}
                    first, k = batch[0], len(batch)
                    if batch == list(range(first, first + k)):  # a run (the usual call)
                        self.ids[first:first + k] = guessed
                        self.stamps[first:first + k] = [res.stamp] * k
                        for pos, rid in changed.items():
                            self.ids[first + pos] = rid
                    else:
                        for pos, j in enumerate(batch):
                            self.ids[j] = changed.get(pos, guessed[pos])
                            self.stamps[j] = res.stamp
                    if self.writer.remote:
                        self.remote += batch
                    if self.listing:
                        self.unlisted += batch
                    continue
                bad = set(res.bad_keys)
                again: list[int] = []
                for pos, j in enumerate(batch):
                    if pos in res.conflicts:
                        self.failed[j] = f"EXISTS: {self.spec.id} {guessed[pos]!r} is taken"
                    elif bad and bad & self.keys_of(self.prepared[j]):
                        keys = sorted(bad & self.keys_of(self.prepared[j]))
                        self.failed[j] = f"WRONGTYPE: key {keys[0]!r} holds another type"
                    else:
                        again.append(j)
                if bad and len(again) == len(batch):
                    # no record of the call owns a refused key (cannot happen for the keys
                    # keys_of knows): refused all, rather than sent again for ever
                    for j in again:
                        self.failed[j] = f"WRONGTYPE: key {min(bad)!r} holds another type"
                    again = []
                retry += again
            if retry:
                raise FollowUp(self.plan(retry))
            return self.then()

        return Plan(calls(), parse, bulk=len(todo) >= BULK, adds=self.spec.key.pattern,
                    guarded=self.writer.outbox is not None)

    def keys_of(self, rec: Prepared) -> set[str]:
        """Every key of another record ``rec``'s write checks: its index keys and its
        scope's retired-mark hash."""
        keys = self.writer.record_keys(rec)
        if self.writer.retired is not None:
            rk = _render(self.writer.retired, rec.vals)
            if rk is not None:
                keys.add(rk)
        return keys

    def then(self) -> list[M]:
        """Once every record is stored or refused: on a cluster, the entries in other
        slots, then the outbox's call (each runs whatever the other's outcome; their
        refusal is raised once both ran); then the result."""
        if self.remote:
            raise FollowUp(self.remote_plan())
        if self.unlisted:
            raise FollowUp(self.outbox_plan())
        if self.deferred is not None:
            for j, reason in self.failed.items():  # the records refused whole, too
                self.deferred.failed.setdefault(j, reason)
            raise self.deferred
        return self.finish()

    def outbox_plan(self) -> Plan[list[M]]:
        """Cluster mode, with an outbox: list the stored records' keys in it (one call in
        its slot), in the caller's order; a refusal raises ``WriteError`` with every one
        of them stored (they are, and their write reported nothing yet)."""
        todo, self.unlisted = sorted(self.unlisted), []
        call = self.writer.outbox_call([(self.prepared[j], str(self.ids[j])) for j in todo])

        def parse(replies: list[Any]) -> list[M]:
            reply = replies[0]
            if isinstance(reply, Exception) and self.deferred is None:
                stored = [str(self.ids[j]) for j in todo]
                self.deferred = WriteError(
                    f"{len(todo)} records were stored but not listed in the dual writer's "
                    f"outbox ({reply})", stored=stored, failed={})
                self.deferred.__cause__ = reply
            return self.then()

        return Plan((call,), parse)

    def remote_plan(self) -> Plan[list[M]]:
        """Cluster mode: the entries of the stored records in other slots, with their final
        ids (see ``docs/cluster.md``); then the result of the write."""
        todo, self.remote = sorted(self.remote), []  # the caller's order
        size = self.writer.batch_size
        owners: list[list[int]] = []

        def calls() -> Iterator[Call]:
            for start in range(0, len(todo), size):
                chunk = todo[start:start + size]
                ids = self.ids
                for call in self.writer.remote_calls(
                        [(self.prepared[j], str(ids[j])) for j in chunk]):
                    owners.append(chunk)
                    yield call

        def parse(replies: list[Any]) -> list[M]:
            missed: dict[int, str] = {}
            cause: Exception | None = None
            for chunk, reply in zip(owners, replies, strict=True):
                if isinstance(reply, Exception):
                    why, cause = str(reply), reply
                else:
                    res = parse_batch(reply)
                    if res.written:
                        continue
                    why = f"WRONGTYPE: key {res.bad_keys[0]!r} holds another type"
                for j in chunk:
                    missed.setdefault(j, why)
            if missed and self.deferred is None:
                n, reason = min(missed.items())
                self.deferred = WriteError(
                    f"{len(missed)} of {self.total} records were stored without some "
                    f"of their entries in other slots (record {n}: {reason}); "
                    "agentmem.integrity.repair() adds them",
                    stored=[i for i in self.ids if i is not None], failed=missed,
                )
                self.deferred.__cause__ = cause
            return self.then()

        return Plan(calls(), parse, bulk=len(todo) >= BULK)

    def finish(self) -> list[M]:
        if self.failed:
            stored = [i for i in self.ids if i is not None]
            if self.error is not None and not stored:
                raise self.error  # nothing was stored: the server's error as it is
            cls = DuplicateId if all(r.startswith("EXISTS") for r in self.failed.values()) \
                else WriteError
            n, reason = min(self.failed.items())
            raise cls(
                f"{len(self.failed)} of {self.total} records refused (record {n}: "
                f"{reason}); the others were stored",
                stored=stored, failed=self.failed,
            ) from self.error
        if self.records is None:
            return []
        id_name, stamp_name = self.id_name, self.stamp_name
        out: list[M] = []
        for copy, prep, new, stamp in zip(self.out, self.prepared, self.ids, self.stamps,
                                          strict=True):
            assert copy is not None
            values = copy.__dict__
            if prep.mode == "g" and values[id_name] != new:
                values[id_name] = new  # renumbered on the server
            if stamp_name is not None and stamp is not None:
                values[stamp_name] = stamp
                copy.__pydantic_fields_set__.add(stamp_name)
            out.append(copy)
        return out
