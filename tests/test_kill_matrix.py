"""The kill matrix: the real suite against the reference and every faulty twin.

Each twin must make the suite report exactly the requirement IDs listed for
it in ``fixtures/kill_matrix.toml``; the reference must produce no finding.
The Hypothesis seed comes from ``KILL_MATRIX_SEED`` (random otherwise, and
printed so a failure can be reproduced).
"""

from __future__ import annotations

import os
import random
import tomllib
from pathlib import Path

import pytest

from conformance.plugin.embedded import EmbeddedServer
from tests.suite_runner import REPO, run_suite

MATRIX: dict[str, dict[str, list[str]]] = tomllib.loads(
    (REPO / "fixtures" / "kill_matrix.toml").read_text()
)


def matrix_seed() -> int:
    return int(os.environ.get("KILL_MATRIX_SEED") or random.randrange(2**32))


@pytest.mark.parametrize("behaviour", sorted(MATRIX))
def test_suite_reports_exactly_the_broken_requirements(behaviour: str, tmp_path: Path) -> None:
    expected = MATRIX[behaviour]
    seed = matrix_seed()
    server = EmbeddedServer(args=["--behaviour", behaviour])
    url = server.start()
    try:
        run = run_suite(
            [f"--target={url}", f"--hypothesis-seed={seed}", "--request-timeout=1", "-q"],
            tmp_path,
        )
    finally:
        server.stop()
    context = f"behaviour={behaviour} seed={seed} (rerun with KILL_MATRIX_SEED={seed})\n"
    context += run.output[-6000:]
    assert run.report is not None, context
    assert run.ids("error") == set(), context
    assert run.ids("fail") == set(expected["fail"]), context
    assert run.ids("warn") == set(expected["warn"]), context
    assert run.returncode == (1 if expected["fail"] else 0), context
