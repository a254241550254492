"""Generated functions are run from a code object (``agentmem.model.generated``), so a
Ctrl-C that lands in them does not turn ``python -m agentmem.cli``'s exit status into a
death by SIGINT (review 98: ``Error: interrupted``, then status -2, not 130)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import agentmem

PROBE = """
import sys
from agentmem.model.generated import run_source
env = {}
run_source(["def f():", "    return 41 + 1"], env)
assert env["f"]() == 42
try:  # generated code that says it runs, then waits for the Ctrl-C
    run_source(["import time", "print('ready', flush=True)",
                "for _ in range(3000): time.sleep(0.01)"], {})
except KeyboardInterrupt:
    print("Error: interrupted", file=sys.stderr)  # handled, as the CLI handles it
    sys.exit(130)
"""


def test_a_ctrl_c_handled_in_generated_code_keeps_the_exit_status(tmp_path: Path) -> None:
    """``python -m`` of a module whose generated code gets SIGINT and handles it: the
    status it chose (130), where ``exec`` of the source string gave -2."""
    (tmp_path / "probe.py").write_text(PROBE)
    root = str(Path(agentmem.__file__).resolve().parents[1])
    kid = subprocess.Popen([sys.executable, "-m", "probe"], cwd=tmp_path, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env={"PYTHONPATH": root},
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert kid.stdout is not None
    assert kid.stdout.readline().strip() == "ready"
    kid.send_signal(signal.SIGINT)
    _, err = kid.communicate(timeout=60)
    assert (kid.returncode, err) == (130, "Error: interrupted\n")


def test_no_module_runs_generated_source_as_a_string() -> None:
    package = Path(agentmem.__file__).resolve().parent
    found = [f"{p.relative_to(package)}:{n}"
             for p in sorted(package.rglob("*.py")) if p.name != "generated.py"
             for n, line in enumerate(p.read_text().splitlines(), 1)
             if re.search(r"\bexec\(", line)]
    assert found == []
