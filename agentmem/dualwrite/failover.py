"""Failover for the dual writer: keep writing while Redis is unreachable, lose nothing.

:class:`Failover` holds the state the :class:`~agentmem.dualwrite.DualWriter`
needs when Redis cannot be reached (see ``docs/failover.md``):

- **ids**: an action that cannot reach Redis gets its id here, by the rule the
  write script follows (``{agent_id}-{step}-{type}``, then the first free
  ``.n``), against every id the archive, the writer's buffer and the journal
  hold. With one writer per agent these are the ids Redis knows, so an id
  given here is the one Redis would have given, also for a write whose reply
  was lost with the connection (it may have been stored: the replay finds it).
- **the journal**: the actions are appended to a durable
  :class:`~agentmem.dualwrite.journal.Journal` before the write returns.
- **probing**: at most every ``retry_interval`` seconds, a call that needs Redis
  sends ``PING``; when it answers, the journal is replayed before anything else.
- **replay**: journaled actions are written to Redis under their ids, in
  order, with every index. An id found taken holds either the same action (a
  write that reached Redis before the connection broke, or an earlier replay:
  nothing to do) or, when another writer took it, a different one: the
  journaled action is then stored under a new id and renamed in the archive.
  A record Redis refuses for another reason (a key of the wrong type) cannot be
  stored there; it stays in the archive and is listed in :attr:`Failover.refused`.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agentmem.backends import sqlreads
from agentmem.backends.archiverename import rename_archived
from agentmem.backends.redis import Memory
from agentmem.backends.sql import Archive
from agentmem.config import DEFAULT_RETRY_INTERVAL, DualWriteSettings, read
from agentmem.dualwrite.claims import Claims, by_kind, generated, kind
from agentmem.dualwrite.ids import held, held_in_im, retired_steps
from agentmem.dualwrite.journal import Journal
from agentmem.errors import AgentMemError, ConfigError, InvalidInput, Unavailable, WriteError
from agentmem.model.records import Action, IMAction, same_action
from agentmem.plans.plan import Plan, command, every_reply

__all__ = ["DEFAULT_RETRY_INTERVAL", "Failover", "Replay", "default_journal_path", "same_action"]

log = logging.getLogger("agentmem.dualwrite.failover")

REPLAY_CHUNK = 1000

Key = tuple[str, str]  # (agent_id, action_id): what Redis keeps unique


def same_im(im: IMAction, a: Action) -> bool:
    """Whether intermediate memory's compressed ``im`` is the action ``a``: equal in the
    fields IM keeps, the reward to the 6 significant digits it keeps (no reward, which
    IM written before it kept absent rewards holds as ``0``, is 0 here)."""
    return (im.simulation_id == a.simulation_id and im.step_number == a.step_number
            and im.action_type == a.action_type
            and (im.action_target_id or None) == (a.action_target_id or None)
            and math.isclose(im.reward or 0.0, a.reward or 0.0, rel_tol=1e-5, abs_tol=1e-9))


def default_journal_path(archive: Archive) -> Path:
    """The folder of the default journals of the writers on ``archive``: beside a SQLite
    archive file (``<file>-agentmem-journal``); for any other database,
    ``$XDG_DATA_HOME/agentmem/journal-<hash of the URL>`` (default ``~/.local/share``).
    Each writer journals to its own file in it (:func:`own_journal`)."""
    if archive.engine.dialect.name == "sqlite" and "://" not in archive.location:
        db = Path(archive.location)
        return db.with_name(db.name + "-agentmem-journal")
    home = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"),
                                                           ".local", "share")
    digest = hashlib.sha1(archive.location.encode()).hexdigest()[:16]
    return Path(home) / "agentmem" / f"journal-{digest}"


JOURNAL_SUFFIX = ".journal"


def own_journal(folder: Path, name: str) -> Journal:
    """A writer's own journal in the default ``folder``, holding what the journals of
    writers that stopped left there (adopted: appended to it durably, then removed).

    A journal is another writer's while that writer holds its lock (it has it open:
    Redis was unreachable); an unlocked one was left by a writer that stopped. The
    journal of agentmem before per-writer files (``folder`` itself, a file) is
    adopted too. Adopting is safe at any instant: an action in two journals is
    replayed once (the replay finds it in Redis the second time)."""
    try:
        if folder.is_file():  # the single journal file of earlier versions
            legacy = folder.with_name(folder.name + ".legacy")
            folder.rename(legacy)
            folder.mkdir(mode=0o700, parents=True)
            legacy.rename(folder / ("legacy" + JOURNAL_SUFFIX))
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        others = sorted(p for p in folder.glob("*" + JOURNAL_SUFFIX)
                        if p.name != name + JOURNAL_SUFFIX)
    except OSError as exc:
        raise ConfigError(f"cannot use the journal folder {folder}: {exc}") from exc
    mine = Journal(folder / (name + JOURNAL_SUFFIX))
    for path in others:
        other = Journal(path)
        try:
            other.open()
        except ConfigError:
            continue  # locked: a live writer's
        try:
            left = other.read_appends()
            for batch in left:
                mine.append(batch)  # durable before the other file goes
            if left:
                log.warning("adopted %d journaled appends of a writer that stopped (%s)",
                            len(left), path)
            path.unlink()
        finally:
            other.close()
    return mine


@dataclass
class Replay:
    """What one replay did."""

    actions: list[Action]  # the journaled actions under their final ids, in order
    lines: int  # journal lines replayed
    stored: int = 0  # written to Redis now
    present: int = 0  # found in Redis already
    renamed: dict[tuple[str, str, str], str] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)  # action id -> reason


class Failover:
    """Ids, journal, probing and replay for a writer whose Redis may be down."""

    def __init__(self, memory: Memory, archive: Archive, journal: Journal, *,
                 retry_interval: float = DEFAULT_RETRY_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.memory = memory
        self.archive = archive
        self.journal = journal
        self.retry_interval = read(DualWriteSettings, {"retry_interval": retry_interval},
                                   env={}).retry_interval
        self._clock = clock
        self.down = False  # the last Redis call failed to connect
        self._next_probe = 0.0
        self.reserved: set[Key] = set()  # ids given here and not yet replayed
        # ids Redis holds as far as this writer knows, per agent, while it is down:
        # the agent's archived ids (read once per agent) and the writer's buffer
        self._known: dict[str, set[str]] = {}
        self._buffered: set[Key] = set()
        self.refused: dict[str, str] = {}
        self.pending_renames: list[tuple[str, str, str, str]] = []
        self.own_outbox = ""
        """The writer's own outbox, whose listing holds the copies its lost writes left
        (not claims of other writers' acknowledged actions)."""
        # renames applied to the archive while the journal still holds the guesses (a
        # replay interrupted after them): the next replay reads the journal through them
        self._applied: dict[tuple[int, int], str] = {}  # by (journal line, place in it)
        self._pending_at: dict[tuple[str, str, str], int] = {}
        self._pending_pos: dict[tuple[str, str, str], tuple[int, int]] = {}
        self._where: dict[int, tuple[int, int]] = {}  # this replay's actions: their place
        self.unconfirmed = 0  # journal lines replayed to Redis, not yet known archived
        if len(journal):  # a journal left by an earlier run: replay it before anything else
            journal.open()
            self.reserved = {(a.agent_id, str(a.action_id)) for a in journal.read()}

    # -- state ----------------------------------------------------------------------------

    @property
    def needs_replay(self) -> bool:
        """Redis was down, or the journal holds actions Redis has not seen.

        Checked on every write: a journal this writer has not opened is empty (one
        left by an earlier run is opened when the writer starts), so the file is
        not looked at then."""
        return self.down or (self.journal.is_open and len(self.journal) > self.unconfirmed)

    def mark_down(self, exc: BaseException | None = None,
                  buffered: Iterable[Action] = ()) -> None:
        """Redis could not be reached. ``buffered``: the writer's actions stored in
        Redis and not archived yet (their ids are taken)."""
        self._buffered.update((a.agent_id, str(a.action_id)) for a in buffered)
        if not self.down:
            log.warning("%s; writing to the archive and the replay journal %s",
                        exc or "Redis is unreachable", self.journal.path)
        self.down = True
        self._next_probe = self._clock() + self.retry_interval

    # -- while Redis is down --------------------------------------------------------------

    def _taken(self, agent_id: str) -> set[str]:
        known = self._known.get(agent_id)
        if known is None:
            try:
                known = sqlreads.action_ids(self.archive, agent_id)
            except AgentMemError as exc:  # the archive is unreachable too: the replay renames
                log.warning("the archive cannot tell which ids are taken (%s)", exc)
                return {aid for agent, aid in self._buffered | self.reserved if agent == agent_id}
            known.update(aid for agent, aid in self._buffered | self.reserved if agent == agent_id)
            self._known[agent_id] = known
        return known

    def divert(self, items: Sequence[Action]) -> tuple[list[Action], dict[int, str]]:
        """Give ``items`` ids and a write time, journal them; return them and the refusals.

        Validated exactly as a Redis write validates (``InvalidInput``, nothing
        journaled). An explicit id already known is refused, as Redis refuses it.
        """
        ops = self.memory.actions
        for n, a in enumerate(items):
            try:
                ops.check(a)
            except InvalidInput as exc:
                raise type(exc)(f"record {n}: {exc}") from None
        ops.writer.prepare_all(items)
        new: dict[str, set[str]] = {}  # ids given in this call, per agent
        stamp = int(time.time())
        out: list[Action] = []
        failed: dict[int, str] = {}
        for n, a in enumerate(items):
            taken = self._taken(a.agent_id)
            mine = new.setdefault(a.agent_id, set())
            if a.action_id is not None:
                aid = a.action_id
                if aid in taken or aid in mine:
                    failed[n] = f"EXISTS: action_id {aid!r} is taken"
                    continue
            else:
                base = f"{a.agent_id}-{a.step_number}-{a.action_type}"
                aid, suffix = base, 0
                while aid in taken or aid in mine:
                    suffix += 1
                    aid = f"{base}.{suffix}"
            mine.add(aid)
            out.append(a.model_copy(update={"action_id": aid, "stored_at": stamp}))
        self.journal.append(out)  # durable first; only then are the ids taken
        for agent, ids in new.items():
            self._known.get(agent, set()).update(ids)
            self.reserved.update((agent, aid) for aid in ids)
        return out, failed

    # -- coming back ----------------------------------------------------------------------

    def recover(self, *, force: bool = False,
                prepare: Callable[[], None] | None = None) -> Replay | None:
        """Probe Redis (when due or ``force``), then run ``prepare`` (the writer seeds the
        retired marks: before the replay, whose renames take new ids) and replay the
        journal if it answers.

        Returns the replay, or ``None`` when Redis is still down or nothing was due.
        """
        if not self.needs_replay:
            return None
        if self.down and not force and self._clock() < self._next_probe:
            return None
        try:
            self.memory.ping()
            if prepare is not None:
                prepare()
            done = self._replay()
        except Unavailable as exc:
            self.mark_down(exc)  # still (or again) down: the next probe later
            return None
        self.down = False
        log.warning("Redis is back: replayed %d journaled actions (%d were there already)",
                    len(done.actions), done.present)
        return done

    def _replay(self) -> Replay:
        lines = len(self.journal.open())
        # renames a replay queued and did not apply: this replay settles every journaled
        # action again from Redis as it is now (a copy taken then may be gone)
        # (the copies an earlier replay handed over under them are no claims either)
        for _sim, agent, _old, new in self.pending_renames:
            self._buffered.discard((agent, new))
        self._forget_pending()
        journaled = []
        self._where = {}
        for line, appended in enumerate(self.journal.read_appends()):
            for place, a in enumerate(appended):  # renamed in the archive already: so
                renamed = self._applied.get((line, place))
                x = a if renamed is None else a.model_copy(update={"action_id": renamed})
                self._where[id(x)] = (line, place)
                journaled.append(x)
        done = Replay([], lines)
        claims = Claims(self, journaled)

        def take(x: Action) -> None:
            done.actions.append(x)
            claims.add(x)
        ops = self.memory.actions
        for start in range(0, len(journaled), REPLAY_CHUNK):
            chunk = self._not_stored_renumbered(
                journaled[start:start + REPLAY_CHUNK], done, claims, take)
            try:
                ops.add_many(chunk)
                done.stored += len(chunk)
                done.actions.extend(chunk)
                continue
            except WriteError as exc:
                failed = exc.failed
            done.stored += len(chunk) - len(failed)
            taken = [a for pos, a in enumerate(chunk) if failed.get(pos, "").startswith("EXISTS")]
            found = held(self.memory, ((a.agent_id, str(a.action_id)) for a in taken))
            moved = held_in_im(self.memory, (k for a in taken if (
                k := (a.agent_id, str(a.action_id))) not in found))
            for pos, a in enumerate(chunk):
                reason = failed.get(pos)
                k = (a.agent_id, str(a.action_id))
                if reason is None:
                    take(a)
                elif not reason.startswith("EXISTS"):
                    done.refused[str(a.action_id)] = reason
                    take(a)
                elif ((h := found.get(k)) is not None and not same_action(h, a)) or (
                        h is None and (m := moved.get(k)) is not None and not same_im(m, a)):
                    # another action holds it: the write whose reply was lost may have
                    # reached Redis under another id of the family; else stored anew
                    take(self._adopt(a, done, claims) or self._rename(a, done))
                else:
                    done.present += 1  # stored before (its hash may have expired since,
                    take(a)  # or left STM for intermediate memory)
        self.refused.update(done.refused)
        for aid, reason in done.refused.items():
            log.error("Redis refused journaled action %s (%s); it stays in the archive",
                      aid, reason)
        self.unconfirmed = lines
        self.reserved.clear()
        self._known.clear()  # Redis knows its ids again
        self._buffered.clear()
        return done

    def _not_stored_renumbered(self, chunk: list[Action], done: Replay, claims: Claims,
                               take: Callable[[Action], None]) -> list[Action]:
        """``chunk`` without the actions a write whose reply was lost stored under an id
        the journal could not guess: at or below its agent's retired mark the script
        numbers a generated id ``.r<n>`` (from a counter in Redis), while the journal
        holds the template id, which is free. Those found (:meth:`_adopt`: an identical
        copy under an id of the family nothing else claims) are taken under that id,
        in the archive too; the rest are returned, to be stored."""
        try:  # Redis lost (Unavailable): the replay stops here and is run again
            marks = retired_steps(self.memory, ((a.agent_id, a.simulation_id) for a in chunk))
        except Unavailable:
            raise
        except AgentMemError as exc:  # refused (an ACL): stored as journaled, as before
            log.warning("could not read the retired marks of a replay (%s)", exc)
            return chunk
        suspects = [a for a in chunk if (m := marks.get((a.agent_id, a.simulation_id)))
                    is not None and a.step_number <= m and generated(a)]
        try:  # only where the step holds a .r id of the family (one round trip)
            suspects = self._with_r_ids(suspects)
        except Unavailable:
            raise
        except AgentMemError as exc:
            log.warning("could not look for stored copies of a replay (%s)", exc)
            return chunk
        if not suspects:
            return chunk
        try:  # each (agent, step) looked up once, all in one round trip
            with self.memory.batch() as b:
                asked = {k: b.actions.timeline(k[0], k[1], k[1]) for k in dict.fromkeys(
                    (a.agent_id, a.step_number) for a in suspects)}  # once each, in order
            steps = {k: by_kind(h.result()) for k, h in asked.items()}
        except Unavailable:
            raise
        except AgentMemError as exc:
            log.warning("could not look for stored copies of a replay (%s)", exc)
            return chunk
        adopted: dict[int, Action] = {}
        for a in suspects:
            found = self._adopt(a, done, claims,
                                steps[(a.agent_id, a.step_number)].get(kind(a), ()))
            if found is not None:
                adopted[id(a)] = found
                claims.add(found)  # the next identical action of the chunk leaves it
        out = []
        for a in chunk:
            if id(a) in adopted:
                take(adopted[id(a)])
            else:
                out.append(a)
        return out

    def _with_r_ids(self, actions: list[Action]) -> list[Action]:
        """Those of ``actions`` whose agent's timeline holds, at their step, an id of their
        family numbered after a retired mark (``.r<n>``): the ids of each step only, no
        hash read (after Redis restarted empty, none)."""
        if not actions:
            return []
        lay = self.memory.actions.layout
        pairs = sorted({(a.agent_id, a.step_number) for a in actions})
        replies = self.memory.runner.run(Plan(
            [command("ZRANGE", lay.key("timeline", agent_id=agent), step, step, "BYSCORE")
             for agent, step in pairs], every_reply))
        at = {p: [bytes(i).decode("utf-8", "replace") for i in ids]
              for p, ids in zip(pairs, replies, strict=True)}
        return [a for a in actions if any(
            i.startswith(f"{a.agent_id}-{a.step_number}-{a.action_type}.r")
            for i in at[(a.agent_id, a.step_number)])]

    def _adopt(self, a: Action, done: Replay, claims: Claims,
               here: Sequence[Action] | None = None) -> Action | None:
        """The copy of ``a`` a write whose reply was lost left in Redis under another id
        of its family (``{agent}-{step}-{type}``, ``.n``, ``.r<n>``), or None.

        The writer guessed ``a``'s id without seeing ids other writers of the agent had
        not archived yet (another simulation with the same agent ids), so the script
        may have given the write another id than the journal holds. A copy counts only
        when equal to ``a`` in every field but the id and the write time and held under
        an id nothing else of this writer claims (the archive, the writer's buffer of
        actions Redis acknowledged, this replay, the journal): an identical action the
        agent really took twice keeps its own id (a journaled action claims its guessed
        id only when it equals what is stored there). It is then
        ``a``'s id, renamed so in the archive; nothing is stored again."""
        old = str(a.action_id)
        base = f"{a.agent_id}-{a.step_number}-{a.action_type}"
        try:
            if here is None:
                here = self.memory.actions.timeline(a.agent_id, a.step_number, a.step_number)
            claimed = claims.of(a.agent_id)
        except AgentMemError as exc:  # unknown: stored anew (under a new id), as before
            log.warning("could not look for a stored copy of %s (%s)", old, exc)
            return None
        guessed = claims.guessed(a.agent_id)
        for c in here:
            cid = str(c.action_id)
            if cid in claimed or not (cid == base or cid.startswith(base + ".")):
                continue
            j = guessed.get(cid)
            if j is not None and same_action(c, j):
                continue
            if same_action(c, a.model_copy(update={"action_id": c.action_id})):
                done.present += 1
                self._renamed(done, a, cid)
                log.warning("journaled action %s of agent %s was stored before as %s (its "
                            "reply was lost): kept under that id", old, a.agent_id, cid)
                return c
        return None

    def _rename(self, a: Action, done: Replay) -> Action:
        """Store ``a``, whose id another action holds in Redis, under a new id."""
        old = str(a.action_id)
        try:
            new = self.memory.actions.add(a.model_copy(update={"action_id": None}))
        except WriteError as exc:
            done.refused[old] = str(exc)
            return a
        new_id = str(new.action_id)
        done.stored += 1
        self._renamed(done, a, new_id)
        log.warning("journaled action %s of agent %s found its id taken by another action "
                    "in Redis: stored as %s", old, a.agent_id, new_id)
        return new

    def _renamed(self, done: Replay, a: Action, new_id: str) -> None:
        """The journaled ``a`` is ``new_id`` in Redis: so in the replay, and in the archive
        once :meth:`apply_renames` runs."""
        key = (a.simulation_id, a.agent_id, str(a.action_id))
        done.renamed[key] = new_id
        at = self._pending_at.get(key)
        if at is None:
            self._pending_at[key] = len(self.pending_renames)
            self.pending_renames.append((*key, new_id))
        else:  # settled again (each rename is queued once)
            self.pending_renames[at] = (*key, new_id)
        pos = self._where.get(id(a))
        if pos is not None:
            self._pending_pos[key] = pos

    def apply_renames(self) -> None:
        """Rename in the archive the actions a replay stored under new ids: all in one
        transaction (renames may chain: ``x`` to ``x.1`` while ``x.1`` goes to ``x.2``),
        kept pending until it commits."""
        if self.pending_renames:
            rename_archived(self.archive, self.pending_renames)
            for sim, agent, old, new in self.pending_renames:
                pos = self._pending_pos.get((sim, agent, old))
                if pos is not None:
                    self._applied[pos] = new
            self._forget_pending()

    def _forget_pending(self) -> None:
        self.pending_renames.clear()
        self._pending_at.clear()
        self._pending_pos.clear()

    def confirm(self) -> None:
        """Everything replayed is archived: clear the journal (unless more came)."""
        if self.unconfirmed and len(self.journal) == self.unconfirmed \
                and not self.pending_renames:
            self.journal.clear()
            self.unconfirmed = 0
            self._applied.clear()

