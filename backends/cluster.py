"""Redis Cluster: the same repositories and plans, run slot by slot on a cluster.

:func:`connect_cluster` opens a :class:`ClusterMemory` whose repositories are the
same :class:`~agentmem.repository.actions.ActionRepository` /
:class:`~agentmem.repository.base.Repository` classes as on one server, over a
:class:`ClusterRunner`. Key layouts 2 and 3 only: the agent id and the simulation id are
hash tags, so each agent's keys share a slot, and each simulation's. See ``docs/cluster.md``
for the write split, the crash window and failover.
"""

from __future__ import annotations

import contextlib
import threading
import time
import weakref
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import redis
from pydantic import BaseModel
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import (
    AskError,
    ClusterDownError,
    MasterDownError,
    MovedError,
    NoScriptError,
    RedisClusterException,
    TryAgainError,
)

from agentmem.backends.clusterroute import mapped, name_of, route_of, wire
from agentmem.backends.clusterurl import _node_of, cluster_client
from agentmem.backends.failures import CLUSTER_LINK_ERRORS, LINK_ERRORS, connection_failure
from agentmem.backends.options import check_settings, options_of
from agentmem.backends.replies import script_error
from agentmem.backends.restarts import RestartGuard
from agentmem.backends.spin import resolve_spin, wait_readable
from agentmem.backends.wakes import ReplyMarks
from agentmem.backends.wire import packed_chunks
from agentmem.config import RedisSettings
from agentmem.errors import BackendError, ConfigError, Refused, Unavailable
from agentmem.lua.cluster import CLAIM_LAYOUT_CLUSTER
from agentmem.lua.scripts import Script
from agentmem.model.records import IMAction
from agentmem.model.schema import RecordSpec
from agentmem.plans.batch import late_scripts
from agentmem.plans.keyspace import LAYOUT_KEY, check_recorded_version, layout
from agentmem.plans.plan import Call, FollowUp, Plan, run_through
from agentmem.repository.actions import ActionRepository
from agentmem.repository.base import Repository
from agentmem.repository.batch import Batch

T = TypeVar("T")
MT = TypeVar("MT", bound=BaseModel)

ATTEMPTS = 5
"""Rounds a plan's calls may be redirected (MOVED, ASK, TRYAGAIN, a node being
promoted) before the run gives up with :class:`~agentmem.errors.Unavailable`."""


def _unavailable(what: str, exc: BaseException) -> BackendError:
    return connection_failure(f"Redis Cluster ({what})", exc)


class _Unsent(Exception):
    """A node could not be reached before anything was written to it."""


class ClusterRunner:
    """Runs plans on a Redis Cluster (a :class:`redis.cluster.RedisCluster` client).

    Each call goes to the master of its slot (:func:`route_of`); the calls of a plan are
    grouped by node and sent in parallel, one pipelined connection per node (in a thread
    each), and the replies put back in order: still one round trip per plan. A reply
    ``MOVED`` refreshes the slot map and resends that call, ``ASK`` resends it with
    ``ASKING`` to the node named, ``TRYAGAIN`` / ``CLUSTERDOWN`` wait and resend (none of
    those calls ran); ``NOSCRIPT`` loads the script on that node and resends (a script
    new to a node whose call another call on that node follows is loaded first, so that
    the resent call is never late). A node that cannot be connected to gets the slot map
    refreshed and its calls resent (nothing was sent); a connection lost while replies
    are outstanding raises :class:`~agentmem.errors.Unavailable` (those calls may have
    run), as on one server.
    """

    cluster = True
    """Tells the repositories to split writes and simulation-level reads per slot."""

    def __init__(self, client: RedisCluster, layout_version: int | None = 2, *,
                 attempts: int = ATTEMPTS, spin_us: int | None = None) -> None:
        kwargs = client.nodes_manager.connection_kwargs
        if kwargs.get("decode_responses"):
            raise ConfigError("the cluster client decodes responses; agentmem needs bytes "
                              "(embeddings are raw bytes). Create it with decode_responses=False")
        self.client = client
        self.layout_version = layout_version
        self.attempts = attempts
        self._stale = False
        self._lock = threading.Lock()
        self._threads: ThreadPoolExecutor | None = None
        resolve_spin(spin_us, host=None, unix=False)  # a malformed value fails now
        self._spin_us = spin_us
        self._scripts: dict[str, set[str]] = {}
        """The scripts loaded on each node (by name), as far as this runner knows
        (forgotten when a connection to it connects: :meth:`_watch`)."""
        self._watched: weakref.WeakSet[Any] = weakref.WeakSet()
        self._spins: dict[str, float] = {}
        """The longest poll for a reply per node name, in seconds (agentmem.backends.spin)."""
        self.guard = RestartGuard(cluster=True)
        """Notices a master that restarted empty (armed by a dual writer)."""

    # -- the slot map ---------------------------------------------------------

    def refresh(self) -> None:
        """Reload the slot map from a node that answers (after MOVED or a failover)."""
        with self._lock:
            try:
                self.client.nodes_manager.initialize()
            except CLUSTER_LINK_ERRORS as exc:
                raise _unavailable("has no reachable node", exc) from exc
            self._stale = False

    def _node(self, slot: int) -> ClusterNode:
        try:
            return self.client.nodes_manager.get_node_from_slot(slot)
        except (RedisClusterException, IndexError) as exc:
            self._stale = True
            raise _unavailable(f"serves no node for slot {slot}", exc) from exc

    def primaries(self) -> list[ClusterNode]:
        """The masters of the current slot map."""
        if self._stale:
            self.refresh()
        client: Any = self.client
        nodes: list[ClusterNode] = client.get_primaries()
        return nodes

    def node_client(self, node: ClusterNode) -> redis.Redis:
        conn: redis.Redis = self.client.get_redis_connection(node)
        return conn

    def master_of(self, key: str) -> str:
        """The name (``host:port``) of the master serving ``key``'s slot."""
        keyslot: Any = self.client.keyslot
        return str(self._node(keyslot(key)).name)

    def check_layout(self) -> None:
        """Compare the cluster's layout version with ours (once; :class:`LayoutError`)."""
        version = self.layout_version
        if version is None:
            return
        try:
            empty = all(int(self.node_client(n).dbsize()) == 0 for n in self.primaries())
        except LINK_ERRORS as exc:
            self._stale = True
            raise _unavailable("is unreachable", exc) from exc
        call = Call(("EVAL", CLAIM_LAYOUT_CLUSTER.source, 1, LAYOUT_KEY, str(version),
                     "1" if empty else "0"))
        raw = self._run_once(Plan((call,), lambda r: r[0]))
        if isinstance(raw, Exception):
            raise raw
        check_recorded_version(raw, version)
        self.layout_version = None

    def run(self, plan: Plan[T]) -> T:
        if self.layout_version is not None:
            self.check_layout()
        return run_through(self._run_once, plan)

    def _run_once(self, plan: Plan[T]) -> T | FollowUp:
        keyslot: Any = self.client.keyslot
        calls: list[Call] = []
        wires: list[tuple[Any, ...]] = []
        slots: list[int] = []
        for call in plan.calls:
            route = route_of(call)
            calls.append(call)
            wires.append(wire(call, route))
            slots.append(keyslot(route))
        replies: list[Any] = [None] * len(calls)
        todo = list(range(len(calls)))
        asking: dict[int, ClusterNode] = {}
        last: BaseException | None = None
        for attempt in range(self.attempts):
            if attempt:
                time.sleep(min(0.05 * 2 ** attempt, 0.5))
            if self._stale:
                self.refresh()
            groups: dict[str, tuple[ClusterNode, list[int]]] = {}
            for i in todo:
                node = asking.get(i) or self._node(slots[i])
                groups.setdefault(node.name, (node, []))[1].append(i)
            for node, idx in groups.values():  # no call may run late after a NOSCRIPT
                pool = self.node_client(node).connection_pool  # (re)connected now, where
                with contextlib.suppress(*LINK_ERRORS):
                    if not attempt and len(idx) > 1:  # a call follows another (not on a
                        pool.release(self._watch(pool.get_connection()))  # failed node)
                known = self._scripts.setdefault(node.name, set())
                here = [calls[i] for i in idx]
                # a refused load counts as done only where every call runs one script:
                # missing, it refuses them all; else a call after it could run alone
                alone = len({c.script.sha if c.script else None for c in here}) == 1
                for late in late_scripts(here, known).values():
                    self._load(node, late, refused_ok=alone)
            if plan.guarded:  # refused whole before any node's part is sent
                self._admit_all(group[0] for group in groups.values())
            retry: list[int] = []
            for node, idx, got in self._send_all(groups, wires, asking, plan.guarded):
                if isinstance(got, _Unsent):
                    self._stale = True
                    last = got.__cause__ or got
                    retry += idx
                    continue
                for i, r in zip(idx, got, strict=True):
                    asking.pop(i, None)
                    if isinstance(r, NoScriptError):
                        script = calls[i].script
                        if script is None:
                            raise BackendError(f"Redis refused a command: {r}")
                        self._load(node, script)
                        retry.append(i)
                    elif isinstance(r, MovedError):
                        self._stale = True
                        retry.append(i)
                        last = r
                    elif isinstance(r, AskError):
                        asking[i] = self._ask_node(r)
                        retry.append(i)
                        last = r
                    elif isinstance(r, (TryAgainError, ClusterDownError, MasterDownError)):
                        self._stale = True
                        retry.append(i)
                        last = r
                    else:
                        replies[i] = r
            if not retry:
                break
            todo = sorted(set(retry))
        else:
            raise Unavailable(f"Redis Cluster: {len(todo)} call(s) could not be placed after "
                              f"{self.attempts} attempts (failover or resharding under way?): "
                              f"{last}")
        try:
            return plan.parse(mapped(replies))
        except FollowUp as more:
            return more

    def _admit_all(self, nodes: Iterable[ClusterNode]) -> None:
        """The restart guard's say on a connection to each of ``nodes`` (a dual writer's
        write), before any is sent: a master that restarted empty refuses the whole plan,
        not its own part after the others' ran. An unreachable node is left to the send."""
        for node in nodes:
            pool = self.node_client(node).connection_pool
            try:
                conn: Any = pool.get_connection()
            except LINK_ERRORS:
                continue
            try:
                conn.connect()
                self.guard.admit(conn, True, node.name)
            except LINK_ERRORS:
                conn.disconnect()
            finally:
                pool.release(conn)

    def _ask_node(self, err: AskError) -> ClusterNode:
        nm: Any = self.client.nodes_manager
        node: Any = nm.get_node(host=err.host, port=err.port)
        if node is None:
            node = _node_of(err.host, err.port)
            nm.nodes_cache[node.name] = node
        if node.redis_connection is None:
            nm.create_redis_connections([node])
        result: ClusterNode = node
        return result

    def _load(self, node: ClusterNode, script: Script, refused_ok: bool = False) -> None:
        """``SCRIPT LOAD`` on ``node``. A load refused for good (an ACL without ``SCRIPT
        LOAD``) raises :class:`Refused`; with ``refused_ok`` (the load ahead of a first
        call) it counts as loaded instead, as on one server: an administrator may have
        loaded the script, and a ``NOSCRIPT`` reply loads it again, which raises."""
        try:
            self.node_client(node).script_load(script.source)
            self._scripts.setdefault(node.name, set()).add(script.sha)
        except redis.ResponseError as exc:
            err = script_error(exc)
            if refused_ok and isinstance(err, Refused):
                self._scripts.setdefault(node.name, set()).add(script.sha)
                return
            raise err from exc
        except LINK_ERRORS as exc:
            self._stale = True
            raise _unavailable(f"node {node.name} is unreachable", exc) from exc

    def _watch(self, conn: Any) -> Any:
        """A node's connection: when it connects (or connected before it was watched),
        the node's scripts are forgotten (it may have restarted without them; a failover
        puts a node of another name in its slots). Before a plan's loads are decided."""
        if conn not in self._watched:
            self._watched.add(conn)
            conn.register_connect_callback(self._connected)
            self._connected(conn)
        return conn

    def _connected(self, conn: Any) -> None:  # redis-py's connect callback
        self._scripts.pop(f"{conn.host}:{conn.port}", None)

    def _send_all(self, groups: dict[str, tuple[ClusterNode, list[int]]],
                  wires: list[tuple[Any, ...]], asking: dict[int, ClusterNode],
                  guarded: bool = False
                  ) -> list[tuple[ClusterNode, list[int], list[Any] | _Unsent]]:
        jobs = list(groups.values())
        if not jobs:  # a plan without calls (or all answered)
            return []
        if len(jobs) == 1:
            node, idx = jobs[0]
            return [(node, idx, self._send(node, idx, wires, asking, guarded, poll=True))]
        if self._threads is None:
            self._threads = ThreadPoolExecutor(max_workers=8,
                                               thread_name_prefix="agentmem-cluster")
        futures: list[Future[list[Any] | _Unsent]] = [
            self._threads.submit(self._send, node, idx, wires, asking, guarded)
            for node, idx in jobs[1:]]
        first = self._send(jobs[0][0], jobs[0][1], wires, asking, guarded)
        out = [(jobs[0][0], jobs[0][1], first)]
        for (node, idx), fut in zip(jobs[1:], futures, strict=True):
            out.append((node, idx, fut.result()))
        return out

    def _send(self, node: ClusterNode, idx: list[int], wires: list[tuple[Any, ...]],
              asking: dict[int, ClusterNode], guarded: bool = False, *,
              poll: bool = False) -> list[Any] | _Unsent:
        """The calls ``idx`` on one node's connection, pipelined; their replies in order.

        ``poll``: wait for the first reply by polling first (a plan for one node; the
        threads of a plan for several nodes sleep, so that they leave the CPUs to the
        servers)."""
        client: Any = self.node_client(node)
        pool = client.connection_pool
        try:
            conn: Any = pool.get_connection()
        except LINK_ERRORS as exc:
            unsent = _Unsent(str(exc))
            unsent.__cause__ = exc
            return unsent
        replies: list[Any] = []
        self._watch(conn)
        try:
            try:
                conn.connect()
            except LINK_ERRORS as exc:
                conn.disconnect()
                unsent = _Unsent(str(exc))
                unsent.__cause__ = exc
                return unsent
            self.guard.admit(conn, guarded, node.name)  # backends/restarts.py
            calls: list[Call] = []
            for i in idx:
                if i in asking:
                    calls.append(Call(("ASKING",)))
                calls.append(Call(wires[i]))
            for chunk in packed_chunks(conn, calls, []):
                conn.send_packed_command([chunk], check_health=False)
            if poll and idx:
                spin = self._spins.get(node.name)
                if spin is None:
                    spin = self._spins[node.name] = resolve_spin(
                        self._spin_us, host=node.host, unix=False)
                if spin:
                    wait_readable(conn, spin)
            marks = ReplyMarks(conn, calls)
            for i in idx:
                if i in asking:
                    marks.next()
                    with contextlib.suppress(redis.ResponseError):
                        client.parse_response(conn, "ASKING")
                marks.next()
                try:
                    replies.append(client.parse_response(conn, name_of(wires[i])))
                except redis.ResponseError as exc:
                    replies.append(exc)
        except LINK_ERRORS as exc:
            conn.disconnect()
            self._stale = True
            raise _unavailable(f"node {node.name} is unreachable (calls in flight may or may "
                               "not have run)", exc) from exc
        except BaseException:
            conn.disconnect()
            raise
        finally:
            pool.release(conn)
        return replies

    def close(self) -> None:
        if self._threads is not None:
            self._threads.shutdown(wait=False)
            self._threads = None
        self.client.close()


class ClusterMemory:
    """A blocking agentmem store on a Redis Cluster: ``actions``, ``im_actions``,
    ``repository(spec)``, as :class:`~agentmem.backends.redis.Memory`."""

    settle_seconds: float = 5.0
    """Integrity skips the simulation-level entries of actions stored less than this long
    ago: their second write part may still be in flight (see ``docs/cluster.md``)."""

    def __init__(self, runner: ClusterRunner, actions: ActionRepository,
                 im_actions: Repository[IMAction], options: dict[str, Any]) -> None:
        self.runner = runner
        self.actions = actions
        self.im_actions = im_actions
        self._options = options

    def repository(self, spec: RecordSpec[MT]) -> Repository[MT]:
        """A repository for any declared model (its keys must carry hash tags)."""
        return Repository(self.runner, spec, batch_size=self._options["batch_size"],
                          write_columns=self._options["write_columns"])

    def batch(self) -> Batch:
        """Many operations in one round trip, as :meth:`agentmem.Memory.batch`: the calls
        are grouped by node and sent to the nodes in parallel; those of one node keep
        their order (see ``docs/cluster.md``)."""
        return Batch(self.runner, self.actions, self.im_actions, self._options["batch_size"])

    @property
    def client(self) -> RedisCluster:
        return self.runner.client

    def ping(self) -> bool:
        """Every master answers."""
        try:
            return all(bool(self.runner.node_client(n).ping()) for n in self.runner.primaries())
        except LINK_ERRORS as exc:
            self.runner._stale = True
            raise _unavailable("is unreachable", exc) from exc

    def close(self) -> None:
        self.runner.close()

    def __enter__(self) -> ClusterMemory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- integrity ------------------------------------------------------------

    def cluster_integrity(self, report: Any, *, batch: int, agent_ids: Iterable[str] | None,
                          fix: bool) -> None:
        """:func:`agentmem.integrity.check` / ``repair`` on a cluster (called by them):
        fills ``report``. See ``docs/cluster.md`` for what it covers."""
        from agentmem.backends.clusterwalk import ClusterWalk  # it needs this module's types

        ClusterWalk(self, report, batch, agent_ids, fix).run()


def connect_cluster(
    url_or_nodes: str | Sequence[str | tuple[str, int]],
    *,
    client: RedisCluster | None = None,
    settings: RedisSettings | None = None,
    **options: Any,
) -> ClusterMemory:
    """Open a blocking store on a Redis Cluster (or a Valkey cluster).

    ``url_or_nodes``: ``redis+cluster://[user:password@]host:port[,host:port...]`` (also
    ``redis://``, ``rediss+cluster://`` for TLS), or a list of ``"host:port"`` /
    ``(host, port)`` startup nodes; the rest of the cluster is discovered. The other
    options are those of :func:`agentmem.connect` (the fields of
    :class:`~agentmem.RedisSettings`); any other keyword goes to
    :class:`redis.cluster.RedisCluster`. Key layout 2 (the default) or 3 (a
    :class:`~agentmem.errors.ConfigError` otherwise). Reads the slot map now:
    :class:`~agentmem.errors.Unavailable` when no startup node answers. Options left at
    their default are read from the URL's query and ``AGENTMEM_*`` as for ``connect``.
    """
    url_or_nodes, s, options = options_of(url_or_nodes, options, settings,
                                          base={"layout_version": 2})
    if s.layout_version < 2:
        raise ConfigError(
            f"a Redis Cluster needs key layout 2 or 3 (hash tags), got "
            f"layout_version={s.layout_version!r}: in "
            "layout 1 an agent's keys have no hash tag and spread over slots, so one "
            "record's write cannot be atomic (migrate layout-1 data on one server with "
            "`agentmem migrate upgrade`, then move it)")
    opts = check_settings(s)
    options = {**s.pool_options(), **options}
    if client is None:
        client = cluster_client(url_or_nodes, **options)
    elif not isinstance(client, RedisCluster):
        raise ConfigError(f"connect_cluster() needs a redis.cluster.RedisCluster client, got "
                          f"{type(client).__module__}.{type(client).__name__}")
    runner = ClusterRunner(client, s.layout_version, spin_us=s.spin_us)
    actions = ActionRepository(runner, **opts)
    im = Repository(runner, layout(s.layout_version).im_action, batch_size=s.batch_size,
                    write_columns=s.write_columns)
    return ClusterMemory(runner, actions, im, opts)
