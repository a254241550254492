"""Redis Cluster: the same repositories and plans, run slot by slot on a cluster.

:func:`connect_cluster` opens a :class:`ClusterMemory` whose repositories are the
same :class:`~agentmem.repository.actions.ActionRepository` /
:class:`~agentmem.repository.base.Repository` classes as on one server, over a
:class:`ClusterRunner`. Key layout 2 only: the agent id and the simulation id are hash
tags, so each agent's keys share a slot, and each simulation's. See ``docs/cluster.md``
for the write split, the crash window and failover.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import unquote

import redis
from agentmem.backends.options import check_settings, options_of
from agentmem.backends.redis import pack_args
from agentmem.backends.spin import resolve_spin, wait_readable
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

from agentmem.config import RedisSettings
from agentmem.errors import BackendError, ConfigError, Unavailable
from agentmem.lua.integrity import AGENT_INDICES
from agentmem.lua.scripts import Script
from agentmem.model.records import IMAction
from agentmem.model.schema import RecordSpec
from agentmem.plans.keyspace import (
    DEFAULT_ACTION_TTL,
    DEFAULT_GRID_CELL,
    DEFAULT_RELATIVE_INDEX_SIZE,
    LAYOUT_KEY,
    check_recorded_version,
    layout,
)
from agentmem.plans.plan import Call, FollowUp, Plan, run_through, script_call
from agentmem.repository.actions import ActionRepository, _sim_agents
from agentmem.repository.base import Repository

T = TypeVar("T")
MT = TypeVar("MT", bound=BaseModel)

SCHEMES = ("redis+cluster", "rediss+cluster", "valkey+cluster", "valkeys+cluster")
"""URL schemes that select the cluster backend (``--redis-url``, :func:`is_cluster_url`)."""

ATTEMPTS = 5
"""Rounds a plan's calls may be redirected (MOVED, ASK, TRYAGAIN, a node being
promoted) before the run gives up with :class:`~agentmem.errors.Unavailable`."""

_CLAIM_LAYOUT = """
local v = redis.call('GET', KEYS[1])
if v then return v end
if ARGV[2] == '0' then return false end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
"""
"""The layout check on a cluster: the recorded version, claimed when every master is empty."""


def is_cluster_url(url: str) -> bool:
    """Whether ``url`` names a cluster (``redis+cluster://host:port``, see :data:`SCHEMES`)."""
    return url.split("://", 1)[0].lower() in SCHEMES


def parse_nodes(url_or_nodes: str | Sequence[str | tuple[str, int]]
                ) -> tuple[list[tuple[str, int]], dict[str, Any]]:
    """Startup nodes and connection options of a cluster URL
    (``redis+cluster://[user:password@]host:port[,host:port...]``, also ``redis://``,
    ``rediss+cluster://`` for TLS) or of a list of ``"host:port"`` / ``(host, port)``."""
    options: dict[str, Any] = {}
    if isinstance(url_or_nodes, str):
        url = url_or_nodes
        if "://" not in url:
            raise ConfigError(f"not a Redis Cluster URL: {url!r} "
                              "(expected redis+cluster://host:port)")
        scheme, rest = url.split("://", 1)
        scheme = scheme.lower().removesuffix("+cluster")
        if scheme not in ("redis", "rediss", "valkey", "valkeys"):
            raise ConfigError(f"unsupported cluster URL scheme {scheme!r}; use one of {SCHEMES}")
        if scheme in ("rediss", "valkeys"):
            options["ssl"] = True
        netloc, _, path = rest.partition("/")
        path = path.split("?", 1)[0]
        if path not in ("", "0"):
            raise ConfigError(f"cluster URL {url!r}: a Redis Cluster has database 0 only")
        if "@" in netloc:
            auth, _, netloc = netloc.rpartition("@")
            user, colon, password = auth.partition(":")
            if colon:
                options["password"] = unquote(password)
                if user:
                    options["username"] = unquote(user)
            else:
                options["password"] = unquote(user)
        entries: list[str | tuple[str, int]] = [n for n in netloc.split(",") if n]
    else:
        entries = list(url_or_nodes)
    nodes = []
    for entry in entries:
        if isinstance(entry, tuple):
            host, port = entry
        else:
            host, _, text = entry.rpartition(":")
            if not host or not text.isdigit():
                raise ConfigError(f"bad cluster node {entry!r} (expected host:port)")
            port = int(text)
        if not 0 < int(port) < 65536:
            raise ConfigError(f"bad cluster node port {port!r}")
        nodes.append((str(host), int(port)))
    if not nodes:
        raise ConfigError("a Redis Cluster needs at least one startup node (host:port)")
    return nodes, options


def _unavailable(what: str, exc: BaseException) -> Unavailable:
    return Unavailable(f"Redis Cluster {what}: {exc}")


def _name(args: Sequence[Any]) -> str:
    name = args[0]
    return name.decode() if isinstance(name, bytes) else str(name)


def route_of(call: Call) -> str:
    """The key whose slot a call runs on: ``call.route``, else the command's first key
    (a script's ``KEYS[1]``, or its first argument when it declares none)."""
    if call.route is not None:
        return call.route
    args = call.args
    if len(args) < 2:
        raise ConfigError(f"cannot route {_name(args)} on a Redis Cluster: it names no key")
    if _name(args).upper() in ("EVALSHA", "EVAL"):
        if len(args) < 4:
            raise ConfigError("cannot route a script without arguments on a Redis Cluster")
        return str(args[3])
    first = args[1]
    return first.decode() if isinstance(first, bytes) else str(first)


def _wire(call: Call, route: str) -> tuple[Any, ...]:
    """The command sent: a script that declares no key gets its routing key as ``KEYS[1]``
    (the scripts read only ``ARGV``), so the node checks the slot."""
    args = call.args
    if _name(args).upper() in ("EVALSHA", "EVAL") and int(args[2]) == 0:
        return (args[0], args[1], 1, route, *args[3:])
    return args


class _Unsent(Exception):
    """A node could not be reached before anything was written to it."""


class ClusterRunner:
    """Runs plans on a Redis Cluster (a :class:`redis.cluster.RedisCluster` client).

    Each call goes to the master of its slot (:func:`route_of`); the calls of a plan are
    grouped by node and sent in parallel, one pipelined connection per node (in a thread
    each), and the replies put back in order: still one round trip per plan. A reply
    ``MOVED`` refreshes the slot map and resends that call, ``ASK`` resends it with
    ``ASKING`` to the node named, ``TRYAGAIN`` / ``CLUSTERDOWN`` wait and resend (none of
    those calls ran); ``NOSCRIPT`` loads the script on that node and resends. A node that
    cannot be connected to gets the slot map refreshed and its calls resent (nothing was
    sent); a connection lost while replies are outstanding raises
    :class:`~agentmem.errors.Unavailable` (those calls may have run), as on one server.
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
        self._spins: dict[str, float] = {}
        """The longest poll for a reply per node name, in seconds (agentmem.backends.spin)."""

    # -- the slot map ---------------------------------------------------------

    def refresh(self) -> None:
        """Reload the slot map from a node that answers (after MOVED or a failover)."""
        with self._lock:
            try:
                self.client.nodes_manager.initialize()
            except (RedisClusterException, redis.ConnectionError, redis.TimeoutError) as exc:
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

    # -- running --------------------------------------------------------------

    def check_layout(self) -> None:
        """Compare the cluster's layout version with ours (once; :class:`LayoutError`)."""
        version = self.layout_version
        if version is None:
            return
        try:
            empty = all(int(self.node_client(n).dbsize()) == 0 for n in self.primaries())
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            self._stale = True
            raise _unavailable("is unreachable", exc) from exc
        call = Call(("EVAL", _CLAIM_LAYOUT, 1, LAYOUT_KEY, str(version), "1" if empty else "0"))
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
            wires.append(_wire(call, route))
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
            retry: list[int] = []
            for node, idx, got in self._send_all(groups, wires, asking):
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
            return plan.parse(_mapped(replies))
        except FollowUp as more:
            return more

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

    def _load(self, node: ClusterNode, script: Script) -> None:
        try:
            self.node_client(node).script_load(script.source)
        except redis.ResponseError as exc:
            raise BackendError(f"Redis refused to load a script: {exc}") from exc
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            self._stale = True
            raise _unavailable(f"node {node.name} is unreachable", exc) from exc

    def _send_all(self, groups: dict[str, tuple[ClusterNode, list[int]]],
                  wires: list[tuple[Any, ...]], asking: dict[int, ClusterNode]
                  ) -> list[tuple[ClusterNode, list[int], list[Any] | _Unsent]]:
        jobs = list(groups.values())
        if len(jobs) == 1:
            node, idx = jobs[0]
            return [(node, idx, self._send(node, idx, wires, asking, poll=True))]
        if self._threads is None:
            self._threads = ThreadPoolExecutor(max_workers=8,
                                               thread_name_prefix="agentmem-cluster")
        futures: list[Future[list[Any] | _Unsent]] = [
            self._threads.submit(self._send, node, idx, wires, asking) for node, idx in jobs[1:]]
        first = self._send(jobs[0][0], jobs[0][1], wires, asking)
        out = [(jobs[0][0], jobs[0][1], first)]
        for (node, idx), fut in zip(jobs[1:], futures, strict=True):
            out.append((node, idx, fut.result()))
        return out

    def _send(self, node: ClusterNode, idx: list[int], wires: list[tuple[Any, ...]],
              asking: dict[int, ClusterNode], *, poll: bool = False) -> list[Any] | _Unsent:
        """The calls ``idx`` on one node's connection, pipelined; their replies in order.

        ``poll``: wait for the first reply by polling first (a plan for one node; the
        threads of a plan for several nodes sleep, so that they leave the CPUs to the
        servers)."""
        client: Any = self.node_client(node)
        pool = client.connection_pool
        try:
            conn: Any = pool.get_connection()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            unsent = _Unsent(str(exc))
            unsent.__cause__ = exc
            return unsent
        replies: list[Any] = []
        try:
            try:
                conn.connect()
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                conn.disconnect()
                unsent = _Unsent(str(exc))
                unsent.__cause__ = exc
                return unsent
            for i in idx:
                if i in asking:
                    conn.send_packed_command(pack_args(conn, ("ASKING",)), check_health=False)
                conn.send_packed_command(pack_args(conn, wires[i]), check_health=False)
            if poll and idx:
                spin = self._spins.get(node.name)
                if spin is None:
                    spin = self._spins[node.name] = resolve_spin(
                        self._spin_us, host=node.host, unix=False)
                if spin:
                    wait_readable(conn, spin)
            for i in idx:
                if i in asking:
                    with contextlib.suppress(redis.ResponseError):
                        client.parse_response(conn, "ASKING")
                try:
                    replies.append(client.parse_response(conn, _name(wires[i])))
                except redis.ResponseError as exc:
                    replies.append(exc)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
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


def _node_of(host: str, port: int) -> ClusterNode:
    make: Any = ClusterNode
    node: ClusterNode = make(host, port)
    return node


def _mapped(replies: list[Any]) -> list[Any]:
    """Replies with redis-py errors turned into agentmem errors (not raised)."""
    out = []
    for r in replies:
        if isinstance(r, Exception):
            err = BackendError(f"Redis refused a command: {r}")
            err.__cause__ = r
            r = err
        out.append(r)
    return out


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
        return Repository(self.runner, spec, batch_size=self._options["batch_size"])

    @property
    def client(self) -> RedisCluster:
        return self.runner.client

    def ping(self) -> bool:
        """Every master answers."""
        try:
            return all(bool(self.runner.node_client(n).ping()) for n in self.runner.primaries())
        except (redis.ConnectionError, redis.TimeoutError) as exc:
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
        _ClusterWalk(self, report, batch, agent_ids, fix).run()


AGENT_CHECK = Script("cluster_integrity_agent", r"""#!lua
-- ARGV: mode, patterns (action timeline types targets rewards grid, literal braces
-- once), grid cell size, agent id, action ids. For each existing hash: is it in each
-- agent-level index it belongs in? fix: adds it. Returns per hash {id, simulation,
-- type, step, age (s), missing families (comma separated), grid code ('' none)}.
local call = redis.call
local fix = ARGV[1] == 'fix'
local function render(p, t) return (string.gsub(p, '{([%w_]+)}', t)) end
""" + AGENT_INDICES + r"""
local now = tonumber(call('TIME')[1])
local out = {}
local cell = tonumber(ARGV[8])
for i = 10, #ARGV do
  local t = {agent_id = ARGV[9], action_id = ARGV[i]}
  local id = ARGV[i]
  local f = redis.pcall('HMGET', render(ARGV[2], t), 'simulation_id', 'step_number',
                        'action_type', 'action_target_id', 'reward', 'position_x',
                        'position_y', 'stored_at')
  if f.err == nil and f[1] and f[2] and f[3] then
    t.simulation_id, t.step_number, t.action_type, t.action_target_id = f[1], f[2], f[3], f[4]
    local miss = {}
    local function need(name, present, add)
      if not present then miss[#miss + 1] = name; if fix then add() end end
    end
    local code = agent_indices(t, id, f, ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], cell,
                               need)
    local age = f[8] and (now - tonumber(f[8])) or 1e9
    out[#out + 1] = id; out[#out + 1] = f[1]; out[#out + 1] = f[3]; out[#out + 1] = f[2]
    out[#out + 1] = tostring(age); out[#out + 1] = table.concat(miss, ',')
    out[#out + 1] = code and string.format('%.17g', code) or ''
  end
end
return out
""")

SIM_CHECK = Script("cluster_integrity_sim", r"""#!lua
-- ARGV: mode, patterns (sim_actions sim_step sim_steps sim_by_type sim_grid, literal
-- braces once), simulation id, then (action id, step, type, listed, grid code)
-- quintuples; listed = '1' when the client saw the id in the simulation list, the
-- code '' for an action without a position. Returns per id {id, missing families};
-- fix adds what is missing. The simulation-level part of a write is one
-- script, so an id missing from the list also lacks its counter increment: fix adds both.
local call = redis.call
local fix = ARGV[1] == 'fix'
local function render(p, t) return (string.gsub(p, '{([%w_]+)}', t)) end
local out = {}
for i = 8, #ARGV, 5 do
  local id, step, typ, code = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 4]
  local t = {simulation_id = ARGV[7], step_number = step}
  local miss = {}
  local lk = render(ARGV[2], t)
  if ARGV[i + 3] ~= '1' and not call('LPOS', lk, id) then
    miss[#miss + 1] = 'sim_actions'
    if fix then
      call('RPUSH', lk, id)
      call('HINCRBY', render(ARGV[5], t), typ, 1)
    end
  end
  local ks = render(ARGV[3], t)
  if call('SISMEMBER', ks, id) == 0 then
    miss[#miss + 1] = 'sim_step'
    if fix then call('SADD', ks, id) end
  end
  local kz = render(ARGV[4], t)
  if not call('ZSCORE', kz, step) then
    miss[#miss + 1] = 'sim_steps'
    if fix then call('ZADD', kz, step, step) end
  end
  if code ~= '' then
    local kg = render(ARGV[6], t)
    local sc = call('ZSCORE', kg, id)
    if not (sc and tonumber(sc) == tonumber(code)) then
      miss[#miss + 1] = 'sim_grid'
      if fix then call('ZADD', kg, code, id) end
    end
  end
  if #miss > 0 then out[#out + 1] = id; out[#out + 1] = table.concat(miss, ',') end
end
return out
""")


SIM_ORPHANS = Script("cluster_integrity_sim_orphans", r"""#!lua
-- ARGV: mode, list key, steps zset key, n, n list ids, then groups (step, step set key,
-- m, m ids). Ids the client found without a hash (in their agents' slots). fix: LREM
-- each list id, SREM each group's ids and ZREM a step whose set is left empty.
-- Returns the steps with an empty set (removed in fix mode).
local call = redis.call
local fix = ARGV[1] == 'fix'
local lk, zk = ARGV[2], ARGV[3]
local n = tonumber(ARGV[4])
if fix then
  for i = 5, 4 + n do call('LREM', lk, 0, ARGV[i]) end
end
local out = {}
local i = 5 + n
while i <= #ARGV do
  local step, sk, m = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local left = call('SCARD', sk)
  if fix then
    for j = i + 3, i + 2 + m do call('SREM', sk, ARGV[j]) end
    left = call('SCARD', sk)
  else
    left = left - m
  end
  if left <= 0 then
    out[#out + 1] = step
    if fix then call('ZREM', zk, step) end
  end
  i = i + 3 + m
end
return out
""")

SET_COUNTERS = Script("cluster_integrity_counters", r"""#!lua
-- ARGV: list key, counters key, list length the counts were made at, then (type, count)
-- pairs. Rewrites the counters when the list still has that length (no write part ran
-- meanwhile); returns 1 when written, 0 when skipped.
local call = redis.call
if call('LLEN', ARGV[1]) ~= tonumber(ARGV[3]) then return 0 end
call('DEL', ARGV[2])
for i = 4, #ARGV, 2 do call('HSET', ARGV[2], ARGV[i], ARGV[i + 1]) end
return 1
""")


def _text(x: Any) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


def _candidates(action_id: str) -> list[str]:
    """The agents an id of the simulation-level indices may belong to, as the
    single-server scripts and ``SIM_FETCH`` try them."""
    return _sim_agents(action_id, "")


class _ClusterWalk:
    """Integrity on a cluster: SCAN on every master, agent-level checks in each agent's
    slot, simulation-level checks in each simulation's slot: hashes missing from an
    index, index entries whose hash is gone (orphans: agent-level indices checked in
    the agent's slot; simulation-level ids looked up in their agents' slots) and the
    type counters (see ``docs/cluster.md``)."""

    def __init__(self, memory: ClusterMemory, report: Any, batch: int,
                 agent_ids: Iterable[str] | None, fix: bool) -> None:
        self.memory, self.report, self.batch, self.fix = memory, report, batch, fix
        self.mode = "fix" if fix else "check"
        self.agents = None if agent_ids is None else set(agent_ids)
        self.layout = memory.actions.layout
        self.p = {f: self.layout.plain(f) for f in self.layout.patterns}
        self.listed: dict[str, set[str]] = {}
        self.steps_seen: set[tuple[str, str]] = set()
        self.grids: dict[str, list[str]] = defaultdict(list)
        """The simulation-level grid keys found by the scan, per simulation."""

    def run(self) -> None:
        runner = self.memory.runner
        head = self.p["action"].split("{", 1)[0]
        sim_head = self.p["sim_actions"].split("{", 1)[0]
        sims: set[str] = set()
        for node in runner.primaries():  # simulation-level orphans and counters first
            try:
                for raw in runner.node_client(node).scan_iter(match=sim_head + "*",
                                                               count=self.batch):
                    self.report.keys_scanned += 1
                    parsed = self.layout.parse(_text(raw))
                    if parsed is not None and parsed[0].startswith("sim_"):
                        sims.add(parsed[1]["simulation_id"])
                        if parsed[0] == "sim_grid":
                            self.grids[parsed[1]["simulation_id"]].append(_text(raw))
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                raise _unavailable(f"node {node.name} is unreachable", exc) from exc
        for sim in sorted(sims):
            self._sim_orphans(sim)
        for node in runner.primaries():
            client = runner.node_client(node)
            pending: list[tuple[str, str]] = []
            try:
                for raw in client.scan_iter(match=head + "*", count=self.batch):
                    self.report.keys_scanned += 1
                    key = _text(raw)
                    parsed = self.layout.parse(key)
                    if parsed is None:
                        continue
                    agent = parsed[1].get("agent_id", "")
                    if self.agents is not None and agent not in self.agents:
                        continue
                    if parsed[0] in _AGENT_INDICES:
                        self._agent_orphans(key, parsed[0], agent)
                    if parsed[0] != "action":
                        continue
                    pending.append((agent, parsed[1]["action_id"]))
                    if len(pending) >= self.batch:
                        self._actions(pending)
                        pending = []
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                raise _unavailable(f"node {node.name} is unreachable", exc) from exc
            self._actions(pending)

    def _actions(self, pairs: list[tuple[str, str]]) -> None:
        if not pairs:
            return
        per_agent: dict[str, list[str]] = defaultdict(list)
        for agent, aid in pairs:
            per_agent[agent].append(aid)
        pats = [self.p[f] for f in ("action", "timeline", "types", "targets", "rewards",
                                    "grid")]
        cell = repr(self.memory.actions.grid_cell)
        agents = list(per_agent)
        calls = [script_call(AGENT_CHECK, [self.mode, *pats, cell, a, *per_agent[a]],
                             route=self.layout.key("timeline", agent_id=a)) for a in agents]
        replies = self.memory.runner.run(Plan(calls, _raise_errors))
        sims: dict[str, list[tuple[str, str, str, str, str]]] = defaultdict(list)
        settle = self.memory.settle_seconds
        for agent, out in zip(agents, replies, strict=True):
            rows = [[_text(v) for v in out[i:i + 7]] for i in range(0, len(out), 7)]
            self.report.hashes_checked += len(rows)
            for aid, sim, typ, step, age, missing, code in rows:
                key = _fill(self.p["action"], {"agent_id": agent, "action_id": aid})
                for family in filter(None, missing.split(",")):
                    self.report.add("missing", family, [key])
                if float(age) >= settle:
                    sims[sim].append((aid, step, typ, key, code))
        if not sims:
            return
        names = list(sims)
        for sim in names:
            if sim not in self.listed:
                self.listed[sim] = self._list(sim)
        spats = [self.p[f] for f in ("sim_actions", "sim_step", "sim_steps", "sim_by_type",
                                     "sim_grid")]
        calls = []
        for sim in names:
            argv: list[Any] = [self.mode, *spats, sim]
            for aid, step, typ, _, code in sims[sim]:
                argv += (aid, step, typ, "1" if aid in self.listed[sim] else "0", code)
            calls.append(script_call(SIM_CHECK, argv,
                                     route=self.layout.key("sim_actions", simulation_id=sim)))
        replies = self.memory.runner.run(Plan(calls, _raise_errors))
        for sim, out in zip(names, replies, strict=True):
            keys = {aid: (step, typ, key) for aid, step, typ, key, _ in sims[sim]}
            for i in range(0, len(out), 2):
                aid, missing = _text(out[i]), _text(out[i + 1])
                step, typ, key = keys[aid]
                for family in missing.split(","):
                    if family == "sim_steps":
                        if (sim, step) in self.steps_seen:
                            continue
                        self.steps_seen.add((sim, step))
                        skey = _fill(self.p["sim_steps"], {"simulation_id": sim})
                        self.report.add("missing", family, [f"{skey} {step}"])
                    else:
                        self.report.add("missing", family, [key])
                    if family == "sim_actions":
                        ck = _fill(self.p["sim_by_type"], {"simulation_id": sim})
                        self.report.add("counters", "sim_by_type", [f"{ck} {typ}: +1"])

    def _agent_orphans(self, key: str, family: str, agent: str) -> None:
        """Entries of one agent-level index whose hash is gone (the single-server
        ORPHANS script, run in the agent's slot)."""
        from agentmem.lua import integrity as lua

        hfam = "im_action" if family == "im_timeline" else "action"
        pre, suf = _fill(self.p[hfam], {"agent_id": agent, "action_id": "\x02"}).split("\x02")
        kind = "s" if family in ("types", "targets") else "z"
        cursor = "0"
        while True:
            call = script_call(lua.ORPHANS, [self.mode, key, cursor, self.batch, kind, "a",
                                             pre, suf, "", 0], route=key)
            out = self.memory.runner.run(Plan((call,), _raise_errors))[0]
            cursor = _text(out[0])
            self.report.add("orphans", family, [f"{key} {_text(m)}" for m in out[1:]])
            if cursor == "0":
                return

    def _live(self, ids: Iterable[str]) -> dict[str, str]:
        """The ids whose STM hash exists, with their action type (looked up in each
        candidate agent's slot, ``batch`` lookups per round trip)."""
        todo = [(aid, agent) for aid in ids for agent in _candidates(aid)]
        found: dict[str, str] = {}
        for start in range(0, len(todo), self.batch):
            part = todo[start:start + self.batch]
            calls = [Call(("HGET", _fill(self.p["action"], {"agent_id": a, "action_id": i}),
                           "action_type")) for i, a in part]
            for (aid, _), typ in zip(part, self.memory.runner.run(Plan(calls, _raise_errors)),
                                     strict=True):
                if typ is not None and aid not in found:
                    found[aid] = _text(typ)
        return found

    def _sim_orphans(self, sim: str) -> None:
        """A simulation's list, step sets and steps zset: entries whose hash is gone
        (removed by a fix), then its type counters recounted from the list."""
        runner = self.memory.runner
        lk = self.layout.key("sim_actions", simulation_id=sim)
        zk = self.layout.key("sim_steps", simulation_id=sim)
        ck = self.layout.key("sim_by_type", simulation_id=sim)
        ids = []
        start = 0
        while True:
            part = runner.run(Plan((Call(("LRANGE", lk, start, start + self.batch - 1)),),
                                   _raise_errors))[0]
            ids += [_text(x) for x in part]
            if len(part) < self.batch:
                break
            start += self.batch
        steps = [_text(x) for x in runner.run(Plan((Call(("ZRANGE", zk, 0, -1)),),
                                                   _raise_errors))[0]]
        skeys = [self.layout.key("sim_step", simulation_id=sim, step_number=int(st))
                 for st in steps]
        members = runner.run(Plan([Call(("SMEMBERS", k)) for k in skeys], _raise_errors)) \
            if skeys else []
        step_ids = [[_text(m) for m in ms] for ms in members]
        gkeys = sorted(self.grids.get(sim, ()))
        grid_ids = [[_text(m) for m in ms] for ms in runner.run(
            Plan([Call(("ZRANGE", k, 0, -1)) for k in gkeys], _raise_errors))] if gkeys else []
        live = self._live(set(ids).union(*map(set, step_ids), *map(set, grid_ids)))

        def orphan(aid: str) -> bool:
            if aid in live:
                return False
            return self.agents is None or any(a in self.agents for a in _candidates(aid))

        gone = [aid for aid in ids if orphan(aid)]
        self.report.add("orphans", "sim_actions", [f"{lk} {aid}" for aid in gone])
        argv: list[Any] = [self.mode, lk, zk, len(gone), *gone]
        for st, sk, ms in zip(steps, skeys, step_ids, strict=True):
            dead = [m for m in ms if orphan(m)]
            self.report.add("orphans", "sim_step", [f"{sk} {m}" for m in dead])
            if self.agents is None or dead:
                argv += [st, sk, len(dead), *dead]
        empty = runner.run(Plan((script_call(SIM_ORPHANS, argv, route=lk),),
                                _raise_errors))[0]
        for gk, ms in zip(gkeys, grid_ids, strict=True):
            dead = [m for m in ms if orphan(m)]
            self.report.add("orphans", "sim_grid", [f"{gk} {m}" for m in dead])
            if self.fix and dead:
                runner.run(Plan((Call(("ZREM", gk, *dead)),), _raise_errors))
        if self.agents is not None:
            return  # the steps zset and the counters span agents: not checked
        self.report.add("orphans", "sim_steps", [f"{zk} {_text(st)}" for st in empty])
        want: dict[str, int] = defaultdict(int)
        for aid in ids:
            if aid in live:
                want[live[aid]] += 1
        length = len(ids) - (len(gone) if self.fix else 0)
        have_raw = runner.run(Plan((Call(("HGETALL", ck)),), _raise_errors))[0]
        have = {_text(k): int(v) for k, v in _hash_items(have_raw)}
        wrong = sorted(t for t in set(have) | set(want) if have.get(t, 0) != want.get(t, 0))
        if not wrong:
            return
        self.report.add("counters", "sim_by_type",
                        [f"{ck} {t}: {have.get(t, 0)} -> {want.get(t, 0)}" for t in wrong])
        if self.fix:
            pairs = [x for t, n in sorted(want.items()) if n > 0 for x in (t, n)]
            runner.run(Plan((script_call(SET_COUNTERS, [lk, ck, length, *pairs], route=lk),),
                            _raise_errors))

    def _list(self, sim: str) -> set[str]:
        """The ids of a simulation's list, read a slice at a time."""
        key = self.layout.key("sim_actions", simulation_id=sim)
        seen: set[str] = set()
        start = 0
        client = self.memory.runner
        while True:
            part = client.run(Plan((Call(("LRANGE", key, start, start + self.batch - 1)),),
                                   _raise_errors))[0]
            seen.update(_text(x) for x in part)
            if len(part) < self.batch:
                return seen
            start += self.batch


_AGENT_INDICES = frozenset(("timeline", "relative_index", "rewards", "types", "targets",
                            "grid", "im_timeline"))


def _hash_items(raw: Any) -> list[tuple[Any, Any]]:
    """HGETALL's reply as pairs: a dict (parsed) or a flat list (raw RESP2)."""
    if isinstance(raw, dict):
        return list(raw.items())
    return list(zip(raw[0::2], raw[1::2], strict=True))


def _raise_errors(replies: list[Any]) -> list[Any]:
    for r in replies:
        if isinstance(r, Exception):
            raise r
    return replies


def _fill(pattern: str, values: dict[str, str]) -> str:
    out = pattern
    for name, value in values.items():
        out = out.replace("{" + name + "}", value)
    return out


def connect_cluster(
    url_or_nodes: str | Sequence[str | tuple[str, int]],
    *,
    client: RedisCluster | None = None,
    layout_version: int = 2,
    ttl: int | None = DEFAULT_ACTION_TTL,
    relative_index_size: int = DEFAULT_RELATIVE_INDEX_SIZE,
    embedding_dim: int | None = None,
    batch_size: int = 500,
    grid_cell: float = DEFAULT_GRID_CELL,
    spin_us: int | None = None,
    settings: RedisSettings | None = None,
    **options: Any,
) -> ClusterMemory:
    """Open a blocking store on a Redis Cluster (or a Valkey cluster).

    ``url_or_nodes``: ``redis+cluster://[user:password@]host:port[,host:port...]`` (also
    ``redis://``, ``rediss+cluster://`` for TLS), or a list of ``"host:port"`` /
    ``(host, port)`` startup nodes; the rest of the cluster is discovered. The other
    options are those of :func:`agentmem.connect`; ``options`` go to
    :class:`redis.cluster.RedisCluster`. Key layout 2 only (a
    :class:`~agentmem.errors.ConfigError` otherwise). Reads the slot map now:
    :class:`~agentmem.errors.Unavailable` when no startup node answers. Options left at
    their default are read from the URL's query and ``AGENTMEM_*`` as for ``connect``.
    """
    url_or_nodes, s = options_of(connect_cluster, url_or_nodes, {
        "layout_version": layout_version, "ttl": ttl, "relative_index_size": relative_index_size,
        "embedding_dim": embedding_dim, "batch_size": batch_size, "grid_cell": grid_cell,
        "spin_us": spin_us}, options, settings, base={"layout_version": 2})
    if s.layout_version != 2:
        raise ConfigError(
            f"a Redis Cluster needs key layout 2, got layout_version={s.layout_version!r}: in "
            "layout 1 an agent's keys have no hash tag and spread over slots, so one "
            "record's write cannot be atomic (migrate with `agentmem migrate upgrade`)")
    opts = check_settings(s)
    options = {**s.pool_options(), **options}
    if client is None:
        nodes, parsed = parse_nodes(url_or_nodes)
        try:
            client = RedisCluster(startup_nodes=[_node_of(h, p) for h, p in nodes],
                                  decode_responses=False, **{**parsed, **options})
        except (RedisClusterException, redis.ConnectionError, redis.TimeoutError) as exc:
            raise _unavailable(f"at {nodes} is unreachable", exc) from exc
        except redis.AuthenticationError as exc:
            raise BackendError(f"Redis Cluster refused the credentials: {exc}") from exc
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"bad Redis Cluster option: {exc}") from None
    elif not isinstance(client, RedisCluster):
        raise ConfigError(f"connect_cluster() needs a redis.cluster.RedisCluster client, got "
                          f"{type(client).__module__}.{type(client).__name__}")
    runner = ClusterRunner(client, s.layout_version, spin_us=s.spin_us)
    actions = ActionRepository(runner, **opts)
    im = Repository(runner, layout(s.layout_version).im_action, batch_size=s.batch_size)
    return ClusterMemory(runner, actions, im, opts)
