"""SIGTERM ends the process the way Ctrl-C does, so that writers flush.

Python's default SIGTERM action kills the process at once: no ``finally``, no
``with`` exit, no ``atexit`` hook, so whatever a dual writer buffered would be lost.
The first writer created in the main thread, while SIGTERM still has its default
action, installs a handler that raises ``SystemExit(143)`` instead: the stack
unwinds, every writer is closed (``with`` blocks, then the ``atexit`` hooks) and
the process exits with the status a SIGTERM kill reports to a shell. A handler the
application installed itself is never replaced.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

__all__ = ["exit_on_sigterm"]


def _raise_exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def exit_on_sigterm() -> bool:
    """Install the handler if SIGTERM has its default action and this is the main
    thread; True if it is installed (now or before)."""
    if threading.current_thread() is not threading.main_thread():
        return signal.getsignal(signal.SIGTERM) is _raise_exit
    current = signal.getsignal(signal.SIGTERM)
    if current is _raise_exit:
        return True
    if current != signal.SIG_DFL:
        return False
    signal.signal(signal.SIGTERM, _raise_exit)
    return True
