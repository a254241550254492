"""Lua scripts as values, read from the ``.lua`` files of this package.

Every script the server runs is a file under ``agentmem/lua/src/`` (shipped as
package data). Its first line is the shebang (``#!lua``, ``#!lua flags=no-writes``
for a read, ``#!lua flags=allow-oom`` for the delete, which frees memory), then a
header of comments stating its contract::

    -- KEYS: what KEYS[i] are (or "none": keys are built from ARGV)
    -- ARGV: what ARGV[i] are
    -- Reply: what the script returns

**Includes.** Parts shared by several scripts live in ``src/lib/``. A line that
reads exactly ``--!include lib/<name>.lua`` is replaced by that file's text (which
may include others in turn; a cycle is an error). That is the one way scripts
share code: no Lua is assembled from Python strings. :func:`load` resolves the
includes once, when the module that declares the script is imported, and the
script's SHA1 is that of the resolved source (what ``SCRIPT LOAD`` receives).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from importlib import resources

__all__ = ["INCLUDE", "Script", "load", "resolve", "source_files"]

INCLUDE = re.compile(r"^--!include (\S+)$")
"""An include directive: the whole line."""


@dataclass(frozen=True)
class Script:
    """A Lua script: its name, its resolved source and that source's SHA1."""

    name: str
    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())


def _read(rel: str) -> str:
    return resources.files("agentmem.lua").joinpath("src", *rel.split("/")).read_text(
        encoding="utf-8")


def resolve(rel: str, _stack: tuple[str, ...] = ()) -> str:
    """The text of ``src/<rel>`` with every include directive replaced, recursively."""
    if rel in _stack:
        raise ValueError(f"Lua include cycle: {' -> '.join((*_stack, rel))}")
    out = []
    for line in _read(rel).splitlines(keepends=True):
        m = INCLUDE.match(line.rstrip("\n"))
        if m:
            out.append(resolve(m.group(1), (*_stack, rel)))
        else:
            out.append(line)
    return "".join(out)


def load(rel: str, name: str) -> Script:
    """The script of ``src/<rel>``, its includes resolved."""
    return Script(name, resolve(rel))


def source_files() -> list[str]:
    """Every ``.lua`` file of the package, relative to ``src/`` (scripts and parts)."""
    root = resources.files("agentmem.lua").joinpath("src")
    out: list[str] = []

    def walk(node: object, prefix: str) -> None:
        for child in node.iterdir():  # type: ignore[attr-defined]
            if child.is_dir():
                walk(child, f"{prefix}{child.name}/")
            elif child.name.endswith(".lua"):
                out.append(prefix + child.name)

    walk(root, "")
    return sorted(out)
