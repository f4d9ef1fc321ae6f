"""SIGTERM ends a run the way Ctrl-C does, so the run still writes its report.

A CI timeout or a cancelled job sends SIGTERM. Python's default for it is to
die on the spot: no report, agents left running. The handler turns the first
SIGTERM or SIGINT into ``KeyboardInterrupt`` in the main thread, which pytest
(and pytest-xdist's controller) already treat as an interruption: fixtures
tear down (agents are reaped), ``pytest_sessionfinish`` runs, and the report
says INCOMPLETE with what was not judged. Later signals are ignored while the
run winds down (a third one kills the process as the default would).

The xdist controller forwards the signal to its workers (its child
processes): a signal sent to the controller alone would otherwise leave the
workers to be shut down without tearing down the agents they launched.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from pathlib import Path
from types import FrameType

_received: list[int] = []
_forward = {"enabled": False}
#: Signals handled; a worker gets SIGTERM from the controller whatever the controller got.
SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)
    if len(_received) == 1:
        if _forward["enabled"]:
            for pid in child_pids():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGTERM)
        raise KeyboardInterrupt(f"stopped by signal {signal.Signals(signum).name}")
    if len(_received) >= 3:
        # Asked three times: stop at once, as the default action would have.
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)


def child_pids(parent: int | None = None) -> list[int]:
    """The direct children of ``parent`` (default: this process); Linux /proc, else none."""
    me = os.getpid() if parent is None else parent
    found: list[int] = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # The command name (field 2) may hold spaces: the parent pid follows its ')'.
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == me:
                found.append(int(stat.parent.name))
    return found


def install(*, forward_to_children: bool) -> None:
    """Handle SIGTERM and SIGINT in this process; a no-op off the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return
    _forward["enabled"] = forward_to_children
    for signum in SIGNALS:
        signal.signal(signum, _on_signal)


def received() -> bool:
    """Whether SIGTERM or SIGINT reached this process."""
    return bool(_received)
