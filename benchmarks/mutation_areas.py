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

A run may add a wire variant (``fixtures/kill_matrix.py``, ``VARIANTS``) to its
case: ``server+chunked`` is the ``server`` run with the reference server
answering in chunked bodies. Code that only a variant reaches (chunked
replies, connections closed after N replies, gzip request bodies...) is dead
in the plain run, so a mutant there could only survive it. An area lists its
plain run first and its variant runs after: a mutant the plain run kills
costs one run, a survivor is tried under every variant before it counts as
one (the kill matrix proves the unmutated reference clean under each).
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
    #: The wire variant added to the case (a key of ``fixtures.kill_matrix.VARIANTS``).
    variant: str | None = None


def _with_variants(run: Run, *variants: str) -> tuple[Run, ...]:
    """``run`` followed by one copy of it per wire variant, named ``<run>+<variant>``."""
    return (
        run,
        *(Run(f"{run.name}+{v}", run.case, run.keep, run.timeout, variant=v) for v in variants),
    )


RUNS = {
    run.name: run
    for run in (
        *_with_variants(
            Run("server", "reference", "server", timeout=180.0),
            "chunked",
            "no-keepalive",
            "ws-close",
        ),
        Run("fleet-agent", "reference", "agent", timeout=300.0),
        *_with_variants(
            Run("opamp-http", "opamp-reference", None, timeout=300.0),
            "gzip",
            "chunked",
            "no-keepalive",
        ),
        *_with_variants(Run("opamp-ws", "opamp-reference-ws", None, timeout=300.0), "ws-reconnect"),
    )
}


def _with_its_variants(name: str) -> tuple[str, ...]:
    """Run ``name`` followed by its variant runs, in order."""
    return (name, *(r for r in RUNS if r.startswith(name + "+")))


_HTTP = _with_its_variants("opamp-http")
_WS = _with_its_variants("opamp-ws")


@dataclass(frozen=True)
class Area:
    """A group of reference files, the target they build, and the runs that test them."""

    name: str
    target: str
    files: tuple[str, ...]
    #: Runs tried in order; the first that reports a finding kills the mutant.
    runs: tuple[str, ...]
    #: Functions (qualified name) reached by some runs only: ``(qualname, runs)`` pairs.
    only: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def runs_for(self, qualname: str) -> tuple[str, ...]:
        """The runs that can reach code in ``qualname`` (a function, ``Class.method``...)."""
        for prefix, runs in self.only:
            if qualname == prefix or qualname.startswith(prefix + "."):
                return runs
        return self.runs


AREAS = {
    area.name: area
    for area in (
        Area(
            "opamp-server",
            "reference server",
            (f"{REFERENCE}/logic.py", f"{REFERENCE}/store.py", f"{REFERENCE}/server.py"),
            _with_its_variants("server"),
        ),
        Area("fleet-api", "reference server", (f"{REFERENCE}/fleet_api.py",), ("server",)),
        Area("fleet-agent", "reference Fleet agent", (f"{REFERENCE}/agent.py",), ("fleet-agent",)),
        Area(
            "opamp-agent",
            "reference OpAMP agent",
            (f"{REFERENCE}/opamp_agent.py",),
            (_HTTP[0], _WS[0], *_HTTP[1:], *_WS[1:]),
            only=(
                ("OpAMPAgent.post", _HTTP),
                ("OpAMPAgent.run_http", _HTTP),
                ("OpAMPAgent.ws_send", _WS),
                ("OpAMPAgent.ws_session", _WS),
                ("OpAMPAgent.run_ws", _WS),
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
