"""What a run put under test: the roles, and the settings its verdicts depend on.

The catalogue binds each requirement to one of four parts (an OpAMP server,
a Fleet server, an OpAMP agent, a Fleet agent), told apart by the ID prefix.
A run tests some of them: servers when a target is given (or the embedded
reference runs), an agent when one is launched. Requirements of the other
parts are out of scope: named once here, never listed as skipped.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


class Part(enum.Enum):
    """A role under test, finer than the catalogue's server/agent."""

    OPAMP_SERVER = "OpAMP server"
    FLEET_SERVER = "Fleet server"
    OPAMP_AGENT = "OpAMP agent"
    FLEET_AGENT = "Fleet agent"


#: ID prefixes of each part, most specific first.
_PREFIXES: tuple[tuple[str, Part], ...] = (
    ("FLEET-SRV-", Part.FLEET_SERVER),
    ("FLEET-AGT-", Part.FLEET_AGENT),
    ("SRV-", Part.OPAMP_SERVER),
    ("AGT-", Part.OPAMP_AGENT),
)


def part_of(requirement_id: str) -> Part:
    """The part a requirement binds, from its ID."""
    for prefix, part in _PREFIXES:
        if requirement_id.startswith(prefix):
            return part
    raise ValueError(f"requirement {requirement_id!r} names no known part")


@dataclass
class Scope:
    """The parts under test and the settings that shaped the verdicts."""

    parts: tuple[Part, ...]
    profile: str
    #: Transports the suite was asked to test (``--transport``).
    transport: str
    #: Windows and bounds in seconds (request timeout, agent window, ...).
    windows: dict[str, float] = field(default_factory=dict)
    #: The options that mattered, secrets redacted (option name -> value).
    options: dict[str, str] = field(default_factory=dict)
    #: Requirement selection (``--requirement``/``--exclude-requirement``/``--rerun-failed``).
    selection: list[str] = field(default_factory=list)
    #: Set when SIGINT or SIGTERM stopped the run before its end.
    interrupted: bool = False

    def covers(self, requirement_id: str) -> bool:
        return part_of(requirement_id) in self.parts

    @property
    def parts_not_tested(self) -> list[Part]:
        return [p for p in Part if p not in self.parts]

    def to_json(self, transports_judged: Mapping[str, Iterable[str]]) -> dict[str, Any]:
        return {
            "roles_tested": [p.value for p in self.parts],
            "roles_not_tested": [p.value for p in self.parts_not_tested],
            "transport": self.transport,
            "transports_judged": {
                part: sorted(set(names)) for part, names in sorted(transports_judged.items())
            },
            "profile": self.profile,
            "windows": self.windows,
            "options": self.options,
            "selection": self.selection,
            "interrupted": self.interrupted,
        }

    def describe(self) -> str:
        """One line for the console: roles tested and not tested."""
        tested = ", ".join(p.value for p in self.parts) or "nothing"
        line = f"scope: {tested} under test (profile {self.profile}"
        line += ", interrupted)" if self.interrupted else ")"
        if self.parts_not_tested:
            line += "; not under test: " + ", ".join(p.value for p in self.parts_not_tested)
        return line


def judged_over(scope: dict[str, Any]) -> str:
    """``"OpAMP server: http, ws; OpAMP agent: http"``: the transports judged, by role."""
    return "; ".join(
        f"{part}: {', '.join(names)}" for part, names in scope["transports_judged"].items()
    )
