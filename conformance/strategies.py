"""Hypothesis strategies for agents and their messages."""

from __future__ import annotations

from hypothesis import strategies as st

from conformance.wire import AgentCap

#: Capability bits a generated agent may declare besides ReportsStatus.
_OPTIONAL_CAPS = [1 << i for i in range(1, 16)]


@st.composite
def agent_capabilities(draw: st.DrawFn) -> int:
    """A capability word that always has ReportsStatus and only defined bits."""
    bits = draw(st.lists(st.sampled_from(_OPTIONAL_CAPS), unique=True, max_size=8))
    caps = AgentCap.REPORTS_STATUS
    for bit in bits:
        caps |= bit
    return caps
