"""A bundled server started by the suite stops by itself when its starter dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from conformance.plugin.embedded import PARENT_ENV
from fixtures.reference import parent_watch

#: Starts a reference server through EmbeddedServer, prints its pid, then waits to be killed.
_STARTER = """
import sys, time
from conformance.plugin.embedded import EmbeddedServer
server = EmbeddedServer(args=["--behaviour", "reference"])
server.start()
print(server._proc.pid, flush=True)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purpose; its parent (init) reaps it.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(") ")[-1][0] != "Z"


def test_the_variable_names_match() -> None:
    assert parent_watch.PARENT_ENV == PARENT_ENV


def test_a_server_outlives_its_killed_starter_by_about_a_check() -> None:
    starter = subprocess.Popen([sys.executable, "-c", _STARTER], stdout=subprocess.PIPE, text=True)
    assert starter.stdout is not None
    try:
        server = int(starter.stdout.readline())
        assert _alive(server)
        starter.send_signal(signal.SIGKILL)
        starter.wait(timeout=10)
        deadline = time.monotonic() + 15
        while _alive(server) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(server), "the server kept running after its starter was killed"
    finally:
        starter.kill()
        starter.wait(timeout=10)
        if "server" in locals() and _alive(server):
            os.kill(server, signal.SIGKILL)


def test_no_variable_no_watch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PARENT_ENV, raising=False)
    assert parent_watch.watched_parent() is None
    monkeypatch.setenv(PARENT_ENV, "not-a-pid")
    assert parent_watch.watched_parent() is None
