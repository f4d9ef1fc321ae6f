"""The three ways a test can end without judging, kept apart.

A test that cannot judge its requirement never just returns (that would be a
pass that judged nothing). It calls one of these, and the plugin records the
matching verdict:

- :func:`not_applicable`: the target showed by its own answers that it lacks
  the feature (it refused the WebSocket upgrade, served a request without
  credentials, has no Fleet API, does not declare the capability). The
  ``evidence`` is what it answered. Does not block certification.
- :func:`not_judged`: the rule applies, but this run could not judge it (no
  token given, the profile does not send that request, the agent's clock did
  not fit the window, every reply was refused). The ``remedy`` says what the
  user can do (an option and a value). Blocks certification: INCOMPLETE.
- :func:`out_of_scope`: the test's role is not under test in this run (no
  agent given, or no server). Named once in the run's scope, never listed
  per requirement.

Each raises a subclass of pytest's skip exception, so pytest shows the test
as skipped; the plugin reads the subclass. A plain ``pytest.skip`` from
anywhere else counts as *not judged* (the safe reading).
"""

from __future__ import annotations

from typing import NoReturn

from _pytest.outcomes import Skipped as _Skipped  # pytest.skip.Exception, importable for typing


class NotApplicable(_Skipped):
    """The target lacks the feature; ``evidence`` shows how it said so."""

    def __init__(self, reason: str, evidence: str) -> None:
        super().__init__(f"not applicable: {reason}", allow_module_level=True)
        self.reason = reason
        self.evidence = evidence


class NotJudged(_Skipped):
    """The rule applies but this run could not judge it; ``remedy`` says how to."""

    def __init__(self, reason: str, remedy: str) -> None:
        super().__init__(f"not judged: {reason} (to judge it: {remedy})", allow_module_level=True)
        self.reason = reason
        self.remedy = remedy


class OutOfScope(_Skipped):
    """The role this test binds is not under test in this run."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"out of scope: {reason}", allow_module_level=True)
        self.reason = reason


def not_applicable(reason: str, evidence: str) -> NoReturn:
    """End the test: the target lacks the feature (``evidence``: its own answer)."""
    if not evidence.strip():
        raise ValueError("not_applicable needs the target's answer as evidence")
    raise NotApplicable(reason, evidence)


def not_judged(reason: str, remedy: str) -> NoReturn:
    """End the test: the rule applies but could not be judged; ``remedy`` for the user."""
    if not remedy.strip():
        raise ValueError("not_judged needs a remedy the user can act on")
    raise NotJudged(reason, remedy)


def out_of_scope(reason: str) -> NoReturn:
    """End the test: its role is not under test in this run."""
    raise OutOfScope(reason)
