"""Redis and Valkey: URL configuration, connection pool, the blocking runner, connect.

The runners are the only code that differs between clients (the asyncio one is in
:mod:`agentmem.backends.aiorunner`): both send a plan's calls in one round trip (a
pipeline when there are several), load each script ahead of its first call on the same
pipeline, reload scripts the server forgot (``NOSCRIPT`` after a restart) and map
redis-py's errors onto :mod:`agentmem.errors`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any, Generic, TypeVar

import redis
import redis.asyncio
from pydantic import BaseModel

from agentmem.backends.aioreplies import watched_options
from agentmem.backends.aiorunner import AsyncRedisRunner
from agentmem.backends.failures import LINK_ERRORS
from agentmem.backends.inflight import Pending
from agentmem.backends.options import check_settings, options_of
from agentmem.backends.redisurl import parse_url
from agentmem.backends.replies import (
    check_client,
    command_name,
    layout_errors,
    mapped,
    missing_scripts,
    ping_refused,
    script_error,
    unavailable,
)
from agentmem.backends.restarts import RestartGuard
from agentmem.backends.spin import client_spin, wait_readable
from agentmem.backends.wakes import ReplyMarks
from agentmem.backends.wire import KnownScripts, inline_loads, own_replies, packed_chunks
from agentmem.config import RedisSettings
from agentmem.errors import ConfigError, WriteError
from agentmem.lua.scripts import CLAIM_LAYOUT
from agentmem.model.records import IMAction
from agentmem.model.schema import RecordSpec
from agentmem.plans.keyspace import (
    LAYOUT_KEY,
    check_recorded_version,
    layout,
)
from agentmem.plans.plan import Call, FollowUp, Plan, paused_gc, run_through
from agentmem.repository.actions import ActionRepository, AsyncActionRepository
from agentmem.repository.base import AsyncRepository, Repository
from agentmem.repository.batch import AsyncBatch, Batch

T = TypeVar("T")
MT = TypeVar("MT", bound=BaseModel)

DEFAULT_URL = "redis://127.0.0.1:6379/0"


def _with_source(call: Call) -> Call:
    """A script call as ``EVAL`` with the script's text: a call sent ahead runs even when
    the server lacks the script and the caller never reads the ``NOSCRIPT`` reply (a
    process killed after the send); the server hashes the text and runs its cached copy."""
    if call.script is None or call.args[0] != "EVALSHA":
        return call
    return Call(("EVAL", call.script.source, *call.args[2:]), call.script, call.route,
                call.least_reply)


class RedisRunner:
    """Runs plans on a blocking redis-py client.

    The calls of a plan are written to one connection as they are built and
    their replies read afterwards: one round trip, with building and sending
    overlapping the server's work. Scripts the server lacks are loaded and
    the refused calls sent again (a ``NOSCRIPT`` call has not run). Before the
    first reply it polls the socket for up to ``spin`` seconds
    (:mod:`agentmem.backends.spin`; ``None``: on for a local server).
    """

    def __init__(self, client: redis.Redis, layout_version: int | None = None, *,
                 spin_us: int | None = None) -> None:
        check_client(client)
        self.client = client
        self.pending_layout = layout_version
        """The layout the server must record; checked before the first plan, then None."""
        self.spin = client_spin(spin_us, client.connection_pool.connection_kwargs)
        """The longest poll for a reply, in seconds (0: a blocking read)."""
        self._inflight: list[Pending[Any]] = []  # started, replies not read: oldest first
        self._inflight_lock = threading.Lock()
        self.guard = RestartGuard()
        """Notices a server that restarted empty (armed by a dual writer)."""
        self.scripts = KnownScripts()  # the scripts loaded (wire.inline_loads)

    def check_layout(self) -> None:
        """Compare the server's layout version with ours (once; :class:`LayoutError`)."""
        version = self.pending_layout
        if version is None:
            return
        with layout_errors():
            try:
                raw = self.client.eval(CLAIM_LAYOUT.source, 1, LAYOUT_KEY, str(version))
            except redis.exceptions.ReadOnlyError:  # a replica: read what it has
                raw = self.client.get(LAYOUT_KEY)
        check_recorded_version(raw, version)
        self.pending_layout = None

    def run(self, plan: Plan[T]) -> T:
        if self.pending_layout is not None:
            self.check_layout()
        if self._inflight:
            self.settle()
        return run_through(self._run_once, plan)

    def start(self, plan: Plan[T]) -> Pending[T]:
        """Send ``plan``'s calls now and return without reading their replies
        (:mod:`agentmem.backends.inflight`): the server runs them while the caller goes
        on. The calls are built and packed first (a script call as ``EVAL`` with its text,
        so that it runs whether the server has the script or not), then the write in
        flight before it (if any) is read, then these are sent: one at a time, in order. A
        failure to send raises here (:class:`Unavailable`); the outcome of the plan is
        :meth:`Pending.result`'s."""
        if self.pending_layout is not None:
            self.check_layout()
        pool: Any = self.client.connection_pool
        try:
            conn = pool.get_connection()
        except LINK_ERRORS as exc:
            raise unavailable(exc) from exc
        except redis.ResponseError as exc:  # a reconnection's handshake
            raise ping_refused(exc, "the connection's handshake") from exc
        sent: list[Call] = []
        try:
            with paused_gc(plan.bulk):
                chunks = list(packed_chunks(conn, map(_with_source, plan.calls), sent))
            self.settle()
            self._admit(conn, plan.guarded)
            for chunk in chunks:
                conn.send_packed_command([chunk], check_health=False)
        except BaseException as exc:
            conn.disconnect()
            pool.release(conn)
            if isinstance(exc, LINK_ERRORS):
                raise unavailable(exc) from exc
            if isinstance(exc, redis.ResponseError):  # the connection's handshake
                raise ping_refused(exc, "the connection's handshake") from exc
            raise
        pending = Pending(plan, conn, sent, self._replies, self._finish, pool.release,
                          self.spin)
        with self._inflight_lock:
            self._inflight.append(pending)
        return pending

    def settle(self) -> None:
        """Read the replies of the plans in flight (:meth:`start`), oldest first; their
        outcomes stay with their :class:`Pending`."""
        while self._inflight:
            with self._inflight_lock:
                if not self._inflight:
                    return
                first = self._inflight[0]
            try:
                first.wait()
            finally:
                with self._inflight_lock:
                    if first.done and self._inflight and self._inflight[0] is first:
                        del self._inflight[0]

    def _run_once(self, plan: Plan[T]) -> T | FollowUp:
        try:
            sent, replies = self._send(plan.calls, plan.guarded, plan.bulk)
        except LINK_ERRORS as exc:
            raise unavailable(exc) from exc
        except redis.ResponseError as exc:  # replies are kept: the connection's handshake
            raise ping_refused(exc, "the connection's handshake") from exc
        return self._parsed(plan, sent, replies)

    def _finish(self, plan: Plan[T], sent: list[Call], replies: list[Any]) -> T:
        """A started plan's replies read: scripts reloaded, parsed, follow-ups run."""
        out = self._parsed(plan, sent, replies)
        if isinstance(out, FollowUp):
            done: T = run_through(self._run_once, out.plan)
            return done
        return out

    def _parsed(self, plan: Plan[T], sent: list[Call], replies: list[Any]) -> T | FollowUp:
        """``plan``'s result from its replies, calls refused with ``NOSCRIPT`` sent again
        first; a follow-up plan returned, not run."""
        try:
            self._reload_missing(sent, replies, plan.guarded)
        except LINK_ERRORS as exc:
            raise unavailable(exc) from exc
        try:
            return plan.parse(mapped(replies))
        except FollowUp as more:
            return more
        except WriteError as exc:  # a write script found the marker gone: seeded again
            if any(why.startswith("UNSEEDED") for why in exc.failed.values()):
                self.guard.trip()
            raise

    def _reload_missing(self, sent: list[Call], replies: list[Any], guarded: bool) -> None:
        """Calls refused with ``NOSCRIPT`` (they did not run): load their scripts and send
        them again, their replies put in place."""
        missing = missing_scripts(replies)
        if not missing:
            return
        for script in {sent[i].script for i in missing}:
            assert script is not None
            try:
                self.client.script_load(script.source)
            except redis.ResponseError as exc:
                raise script_error(exc) from exc
        _, again = self._send((sent[i] for i in missing), guarded)
        for i, r in zip(missing, again, strict=True):
            replies[i] = r

    def _admit(self, conn: Any, guarded: bool) -> None:
        """A connection taken from the pool: its health checked (a reconnection, if any,
        happens here), then the restart guard's say (:mod:`agentmem.backends.restarts`)."""
        self.scripts.watch(conn)
        conn.check_health()
        self.guard.admit(conn, guarded)

    def _send(self, calls: Iterable[Call], guarded: bool = False, bulk: bool = False
              ) -> tuple[list[Call], list[Any]]:
        pool: Any = self.client.connection_pool
        conn = pool.get_connection()
        sent: list[Call] = []
        injected: dict[int, str] = {}
        try:
            self._admit(conn, guarded)
            generation = self.scripts.generation
            calls = inline_loads(calls, self.scripts.shas, injected, bulk)
            for chunk in packed_chunks(conn, calls, sent):
                conn.send_packed_command([chunk], check_health=False)
            if self.spin and sent:
                wait_readable(conn, self.spin)
            replies = self._replies(conn, sent)
        except BaseException:
            conn.disconnect()
            raise
        finally:
            pool.release(conn)
        ran: set[str] = set()
        out = own_replies(sent, replies, injected, ran)
        self.scripts.record(generation, ran)
        return out

    def _replies(self, conn: Any, sent: list[Call]) -> list[Any]:
        client: Any = self.client
        replies: list[Any] = []
        marks = ReplyMarks(conn, sent)
        for call in sent:
            marks.next()
            try:
                replies.append(client.parse_response(conn, command_name(call)))
            except redis.ResponseError as exc:
                replies.append(exc)
        return replies


R = TypeVar("R", RedisRunner, AsyncRedisRunner)


class _Memory(Generic[R]):
    runner: R

    def __init__(self, runner: R, actions: Any, im_actions: Any, options: dict[str, Any]) -> None:
        self.runner = runner
        self.actions = actions
        self.im_actions = im_actions
        self._options = options
        self._batch_scripts: set[str] = set()
        """The scripts this store's batches sent (see :mod:`agentmem.repository.batch`)."""


class Memory(_Memory[RedisRunner]):
    """A blocking agentmem store on one Redis or Valkey server.

    ``actions`` is the :class:`~agentmem.repository.actions.ActionRepository`;
    ``repository(spec)`` gives one for any declared model.
    """

    actions: ActionRepository
    im_actions: Repository[IMAction]

    def repository(self, spec: RecordSpec[MT]) -> Repository[MT]:
        """A repository for any declared model, on this connection."""
        return Repository(self.runner, spec, batch_size=self._options["batch_size"],
                          write_columns=self._options["write_columns"])

    def batch(self) -> Batch:
        """Many operations of any repositories in one round trip (``docs/queries.md``,
        "Many operations in one round trip"): ``with mem.batch() as b:``."""
        return Batch(self.runner, self.actions, self.im_actions, self._options["batch_size"],
                     loaded=self._batch_scripts)

    @property
    def client(self) -> redis.Redis:
        """The redis-py client, for commands of your own. A write sent ahead
        (:meth:`RedisRunner.start`) is settled first: what the client reads includes it."""
        self.runner.settle()
        client: redis.Redis = self.runner.client
        return client

    def ping(self) -> bool:
        try:
            return bool(self.runner.client.ping())
        except LINK_ERRORS as exc:
            raise unavailable(exc) from exc
        except redis.ResponseError as exc:  # the connection's handshake (AUTH, SELECT)
            raise ping_refused(exc) from exc

    def close(self) -> None:
        self.runner.client.close()

    def __enter__(self) -> Memory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncMemory(_Memory[AsyncRedisRunner]):
    """The asyncio twin of :class:`Memory`, over the same plans."""

    actions: AsyncActionRepository
    im_actions: AsyncRepository[IMAction]

    def repository(self, spec: RecordSpec[MT]) -> AsyncRepository[MT]:
        """A repository for any declared model, on this connection."""
        return AsyncRepository(self.runner, spec, batch_size=self._options["batch_size"],
                          write_columns=self._options["write_columns"])

    def batch(self) -> AsyncBatch:
        """As :meth:`Memory.batch`: ``async with mem.batch() as b:``."""
        return AsyncBatch(self.runner, self.actions, self.im_actions,
                          self._options["batch_size"], loaded=self._batch_scripts)

    @property
    def client(self) -> redis.asyncio.Redis:
        client: redis.asyncio.Redis = self.runner.client
        return client

    async def ping(self) -> bool:
        try:
            return bool(await self.runner.client.ping())
        except LINK_ERRORS as exc:
            raise unavailable(exc) from exc
        except redis.ResponseError as exc:  # the connection's handshake (AUTH, SELECT)
            raise ping_refused(exc) from exc

    async def close(self) -> None:
        await self.runner.client.aclose()

    async def __aenter__(self) -> AsyncMemory:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def connect(
    url: str = DEFAULT_URL,
    *,
    client: redis.Redis | None = None,
    settings: RedisSettings | None = None,
    **options: Any,
) -> Memory:
    """Open a blocking store. ``url`` is a redis-py URL (``redis://``, ``rediss://``,
    ``unix://``, ``valkey://``; ``user:password@`` for ACLs). Nothing is sent until
    the first call.

    ``options`` are the store options of :class:`~agentmem.RedisSettings`, declared
    there once with their types and checks (``docs/configuration.md``):
    ``layout_version`` (1), ``ttl`` (the action hash TTL in seconds, ``None``: no
    expiry), ``relative_index_size``, ``embedding_dim``, ``batch_size`` (records per
    script call of ``add_many``), ``grid_cell`` (the radius-search grid, the same for
    every client of the data), ``spin_us`` (how long a call polls for its reply before
    it sleeps; ``None``: 200 µs for a local server with two or more CPUs, see
    :mod:`agentmem.backends.spin`), the timeouts and ``max_connections``. Any other
    keyword goes to the connection pool.

    The first call compares ``layout_version`` with the version the server records
    in ``agentmem:layout`` (no key: layout 1; a store of another layout records it
    on its first use of an empty database) and raises
    :class:`~agentmem.errors.LayoutError` on a mismatch, before anything is written.

    Options not given are read from the URL's query
    (``redis://h:6379/0?layout=2&spin_us=0``) and the ``AGENTMEM_*`` environment; or
    pass them all as ``settings``. A malformed option raises
    :class:`~agentmem.errors.ConfigError`.
    """
    url, s, pool_options = options_of(url, options, settings)
    opts = check_settings(s)
    pool_options = {**s.pool_options(), **pool_options}
    if client is not None and not isinstance(client, redis.Redis):
        raise ConfigError(f"connect() needs a blocking redis.Redis client, got "
                          f"{type(client).__module__}.{type(client).__name__}; "
                          "use connect_async() for redis.asyncio clients")
    if client is None:
        url, _ = parse_url(url)
        try:
            client = redis.Redis.from_url(url, decode_responses=False, **pool_options)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"bad Redis URL or option: {exc}") from None
    runner = RedisRunner(client, s.layout_version, spin_us=s.spin_us)
    actions = ActionRepository(runner, **opts)
    im = Repository(runner, layout(s.layout_version).im_action, batch_size=s.batch_size,
                    write_columns=s.write_columns)
    return Memory(runner, actions, im, opts)


def connect_async(
    url: str = DEFAULT_URL,
    *,
    client: redis.asyncio.Redis | None = None,
    settings: RedisSettings | None = None,
    **options: Any,
) -> AsyncMemory:
    """Open an asyncio store; the same options as :func:`connect` except ``spin_us``
    (an asyncio client waits for replies in its event loop; a ``spin_us`` of the
    settings is not used)."""
    url, s, pool_options = options_of(url, options, settings)
    opts = check_settings(s)
    pool_options = {**s.pool_options(), **pool_options}
    if client is not None and not isinstance(client, redis.asyncio.Redis):
        raise ConfigError(f"connect_async() needs a redis.asyncio.Redis client, got "
                          f"{type(client).__module__}.{type(client).__name__}")
    if client is None:
        url, _ = parse_url(url)
        try:
            client = redis.asyncio.Redis.from_url(  # every read under the silence watch
                url, decode_responses=False, **watched_options(url, pool_options))
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"bad Redis URL or option: {exc}") from None
    runner = AsyncRedisRunner(client, s.layout_version)
    actions = AsyncActionRepository(runner, **opts)
    im = AsyncRepository(runner, layout(s.layout_version).im_action, batch_size=s.batch_size,
                    write_columns=s.write_columns)
    return AsyncMemory(runner, actions, im, opts)

