"""Optional extras: without them, a clear error that says what to install (no server).

matplotlib (``agentmem[report]``) draws the PNG report, pyarrow (``agentmem[parquet]``)
writes Parquet; the core imports neither. Their absence is simulated by hiding the
module (``sys.modules[name] = None`` makes its import fail).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest

from agentmem.app import report
from agentmem.cli import inspecting
from agentmem.errors import AgentMemError, ConfigError


def test_the_report_without_matplotlib_says_what_to_install(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ConfigError, match=r'pip install "agentmem\[report\]"'):
        report._figure(4, 3)
    assert issubclass(ConfigError, AgentMemError)  # the CLI prints it as an error, exit 1


def test_parquet_export_without_pyarrow_says_what_to_install(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    out = tmp_path / "rows.parquet"
    with pytest.raises(click.UsageError, match=r'pip install "agentmem\[parquet\]"'):
        inspecting._Sink(out, "parquet")
    assert not out.exists()  # refused before the file is created


def test_the_core_and_the_cli_import_without_the_extras() -> None:
    code = ("import sys\n"
            "for name in ('matplotlib', 'pyarrow'):\n"
            "    sys.modules[name] = None\n"
            "import agentmem, agentmem.cli, agentmem.app.demo, agentmem.app.report\n"
            "print('ok')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
