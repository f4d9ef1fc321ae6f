"""Headless Chromium, driven over the DevTools protocol, to look at a report as a person would.

Only what the self-tests need: open a local file, evaluate an expression,
take a screenshot. Chromium runs in its own process group with a fresh
profile and every background fetch switched off (the machine's network is
closed), and is always killed on exit. Every wait is bounded.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
START_TIMEOUT = 30.0
STEP_TIMEOUT = 20.0
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)


def find_chromium() -> str | None:
    return next((p for p in map(shutil.which, CANDIDATES) if p), None)


class Page:
    """One browser tab, spoken to with DevTools protocol commands."""

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._ids = itertools.count(1)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send a command; wait (bounded) for its answer, skipping events."""
        call_id = next(self._ids)
        self._ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        deadline = time.monotonic() + STEP_TIMEOUT
        while True:
            message = json.loads(self._ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result

    def open(self, path: Path) -> None:
        """Navigate to a local file and wait until it has loaded."""
        self.call("Page.navigate", url=path.resolve().as_uri())
        deadline = time.monotonic() + STEP_TIMEOUT
        while time.monotonic() < deadline:
            state = self.evaluate("document.readyState")
            if state == "complete":
                return
            time.sleep(0.1)
        raise TimeoutError(f"{path} did not load within {STEP_TIMEOUT} s")

    def evaluate(self, expression: str) -> Any:
        answer = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in answer:
            raise RuntimeError(f"page script failed: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))


def _devtools_port(profile: Path, proc: subprocess.Popen[bytes]) -> int:
    marker = profile / "DevToolsActivePort"
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"chromium exited early with status {proc.returncode}")
        if marker.exists():
            first = marker.read_text().splitlines()[:1]
            if first and first[0].isdigit():
                return int(first[0])
        time.sleep(0.1)
    raise TimeoutError(f"chromium did not open its DevTools port within {START_TIMEOUT} s")


@contextmanager
def chromium_page(binary: str, width: int = 1280, height: int = 900) -> Iterator[Page]:
    """A fresh headless Chromium with one blank page; killed on exit, whatever happens."""
    with tempfile.TemporaryDirectory(prefix="fc-chromium-") as profile_dir:
        profile = Path(profile_dir)
        command = [
            binary,
            *FLAGS,
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            "about:blank",
        ]
        proc = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            port = _devtools_port(profile, proc)
            targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=STEP_TIMEOUT).json()
            page_url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
            with connect(page_url, max_size=None, open_timeout=STEP_TIMEOUT) as ws:
                page = Page(ws)
                page.call("Page.enable")
                yield page
        finally:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=STEP_TIMEOUT)
