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
from typing import IO

READY_PREFIX = "READY "
#: Names the starting process to the target (``fixtures/reference/parent_watch.py``).
PARENT_ENV = "FLEET_CONFORMANCE_PARENT_PID"
#: How much of the end of the log :meth:`EmbeddedServer.log_tail` reads.
_TAIL_BYTES = 64 * 1024


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
        #: The process's stderr: an unnamed temporary file, so no run leaves one behind.
        self._log: IO[bytes] | None = None

    def start(self, timeout: float = 20.0) -> str:
        self._discard_log()
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the server
        try:
            self._proc = subprocess.Popen(
                self.command,
                stdout=subprocess.PIPE,
                stderr=self._log,
                stdin=subprocess.DEVNULL,
                text=True,
                start_new_session=True,
                # The target stops by itself if this process dies without stopping it.
                env={**os.environ, PARENT_ENV: str(os.getpid())},
            )
        except BaseException:
            self._discard_log()
            raise
        assert self._proc.stdout is not None
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=_pump, args=(self._proc.stdout, lines), daemon=True).start()
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            line = ""
        if not line.startswith(READY_PREFIX):
            self._terminate()
            tail = self.log_tail()
            self._discard_log()
            raise EmbeddedError(
                f"bundled target {' '.join(self.command)!r} did not start within {timeout:g} s"
                f"; its log:\n{tail}"
            )
        self.url = line[len(READY_PREFIX) :].strip()
        return self.url

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines the process wrote to stderr."""
        if self._log is None:
            return "<empty>"
        fd = self._log.fileno()
        size = os.fstat(fd).st_size
        # pread leaves the file offset, which the process shares, where it is.
        data = os.pread(fd, min(size, _TAIL_BYTES), max(0, size - _TAIL_BYTES))
        text = data.decode(errors="replace").splitlines()
        return "\n".join(text[-lines:]) or "<empty>"

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, grace: float = 5.0) -> None:
        """Terminate the process group, then kill it if it lingers; always reaps.

        The log goes too (it never had a name in the temporary directory).
        """
        self._terminate(grace)
        self._discard_log()

    def _discard_log(self) -> None:
        log, self._log = self._log, None
        if log is not None:
            log.close()

    def _terminate(self, grace: float = 5.0) -> None:
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
