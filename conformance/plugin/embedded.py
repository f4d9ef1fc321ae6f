"""Starting and stopping a bundled target process (the reference server)."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO

READY_PREFIX = "READY "


class EmbeddedError(RuntimeError):
    """The bundled target could not be started."""


class EmbeddedServer:
    """A target process started on a free loopback port, in its own process group.

    The process prints ``READY <url>`` once it listens; :meth:`start` waits for
    that line at most ``timeout`` seconds.
    """

    def __init__(self, module: str = "fixtures.reference.server", args: Sequence[str] = ()):
        self.command = [sys.executable, "-m", module, "--host", "127.0.0.1", "--port", "0"]
        self.command += list(args)
        self.url = ""
        self._proc: subprocess.Popen[str] | None = None
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - lives as long as the server
            mode="w+", prefix="fleet-conformance-target-", suffix=".log", delete=False
        )

    @property
    def log_path(self) -> Path:
        return Path(self._log.name)

    def start(self, timeout: float = 20.0) -> str:
        self._proc = subprocess.Popen(
            self.command,
            stdout=subprocess.PIPE,
            stderr=self._log,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        assert self._proc.stdout is not None
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=_pump, args=(self._proc.stdout, lines), daemon=True).start()
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            line = ""
        if not line.startswith(READY_PREFIX):
            self.stop()
            raise EmbeddedError(
                f"bundled target {' '.join(self.command)!r} did not start within {timeout:g} s"
                f"; its log:\n{self.log_tail()}"
            )
        self.url = line[len(READY_PREFIX) :].strip()
        return self.url

    def log_tail(self, lines: int = 30) -> str:
        self._log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:]) or "<empty>"

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, grace: float = 5.0) -> None:
        """Terminate the process group, then kill it if it lingers; always reaps."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, grace)):
            if proc.poll() is not None:
                break
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
        if proc.stdout is not None:
            proc.stdout.close()


def _pump(stream: IO[str], lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)
