"""The documentation agrees with the code: key table, public names, examples, links.

File checks, and a strict ``mkdocs build`` of the site into a temporary folder;
no server is started here.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest

import agentmem
from agentmem.plans.keyspace import key_table

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
REFERENCE = DOCS / "reference"

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


def _key_tables() -> list[list[tuple[str, ...]]]:
    """The rows of every Family | Pattern | Type | Purpose table of keyspace.md, in order."""
    lines = (DOCS / "keyspace.md").read_text().splitlines()
    tables = []
    for i, line in enumerate(lines):
        if cells(line) != ["Family", "Pattern", "Type", "Purpose"]:
            continue
        rows = []
        for row in lines[i + 2:]:
            if not row.startswith("|"):
                break
            rows.append(tuple(cells(row)))
        tables.append(rows)
    return tables


@pytest.mark.parametrize("version", [1, 2])
def test_key_table_matches_layout(version: int) -> None:
    tables = _key_tables()
    assert len(tables) == 2, "keyspace.md shows one key table per layout version, in order"
    rows = tables[version - 1]
    expected = [(r.name, r.pattern, r.type, r.purpose) for r in key_table(version)]
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
    """The README is a quickstart: one command installs, one runs the main job, one
    runs the tests (the one .ci/run runs), and a short API example that compiles."""
    text = README.read_text()
    setup = re.search(r"## Set-up\n.*?```sh\n(.*?)```", text, re.S)
    assert setup, "README has no set-up commands"
    commands = [line.split("#")[0].strip() for line in setup.group(1).splitlines()
                if line.strip()]
    assert commands == ['pip install -e ".[dev]"', "agentmem demo", "pytest"]
    assert "pytest" in (ROOT / ".ci" / "run").read_text()
    blocks = python_blocks(README)
    assert blocks, "README has no python example"
    for n, block in enumerate(blocks):
        compile(block, f"README.md python block {n}", "exec")
    usage = "\n".join(blocks)
    assert len(usage.splitlines()) <= 12
    for call in ("connect(", ".record(", ".by_type(", ".high_reward(", ".relative("):
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


@pytest.mark.parametrize("path", [README, *doc_files(), *sorted(REFERENCE.glob("*.md"))],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path: Path) -> None:
    for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text()):
        if "://" in target or target.startswith("mailto:"):
            continue
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        if path != README:
            # The site is built from docs/ alone: a link out of it is a dead link there.
            assert dest.is_relative_to(DOCS), f"{path.name}: {target} leaves docs/"
        if dest.name == "performance.md" and not dest.exists():
            continue  # written by the benchmark, may be absent in a partial checkout
        assert dest.exists(), f"{path.name}: broken link {target}"
        if anchor and dest.suffix == ".md":
            assert anchor in _anchors(dest), f"{path.name}: no heading #{anchor} in {dest.name}"


def test_ci_installs_as_readme_says() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'python -m pip install -e ".[dev]"' in ci
    assert "set -euo pipefail" in ci
    assert 'export PIP_CONSTRAINT="$PWD/constraints.txt"' in ci  # the tested versions
    assert "python tools/constraints.py --check" in ci  # and nothing pulled in unpinned


def test_constraints_pin_every_dependency() -> None:
    """constraints.txt pins each requirement of pyproject.toml (core and dev extra)."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        wanted += [r for r in extra if not r.startswith("agentmem")]
    names = {re.split(r"[\[<>=!~; ]", r, maxsplit=1)[0].lower().replace("_", "-")
             for r in wanted}
    pinned = {line.split("==")[0] for line in (ROOT / "constraints.txt").read_text().splitlines()
              if "==" in line and not line.startswith("#")}
    assert names <= pinned, f"not pinned in constraints.txt: {sorted(names - pinned)}"


def test_reference_lists_every_export() -> None:
    text = (REFERENCE / "agentmem.md").read_text()
    missing = [n for n in agentmem.__all__ if f"[`{n}`]" not in text]
    assert not missing, f"docs/reference/agentmem.md does not list {missing}"


def _mkdocs_missing() -> list[str]:
    return [m for m in ("mkdocs", "material", "mkdocstrings_handlers.python", "mkdocs_click")
            if importlib.util.find_spec(m) is None]


@pytest.mark.skipif(bool(_mkdocs_missing()), reason="mkdocs and its plugins are not installed")
def test_mkdocs_build_strict(tmp_path: Path) -> None:
    """The site builds without a single warning (links, anchors, nav, API reference)."""
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet",
         "--config-file", str(ROOT / "mkdocs.yml"), "--site-dir", str(site)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (site / "index.html").exists()
    assert (site / "reference" / "backends-redis" / "index.html").exists()
    redis_page = (site / "reference" / "backends-redis" / "index.html").read_text()
    assert 'id="agentmem.backends.redis.connect"' in redis_page


def test_no_merge_conflict_markers() -> None:
    """No file of the repository holds a merge's conflict markers (a docs page did once)."""
    found = []
    for path in [README, *ROOT.glob("docs/**/*.md"), *ROOT.glob("agentmem/**/*.py"),
                 *ROOT.glob("agentmem/**/*.lua"), *ROOT.glob("tests/**/*.py"),
                 *ROOT.glob("backends/*.py"), *ROOT.glob("migrations/**/*.py"),
                 *ROOT.glob("benchmarks/*.py")]:
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if line.startswith(("<<<<<<< ", ">>>>>>> ")) or line == "=======":
                found.append(f"{path.relative_to(ROOT)}:{n}")
    assert found == []
