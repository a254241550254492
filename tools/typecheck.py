"""Type-check agentmem as it is installed: ``python tools/typecheck.py``.

``backends/`` and ``migrations/`` install as ``agentmem.backends`` and
``agentmem.migrations`` (setuptools ``package-dir``), a mapping that static
checkers cannot see in the source tree. This mirrors the installed layout with
symlinks in a temporary folder, runs ``mypy`` there with the configuration of
``pyproject.toml``, and prints the report with paths of the source tree.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYOUT = {"agentmem": "agentmem", "backends": "agentmem/backends",
          "migrations": "agentmem/migrations"}


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="agentmem-typecheck-") as tmp:
        mirror = Path(tmp)
        back: dict[str, str] = {}
        for src, dst in LAYOUT.items():
            for path in (ROOT / src).rglob("*"):
                if "__pycache__" in path.parts or path.is_dir():
                    continue
                if src == "agentmem" and path.relative_to(ROOT / src).parts[0] in (
                        "backends", "migrations"):
                    continue
                target = mirror / dst / path.relative_to(ROOT / src)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.symlink_to(path)
                back[str(Path(dst) / path.relative_to(ROOT / src))] = str(
                    Path(src) / path.relative_to(ROOT / src))
        cmd = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
               "-p", "agentmem"]
        env = {**os.environ, "MYPYPATH": tmp}
        proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True)
        out = proc.stdout + proc.stderr
        for mirrored, source in sorted(back.items(), key=lambda kv: -len(kv[0])):
            out = out.replace(mirrored, source)
        print(out, end="")
        return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
