"""The replay journal: actions waiting for Redis, in an append-only file on disk.

While Redis is unreachable, the dual writer appends every action it could not
store to a :class:`Journal` (one line of JSON per call, flushed and fsync-ed
before the call returns), so the actions survive a crash or a restart of the
process. When Redis is back, the journal is replayed and then cleared.

The file holds one line per append: ``{"v": 1, "actions": [...]}``, each
action a JSON object of its fields (``embedding`` as base64 of little-endian
float32, ``position`` as a two-element list). A last line without its newline
is an append the process did not finish (it crashed while writing); it was
never acknowledged and is ignored. Any other line that does not decode raises
:class:`~agentmem.errors.DecodeError`: the journal is not guessed at.

One process at a time owns a journal: it is locked (``flock``) while open.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from agentmem.errors import ConfigError, DecodeError
from agentmem.model import jsonvalue
from agentmem.model.records import Action

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

__all__ = ["Journal"]

VERSION = 1


def _to_json(action: Action) -> dict[str, Any]:
    data = action.model_dump(mode="python", exclude_none=True)
    emb = data.get("embedding")
    if emb is not None:
        data["embedding"] = base64.b64encode(
            np.asarray(emb, dtype="<f4").tobytes()).decode("ascii")
    if "position" in data:
        data["position"] = list(data["position"])
    return data


def _from_json(data: dict[str, Any]) -> Action:
    emb = data.get("embedding")
    if isinstance(emb, str):
        data["embedding"] = np.frombuffer(base64.b64decode(emb), dtype="<f4").astype(np.float32)
    return Action.model_validate(data)


class Journal:
    """An append-only, fsync-ed file of actions; see the module doc."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._file: Any = None
        self._lines = 0  # complete lines in the file, counted when opened

    # -- opening ---------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._file is not None

    def open(self) -> Journal:
        """Open (creating the file and its folder) and lock; idempotent."""
        if self._file is not None:
            return self
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # owner-only: a journal holds actions not yet stored anywhere else
            fd = os.open(self.path, os.O_CREAT | os.O_APPEND | os.O_RDWR, 0o600)
            f = os.fdopen(fd, "a+b")
        except OSError as exc:
            raise ConfigError(f"cannot open the replay journal {self.path}: {exc}") from exc
        if fcntl is not None:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                f.close()
                raise ConfigError(
                    f"the replay journal {self.path} is in use by another writer; give "
                    "each DualWriter its own journal=") from None
        self._file = f
        self._lines = len(self._read_lines())
        return self

    def close(self) -> None:
        """Release the lock and the file (the content stays)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def _need(self) -> Any:
        if self._file is None:
            self.open()
        return self._file

    # -- content ---------------------------------------------------------------------------

    def __len__(self) -> int:
        """Appends (lines) in the journal."""
        if self._file is None:
            return self._peek()
        return self._lines

    def _peek(self) -> int:
        """Lines in a journal not opened by us (0 when there is no file)."""
        try:
            with open(self.path, "rb") as f:
                return sum(1 for line in f if line.endswith(b"\n"))
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise ConfigError(f"cannot read the replay journal {self.path}: {exc}") from exc

    def append(self, actions: Sequence[Action]) -> None:
        """Write ``actions`` as one line and make it durable before returning."""
        if not actions:
            return
        line = jsonvalue.dumps({"v": VERSION, "actions": [_to_json(a) for a in actions]})
        f = self._need()
        f.seek(0, os.SEEK_END)
        f.write(line + b"\n")
        f.flush()
        os.fsync(f.fileno())
        self._lines += 1

    def _read_lines(self) -> list[bytes]:
        f = self._need()
        f.seek(0)
        data = f.read()
        lines = data.split(b"\n")
        # the last element is b"" after a final newline, or an unfinished append
        return [line for line in lines[:-1] if line.strip()]

    def read(self) -> list[Action]:
        """Every journaled action, in append order."""
        return [a for batch in self.read_appends() for a in batch]

    def read_appends(self) -> list[list[Action]]:
        """The journaled actions, one list per append, in append order."""
        out: list[list[Action]] = []
        for n, line in enumerate(self._read_lines(), 1):
            try:
                entry = json.loads(line)
                if not isinstance(entry, dict) or entry.get("v") != VERSION:
                    raise ValueError(f"not a version {VERSION} entry")
                out.append([_from_json(dict(a)) for a in entry["actions"]])
            except (ValueError, KeyError, TypeError, ValidationError) as exc:
                raise DecodeError(
                    f"the replay journal {self.path} line {n} does not decode: {exc}"
                ) from None
        return out

    def clear(self) -> None:
        """Empty the journal (after everything in it was replayed), durably."""
        f = self._need()
        f.truncate(0)
        f.flush()
        os.fsync(f.fileno())
        self._lines = 0
