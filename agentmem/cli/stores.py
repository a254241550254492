"""Which stores a command uses: a Redis URL and an archive URL, or the embedded default."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from agentmem.backends.cluster import connect_cluster
from agentmem.backends.clusterurl import is_cluster_url
from agentmem.backends.masters import read_unchecked
from agentmem.backends.redis import Memory, connect
from agentmem.backends.sql import Archive, open_archive
from agentmem.plans.keyspace import (
    DEFAULT_GRID_CELL,
    GRID_CELL_KEY,
    layout_key,
    parse_layout_value,
    recorded_cell,
)
from agentmem.servers.embedded import Embedded, data_folder

REDIS_ENV = "AGENTMEM_REDIS_URL"
ARCHIVE_ENV = "AGENTMEM_ARCHIVE_URL"


@dataclass
class Stores:
    """Opened on first use, closed by :meth:`close` (the command's end).

    Redis: ``redis_url``, else ``$AGENTMEM_REDIS_URL``, else the embedded Valkey of
    the data folder. Archive: ``archive_url``, else ``$AGENTMEM_ARCHIVE_URL``, else
    ``<data folder>/archive.db``. A Redis URL with a ``+cluster`` scheme
    (``redis+cluster://host:port``) opens a Redis Cluster with key layout 2
    (:func:`agentmem.backends.cluster.connect_cluster`, see ``docs/cluster.md``).
    """

    data: str | None = None
    redis_url: str | None = None
    archive_url: str | None = None
    _embedded: Embedded | None = field(default=None, init=False)
    _memory: Memory | None = field(default=None, init=False)
    _archive: Archive | None = field(default=None, init=False)

    @property
    def folder(self) -> Path:
        return data_folder(self.data)

    @property
    def embedded(self) -> bool:
        return not (self.redis_url or os.environ.get(REDIS_ENV))

    def url(self) -> str:
        url = self.redis_url or os.environ.get(REDIS_ENV)
        if url:
            return url
        if self._embedded is None:
            self._embedded = Embedded(self.data).start()
        return self._embedded.url

    @property
    def memory(self) -> Memory:
        if self._memory is None:
            url = self.url()
            # a ClusterMemory has the same actions / im_actions / repository / runner /
            # ping / close; tiers, integrity, sync and stats split their work per slot
            cluster = is_cluster_url(url)
            memory = cast(Memory, connect_cluster(url, socket_connect_timeout=5)) \
                if cluster else connect(url, socket_connect_timeout=5)
            try:
                memory.ping()  # fail now, with Unavailable, rather than inside a command
                # open the data in the layout and with the grid cell the server records
                # (a migrated store; data written with another grid_cell)
                raw_layout, raw_cell = read_unchecked(memory, layout_key(), GRID_CELL_KEY)
                version = 2 if cluster else (parse_layout_value(raw_layout) or 1)
                cell = recorded_cell(raw_cell) or DEFAULT_GRID_CELL
                if version != (2 if cluster else 1) or cell != DEFAULT_GRID_CELL:
                    memory.close()
                    memory = cast(Memory, connect_cluster(
                        url, socket_connect_timeout=5, grid_cell=cell)) if cluster else \
                        connect(url, socket_connect_timeout=5, layout_version=version,
                                grid_cell=cell)
            except BaseException:
                memory.close()
                raise
            self._memory = memory
        return self._memory

    @property
    def archive(self) -> Archive:
        if self._archive is None:
            target = self.archive_url or os.environ.get(ARCHIVE_ENV)
            if not target:
                self.folder.mkdir(parents=True, exist_ok=True)
                target = str(self.folder / "archive.db")
            self._archive = open_archive(target)
        return self._archive

    def describe(self) -> dict[str, str]:
        """Where the data is, for summaries (no passwords)."""
        redis = "embedded Valkey in " + str(self.folder / "valkey") if self.embedded else \
            _hide(self.redis_url or os.environ.get(REDIS_ENV, ""))
        return {"redis": redis, "archive": self.archive.location}

    def close(self) -> None:
        try:
            if self._memory is not None:
                self._memory.close()
            if self._archive is not None:
                self._archive.close()
        finally:
            self._memory = self._archive = None
            if self._embedded is not None:
                self._embedded.stop()
                self._embedded = None


def _hide(url: str) -> str:
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.rpartition('@')[2]}"

