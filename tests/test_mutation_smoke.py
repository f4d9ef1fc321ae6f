"""The mutation benchmark end to end on three fixed mutants (``benchmarks/mutation.py``).

Each mutant is chosen by its stable key (file, operator, source line text),
not by line number, so unrelated edits of the reference files do not move
it. One server-logic mutant must be killed, one listed in
``benchmarks/mutation_triage.toml`` must survive as equivalent, and one of
the OpAMP agent must be killed: that one proves the agent the suite launches
through ``--agent-cmd`` runs the mutated copy, not the working tree.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from benchmarks import mutation_triage
from benchmarks.mutation import REPO, Plan, measure, snapshot_of
from benchmarks.mutation_mutants import Mutant, enumerate_mutants, find

LOGIC = "fixtures/reference/logic.py"
OPAMP_AGENT = "fixtures/reference/opamp_agent.py"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_fixed_mutants_are_killed_or_triaged_as_equivalent() -> None:
    before = {f: _digest(REPO / f) for f in (LOGIC, OPAMP_AGENT)}
    triage = mutation_triage.load()
    with snapshot_of(REPO) as snap:
        mutants = enumerate_mutants(snap, ["opamp-server", "opamp-agent"]).mutants
        # The server no longer asks for full state when the model says it must.
        flag = find(mutants, LOGIC, "core/AddNot", "if flag:")
        # The agent ignores ReportFullState.
        ignores = find(
            mutants, OPAMP_AGENT, "core/AddNot", "if flags & ServerFlag.REPORT_FULL_STATE:"
        )
        # One more receiver in the offered config: equivalent, and listed as such.
        config = find(mutants, LOGIC, "core/NumberReplacer", "for i in range(16)", 0)
        assert config.key in triage, config.key.text()
        # The longest first, so that the two jobs finish together.
        chosen: list[Mutant] = [ignores, flag, config]
        records = measure(
            chosen, Plan("quick", [1], triage), jobs=2, snap=snap, baselines_first=False
        )
    by_key = {r["id"]: r for r in records.values()}
    assert set(by_key) == {m.key.text() for m in chosen}

    flagged = by_key[flag.key.text()]
    assert flagged["status"] == "killed", flagged
    assert flagged["outcome"] == "findings"
    assert "SRV-FS-NEW" in flagged["killed_by"], flagged["killed_by"]
    assert "+        if not flag:" in flagged["diff"]

    ignoring = by_key[ignores.key.text()]
    assert ignoring["status"] == "killed", ignoring
    assert "AGT-FULL-ON-FLAG" in ignoring["killed_by"], ignoring["killed_by"]
    assert ignoring["runs"][0]["run"] == "opamp-http"

    equivalent = by_key[config.key.text()]
    assert equivalent["status"] == "equivalent", equivalent
    assert equivalent["triage"] == triage[config.key].reason
    assert equivalent["killed_seeds"] == [False]

    # The working tree was never touched: every mutation happened in a copy.
    assert {f: _digest(REPO / f) for f in before} == before
