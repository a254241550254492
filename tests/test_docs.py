"""The documentation agrees with the code: key table, public names, examples, links.

Pure file checks; no server is started here.
"""

from __future__ import annotations

import ast
import inspect
import re
import typing
from pathlib import Path

import pytest

import agentmem
from agentmem.keyspace import key_table

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"

# Public classes/functions that need not be named in docs/ (none at present).
UNDOCUMENTED_OK: frozenset[str] = frozenset()


def doc_files() -> list[Path]:
    return sorted(DOCS.glob("*.md"))


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", path.read_text(), re.S | re.M)


def cells(line: str) -> list[str]:
    return [c.strip().strip("`") for c in line.strip().strip("|").split("|")]


def test_docs_exist() -> None:
    names = {p.name for p in doc_files()}
    assert {"index.md", "keyspace.md", "models.md", "queries.md", "architecture.md",
            "spec-defects.md"} <= names


def test_key_table_matches_layout_v1() -> None:
    lines = (DOCS / "keyspace.md").read_text().splitlines()
    header = next(i for i, line in enumerate(lines)
                  if cells(line) == ["Family", "Pattern", "Type", "Purpose"])
    rows = []
    for line in lines[header + 2:]:
        if not line.startswith("|"):
            break
        rows.append(tuple(cells(line)))
    expected = [(r.name, r.pattern, r.type, r.purpose) for r in key_table(1)]
    assert [r[:3] for r in rows] == [e[:3] for e in expected]
    assert rows == expected


def _public_callables() -> list[str]:
    out = []
    for name in agentmem.__all__:
        obj = getattr(agentmem, name)
        if inspect.isclass(obj) or inspect.isroutine(obj) or (
                callable(obj) and typing.get_origin(obj) is None):
            out.append(name)
    return out


def test_public_names_are_documented() -> None:
    text = "\n".join(p.read_text() for p in doc_files())
    missing = [n for n in _public_callables()
               if n not in UNDOCUMENTED_OK and not re.search(rf"\b{re.escape(n)}\b", text)]
    assert not missing, f"public names never mentioned in docs/: {missing}"


def test_public_callables_found() -> None:
    names = _public_callables()
    assert {"connect", "connect_async", "declare", "layout", "Action", "Repository"} <= set(names)


def test_readme_setup_and_example() -> None:
    text = README.read_text()
    assert 'pip install -e ".[dev]"' in text
    assert "AGENTMEM_TEST_REDIS_URL" in text
    assert "python benchmarks/bench.py" in text
    blocks = python_blocks(README)
    assert blocks, "README has no python example"
    for n, block in enumerate(blocks):
        compile(block, f"README.md python block {n}", "exec")
    usage = "\n".join(blocks)
    for call in ("connect(", "connect_async(", ".record(", ".add(", ".add_many(", ".by_type(",
                 ".high_reward(", ".relative(", ".at_step(", ".type_counts("):
        assert call in usage, f"README example does not show {call}"


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: p.name)
def test_doc_python_blocks_compile(path: Path) -> None:
    for n, block in enumerate(python_blocks(path)):
        compile(block, f"{path.name} python block {n}", "exec")


def _slug(heading: str) -> str:
    s = heading.strip().lower().replace("`", "")
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.S | re.M)
    return {_slug(m) for m in re.findall(r"^#+ (.+)$", text, re.M)}


@pytest.mark.parametrize("path", [README, *doc_files()], ids=lambda p: p.name)
def test_relative_links_resolve(path: Path) -> None:
    for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text()):
        if "://" in target or target.startswith("mailto:"):
            continue
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        if dest.name == "performance.md" and not dest.exists():
            continue  # written by the benchmark, may be absent in a partial checkout
        assert dest.exists(), f"{path.name}: broken link {target}"
        if anchor and dest.suffix == ".md":
            assert anchor in _anchors(dest), f"{path.name}: no heading #{anchor} in {dest.name}"


def _module_file(module: str) -> Path:
    if module.startswith("backends."):
        return ROOT / "backends" / (module.split(".", 1)[1] + ".py")
    return ROOT / "agentmem" / (module.replace(".", "/") + ".py")


def _imported_modules(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "agentmem":
                out.update(a.name for a in node.names)
            elif node.module.startswith("agentmem."):
                out.add(node.module.removeprefix("agentmem."))
        elif isinstance(node, ast.Import):
            out.update(a.name.removeprefix("agentmem.") for a in node.names
                       if a.name.startswith("agentmem."))
    return out


def test_architecture_layers_hold() -> None:
    text = (DOCS / "architecture.md").read_text()
    layers = {m: int(n) for n, mods in re.findall(r"^layer (\d+): (.+)$", text, re.M)
              for m in mods.split()}
    assert layers, "architecture.md has no layer listing"
    for module, layer in layers.items():
        path = _module_file(module)
        assert path.exists(), f"architecture.md lists {module}, which does not exist"
        for dep in _imported_modules(path):
            if dep in layers:
                assert layers[dep] < layer, (
                    f"{module} (layer {layer}) imports {dep} (layer {layers[dep]})")


def test_ci_installs_as_readme_says() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'python -m pip install -e ".[dev]"' in ci
    assert "set -euo pipefail" in ci
