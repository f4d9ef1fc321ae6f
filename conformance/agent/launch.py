"""The launch contract for agents under test: ``--agent-cmd`` and ``--agent-env``.

The command is a template split like a shell would (no shell runs it) with
placeholders the suite fills per scenario: ``{fleet_url}``,
``{opamp_url}``, ``{opamp_ws_url}``, ``{enrollment_token}``, ``{monitoring_port}``,
``{monitoring_url}``, ``{workdir}`` and ``{python}`` (the interpreter
running the suite). ``--agent-env NAME=VALUE`` adds environment variables,
placeholders allowed, for agents configured the container way
(``FLEET_URL``, ``FLEET_ENROLLMENT_TOKEN``).

Each scenario gets one process in its own process group and temporary work
directory, its output captured to ``agent.log`` there. It is stopped on
leaving the context (SIGTERM to the group, SIGKILL after a grace period,
then reaped), also when the test fails or the run is interrupted.
"""

from __future__ import annotations

import os
import shlex
import signal
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PLACEHOLDERS = (
    "fleet_url",
    "opamp_url",
    "opamp_ws_url",
    "enrollment_token",
    "monitoring_port",
    "monitoring_url",
    "workdir",
    "python",
)
#: Set in every agent's environment to the suite's process ID, so strays can be found.
MARKER_ENV = "FLEET_CONFORMANCE_AGENT"
GRACE = 3.0


class LaunchError(ValueError):
    """A command template or environment entry that cannot be used."""


def _check(template: str, where: str) -> None:
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise LaunchError(f"{where}: {exc} (write a literal brace as {{{{ or }}}})") from None
    unknown = sorted(n for n in names if n not in PLACEHOLDERS)
    if unknown:
        known = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
        raise LaunchError(f"{where}: unknown placeholder {{{unknown[0]}}} (known: {known})")


@dataclass(frozen=True)
class AgentCommand:
    """A checked ``--agent-cmd`` template plus its ``--agent-env`` entries."""

    template: str
    env: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, template: str, env: list[str] | tuple[str, ...] = ()) -> AgentCommand:
        if not template.strip():
            raise LaunchError("--agent-cmd is empty")
        try:
            shlex.split(template)
        except ValueError as exc:
            raise LaunchError(f"--agent-cmd: {exc}") from None
        _check(template, "--agent-cmd")
        pairs: list[tuple[str, str]] = []
        for entry in env:
            name, sep, value = entry.partition("=")
            if not sep or not name or not name.replace("_", "a").isalnum():
                raise LaunchError(f"--agent-env {entry!r}: expected NAME=VALUE")
            _check(value, f"--agent-env {name}")
            pairs.append((name, value))
        return cls(template, tuple(pairs))

    def render(self, values: Mapping[str, str]) -> tuple[list[str], dict[str, str]]:
        """The argv and extra environment for one scenario."""
        argv = [word.format(**values) for word in shlex.split(self.template)]
        env = {name: value.format(**values) for name, value in self.env}
        return argv, env


@dataclass
class AgentProcess:
    """A running agent under test."""

    proc: subprocess.Popen[bytes]
    workdir: Path
    argv: list[str]

    @property
    def log_path(self) -> Path:
        return self.workdir / "agent.log"

    def running(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 20, redact: tuple[str, ...] = ()) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        for secret in redact:
            if secret:
                text = text.replace(secret, secret[:2] + "***")
        return "\n".join(text.splitlines()[-lines:])

    def interrupt(self, signum: int, grace: float) -> bool:
        """Send ``signum`` to the process group; True when the agent exited within ``grace`` s."""
        if self.proc.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signum)
            with suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=grace)
        return self.proc.poll() is not None

    def stop(self) -> int | None:
        """SIGTERM to the process group, SIGKILL after the grace period; always reaped."""
        if self.proc.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=GRACE)
        # Children the agent started may outlive it: the whole group goes.
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=GRACE)
        _await_group_gone(self.proc.pid, GRACE)
        return self.proc.returncode


def _group_members(pgid: int) -> list[int] | None:
    """Live (non-zombie) processes in group ``pgid``; None where ``/proc`` cannot tell."""
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():
        return None
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and fields[0] != "Z" and fields[2] == str(pgid):
            members.append(int(entry.name))
    return members


def _await_group_gone(pgid: int, limit: float) -> None:
    """Wait up to ``limit`` s for SIGKILLed grandchildren to finish dying.

    They are not our children, so they cannot be waited for; the kernel
    tears them down a moment after the signal, and until then they still run.
    """
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        members = _group_members(pgid)
        if not members:
            return
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        time.sleep(0.02)


@contextmanager
def launched(command: AgentCommand, values: Mapping[str, str]) -> Iterator[AgentProcess]:
    """Start the agent for one scenario; stop and reap it on the way out, whatever happens."""
    with tempfile.TemporaryDirectory(prefix="fleet-conformance-agent-") as tmp:
        workdir = Path(tmp)
        argv, extra = command.render({**values, "workdir": str(workdir), "python": sys.executable})
        env = {**os.environ, **extra, MARKER_ENV: str(os.getpid())}
        with open(workdir / "agent.log", "wb") as log:
            try:
                proc = subprocess.Popen(
                    argv,
                    cwd=workdir,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as exc:
                raise LaunchError(f"--agent-cmd could not start {argv[0]!r}: {exc}") from None
        agent = AgentProcess(proc, workdir, argv)
        previous = _terminate_as_interrupt()
        try:
            yield agent
        finally:
            agent.stop()
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _terminate_as_interrupt() -> Any:
    """While an agent runs, SIGTERM to the suite unwinds like Ctrl-C, so the agent is reaped."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_interrupt)
