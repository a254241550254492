"""One road to Redis: outside ``backends`` no module talks to a server directly.

Every command goes through a plan and a runner, the layout migrations included.
The one exception outside ``backends``, documented in docs/architecture.md ("One
road to Redis") and in its module, is process management of the servers agentmem
starts (``agentmem/servers``). A new direct use fails here.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DIRECT_MODULES = {"redis", "hiredis", "socket"}
ALLOWED = {"agentmem/servers/local.py", "agentmem/servers/embedded.py"}
ALLOWED_TREES = ("backends/",)


def _files() -> list[Path]:
    """agentmem's modules outside ``backends``, and the migrations (the real folder:
    ``agentmem/migrations`` is a symlink to it)."""
    mine = [p for p in (ROOT / "agentmem").rglob("*.py")
            if not p.is_symlink() and p.relative_to(ROOT / "agentmem").parts[0] != "backends"]
    return [p for p in mine + list((ROOT / "migrations").rglob("*.py"))
            if "__pycache__" not in p.parts]


def test_no_direct_redis_outside_backends() -> None:
    problems = []
    for path in _files():
        rel = str(path.relative_to(ROOT))
        if rel in ALLOWED or rel.startswith(ALLOWED_TREES):
            continue
        text = path.read_text()
        for node in ast.walk(ast.parse(text)):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module.split(".")[0]]
            bad = DIRECT_MODULES.intersection(names)
            if bad:
                problems.append(f"{rel}:{node.lineno} imports {sorted(bad)}")
        for n, line in enumerate(text.splitlines(), 1):
            if re.search(r"\.client\b(?!_)", line) and not line.lstrip().startswith("#"):
                problems.append(f"{rel}:{n} uses a store's raw client: {line.strip()}")
    assert not problems, "\n".join(problems)


def test_the_exceptions_are_documented() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    assert "## One road to Redis" in text
    for name in ("backends/tracking.py", "agentmem/servers", "backends/admin.py"):
        assert name in text, f"architecture.md does not name the exception {name}"
