"""Expected-failure baselines (``--expected-failures FILE``).

A baseline is a YAML list of entries, each naming a requirement the target
is known to break and why::

    - id: SRV-FS-QUIET
      reason: flags every reply (fleet-server 9.5.x); upstream issue 1234
      target: http://fleet.example:8220   # optional: only for this target

A listed failure (or warning) no longer fails the run; an unlisted one
does; a listed requirement that passed is *stale* and fails the run, so a
baseline cannot outlive the bug it excuses. Entries without a reason are
refused when the file is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from conformance.catalogue import CATALOGUE


class BaselineError(ValueError):
    """A baseline file that cannot be used, with the reason."""


@dataclass(frozen=True)
class Entry:
    id: str
    reason: str
    target: str | None = None

    def applies_to(self, targets: list[str]) -> bool:
        return self.target is None or self.target in targets


def load(path: Path) -> list[Entry]:
    """Read and check a baseline file; every problem is a :class:`BaselineError`."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise BaselineError(f"--expected-failures {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise BaselineError(f"--expected-failures {path}: not YAML: {exc}") from None
    if data is None:
        return []
    if not isinstance(data, list):
        raise BaselineError(f"--expected-failures {path}: expected a list of entries")
    entries: list[Entry] = []
    for number, item in enumerate(data, 1):
        where = f"--expected-failures {path}, entry {number}"
        if not isinstance(item, dict):
            raise BaselineError(f"{where}: expected a mapping with id and reason")
        unknown = set(item) - {"id", "reason", "target"}
        if unknown:
            raise BaselineError(f"{where}: unknown keys {sorted(unknown)}")
        rid, reason, target = item.get("id"), item.get("reason"), item.get("target")
        if rid not in CATALOGUE:
            raise BaselineError(f"{where}: {rid!r} is not a catalogue requirement ID")
        if not isinstance(reason, str) or not reason.strip():
            raise BaselineError(f"{where} ({rid}): every entry needs a reason")
        if target is not None and not isinstance(target, str):
            raise BaselineError(f"{where} ({rid}): target must be a URL string")
        entries.append(Entry(str(rid), reason.strip(), target))
    return entries
