"""The mutation benchmark's runs: plain first, every wire variant after, each a valid case."""

from __future__ import annotations

from benchmarks.mutation_areas import AREAS, RUNS
from benchmarks.mutation_worker import case_for
from fixtures.kill_matrix import VARIANTS, load


def test_every_variant_run_starts_its_case_with_the_variant() -> None:
    matrix = load()
    for run in RUNS.values():
        case = case_for(run)
        if run.variant is None:
            assert case.variant is None
            continue
        assert run.name == f"{run.name.split('+')[0]}+{run.variant}"
        variant = VARIANTS[run.variant]
        plain = matrix[run.case]
        assert case.variant == run.variant
        added = (
            case.server_args[len(plain.server_args) :]
            + case.opamp_agent_args[len(plain.opamp_agent_args) :]
        )
        assert added, f"{run.name}: the variant changed no argument"
        assert set(added) <= set((variant.server or ()) + (variant.opamp_agent or ()))


def test_each_area_tries_its_plain_runs_before_any_variant() -> None:
    for area in AREAS.values():
        orders = [area.runs, *(runs for _, runs in area.only)]
        for runs in orders:
            assert set(runs) <= set(RUNS)
            kinds = [RUNS[r].variant is not None for r in runs]
            assert kinds == sorted(kinds), f"{area.name}: a variant run before a plain one"
            # Every variant the kill matrix offers for a run's case is tried.
            for name in runs:
                run = RUNS[name]
                if run.variant is None:
                    offered = set(load()[run.case].variants)
                    tried = {RUNS[r].variant for r in runs if r.startswith(name + "+")}
                    if run.name != "fleet-agent" and area.name != "fleet-api":
                        assert offered <= tried, f"{area.name}/{name}: untried {offered - tried}"
