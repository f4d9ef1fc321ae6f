"""What the mutation benchmark mutates, with which operators, and how each area is tested.

An *area* is a group of reference source files whose faults one kind of
suite run should find. The four areas and their files are listed once, in
:data:`AREAS`; everything else (enumeration, sampling, the report) reads
them from here.

A *run* says how the real suite is pointed at a mutated target. Each one is
a case of ``fixtures/kill_matrix.toml`` narrowed to one role, so a mutant is
judged exactly as the kill matrix judges the unmutated reference:

* ``server``: the ``reference`` case without its agent: two server
  processes sharing a state file, with credentials, a 64 KiB size limit and
  enrollment tokens; the suite tests the OpAMP server and the Fleet API.
* ``fleet-agent``: the ``reference`` case without its servers: the suite
  launches the reference Fleet agent through ``--agent-cmd``.
* ``opamp-http`` / ``opamp-ws``: the ``opamp-reference`` and
  ``opamp-reference-ws`` cases (``--agent-protocol=opamp``).
"""

from __future__ import annotations

from dataclasses import dataclass

REFERENCE = "fixtures/reference"


@dataclass(frozen=True)
class Run:
    """One way of running the suite against a mutated target."""

    name: str
    #: The kill-matrix case it starts from.
    case: str
    #: Narrowing of that case: ``"server"`` keeps only the servers, ``"agent"`` only the agent.
    keep: str | None
    #: Bound on one suite run, in seconds (the unmutated run takes 10-30 s).
    timeout: float


RUNS = {
    run.name: run
    for run in (
        Run("server", "reference", "server", timeout=180.0),
        Run("fleet-agent", "reference", "agent", timeout=300.0),
        Run("opamp-http", "opamp-reference", None, timeout=300.0),
        Run("opamp-ws", "opamp-reference-ws", None, timeout=300.0),
    )
}


@dataclass(frozen=True)
class Area:
    """A group of reference files, the target they build, and the runs that test them."""

    name: str
    target: str
    files: tuple[str, ...]
    #: Runs tried in order; the first that reports a finding kills the mutant.
    runs: tuple[str, ...]
    #: Functions (qualified name) reached by one run only: ``{qualname: run}``.
    only: tuple[tuple[str, str], ...] = ()

    def runs_for(self, qualname: str) -> tuple[str, ...]:
        """The runs that can reach code in ``qualname`` (a function, ``Class.method``...)."""
        for prefix, run in self.only:
            if qualname == prefix or qualname.startswith(prefix + "."):
                return (run,)
        return self.runs


AREAS = {
    area.name: area
    for area in (
        Area(
            "opamp-server",
            "reference server",
            (f"{REFERENCE}/logic.py", f"{REFERENCE}/store.py", f"{REFERENCE}/server.py"),
            ("server",),
        ),
        Area("fleet-api", "reference server", (f"{REFERENCE}/fleet_api.py",), ("server",)),
        Area("fleet-agent", "reference Fleet agent", (f"{REFERENCE}/agent.py",), ("fleet-agent",)),
        Area(
            "opamp-agent",
            "reference OpAMP agent",
            (f"{REFERENCE}/opamp_agent.py",),
            ("opamp-http", "opamp-ws"),
            only=(
                ("OpAMPAgent.post", "opamp-http"),
                ("OpAMPAgent.run_http", "opamp-http"),
                ("OpAMPAgent.ws_send", "opamp-ws"),
                ("OpAMPAgent.ws_session", "opamp-ws"),
                ("OpAMPAgent.run_ws", "opamp-ws"),
            ),
        ),
    )
}

#: Cosmic-ray operators used. One replacement per source operator: the other ten
#: binary and six comparison replacements cosmic-ray also offers describe the same
#: fault at the same spot (a wrong operator there) and would multiply the runs by up
#: to eleven without saying more about detection. Left out, and why:
#:
#: * other ``ReplaceBinaryOperator_*`` / ``ReplaceComparisonOperator_*`` pairs: see above;
#:   ``==`` to ``is`` / ``is not`` compares identity of ints and strings, which
#:   CPython's caching makes either equivalent or the same as ``!=``;
#: * ``ReplaceBinaryOperator_Mod_*``: the only ``%`` is bytes formatting, so every
#:   replacement is an import-time TypeError (a crash, not a protocol fault);
#: * ``ReplaceUnaryOperator_USub_*`` other than deletion, ``*_Invert`` and
#:   ``*_UAdd``: ``-x`` to ``+x`` is deletion, ``~``/``not`` on a float is a TypeError;
#: * ``RemoveDecorator``: the decorators are ``@dataclass``, ``@contextmanager``,
#:   ``@web.middleware``; removing one crashes the process at start;
#: * ``VariableReplacer`` / ``VariableInserter``: they need a variable name per
#:   instance and insert random numbers, so a mutant could not be reproduced.
OPERATORS: tuple[str, ...] = (
    "core/ReplaceBinaryOperator_Add_Sub",
    "core/ReplaceBinaryOperator_Sub_Add",
    "core/ReplaceBinaryOperator_Mul_Div",
    "core/ReplaceBinaryOperator_Div_Mul",
    "core/ReplaceBinaryOperator_FloorDiv_Mul",
    "core/ReplaceBinaryOperator_Pow_Mul",
    "core/ReplaceBinaryOperator_LShift_RShift",
    "core/ReplaceBinaryOperator_RShift_LShift",
    "core/ReplaceBinaryOperator_BitOr_BitAnd",
    "core/ReplaceBinaryOperator_BitAnd_BitOr",
    "core/ReplaceBinaryOperator_BitXor_BitOr",
    "core/ReplaceComparisonOperator_Eq_NotEq",
    "core/ReplaceComparisonOperator_NotEq_Eq",
    "core/ReplaceComparisonOperator_Lt_LtE",
    "core/ReplaceComparisonOperator_Lt_GtE",
    "core/ReplaceComparisonOperator_LtE_Lt",
    "core/ReplaceComparisonOperator_LtE_Gt",
    "core/ReplaceComparisonOperator_Gt_GtE",
    "core/ReplaceComparisonOperator_Gt_LtE",
    "core/ReplaceComparisonOperator_GtE_Gt",
    "core/ReplaceComparisonOperator_GtE_Lt",
    "core/ReplaceComparisonOperator_Is_IsNot",
    "core/ReplaceComparisonOperator_IsNot_Is",
    "core/ReplaceUnaryOperator_Delete_Not",
    "core/ReplaceUnaryOperator_Delete_USub",
    "core/AddNot",
    "core/ReplaceTrueWithFalse",
    "core/ReplaceFalseWithTrue",
    "core/ReplaceAndWithOr",
    "core/ReplaceOrWithAnd",
    "core/ReplaceBreakWithContinue",
    "core/ReplaceContinueWithBreak",
    "core/ExceptionReplacer",
    "core/NumberReplacer",
    "core/ZeroIterationForLoop",
)

#: Code that cannot change what goes over the wire, left unmutated: ``{file: qualnames}``
#: (a function and everything nested in it). Command-line parsing (its defaults are
#: overridden by every launch), the ``main()`` entry points (signal handlers, start-up
#: messages, the twin registry) and the log helpers.
EXCLUDED_DEFINITIONS: dict[str, tuple[str, ...]] = {
    f"{REFERENCE}/server.py": ("parse_args", "main"),
    f"{REFERENCE}/agent.py": ("parse_args", "main", "monitoring_server.Handler.log_message"),
    f"{REFERENCE}/opamp_agent.py": ("parse_args", "main", "OpAMPAgent.log"),
}

#: Statements left unmutated wherever they are, by how they start: diagnostic output
#: (the process's own log, never sent to a peer) and the ``__main__`` guard.
EXCLUDED_STATEMENTS: tuple[str, ...] = ("print(", "self.log(", "agent.log(", "if __name__ ==")
