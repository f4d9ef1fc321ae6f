"""The suite against third-party implementations nobody here wrote, with their baselines.

Each peer is installed from its registry at a pinned version
(``fixtures/peers/package-lock.json``, by ``scripts/ensure-peers``) and
started through the same ``--target`` contract as any server. Its baseline
lists every known deviation with a reason that cites the spec; a new
finding or a stale entry fails the test.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from conformance.baseline import load as load_baseline
from conformance.plugin.embedded import EmbeddedServer
from fixtures.peers.mockopampserver import HERE, installed
from tests.suite_runner import run_suite

BASELINE = HERE / "mockopampserver.expected.yaml"


def test_mockopampserver_holds_its_baseline(tmp_path: Path) -> None:
    problem = installed()
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{problem} (scripts/ensure-peers installs it in CI)")
        pytest.skip(problem)
    seed = random.randrange(2**32)
    server = EmbeddedServer("fixtures.peers.mockopampserver")
    url = server.start()
    try:
        run = run_suite(
            [
                f"--target={url}",
                f"--expected-failures={BASELINE}",
                f"--hypothesis-seed={seed}",
                "--request-timeout=2",
                "-q",
            ],
            tmp_path,
        )
    finally:
        server.stop()
    context = f"seed={seed}\n{run.output[-5000:]}"
    assert run.returncode == 0, context
    listed = {entry.id for entry in load_baseline(BASELINE)}
    assert run.ids("fail") | run.ids("warn") == listed, context
    assert run.ids("error") == set(), context
