"""MkDocs hook: let mkdocstrings read agentmem as it is installed.

``backends/`` and ``migrations/`` install as ``agentmem.backends`` and
``agentmem.migrations`` (setuptools ``package-dir`` in ``pyproject.toml``).
griffe, which mkdocstrings uses to read the source, looks for
``agentmem/backends/`` and cannot follow that mapping. So, when the build
starts, this hook mirrors the installed layout with symlinks in a temporary
folder (as ``tools/typecheck.py`` does for mypy), puts that folder first in the
python handler's ``paths``, and removes it when the build ends. Nothing is
written to the source tree.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from mkdocs.plugins import event_priority

ROOT = Path(__file__).resolve().parent.parent

_mirrors: list[Path] = []


def package_dirs(root: Path = ROOT) -> dict[str, str]:
    """The ``package-dir`` mapping of ``pyproject.toml``: package name -> folder."""
    with (root / "pyproject.toml").open("rb") as f:
        tool = tomllib.load(f).get("tool", {}).get("setuptools", {})
    mapping: dict[str, str] = tool.get("package-dir") or {"agentmem": "agentmem"}
    return mapping


def build_mirror(dest: Path, root: Path = ROOT) -> Path:
    """Symlink every source file at the path its module has once installed."""
    mapping = package_dirs(root)
    folders = {(root / folder).resolve() for folder in mapping.values()}
    for package, folder in mapping.items():
        src = (root / folder).resolve()
        target_dir = dest.joinpath(*package.split("."))
        for path in src.rglob("*"):
            if "__pycache__" in path.parts or path.is_dir():
                continue
            # A folder mapped to a package of its own is mirrored there only.
            if any(parent in folders for parent in path.parents if parent != src
                   and parent.is_relative_to(src)):
                continue
            link = target_dir / path.relative_to(src)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(path.resolve())
    return dest


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    if path in _mirrors:
        _mirrors.remove(path)


@event_priority(100)  # before mkdocstrings, which sets its python handler up in on_config
def on_config(config: Any) -> Any:
    for old in list(_mirrors):  # `mkdocs serve` reloads the config on every rebuild
        _remove(old)
    mirror = build_mirror(Path(tempfile.mkdtemp(prefix="agentmem-docs-")))
    _mirrors.append(mirror)
    atexit.register(_remove, mirror)
    python = config.plugins["mkdocstrings"].config.handlers.setdefault("python", {})
    python["paths"] = [str(mirror), *python.get("paths", [])]
    return config


def on_shutdown() -> None:
    for mirror in list(_mirrors):
        _remove(mirror)
