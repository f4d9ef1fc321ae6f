"""The kill matrix: the real suite against the reference and every faulty twin.

Each twin must make the suite report exactly the requirement IDs listed for
it in ``fixtures/kill_matrix.toml`` and end with the certification verdict
recorded there; the reference must produce no finding and be CERTIFIED. A
case run with a wire variant (``<case>+<variant>``, see ``VARIANTS`` in
``fixtures/kill_matrix.py``) must report exactly what its case reports.
The Hypothesis seed comes from ``KILL_MATRIX_SEED`` (random otherwise, and
printed so a failure can be reproduced).
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from fixtures.kill_matrix import load
from tests.suite_runner import run_suite

MATRIX = load()


def matrix_seed() -> int:
    return int(os.environ.get("KILL_MATRIX_SEED") or random.randrange(2**32))


@pytest.mark.parametrize("case", sorted(MATRIX))
def test_suite_reports_exactly_the_broken_requirements(case: str, tmp_path: Path) -> None:
    expected = MATRIX[case]
    seed = matrix_seed()
    with expected.started() as target_args:
        run = run_suite(
            # Detection, not the smallest counterexample, is proven here (the
            # detection runs of scripts/detection_rate.py keep the profile's budget).
            [
                *target_args,
                f"--hypothesis-seed={seed}",
                "--request-timeout=1",
                "--shrink-budget=0.5",
                "-q",
            ],
            tmp_path,
        )
    context = f"case={case} seed={seed} (rerun with KILL_MATRIX_SEED={seed})\n"
    context += run.output[-6000:]
    assert run.report is not None, context
    assert run.ids("error") == set(), context
    assert run.ids("fail") == expected.fail, context
    assert run.ids("warn") == expected.warn, context
    assert run.report["certification"]["verdict"] == expected.certification, context
    assert run.returncode == (1 if expected.fail else 0), context
