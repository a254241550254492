"""The wheel holds the package as the source tree lays it out: every module once.

CI installs in editable mode, which reads the source tree and so cannot notice a
subpackage that the build leaves out; this builds the wheel (``pip wheel``) and
compares its files with the source tree's, the top-level ``backends/`` and
``migrations/`` installed as ``agentmem.backends`` and ``agentmem.migrations``.
It is built from a checkout and from a tree without the symlinks
``agentmem/backends`` and ``agentmem/migrations``, as an sdist holds it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = (".py", ".lua", ".mako", "py.typed")
# the symlinks agentmem/backends and agentmem/migrations: their files count once,
# from the top-level folders
LINKS = ("backends", "migrations")


def source_files() -> set[str]:
    """Installed path of every shipped file of the source tree."""
    out: set[str] = set()
    for top in ("agentmem", *LINKS):
        for path in (ROOT / top).rglob("*"):
            rel = path.relative_to(ROOT)
            if (not path.is_file() or "__pycache__" in rel.parts
                    or not path.name.endswith(SHIPPED)
                    or (top == "agentmem" and rel.parts[1] in LINKS)):
                continue
            out.add(rel.as_posix() if top == "agentmem" else f"agentmem/{rel.as_posix()}")
    return out


@pytest.mark.parametrize("tree", ["checkout", "sdist"])
def test_the_wheel_holds_every_module_exactly_once(tmp_path: Path, tree: str) -> None:
    # built from a copy: setuptools leaves build/ and *.egg-info/ in the folder it builds
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for top in ("agentmem", *LINKS):
        shutil.copytree(ROOT / top, src / top, symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
    for link in LINKS:
        assert (src / "agentmem" / link).is_symlink()
        if tree == "sdist":
            (src / "agentmem" / link).unlink()
    out = tmp_path / "wheel"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
         "--disable-pip-version-check", "-w", str(out), str(src)],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (wheel,) = out.glob("agentmem-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    files = [n for n in names if ".dist-info/" not in n]
    assert [n for n, k in Counter(files).items() if k > 1] == []
    expected = source_files()
    assert {"agentmem/config/__init__.py", "agentmem/backends/redis.py",
            "agentmem/migrations/sql/script.py.mako"} <= expected
    assert sorted(expected - set(files)) == [], "left out of the wheel"
    assert sorted(set(files) - expected) == [], "in the wheel, not in the source tree"
