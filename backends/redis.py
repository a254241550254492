"""Redis and Valkey: URL configuration, connection pool, blocking and asyncio runners.

The runners are the only code that differs between clients: both send a plan's
calls in one round trip (a pipeline when there are several), reload scripts
the server forgot (``NOSCRIPT`` after a restart) and map redis-py's errors onto
:mod:`agentmem.errors`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qs, urlsplit

import redis
import redis.asyncio
from pydantic import BaseModel
from redis.exceptions import NoScriptError

from agentmem.backends.failures import connection_failure, is_permanent
from agentmem.backends.options import check_settings, options_of
from agentmem.backends.spin import client_spin, wait_readable
from agentmem.backends.wire import packed_chunks
from agentmem.config import RedisSettings
from agentmem.errors import BackendError, ConfigError, Refused
from agentmem.lua.scripts import CLAIM_LAYOUT
from agentmem.model.records import IMAction
from agentmem.model.schema import RecordSpec
from agentmem.plans.keyspace import (
    LAYOUT_KEY,
    check_recorded_version,
    layout,
)
from agentmem.plans.plan import Call, FollowUp, Plan, run_through
from agentmem.repository.actions import ActionRepository, AsyncActionRepository
from agentmem.repository.base import AsyncRepository, Repository
from agentmem.repository.batch import AsyncBatch, Batch

T = TypeVar("T")
MT = TypeVar("MT", bound=BaseModel)

SCHEMES = ("redis", "rediss", "unix", "valkey", "valkeys")
DEFAULT_URL = "redis://127.0.0.1:6379/0"


def parse_url(url: str) -> tuple[str, dict[str, Any]]:
    """Check a redis-py URL; return it normalised (``valkey://`` -> ``redis://``)."""
    if not isinstance(url, str) or "://" not in url:
        raise ConfigError(f"not a Redis URL: {url!r} (expected redis://host:port/db)")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"malformed Redis URL {url!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ConfigError(f"unsupported URL scheme {parts.scheme!r}; use one of {SCHEMES}")
    if scheme in ("valkey", "valkeys"):
        plain = "redis://" if scheme == "valkey" else "rediss://"
        url = url.replace(parts.scheme + "://", plain, 1)
    if scheme == "unix":
        if not parts.path:
            raise ConfigError(f"unix URL {url!r} has no socket path")
    else:
        if not parts.hostname:
            raise ConfigError(f"Redis URL {url!r} has no host")
        if port is not None and not 0 < port < 65536:
            raise ConfigError(f"Redis URL {url!r} has a bad port")
        db = parts.path.lstrip("/")
        if db and not db.isdigit():
            raise ConfigError(f"Redis URL {url!r}: database must be a number, got {db!r}")
    query = parse_qs(parts.query)
    if query.get("decode_responses", ["false"])[0].lower() in ("1", "true", "yes"):
        raise ConfigError("decode_responses must be off: embeddings are raw bytes")
    return url, {}


def _check_client(client: Any) -> None:
    kwargs = client.connection_pool.connection_kwargs
    if kwargs.get("decode_responses"):
        raise ConfigError(
            "the client decodes responses; agentmem needs bytes (embeddings are raw "
            "bytes). Create it with decode_responses=False"
        )


def _unavailable(exc: Exception) -> BackendError:
    return connection_failure("Redis", exc)


def _ping_refused(exc: redis.ResponseError) -> BackendError | ConfigError:
    """An error reply to ``PING`` or to the handshake before it: a database the URL
    names that the server does not have is a :class:`ConfigError` (a bad URL)."""
    if is_permanent(exc):
        return Refused(f"Redis refused this client ({type(exc).__name__}): {exc}")
    if "DB index" in str(exc) or "invalid DB" in str(exc).lower():
        return ConfigError(f"the Redis URL names a database the server does not have: "
                           f"{exc}")
    return BackendError(f"Redis answered PING with an error: {exc}")


def _missing_scripts(replies: Sequence[Any]) -> list[int]:
    return [i for i, r in enumerate(replies) if isinstance(r, NoScriptError)]


def _mapped(replies: list[Any]) -> list[Any]:
    """Replies with redis-py errors turned into agentmem errors (not raised)."""
    out = []
    for r in replies:
        if isinstance(r, (redis.ConnectionError, redis.TimeoutError)):
            raise _unavailable(r)
        if isinstance(r, Exception):
            err = (Refused(f"Redis refused a command ({type(r).__name__}): {r}")
                   if is_permanent(r) else BackendError(f"Redis refused a command: {r}"))
            err.__cause__ = r
            r = err
        out.append(r)
    return out


def _script_error(exc: redis.RedisError) -> BackendError:
    return BackendError(f"Redis refused to load a script: {exc}")


@contextmanager
def _layout_errors() -> Iterator[None]:
    """The layout check's redis-py errors as agentmem errors (blocking and asyncio)."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise _unavailable(exc) from exc
    except redis.ResponseError as exc:
        if is_permanent(exc):
            raise Refused(f"Redis refused the layout check ({type(exc).__name__}): "
                          f"{exc}") from exc
        raise BackendError(f"Redis refused the layout check: {exc}") from exc


"""The layout check of a store's first plan: the version the server records. No key
means layout 1 (which leaves the specification's key space as it is); another
version is recorded by its first use of an empty database."""


def _command_name(call: Call) -> str:
    name = call.args[0]
    return name.decode() if isinstance(name, bytes) else str(name)


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
        _check_client(client)
        self.client = client
        self.pending_layout = layout_version
        """The layout the server must record; checked before the first plan, then None."""
        self.spin = client_spin(spin_us, client.connection_pool.connection_kwargs)
        """The longest poll for a reply, in seconds (0: a blocking read)."""

    def check_layout(self) -> None:
        """Compare the server's layout version with ours (once; :class:`LayoutError`)."""
        version = self.pending_layout
        if version is None:
            return
        with _layout_errors():
            try:
                raw = self.client.eval(CLAIM_LAYOUT.source, 1, LAYOUT_KEY, str(version))
            except redis.exceptions.ReadOnlyError:  # a replica: read what it has
                raw = self.client.get(LAYOUT_KEY)
        check_recorded_version(raw, version)
        self.pending_layout = None

    def run(self, plan: Plan[T]) -> T:
        if self.pending_layout is not None:
            self.check_layout()
        return run_through(self._run_once, plan)

    def _run_once(self, plan: Plan[T]) -> T | FollowUp:
        try:
            sent, replies = self._send(plan.calls)
            missing = _missing_scripts(replies)
            if missing:
                for script in {sent[i].script for i in missing}:
                    assert script is not None
                    try:
                        self.client.script_load(script.source)
                    except redis.ResponseError as exc:
                        raise _script_error(exc) from exc
                _, again = self._send(sent[i] for i in missing)
                for i, r in zip(missing, again, strict=True):
                    replies[i] = r
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise _unavailable(exc) from exc
        try:
            return plan.parse(_mapped(replies))
        except FollowUp as more:
            return more

    def _send(self, calls: Iterable[Call]) -> tuple[list[Call], list[Any]]:
        client: Any = self.client
        pool = client.connection_pool
        conn = pool.get_connection()
        sent: list[Call] = []
        replies: list[Any] = []
        try:
            for n, chunk in enumerate(packed_chunks(conn, calls, sent)):
                conn.send_packed_command([chunk], check_health=n == 0)
            if self.spin and sent:
                wait_readable(conn, self.spin)
            for call in sent:
                try:
                    replies.append(client.parse_response(conn, _command_name(call)))
                except redis.ResponseError as exc:
                    replies.append(exc)
        except BaseException:
            conn.disconnect()
            raise
        finally:
            pool.release(conn)
        return sent, replies


class AsyncRedisRunner:
    """Runs plans on an asyncio redis-py client; the same protocol as :class:`RedisRunner`."""

    def __init__(self, client: redis.asyncio.Redis, layout_version: int | None = None) -> None:
        _check_client(client)
        self.client = client
        self.pending_layout = layout_version

    async def check_layout(self) -> None:
        """Compare the server's layout version with ours (once; :class:`LayoutError`)."""
        version = self.pending_layout
        if version is None:
            return
        with _layout_errors():
            try:
                raw = await self.client.eval(CLAIM_LAYOUT.source, 1, LAYOUT_KEY, str(version))
            except redis.exceptions.ReadOnlyError:  # a replica: read what it has
                raw = await self.client.get(LAYOUT_KEY)
        check_recorded_version(raw, version)
        self.pending_layout = None

    async def run(self, plan: Plan[T]) -> T:
        if self.pending_layout is not None:
            await self.check_layout()
        # No garbage-collector pause here: it is process-wide, and other tasks of
        # the event loop run while this plan awaits its replies.
        while True:
            result = await self._run_once(plan)
            if not isinstance(result, FollowUp):
                return result
            plan = result.plan

    async def _run_once(self, plan: Plan[T]) -> T | FollowUp:
        try:
            sent, replies = await self._send(plan.calls)
            missing = _missing_scripts(replies)
            if missing:
                for script in {sent[i].script for i in missing}:
                    assert script is not None
                    try:
                        await self.client.script_load(script.source)
                    except redis.ResponseError as exc:
                        raise _script_error(exc) from exc
                _, again = await self._send(sent[i] for i in missing)
                for i, r in zip(missing, again, strict=True):
                    replies[i] = r
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise _unavailable(exc) from exc
        try:
            return plan.parse(_mapped(replies))
        except FollowUp as more:
            return more

    async def _send(self, calls: Iterable[Call]) -> tuple[list[Call], list[Any]]:
        client: Any = self.client
        pool = client.connection_pool
        conn = await pool.get_connection()
        sent: list[Call] = []
        replies: list[Any] = []
        try:
            for n, chunk in enumerate(packed_chunks(conn, calls, sent)):
                await conn.send_packed_command([chunk], check_health=n == 0)
            for call in sent:
                try:
                    replies.append(await client.parse_response(conn, _command_name(call)))
                except redis.ResponseError as exc:
                    replies.append(exc)
        except BaseException:
            await conn.disconnect()
            raise
        finally:
            await pool.release(conn)
        return sent, replies


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
        return Repository(self.runner, spec, batch_size=self._options["batch_size"])

    def batch(self) -> Batch:
        """Many operations of any repositories in one round trip (``docs/queries.md``,
        "Many operations in one round trip"): ``with mem.batch() as b:``."""
        return Batch(self.runner, self.actions, self.im_actions, self._options["batch_size"],
                     loaded=self._batch_scripts)

    @property
    def client(self) -> redis.Redis:
        client: redis.Redis = self.runner.client
        return client

    def ping(self) -> bool:
        try:
            return bool(self.runner.client.ping())
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise _unavailable(exc) from exc
        except redis.ResponseError as exc:  # the connection's handshake (AUTH, SELECT)
            raise _ping_refused(exc) from exc

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
        return AsyncRepository(self.runner, spec, batch_size=self._options["batch_size"])

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
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise _unavailable(exc) from exc
        except redis.ResponseError as exc:  # the connection's handshake (AUTH, SELECT)
            raise _ping_refused(exc) from exc

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
    im = Repository(runner, layout(s.layout_version).im_action, batch_size=s.batch_size)
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
            client = redis.asyncio.Redis.from_url(url, decode_responses=False, **pool_options)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"bad Redis URL or option: {exc}") from None
    runner = AsyncRedisRunner(client, s.layout_version)
    actions = AsyncActionRepository(runner, **opts)
    im = AsyncRepository(runner, layout(s.layout_version).im_action, batch_size=s.batch_size)
    return AsyncMemory(runner, actions, im, opts)

