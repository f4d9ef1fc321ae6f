"""``benchmarks/mutation_triage.toml``: surviving mutants judged equivalent, with why.

Each ``[[equivalent]]`` entry names a mutant by its stable key (``file``,
``operator``, ``line``: the stripped source line it starts on,
``occurrence``: which of that operator's mutants on lines with that text,
counted from 0) and says in ``reason`` why nothing the specification
constrains changes; ``mutated`` (the changed line after the mutation) is
optional and, when given, must still match, so an entry does not silently
move to another mutation. A survivor without an entry is a blind spot.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from benchmarks.mutation_mutants import Key

TRIAGE_PATH = Path(__file__).resolve().parent / "mutation_triage.toml"


@dataclass(frozen=True)
class Equivalent:
    key: Key
    reason: str
    mutated: str | None = None


def load(path: Path = TRIAGE_PATH) -> dict[Key, Equivalent]:
    """The entries by key; a malformed or duplicated entry is an error."""
    if not path.exists():
        return {}
    data = tomllib.loads(path.read_text())
    unknown = set(data) - {"equivalent"}
    if unknown:
        raise ValueError(f"{path}: unknown tables {sorted(unknown)}")
    entries: dict[Key, Equivalent] = {}
    for row in data.get("equivalent", []):
        extra = set(row) - {"file", "operator", "line", "occurrence", "reason", "mutated"}
        if extra:
            raise ValueError(f"{path}: unknown keys {sorted(extra)} in {row}")
        if not str(row.get("reason", "")).strip():
            raise ValueError(f"{path}: entry without a reason: {row}")
        key = Key(row["file"], row["operator"], row["line"].strip(), int(row.get("occurrence", 0)))
        if key in entries:
            raise ValueError(f"{path}: listed twice: {key.text()}")
        mutated = row.get("mutated")
        entries[key] = Equivalent(key, row["reason"].strip(), mutated.strip() if mutated else None)
    return entries
