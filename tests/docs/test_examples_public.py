"""The docs' examples use the public surface: ``import agentmem`` and its exports.

Every ```python block of README.md and docs/*.md is parsed; an import of an
agentmem module other than ``agentmem`` itself fails, unless the module is one of
the documented feature modules below (each has its own page and is imported by
its full name there). Construction (``open``, ``DualWriter``, ``Tiers``,
``open_archive``, ``connect_cluster``) and the errors never need one. Also: the
configuration page lists every option of ``agentmem.open``. No server is needed.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import agentmem
from agentmem.config import option_names
from agentmem.config.reader import env_name

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

DOCUMENTED_MODULES = {
    "agentmem.tiers.reads": "reads across the tiers (tiers.md)",
    "agentmem.integrity": "check and repair (integrity.md)",
    "agentmem.search.similarity": "similarity search (search.md)",
    "agentmem.search.sequences": "sequence analytics (search.md)",
    "agentmem.dualwrite.sync": "Redis <-> SQL sync (sync.md)",
    "agentmem.integrations.agentfarm": "AgentFarm's DataLogger drop-in (agentfarm.md)",
    "agentmem.app.demo": "the demo as a library (demo.md)",
    "agentmem.app.report": "the demo's report (demo.md)",
    "agentmem.migrations": "layout and archive migrations (layouts.md, migrations.md)",
}
"""Feature modules the docs import by name: each is a documented extension of the core."""


def _blocks(path: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", path.read_text(), re.S | re.M)


def _imports(source: str) -> list[str]:
    """The agentmem modules a block imports (``from agentmem import x`` is ``agentmem``)."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "agentmem":  # an export, or a subpackage by another road
                out.extend("agentmem" if a.name in agentmem.__all__ else f"agentmem.{a.name}"
                           for a in node.names)
            elif node.module.startswith("agentmem."):
                out.append(node.module)
        elif isinstance(node, ast.Import):
            out.extend(a.name for a in node.names if a.name.startswith("agentmem"))
    return out


def _allowed(module: str) -> bool:
    if module == "agentmem":
        return True
    return any(module == m or module.startswith(m + ".") for m in DOCUMENTED_MODULES) \
        and not any(part.startswith("_") for part in module.split("."))


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.name)
def test_examples_import_only_public_names(path: Path) -> None:
    bad = [(n, m) for n, block in enumerate(_blocks(path)) for m in _imports(block)
           if not _allowed(m)]
    assert not bad, (f"{path.name}: python blocks import non-public modules "
                     f"{bad}; use `import agentmem` and its exports")


def test_the_checker_catches_a_private_import() -> None:
    assert _imports("from agentmem.backends.sql import open_archive") == [
        "agentmem.backends.sql"]
    assert not _allowed("agentmem.backends.sql")
    assert not _allowed("agentmem.dualwrite.writer")
    assert _imports("import agentmem\nfrom agentmem import Action") == ["agentmem", "agentmem"]
    assert not _allowed(_imports("from agentmem import tiers")[0])
    assert _allowed("agentmem.migrations.redis")


def test_the_public_surface_has_the_everyday_names() -> None:
    for name in ("open", "Store", "DualWriter", "Tiers", "TierPolicy", "open_archive",
                 "Archive", "Failover", "connect_cluster", "StoreSettings", "RedisSettings",
                 "DualWriteSettings", "TierSettings", "ArchiveSettings"):
        assert name in agentmem.__all__, name
    errors = [n for n in dir(agentmem.errors) if isinstance(getattr(agentmem.errors, n), type)
              and issubclass(getattr(agentmem.errors, n), agentmem.AgentMemError)]
    assert set(errors) <= set(agentmem.__all__)


def test_configuration_lists_every_option() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    missing = [n for n in option_names() if f"`{n}`" not in text
               or (n not in ("layout",) and f"`{env_name(n)}`" not in text)]
    assert not missing, f"docs/configuration.md does not list {missing}"
