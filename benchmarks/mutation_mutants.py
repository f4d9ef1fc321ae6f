"""The mutants: enumerated by cosmic-ray, filtered, keyed stably, sampled.

Enumeration is cosmic-ray's own ``init`` command writing its work database
(every operator, every position), then its ``# pragma: no mutate`` filter;
after that this module keeps the operators of
:data:`benchmarks.mutation_areas.OPERATORS` and drops positions that cannot
change protocol behaviour (:data:`~benchmarks.mutation_areas.EXCLUDED_DEFINITIONS`,
:data:`~benchmarks.mutation_areas.EXCLUDED_STATEMENTS`, and type annotations,
which ``from __future__ import annotations`` never evaluates).

A mutant's *key* survives unrelated edits of its file: the file, the
operator, the stripped text of the line it starts on, and its occurrence
among the mutants of that operator on lines with that same text (cosmic-ray's
own occurrence counts every position of the operator in the file, so it moves
whenever anything above it changes).
"""

from __future__ import annotations

import difflib
import random
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import parso
from cosmic_ray.commands.init import init  # type: ignore[import-untyped]
from cosmic_ray.mutating import mutate_code  # type: ignore[import-untyped]
from cosmic_ray.plugins import get_operator  # type: ignore[import-untyped]
from cosmic_ray.tools.filters.pragma_no_mutate import (  # type: ignore[import-untyped]
    PragmaNoMutateFilter,
)
from cosmic_ray.work_db import use_db  # type: ignore[import-untyped]

from benchmarks.mutation_areas import (
    AREAS,
    EXCLUDED_DEFINITIONS,
    EXCLUDED_STATEMENTS,
    OPERATORS,
    Area,
)

#: Fixed seed of the stratified sample, so ``--sample K`` names the same mutants every time.
SAMPLE_SEED = "fleet-conformance-mutation-1"

_STATEMENTS = {
    "simple_stmt",
    "if_stmt",
    "while_stmt",
    "for_stmt",
    "try_stmt",
    "with_stmt",
    "funcdef",
    "classdef",
    "decorated",
    "async_stmt",
}


@dataclass(frozen=True)
class Key:
    """Names one mutant independently of line numbers."""

    file: str
    operator: str
    line: str
    occurrence: int

    def text(self) -> str:
        return f"{self.file} | {self.operator} | #{self.occurrence} | {self.line}"

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "operator": self.operator,
            "line": self.line,
            "occurrence": self.occurrence,
        }


@dataclass(frozen=True)
class Mutant:
    """One mutation: where (for humans), how to apply it (for cosmic-ray), and its key."""

    key: Key
    area: str
    #: 1-based line the mutation starts on, in the snapshot it was enumerated from.
    lineno: int
    #: cosmic-ray's occurrence of ``key.operator`` in the file (what ``mutate_code`` takes).
    cr_occurrence: int
    #: The enclosing function or class, qualified (``OpAMPAgent.run_http``), or ``""``.
    definition: str

    @property
    def family(self) -> str:
        """The operator without its from/to suffix: the sampling stratum."""
        name = self.key.operator.removeprefix("core/")
        for family in ("ReplaceBinaryOperator", "ReplaceComparisonOperator", "ReplaceUnary"):
            if name.startswith(family):
                return family
        return name

    def runs(self) -> tuple[str, ...]:
        return AREAS[self.area].runs_for(self.definition)

    def mutated_source(self, source: str) -> str:
        """``source`` (the file's text) with this mutation applied."""
        operator = get_operator(self.key.operator)()
        mutated = mutate_code(source, operator, self.cr_occurrence)
        if mutated is None:
            raise ValueError(f"mutation no longer applies: {self.key.text()}")
        return str(mutated)

    def change(self, root: Path) -> dict[str, str]:
        """The changed line before and after, and a unified diff with one line of context."""
        source = (root / self.key.file).read_text()
        mutated = self.mutated_source(source)
        before, after = source.splitlines(), mutated.splitlines()
        diff = list(
            difflib.unified_diff(
                before, after, f"a/{self.key.file}", f"b/{self.key.file}", n=1, lineterm=""
            )
        )
        changed = [line[1:] for line in diff[2:] if line.startswith("+")]
        return {"mutated": changed[0].strip() if changed else "", "diff": "\n".join(diff)}


#: parso's trees, typed loosely (parso annotates only part of its API).
Node = Any


def _parse(source: str) -> Node:
    parse: Any = parso.parse
    return parse(source)


def _qualname(node: Node) -> str:
    names: list[str] = []
    parent = node.parent
    while parent is not None:
        if parent.type in ("funcdef", "classdef"):
            names.append(str(parent.children[1].value))
        parent = parent.parent
    return ".".join(reversed(names))


def _in_annotation(node: Node) -> bool:
    child, parent = node, node.parent
    while parent is not None:
        index = parent.children.index(child)
        if parent.type == "tfpdef" and index == 2:
            return True
        if parent.type == "annassign" and index == 1:
            return True
        if parent.type == "funcdef" and index > 0:
            previous = parent.children[index - 1]
            if getattr(previous, "value", None) == "->":
                return True
        child, parent = parent, parent.parent
    return False


def _dotted(leaf: Node) -> bool:
    """Whether ``leaf`` starts a dotted name (``zlib.error``)."""
    parent = None if leaf is None else leaf.parent
    return parent is not None and parent.type in ("power", "atom_expr", "trailer")


def _statement(node: Node) -> str:
    """The code of the innermost statement holding ``node``, stripped."""
    current: Node = node
    while current is not None and current.type not in _STATEMENTS:
        current = current.parent
    return "" if current is None else str(current.get_code()).strip()


@dataclass(frozen=True)
class Enumeration:
    """The mutants of every area, with what was left out and why."""

    mutants: tuple[Mutant, ...]
    #: Positions cosmic-ray enumerated per area, all operators, before any filter.
    raw: dict[str, int]
    #: Positions left out per area and reason.
    excluded: dict[str, dict[str, int]]

    def of(self, area: str) -> list[Mutant]:
        return [m for m in self.mutants if m.area == area]

    def only(self, areas: Iterable[str]) -> Enumeration:
        """This enumeration narrowed to ``areas``."""
        keep = set(areas)
        return Enumeration(
            tuple(m for m in self.mutants if m.area in keep),
            {a: n for a, n in self.raw.items() if a in keep},
            {a: e for a, e in self.excluded.items() if a in keep},
        )


def enumerate_mutants(root: Path, areas: Iterable[str] = tuple(AREAS)) -> Enumeration:
    """Every mutant of the areas' files under ``root`` (a repository or a snapshot)."""
    chosen = [AREAS[name] for name in areas]
    file_area = {file: area.name for area in chosen for file in area.files}
    paths = [root / file for file in file_area]
    mutants: list[Mutant] = []
    raw: Counter[str] = Counter()
    excluded: dict[str, Counter[str]] = defaultdict(Counter)
    wanted = set(OPERATORS)
    with (
        tempfile.TemporaryDirectory(prefix="fleet-conformance-cr-") as tmp,
        use_db(str(Path(tmp) / "session.sqlite")) as db,
    ):
        init(paths, db, {})
        PragmaNoMutateFilter().filter(db, None)
        skipped = {item.job_id for item, _ in db.completed_work_items}
        items = list(db.work_items)
    sources = {path: path.read_text() for path in paths}
    trees = {path: _parse(source) for path, source in sources.items()}
    lines = {path: source.splitlines() for path, source in sources.items()}
    seen: Counter[tuple[str, str, str]] = Counter()
    # cosmic-ray's work DB has no order: put positions back in file order per operator,
    # which is the order its occurrences count in.
    specs = [(item.mutations[0], item.job_id) for item in items if len(item.mutations) == 1]
    for spec, job_id in _in_file_order(specs):
        path = Path(spec.module_path)
        file = path.relative_to(root).as_posix()
        area = file_area[file]
        raw[area] += 1
        reason = _exclusion(spec, file, trees[path], job_id in skipped, wanted)
        if reason is not None:
            excluded[area][reason] += 1
            continue
        lineno = spec.start_pos[0]
        line = lines[path][lineno - 1].strip()
        occurrence = seen[(file, spec.operator_name, line)]
        seen[(file, spec.operator_name, line)] += 1
        leaf = trees[path].get_leaf_for_position(tuple(spec.start_pos))
        mutant = Mutant(
            key=Key(file, spec.operator_name, line, occurrence),
            area=area,
            lineno=lineno,
            cr_occurrence=spec.occurrence,
            definition=_qualname(leaf) if leaf is not None else "",
        )
        # cosmic-ray's ExceptionReplacer mangles a dotted name (``except httpx.HTTPError``
        # becomes ``except httpxCosmicRayTestingExceptionHTTPError``) or fails on one in a
        # tuple: such mutants are left out (after numbering, so the others keep their keys).
        if spec.operator_name == "core/ExceptionReplacer" and _dotted(leaf):
            excluded[area]["dotted exception name"] += 1
            continue
        try:
            mutant.mutated_source(sources[path])
        except Exception:  # whatever cosmic-ray raises, the mutant is unusable
            excluded[area]["cosmic-ray cannot apply it"] += 1
            continue
        mutants.append(mutant)
    return Enumeration(
        tuple(mutants),
        {a.name: raw[a.name] for a in chosen},
        {a.name: dict(sorted(excluded[a.name].items())) for a in chosen},
    )


def _in_file_order(specs: list[tuple[Any, str]]) -> list[tuple[Any, str]]:
    return sorted(specs, key=lambda s: (str(s[0].module_path), s[0].operator_name, s[0].occurrence))


def _exclusion(spec: Any, file: str, tree: Node, pragma: bool, wanted: set[str]) -> str | None:
    """Why a position is left out, or ``None`` when it is measured."""
    if pragma:
        return "pragma: no mutate"
    if spec.operator_name not in wanted:
        return "operator not used"
    leaf = tree.get_leaf_for_position(tuple(spec.start_pos))
    if leaf is None:
        return "operator not used"
    qualname = _qualname(leaf)
    for name in EXCLUDED_DEFINITIONS.get(file, ()):
        if qualname == name or qualname.startswith(name + "."):
            return f"in {name}()"
    if _in_annotation(leaf):
        return "type annotation"
    statement = _statement(leaf)
    for start in EXCLUDED_STATEMENTS:
        if statement.startswith(start):
            return f"statement {start}...)" if start.endswith("(") else f"statement {start}"
    return None


def sample(mutants: list[Mutant], size: int | None, area: Area) -> list[Mutant]:
    """A stratified sample of ``size`` of one area's mutants (all of them for ``None``).

    Strata are (file, operator family); each gets its share of ``size`` by
    largest remainder, drawn with a seeded generator from the stratum sorted
    by key. The result is in a seeded random order, so a run cut short by its
    deadline still measured a random part of the sample.
    """
    ordered = sorted(mutants, key=lambda m: m.key.text())
    rng = random.Random(f"{SAMPLE_SEED}/{area.name}")
    if size is None or size >= len(ordered):
        chosen = ordered
    else:
        strata: dict[tuple[str, str], list[Mutant]] = defaultdict(list)
        for mutant in ordered:
            strata[(mutant.key.file, mutant.family)].append(mutant)
        quotas = {name: size * len(members) / len(ordered) for name, members in strata.items()}
        counts = {name: int(q) for name, q in quotas.items()}
        left = size - sum(counts.values())
        by_remainder = sorted(strata, key=lambda n: (-(quotas[n] - counts[n]), n))
        for name in by_remainder[:left]:
            counts[name] += 1
        chosen = []
        for name in sorted(strata):
            chosen += random.Random(f"{SAMPLE_SEED}/{name}").sample(strata[name], counts[name])
        chosen.sort(key=lambda m: m.key.text())
    rng.shuffle(chosen)
    return chosen


def find(
    mutants: Iterable[Mutant], file: str, operator: str, line: str, occurrence: int = 0
) -> Mutant:
    """The mutant with this key (``line`` stripped); ``KeyError`` when there is none."""
    wanted = Key(file, operator, line.strip(), occurrence)
    for mutant in mutants:
        if mutant.key == wanted:
            return mutant
    raise KeyError(wanted.text())
