"""Mutation analysis of the bundled reference targets: the suite's detection power.

The kill matrix proves the suite finds the faults someone thought of (the
twins). This measures it against faults nobody chose: cosmic-ray enumerates
small mutations of the reference server, Fleet API, Fleet agent and OpAMP
agent (``benchmarks/mutation_areas.py`` says which files and operators,
``benchmarks/mutation_mutants.py`` how they are enumerated, keyed and
sampled), each mutant is applied to a scratch copy of the repository, and
the real suite runs against the target started from that copy, exactly as
the kill matrix runs it against the reference (``benchmarks/mutation_worker.py``).

A mutant is *killed* when the run reports any finding (a requirement that
fails, warns or errors, or a harness error), when it runs past its bound
(*timeout*) or when a server it starts does not come up or dies (*crash*).
A survivor listed in ``benchmarks/mutation_triage.toml`` is *equivalent*;
any other survivor is a *blind spot*. The score is killed / (killed + blind
spots), per area, per target, per file and overall.

Nothing in the working tree is modified: the repository is copied once
(a snapshot of the code under measurement) and once more per job; cosmic-ray
applies each mutation to the job's copy and puts the file back afterwards.

    python -m benchmarks.mutation --enumerate               # counts per area, no runs
    python -m benchmarks.mutation --sample 40 --jobs 2      # a stratified sample, 1 seed
    python -m benchmarks.mutation --seeds 20 --jobs 2       # nightly: every mutant, killed
                                                            # ones re-run on 19 more seeds
    python -m benchmarks.mutation --seeds 20 --shard 3/8 --out part3.json   # one machine's share
    python -m benchmarks.mutation --merge part*.json        # the shares as one report

Output: ``reports/mutation.json`` (``--out``), rewritten after each mutant;
``--resume`` keeps the records of an earlier run with the same plan.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import itertools
import json
import os
import platform
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

from cosmic_ray.mutating import use_mutation  # type: ignore[import-untyped]
from cosmic_ray.plugins import get_operator  # type: ignore[import-untyped]

from benchmarks import mutation_report, mutation_triage
from benchmarks.mutation_areas import (
    AREAS,
    EXCLUDED_DEFINITIONS,
    EXCLUDED_STATEMENTS,
    OPERATORS,
    RUNS,
)
from benchmarks.mutation_mutants import Enumeration, Key, Mutant, enumerate_mutants, sample
from benchmarks.mutation_report import FAILED, KILLING, classify, earlier_records
from benchmarks.mutation_worker import TEARDOWN_GRACE

REPO = Path(__file__).resolve().parent.parent
#: What a snapshot holds: the code under measurement and what runs it.
SNAPSHOT = ("conformance", "fixtures", "benchmarks", "tests/__init__.py", "tests/suite_runner.py")
SNAPSHOT_FILES = ("pyproject.toml",)


# -- copies of the repository ---------------------------------------------------------


def snapshot(repo: Path, dest: Path) -> Path:
    """Copy what the suite and the targets need from ``repo`` into ``dest``."""
    ignore = shutil.ignore_patterns("__pycache__", "node_modules", "*.pyc", ".hypothesis")
    for name in SNAPSHOT:
        source = repo / name
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=ignore)
        else:
            shutil.copy2(source, target)
    for name in SNAPSHOT_FILES:
        shutil.copy2(repo / name, dest / name)
    (dest / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return dest


#: Imported at start-up by every process run with the copy on ``PYTHONPATH``. cosmic-ray's
#: ExceptionReplacer turns ``except X`` into ``except CosmicRayTestingException``, a name
#: the mutated module does not define: without this, any exception reaching the handler
#: would raise NameError instead of passing through as the mutation intends.
SITECUSTOMIZE = """\
import builtins

try:
    from cosmic_ray.exceptions import CosmicRayTestingException
except ImportError:
    pass
else:
    builtins.CosmicRayTestingException = CosmicRayTestingException
"""


def copy_env(copy: Path) -> dict[str, str]:
    """The environment of a process that must import the copy's code, not the tree's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = str(copy)
    # A mutation can keep a file's size and mtime second: no bytecode cache may hide it.
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


class Workers:
    """The worker processes running now, so an interruption can stop them all."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running: set[subprocess.Popen[bytes]] = set()
        self.stopping = threading.Event()

    def run(self, copy: Path, run: str, seed: int, profile: str) -> dict[str, Any]:
        """One suite run (``benchmarks.mutation_worker``) against the target in ``copy``."""
        bound = RUNS[run].timeout + TEARDOWN_GRACE + 60.0
        with tempfile.TemporaryDirectory(prefix="fleet-conformance-result-") as tmp:
            out = Path(tmp) / "result.json"
            command = [sys.executable, "-m", "benchmarks.mutation_worker", "--run", run]
            command += ["--seed", str(seed), "--profile", profile, "--out", str(out)]
            started = time.monotonic()
            with (Path(tmp) / "worker.log").open("w+b") as log:
                proc = subprocess.Popen(
                    command,
                    cwd=copy,
                    env=copy_env(copy),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
                with self.lock:
                    self.running.add(proc)
                try:
                    proc.wait(timeout=bound)
                except subprocess.TimeoutExpired:
                    _kill_group(proc)
                finally:
                    with self.lock:
                        self.running.discard(proc)
                log.seek(0)
                tail = log.read().decode(errors="replace")[-3000:]
            if self.stopping.is_set():
                return {"run": run, "seed": seed, "outcome": "interrupted"}
            if proc.returncode != 0 or not out.exists():
                return {
                    "run": run,
                    "seed": seed,
                    "outcome": "worker-failure",
                    "console": tail,
                    "seconds": round(time.monotonic() - started, 2),
                }
            result: dict[str, Any] = json.loads(out.read_text())
            return result

    def stop(self) -> None:
        """Interrupt every running worker (each stops its suite and servers), then wait."""
        self.stopping.set()
        with self.lock:
            procs = list(self.running)
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=TEARDOWN_GRACE + 20.0)
            except subprocess.TimeoutExpired:
                _kill_group(proc)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10.0)


# -- one mutant --------------------------------------------------------------------------


@dataclass
class Plan:
    """What a measurement runs: profile, seeds, and the triage it classifies survivors by."""

    profile: str
    seeds: list[int]
    triage: dict[Key, mutation_triage.Equivalent] = field(default_factory=dict)


def killed(result: dict[str, Any]) -> bool:
    return result.get("outcome") in KILLING


def ends_seed(result: dict[str, Any]) -> bool:
    """A run after which the seed's other runs are not needed: it killed, or it failed."""
    return result["outcome"] in KILLING or result["outcome"] in FAILED


def measure_mutant(
    mutant: Mutant,
    copy: Path,
    plan: Plan,
    workers: Workers,
    baselines: dict[str, dict[str, Any]],
) -> dict[str, Any] | None:
    """Apply ``mutant`` to ``copy``, run the suite, restore the file; ``None`` if interrupted.

    The first seed tries the area's runs in order until one kills the mutant;
    a mutant killed on it is run on the remaining seeds as well (each seed
    again stops at the first run that kills).
    """
    change = mutant.change(copy)
    operator = get_operator(mutant.key.operator)()
    runs: list[dict[str, Any]] = []
    per_seed: list[bool] = []
    started = time.monotonic()
    with use_mutation(copy / mutant.key.file, operator, mutant.cr_occurrence) as (_, mutated):
        if mutated is None:
            raise ValueError(f"cosmic-ray applied nothing for {mutant.key.text()}")
        for index, seed in enumerate(plan.seeds):
            if index == 1 and not per_seed[0]:
                break
            seed_killed = False
            for run in mutant.runs():
                result = workers.run(copy, run, seed, plan.profile)
                if result["outcome"] == "interrupted":
                    return None
                result["changed"] = _changes(baselines.get(run), result)
                result.pop("verdicts", None)
                runs.append(result)
                if ends_seed(result):
                    seed_killed = killed(result)
                    break
            per_seed.append(seed_killed)
            if any(r["outcome"] in FAILED for r in runs):
                break
    killing = [r for r in runs if killed(r)]
    record: dict[str, Any] = identity(mutant) | {
        "mutated": change["mutated"],
        "diff": change["diff"],
        "seeds": plan.seeds[: len(per_seed)],
        "killed_seeds": per_seed,
        "outcome": killing[0]["outcome"] if killing else None,
        "killed_by": sorted(
            {i for r in killing for i in r["fail"] + r["warn"] + r["error"]}
            | ({"<harness error>"} if any(r.get("harness_errors") for r in killing) else set())
        ),
        "seconds": round(time.monotonic() - started, 2),
        "runs": runs,
    }
    classify(record, plan.triage)
    return record


def identity(mutant: Mutant) -> dict[str, Any]:
    """The fields that name a mutant in its record."""
    return {
        "id": mutant.key.text(),
        "area": mutant.area,
        "target": AREAS[mutant.area].target,
        "file": mutant.key.file,
        "line": mutant.lineno,
        "definition": mutant.definition,
        "operator": mutant.key.operator,
        "occurrence": mutant.key.occurrence,
        "source": mutant.key.line,
    }


def failed_record(mutant: Mutant, plan: Plan, error: str) -> dict[str, Any]:
    """The record of a mutant the harness could not measure (a harness failure)."""
    record: dict[str, Any] = identity(mutant) | {
        "mutated": "",
        "diff": "",
        "seeds": [],
        "killed_seeds": [],
        "outcome": None,
        "killed_by": [],
        "seconds": 0.0,
        "runs": [{"run": "-", "seed": None, "outcome": "worker-failure", "console": error}],
    }
    classify(record, plan.triage)
    return record


def _changes(baseline: dict[str, Any] | None, result: dict[str, Any]) -> dict[str, list[str]]:
    """Requirements whose verdict differs from the unmutated run's: ``{id: [before, after]}``."""
    if baseline is None:
        return {}
    before: dict[str, str] = baseline.get("verdicts", {})
    after: dict[str, str] = result.get("verdicts", {})
    return {
        i: [before.get(i, "-"), after.get(i, "-")]
        for i in sorted(set(before) | set(after))
        if before.get(i) != after.get(i)
    }


# -- the report ---------------------------------------------------------------------------


@dataclass
class Report:
    """``reports/mutation.json`` while a measurement runs: rewritten after every mutant."""

    out: Path
    plan: Plan
    enumeration: Enumeration
    head: dict[str, Any]
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    baselines: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    wall_started: float = field(default_factory=time.monotonic)
    #: Wall time of the earlier sessions a resumed measurement continues.
    wall_before: float = 0.0

    def add(self, record: dict[str, Any]) -> None:
        with self.lock:
            self.records[record["id"]] = record
            self.write()

    def write(self) -> dict[str, Any]:
        enumeration = self.enumeration
        report = self.head | {
            "wall_seconds": round(self.wall_before + time.monotonic() - self.wall_started, 1),
            "baselines": self.baselines,
            "enumerated": {
                "areas": {a: len(enumeration.of(a)) for a in enumeration.raw},
                "files": dict(Counter(m.key.file for m in enumeration.mutants)),
            },
            "areas": {
                a: {
                    "target": AREAS[a].target,
                    "files": list(AREAS[a].files),
                    "runs": list(AREAS[a].runs),
                    "positions_all_operators": enumeration.raw[a],
                    "excluded": enumeration.excluded[a],
                    "planned": self.head["planned"].get(a, 0),
                }
                for a in enumeration.raw
            },
            "mutants": list(self.records.values()),
        }
        mutation_report.finish(report, self.plan.triage, (m.key for m in enumeration.mutants))
        mutation_report.write(report, self.out)
        return report


def header(
    plan: Plan, sample_size: int | None, jobs: int, planned: dict[str, int]
) -> dict[str, Any]:
    """The fixed part of the report: format, date, tools and the plan."""
    return {
        "format": mutation_report.REPORT_FORMAT,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cosmic_ray": version("cosmic-ray"),
        "python": platform.python_version(),
        "cores": os.cpu_count(),
        "jobs": jobs,
        "profile": plan.profile,
        "seeds": plan.seeds,
        "sample": sample_size,
        "planned": planned,
        "sample_rule": "per area, stratified by (file, operator family) with largest-remainder"
        " quotas and a fixed seed; a killed mutant runs on every further seed, a survivor on"
        " the first only",
        "kill_rule": "a suite run reports a requirement failing, warning or erroring or a"
        " harness error (findings), runs past its bound (timeout), or a server it started"
        " did not come up or died (crash)",
        "operators": list(OPERATORS),
        "excluded_definitions": {k: list(v) for k, v in EXCLUDED_DEFINITIONS.items()},
        "excluded_statements": list(EXCLUDED_STATEMENTS),
    }


# -- the measurement ------------------------------------------------------------------------


def interleave(groups: Iterable[list[Mutant]]) -> list[Mutant]:
    """Round-robin over the areas, so a run cut short has measured some of each."""
    merged = itertools.zip_longest(*groups)
    return [m for row in merged for m in row if m is not None]


def measure(
    mutants: list[Mutant],
    plan: Plan,
    jobs: int,
    snap: Path,
    report: Report | None = None,
    deadline: float | None = None,
    progress: Callable[[str], None] = print,
    baselines_first: bool = True,
) -> dict[str, dict[str, Any]]:
    """Run every mutant of the snapshot ``snap``, baselines first; return records by mutant id.

    ``deadline`` (a ``time.monotonic()`` value): no mutant starts after it.
    ``baselines_first=False`` skips the unmutated runs (the smoke test's shortcut:
    no verdict changes are recorded then).
    """
    needed = sorted({run for m in mutants for run in m.runs()}) if baselines_first else []
    workers = Workers()
    records: dict[str, dict[str, Any]] = {}
    baselines: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="fleet-conformance-mutation-") as tmp:
        copies: queue.Queue[Path] = queue.Queue()
        for index in range(max(1, jobs)):
            copies.put(shutil.copytree(snap, Path(tmp) / f"job{index}"))

        @contextlib.contextmanager
        def a_copy() -> Iterator[Path]:
            copy = copies.get()
            try:
                yield copy
            finally:
                copies.put(copy)

        def baseline(run: str) -> None:
            with a_copy() as copy:
                result = workers.run(copy, run, plan.seeds[0], plan.profile)
            baselines[run] = result
            progress(f"baseline {run:12} {result['outcome']:9} {result.get('seconds', 0):6.1f}s")

        def one(mutant: Mutant) -> None:
            if workers.stopping.is_set() or (deadline is not None and time.monotonic() > deadline):
                return
            with a_copy() as copy:
                try:
                    record = measure_mutant(mutant, copy, plan, workers, baselines)
                except Exception as exc:  # one broken mutant must not end the run
                    record = failed_record(mutant, plan, f"{type(exc).__name__}: {exc}")
            if record is None:
                return
            records[record["id"]] = record
            if report is not None:
                report.add(record)
            flags = "".join("K" if k else "." for k in record["killed_seeds"])
            progress(
                f"{len(records):4}/{len(mutants)} {record['status']:15} {flags:5}"
                f" {record['seconds']:6.1f}s  {mutant.key.file}:{mutant.lineno}"
                f" {mutant.key.operator.removeprefix('core/')}  {record['mutated'][:60]}"
            )

        main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _interrupt) if main_thread else None
        try:
            with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
                try:
                    for future in [pool.submit(baseline, run) for run in needed]:
                        future.result()
                    dirty = {r: b for r, b in baselines.items() if b["outcome"] != "clean"}
                    if dirty:
                        raise BaselineError(dirty)
                    if report is not None:
                        report.baselines |= {
                            r: {k: v for k, v in b.items() if k != "verdicts"}
                            for r, b in baselines.items()
                        }
                    for future in [pool.submit(one, m) for m in mutants]:
                        future.result()
                except BaseException:
                    # Stop what runs (each worker stops its suite and servers), start nothing.
                    workers.stop()
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
    return records


@contextlib.contextmanager
def snapshot_of(repo: Path) -> Iterator[Path]:
    """A snapshot of ``repo`` in a temporary directory, for as long as the block runs."""
    with tempfile.TemporaryDirectory(prefix="fleet-conformance-snapshot-") as tmp:
        yield snapshot(repo, Path(tmp))


class BaselineError(RuntimeError):
    """The unmutated target already had findings: kills would mean nothing."""

    def __init__(self, dirty: dict[str, dict[str, Any]]) -> None:
        lines = [
            f"{run}: {b['outcome']} fail={b.get('fail')} warn={b.get('warn')}"
            f" error={b.get('error')} {b.get('crash') or b.get('console') or ''}"
            for run, b in dirty.items()
        ]
        super().__init__("unmutated baseline not clean:\n" + "\n".join(lines))


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--area", action="append", choices=sorted(AREAS), help="repeatable")
    parser.add_argument("--sample", type=int, help="mutants per area (default: all)")
    parser.add_argument("--seeds", type=int, default=1, help="seeds per killed mutant")
    parser.add_argument("--first-seed", type=int, default=1, help="seeds count up from here")
    parser.add_argument("--profile", default="quick", choices=["quick", "full", "nightly"])
    parser.add_argument("--jobs", type=int, default=1, help="mutants measured in parallel")
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "mutation.json")
    parser.add_argument("--triage", type=Path, default=mutation_triage.TRIAGE_PATH)
    parser.add_argument("--resume", action="store_true", help="keep records of the same plan")
    parser.add_argument(
        "--rerun",
        action="append",
        default=[],
        metavar="TEXT",
        help="with --resume: measure again the kept mutants whose id contains TEXT (repeatable)",
    )
    parser.add_argument("--deadline-minutes", type=float, help="start no mutant after this")
    parser.add_argument(
        "--enumerate", action="store_true", help="print the mutant counts per area and stop"
    )
    parser.add_argument("--list", action="store_true", help="print every (sampled) mutant and stop")
    parser.add_argument(
        "--shard",
        type=_shard,
        metavar="K/N",
        help="measure only the K-th of N equal shares of each area's mutants (1 <= K <= N)",
    )
    parser.add_argument(
        "--merge",
        nargs="+",
        type=Path,
        metavar="REPORT",
        help="write the union of these reports (same profile and seeds) to --out; no runs",
    )
    parser.add_argument(
        "--retriage",
        action="store_true",
        help="classify the survivors in --out again by the triage file (no runs)",
    )
    args = parser.parse_args(argv)
    areas = args.area or sorted(AREAS)
    if args.retriage:
        return retriage(args.out, args.triage)
    with snapshot_of(REPO) as snap:
        if args.merge:
            return merge(args.merge, args.out, args.triage, snap)
        return _main(args, areas, snap)


def _shard(text: str) -> tuple[int, int]:
    k, _, n = text.partition("/")
    if not (k.isdigit() and n.isdigit() and 1 <= int(k) <= int(n)):
        raise argparse.ArgumentTypeError(f"expected K/N with 1 <= K <= N, not {text!r}")
    return int(k), int(n)


def merge(parts: list[Path], out: Path, triage_path: Path, snap: Path) -> int:
    """One report from the reports of several shards (or areas) of the same plan."""
    reports = [json.loads(p.read_text()) for p in parts]
    plans = {(r["profile"], tuple(r["seeds"])) for r in reports}
    if len(plans) != 1:
        print(f"cannot merge reports of different plans: {sorted(plans)}", file=sys.stderr)
        return 2
    profile, seeds = plans.pop()
    plan = Plan(profile, list(seeds), mutation_triage.load(triage_path))
    records = {m["id"]: m for r in reports for m in r["mutants"]}
    planned: Counter[str] = Counter()
    for r in reports:
        planned.update(r.get("planned", {}))
    areas = sorted({m["area"] for m in records.values()} | set(planned))
    enumeration = enumerate_mutants(snap, areas)
    jobs = sum(int(r.get("jobs", 1)) for r in reports)
    report = Report(out, plan, enumeration, header(plan, reports[0]["sample"], jobs, planned))
    report.head["date"] = max(r["date"] for r in reports)
    report.records = records
    report.wall_before = max(float(r.get("wall_seconds", 0.0)) for r in reports)
    for r in reports:
        report.baselines |= r.get("baselines", {})
    final = report.write()
    print(f"merged {len(parts)} reports, {len(records)} mutants; score {final['score']}: {out}")
    return 0


def retriage(out: Path, triage_path: Path) -> int:
    """Re-classify an existing report after the triage file changed."""
    report = json.loads(out.read_text())
    with snapshot_of(REPO) as snap:
        known = [m.key for m in enumerate_mutants(snap).mutants]
    mutation_report.finish(report, mutation_triage.load(triage_path), known)
    mutation_report.write(report, out)
    triage = report["triage"]
    print(f"score {report['score']}; {len(report['blind_spots'])} blind spots; triage {triage}")
    return 0


def _main(args: argparse.Namespace, areas: list[str], snap: Path) -> int:
    # Every area is enumerated even when --area narrows the run: a resumed partial run
    # keeps the other areas' records instead of dropping them from --out.
    enumeration = enumerate_mutants(snap)
    chosen = {a: sample(enumeration.of(a), args.sample, AREAS[a]) for a in areas}
    if args.shard is not None:
        k, n = args.shard
        chosen = {a: mutants[k - 1 :: n] for a, mutants in chosen.items()}
    #: A shard's own mutants (None: not sharded, any mutant may be drawn).
    share = {m.key.text() for ms in chosen.values() for m in ms} if args.shard else None
    if args.enumerate or args.list:
        for area in areas:
            excluded = sum(enumeration.excluded[area].values())
            print(
                f"{area:13} {len(enumeration.of(area)):4} mutants"
                f" ({enumeration.raw[area]} positions, {excluded} excluded:"
                f" {enumeration.excluded[area]}), sample {len(chosen[area])}"
            )
            if args.list:
                for m in chosen[area]:
                    print(f"    {m.key.file}:{m.lineno} [{m.definition}] {m.key.text()}")
        print(f"total {sum(len(enumeration.of(a)) for a in areas)} mutants")
        return 0
    plan = Plan(
        args.profile,
        list(range(args.first_seed, args.first_seed + args.seeds)),
        mutation_triage.load(args.triage),
    )
    planned = {a: len(chosen[a]) for a in areas}
    # A run reports the areas it measures, and those it keeps records of (--resume).
    head = header(plan, args.sample, args.jobs, planned)
    report = Report(args.out, plan, enumeration.only(areas), head)
    if args.resume:
        # Records of mutants still enumerated count towards their area's sample; the
        # rest of the sample is drawn from the mutants not measured yet.
        kept = earlier_records(args.out, plan.profile, plan.seeds)
        if kept:
            earlier = json.loads(args.out.read_text())
            report.wall_before = float(earlier.get("wall_seconds", 0.0))
            report.baselines = dict(earlier.get("baselines", {}))
        known = {m.key.text(): m for m in enumeration.mutants}
        kept = {i: r for i, r in kept.items() if i in known}
        again = {i for i in kept if any(p in i for p in args.rerun) and kept[i]["area"] in areas}
        report.records = {i: r for i, r in kept.items() if i not in again}
        others = {r["area"] for r in report.records.values()} - set(areas)
        # Areas measured earlier and not now: their records stay, with their count.
        report.head["planned"] |= {
            a: sum(1 for r in report.records.values() if r["area"] == a) for a in others
        }
        report.enumeration = enumeration.only([*areas, *sorted(others)])
        for area in areas:
            redo = [known[i] for i in sorted(again) if known[i].area == area]
            done = sum(1 for r in report.records.values() if r["area"] == area) + len(redo)
            rest = [m for m in enumeration.of(area) if m.key.text() not in kept]
            size = None if args.sample is None else max(0, args.sample - done)
            drawn = redo + sample(rest, size, AREAS[area])
            chosen[area] = [m for m in drawn if share is None or m.key.text() in share]
        print(f"resuming: {len(report.records)} mutants already measured")
    todo = interleave([m for m in chosen[a] if m.key.text() not in report.records] for a in areas)
    deadline = None
    if args.deadline_minutes is not None:
        deadline = time.monotonic() + 60.0 * args.deadline_minutes
    try:
        measure(todo, plan, args.jobs, snap, report=report, deadline=deadline)
    except BaselineError as exc:
        print(exc, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        report.write()
        print(f"interrupted; written: {args.out}")
        return 130
    final = report.write()
    for name, row in final["areas"].items():
        print(
            f"{name:13} score {row['score']}  killed {row['killed']} blind {row['blind_spots']}"
            f" equivalent {row['equivalent']} failures {row['harness_failures']}"
            f"  ({row['measured']}/{row['enumerated']} measured)"
        )
    print(f"score {final['score']}; written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
