"""Every Lua script is a file with its contract in a header; shared parts only through
``--!include`` (agentmem.lua.loader). No server needed."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from agentmem.lua.loader import INCLUDE, Script, resolve, source_files

ROOT = Path(__file__).resolve().parents[2]
MODULES = ["scripts", "tiers", "integrity", "cluster", "search", "radius", "migrations",
           "dualwrite"]


def declared() -> dict[str, Script]:
    out: dict[str, Script] = {}
    for m in MODULES:
        for value in vars(importlib.import_module(f"agentmem.lua.{m}")).values():
            if isinstance(value, Script):
                out[value.name] = value
    return out


SCRIPTS = sorted(f for f in source_files() if not f.startswith("lib/"))


def test_every_script_file_is_declared_and_every_declaration_has_a_file() -> None:
    names = {f.rsplit("/", 1)[1].removesuffix(".lua") for f in SCRIPTS}
    assert names == set(declared())


@pytest.mark.parametrize("rel", SCRIPTS)
def test_a_script_states_its_contract_first(rel: str) -> None:
    text = (ROOT / "agentmem" / "lua" / "src" / rel).read_text()
    lines = text.splitlines()
    assert re.fullmatch(r"#!lua( flags=(no-writes|allow-oom))?", lines[0])
    head = lines[1:5]
    assert head[0].startswith("-- " + rel.rsplit("/", 1)[1].removesuffix(".lua") + ": ")
    assert head[1].startswith("-- KEYS: ")
    assert head[2].startswith("-- ARGV: ")
    assert head[3].startswith("-- Reply: ")


@pytest.mark.parametrize("rel", source_files())
def test_every_include_resolves(rel: str) -> None:
    text = resolve(rel)
    assert not any(INCLUDE.match(line) for line in text.splitlines())


def test_an_include_cycle_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agentmem.lua import loader

    files = {"lib/a.lua": "--!include lib/b.lua\n", "lib/b.lua": "--!include lib/a.lua\n"}
    monkeypatch.setattr(loader, "_read", lambda rel: files[rel])
    with pytest.raises(ValueError, match="cycle"):
        loader.resolve("lib/a.lua")


def test_the_sha_is_that_of_the_resolved_source() -> None:
    import hashlib

    for s in declared().values():
        assert s.sha == hashlib.sha1(s.source.encode()).hexdigest()
        assert "--!include" not in s.source


def test_no_lua_left_in_python() -> None:
    """No Python module of agentmem holds Lua (no redis.call in a string)."""
    hits = []
    for path in (ROOT / "agentmem").rglob("*.py"):
        if "__pycache__" in path.parts or path.is_symlink():
            continue
        text = path.read_text()
        if "redis.call(" in text or "redis.pcall(" in text:
            hits.append(str(path.relative_to(ROOT)))
    for path in (ROOT / "backends").rglob("*.py"):
        if "redis.call(" in path.read_text():
            hits.append(str(path.relative_to(ROOT)))
    assert not hits, hits
