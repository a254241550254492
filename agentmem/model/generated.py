"""Running the source of a function generated from a declaration (the codecs and the
write planners compile their per-model functions once, at ``connect``).

The source is compiled first and its code object run: ``exec`` of a string goes through
CPython's ``PyRun_String``, which remembers any ``KeyboardInterrupt`` that ends the run
(a Ctrl-C lands there as easily as anywhere else), even one the caller then handles,
and a program started with ``python -m`` (``python -m agentmem.cli``) then exits by
SIGINT (status -2, silently) instead of with the status it chose (130). Running a code
object does not set that mark.
"""

from __future__ import annotations

from typing import Any

__all__ = ["run_source"]


def run_source(lines: list[str], env: dict[str, Any]) -> None:
    """Run the generated source ``lines`` with ``env`` as its globals (where the
    functions it defines land)."""
    exec(compile("\n".join(lines), "<string>", "exec"), env)
