"""The suite against third-party implementations nobody here wrote, with their baselines.

Each peer (``fixtures/peers/registry.py``) is installed from its registry at
a pinned version (npm: ``fixtures/peers/package-lock.json`` by
``scripts/ensure-peers``; PyPI: the ``dev`` extra) and reached through the
same ``--target`` / ``--agent-cmd`` contract as any implementation. Its
baseline lists every known deviation with a reason that cites the spec; a
new finding or a stale entry fails the test. The README's interop table
must be the one ``reports/interop.json`` gives (``scripts/interop.py``).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.baseline import load as load_baseline
from fixtures.peers.interop import END, START, summarise, table
from fixtures.peers.registry import PEERS
from tests.suite_runner import REPO, run_peer


@pytest.mark.parametrize("name", sorted(PEERS))
def test_peer_holds_its_baseline(name: str, tmp_path: Path) -> None:
    peer = PEERS[name]
    problem = peer.missing()
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{problem} (scripts/ensure-peers and .ci/run install it in CI)")
        pytest.skip(problem)
    seed = random.randrange(2**32)
    run = run_peer(peer, tmp_path, seed)
    context = f"peer={name} seed={seed}\n{run.output[-5000:]}"
    assert run.report is not None, context
    listed = {entry.id for entry in load_baseline(Path(peer.baseline))}
    assert run.ids("error") == set(), context
    assert run.ids("fail") | run.ids("warn") == listed, context
    assert run.returncode == 0, context
    row = summarise(peer, run.report)
    assert row["must_fail"] == len(run.ids("fail") & {r for r in listed}), context


def test_readme_interop_table_is_generated() -> None:
    rows = json.loads((REPO / "reports" / "interop.json").read_text())["peers"]
    assert {row["peer"] for row in rows} == set(PEERS)
    readme = (REPO / "README.md").read_text()
    block = readme[readme.index(START) + len(START) : readme.index(END)].strip()
    assert block == table(rows)
    check = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "interop.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stdout + check.stderr
