"""SIGTERM ends a run the way Ctrl-C does, so the run still writes its report.

A CI timeout or a cancelled job sends SIGTERM. Python's default for it is to
die on the spot: no report, agents left running. The handler turns it into
``KeyboardInterrupt`` in the main thread, which pytest (and pytest-xdist's
controller) already treat as an interruption: fixtures tear down (agents are
reaped), ``pytest_sessionfinish`` runs, and the report says INCOMPLETE with
what was not judged.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

_received: list[int] = []


def _on_signal(signum: int, frame: FrameType | None) -> None:
    first = not _received
    _received.append(signum)
    if first:
        raise KeyboardInterrupt(f"stopped by signal {signal.Signals(signum).name}")
    if len(_received) >= 3:
        # Asked three times: stop at once, as the default action would have.
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)
    # A second signal while the run winds down: the report is being written, let it be.


def install() -> None:
    """Handle SIGTERM (and note SIGINT) in this process; a no-op off the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGTERM, _on_signal)


def received() -> bool:
    """Whether SIGTERM reached this process."""
    return bool(_received)
