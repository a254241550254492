"""The docs' Python examples run, as written, against a real server.

Every ```python block of README.md and docs/*.md runs, page by page in one namespace
(later blocks use what earlier ones made), in an empty folder, with the Redis URLs of
the examples (``redis://127.0.0.1:6379/<db>``) pointed at the tests' Valkey 9 with the
search module (``search_server`` in tests/conftest.py). A block that needs what a test
machine cannot give it (AgentFarm's own objects, a PostgreSQL or cluster address of
the reader's) is preceded in the page by ``<!-- not run: <reason> -->``; such a block
must still compile, and the reason is listed below so that nobody marks a block to
hide a failure.
"""

from __future__ import annotations

import contextlib
import re
import sys
import types
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"(?:<!-- not run: (?P<why>[^>]*?) -->\n+)?^```python\n(?P<code>.*?)^```",
                   re.S | re.M)
URL = re.compile(r"redis://127\.0\.0\.1:6379(?:/\d+)?")


def blocks(path: Path) -> list[tuple[str, str | None]]:
    return [(m["code"], m["why"]) for m in BLOCK.finditer(path.read_text())]


@pytest.mark.parametrize("path", [p for p in PAGES if blocks(p)],
                         ids=lambda p: p.name)
def test_the_pages_examples_run(path: Path, search_server: Any, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    import redis

    server = search_server  # Valkey 9 with the search module: search.md's examples too
    redis.Redis.from_url(server.url).flushall()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AGENTMEM_DATA", str(tmp_path / "agentmem-data"))
    # a real module, so that pydantic finds the example's names when it builds a model
    module = types.ModuleType(f"agentmem_docs_{path.stem.replace('-', '_')}")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace = module.__dict__
    ran = 0
    for n, (code, why) in enumerate(blocks(path)):
        compile(code, f"{path.name} block {n}", "exec")
        if why is not None:
            assert why.strip(), f"{path.name} block {n}: a not-run block needs a reason"
            continue
        code = URL.sub(server.url, code)
        try:
            exec(compile(code, f"{path.name} block {n}", "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"{path.name} python block {n} failed: "
                                 f"{type(exc).__name__}: {exc}") from exc
        ran += 1
    for value in list(namespace.values()):  # stores the example left open
        close = getattr(value, "close", None)
        if callable(close) and type(value).__module__.startswith("agentmem"):
            with contextlib.suppress(Exception):  # already closed, or its server is gone
                close()
    assert ran or all(why for _, why in blocks(path))
