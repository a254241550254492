"""Which stores a command uses: a Redis URL and an archive URL, or the embedded default."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from agentmem.backends.cluster import connect_cluster
from agentmem.backends.clusterurl import is_cluster_url
from agentmem.backends.masters import read_unchecked, scan_keys
from agentmem.backends.redis import Memory, connect
from agentmem.backends.sql import Archive, open_archive
from agentmem.cli.exits import NotFound
from agentmem.plans.keyspace import (
    DEFAULT_GRID_CELL,
    GRID_CELL_KEY,
    NO_GRIDS,
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
    (``redis+cluster://host:port``) opens a Redis Cluster in the key layout it records
    (2 when none; :func:`agentmem.backends.cluster.connect_cluster`, see
    ``docs/cluster.md``).

    ``create``: whether the command may create a store (``demo``, ``sync``, the archive
    schema's migrations). Otherwise a data folder of the embedded default that holds no
    store, or an archive file that does not exist, raises :class:`NotFound` instead of
    being created empty.
    """

    data: str | None = None
    redis_url: str | None = None
    archive_url: str | None = None
    create: bool = False
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
            if not self.create and not (self.folder / "valkey").is_dir():
                what = "no such folder" if not self.folder.exists() else "no agentmem data in it"
                raise NotFound(f"no agentmem store at {self.folder} ({what}); check --data "
                               "(or $AGENTMEM_DATA), or create one with `agentmem demo`")
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
                opened = memory.actions.layout
                # nothing recorded: data is layout 1 (2 on a cluster), whatever the URL's
                # query or $AGENTMEM_LAYOUT ask; an empty server takes what they ask
                version = parse_layout_value(raw_layout) or (
                    opened.version if _empty(memory) else 2 if cluster else 1)
                cell = recorded_cell(raw_cell) or DEFAULT_GRID_CELL
                grids = raw_cell not in (NO_GRIDS, NO_GRIDS.encode())  # data without grids
                if version != opened.version or cell != DEFAULT_GRID_CELL or not grids:
                    memory.close()
                    memory = cast(Memory, connect_cluster(
                        url, socket_connect_timeout=5, grid_cell=cell, grids=grids,
                        layout_version=version)) \
                        if cluster else connect(url, socket_connect_timeout=5,
                                                layout_version=version, grid_cell=cell,
                                                grids=grids)
            except BaseException:
                memory.close()
                raise
            self._memory = memory
        return self._memory

    def archive_target(self) -> str:
        """The archive's URL or path (a missing file raises :class:`NotFound` unless the
        command may create a store)."""
        target = self.archive_url or os.environ.get(ARCHIVE_ENV)
        if not target:
            if self.create:
                self.folder.mkdir(parents=True, exist_ok=True)
            target = str(self.folder / "archive.db")
        file = archive_file(target)
        if not self.create and file is not None and not file.exists():
            raise NotFound(f"no archive at {file}; check --archive-url (or "
                           "$AGENTMEM_ARCHIVE_URL) and --data")
        return target

    @property
    def archive(self) -> Archive:
        if self._archive is None:
            self._archive = open_archive(self.archive_target())
        return self._archive

    def has_archive(self) -> bool:
        """Whether the archive exists (a server database is taken to exist). The data
        folder's default archive may be missing; one given by ``--archive-url`` or
        ``$AGENTMEM_ARCHIVE_URL`` that does not exist raises :class:`NotFound` (a
        mistyped path)."""
        given = self.archive_url or os.environ.get(ARCHIVE_ENV)
        if given:
            self.archive_target()  # NotFound for a missing file
        file = archive_file(given or str(self.folder / "archive.db"))
        return self.create or file is None or file.exists()

    def describe(self) -> dict[str, str]:
        """Where the data is, for summaries (no passwords)."""
        redis = "embedded Valkey in " + str(self.folder / "valkey") if self.embedded else \
            hide(self.redis_url or os.environ.get(REDIS_ENV, ""))
        archive = self.archive.location if self.has_archive() else "(none)"
        return {"redis": redis, "archive": archive}

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


def archive_file(target: str) -> Path | None:
    """The SQLite file of an archive path or ``sqlite:///`` URL (None: a server)."""
    if "://" not in target:
        return Path(target).resolve()
    scheme, _, rest = target.partition("://")
    if scheme.split("+")[0] == "sqlite" and rest.startswith("/") and len(rest) > 1:
        return Path(rest[1:].partition("?")[0]).resolve()
    return None


def hide(url: str) -> str:
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.rpartition('@')[2]}"


def _empty(memory: Memory) -> bool:
    """Whether the server (every master of a cluster) holds no key at all."""
    return next(iter(scan_keys(memory, "*", 100)), None) is None
