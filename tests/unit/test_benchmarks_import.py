"""Every benchmark module imports (no server, nothing run): the benchmarks are not part
of the test run, so a name they import that moved would otherwise go unnoticed until
someone runs them (``benchmarks/ingest.py`` imported ``pack_args`` from where it no
longer was)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted(p.stem for p in (ROOT / "benchmarks").glob("*.py") if p.stem != "__init__")


@pytest.mark.parametrize("name", MODULES)
def test_benchmark_module_imports_and_has_a_main(name: str) -> None:
    module = importlib.import_module(f"benchmarks.{name}")
    assert callable(getattr(module, "main", None)) or name in ("floor", "servers", "spec_reference")
