"""How the bundled reference agent (``fixtures/reference/agent.py``) is launched.

The embedded default run and the kill matrix start it through the same
``--agent-cmd`` contract a user's agent goes through, at a reduced time
scale: backoff from 0.25 s up to 1 s (Elastic Agent: 60 s up to 10 min).
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from conformance.model.agent_timing import Timing

BACKOFF_INITIAL = 0.25
BACKOFF_MAX = 1.0
#: The suite's timing options matching the reference's constants.
TIMING = Timing(floor=BACKOFF_INITIAL, cap=BACKOFF_MAX)
SETTLE = 0.5
#: The released tight loop pauses up to 1 s against a 60 s floor; keep a similar ratio.
LOOP_PAUSE = 0.05


def command(behaviour: str = "reference") -> str:
    """The ``--agent-cmd`` template that launches the reference agent (or a twin)."""
    words = [
        "{python} -m fixtures.reference.agent",
        "--fleet-url={fleet_url} --enrollment-token={enrollment_token}",
        "--monitoring-port={monitoring_port}",
        f"--backoff-initial {BACKOFF_INITIAL} --backoff-max {BACKOFF_MAX}",
        f"--request-timeout 5 --loop-pause {LOOP_PAUSE}",
    ]
    if behaviour != "reference":
        words.append(f"--behaviour {behaviour}")
    return " ".join(words)


def suite_args(behaviour: str = "reference") -> list[str]:
    """Suite options that test the reference agent (or a twin) at its time scale."""
    return [
        f"--agent-cmd={command(behaviour)}",
        f"--backoff-floor={TIMING.floor}",
        f"--backoff-cap={TIMING.cap}",
        f"--liveness-settle={SETTLE}",
    ]


#: The reference OpAMP agent (``fixtures/reference/opamp_agent.py``) at the same scale:
#: it polls every 0.2 s and backs off from 0.25 s to 1 s.
OPAMP_POLL = 0.2
OPAMP_TIMING = TIMING
#: The spec's own timing, for measuring what a run against a real agent costs: a 30 s
#: poll interval and a 30 s retry floor (``--backoff-scale`` 120 of the above, so the
#: cap is 120 s).
SPEC_POLL = 30.0
SPEC_BACKOFF_SCALE = 120.0


def opamp_command(
    behaviour: str = "reference",
    transport: str = "http",
    backoff_scale: float = 1.0,
    poll: float = OPAMP_POLL,
    extra: Sequence[str] = (),
) -> str:
    """The ``--agent-cmd`` template that launches the reference OpAMP agent (or a twin).

    ``backoff_scale`` multiplies its backoff constants (pass the same to
    :func:`opamp_suite_args`); ``poll`` is its poll interval in seconds; ``extra``
    are further command-line words for the agent (its wire variants, e.g. ``--gzip``),
    quoted for the template as needed.
    """
    url = "{opamp_ws_url}" if transport == "ws" else "{opamp_url}"
    words = [
        f"{{python}} -m fixtures.reference.opamp_agent --url={url} --transport={transport}",
        f"--poll-interval {poll:g} --request-timeout 5",
        f"--backoff-initial {BACKOFF_INITIAL * backoff_scale:g}",
        f"--backoff-max {BACKOFF_MAX * backoff_scale:g}",
    ]
    if behaviour != "reference":
        words.append(f"--behaviour {behaviour}")
    # Braces would be taken for template fields: an extra word must not contain any.
    if any("{" in word or "}" in word for word in extra):
        raise ValueError(f"agent arguments must not contain braces: {list(extra)}")
    words += (shlex.quote(word) for word in extra)
    return " ".join(words)


def opamp_suite_args(
    behaviour: str = "reference",
    transport: str = "http",
    backoff_scale: float = 1.0,
    poll: float = OPAMP_POLL,
    extra: Sequence[str] = (),
) -> list[str]:
    """Suite options that test the reference OpAMP agent (or a twin) at its time scale;
    ``extra`` as for :func:`opamp_command`."""
    return [
        f"--agent-cmd={opamp_command(behaviour, transport, backoff_scale, poll, extra)}",
        "--agent-protocol=opamp",
        f"--backoff-floor={OPAMP_TIMING.floor * backoff_scale:g}",
        f"--backoff-cap={OPAMP_TIMING.cap * backoff_scale:g}",
    ]
