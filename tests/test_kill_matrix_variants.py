"""The kill matrix's wire-variant expansion: case names, arguments and refusals."""

from __future__ import annotations

import shlex
from typing import Any

import pytest

from conformance.agent import reference
from fixtures.kill_matrix import VARIANT_MARK, VARIANTS, load, parse_matrix
from fixtures.reference.opamp_agent import parse_args as agent_args
from fixtures.reference.server import parse_args as server_args

SERVER: dict[str, Any] = {"fail": [], "warn": [], "server_args": ["--max-body=65536"]}
AGENT: dict[str, Any] = {"opamp_agent": "reference", "fail": ["AGT-SEQ"], "warn": []}


def test_each_variant_becomes_its_own_case_with_the_same_expectations() -> None:
    cases = parse_matrix(
        {
            "srv": {**SERVER, "variants": ["chunked", "ws-close"]},
            "agt": {**AGENT, "variants": ["gzip", "no-keepalive"]},
            "plain": {**SERVER},
        }
    )
    assert list(cases) == [
        "srv",
        "srv+chunked",
        "srv+ws-close",
        "agt",
        "agt+gzip",
        "agt+no-keepalive",
        "plain",
    ]
    assert cases["srv"].server_args == ("--max-body=65536",)
    assert cases["srv+chunked"].server_args == ("--max-body=65536", "--chunked-replies")
    assert cases["srv+ws-close"].server_args == ("--max-body=65536", "--ws-close-every", "3")
    assert cases["agt+gzip"].opamp_agent_args == ("--gzip",)
    assert cases["agt+no-keepalive"].server_args == ()
    for name in ("srv+chunked", "agt+gzip"):
        case, base = cases[name], cases[name.split(VARIANT_MARK)[0]]
        assert (case.fail, case.warn, case.certification) == (
            base.fail,
            base.warn,
            base.certification,
        )
        assert case.variant == name.split(VARIANT_MARK)[1] and case.variants == ()
    assert cases["srv"].variant is None


def test_a_variant_of_both_roles_changes_the_role_the_case_has() -> None:
    cases = parse_matrix(
        {
            "srv": {**SERVER, "variants": ["no-keepalive"]},
            "agt": {**AGENT, "variants": ["no-keepalive"]},
        }
    )
    assert cases["srv+no-keepalive"].server_args[-1] == "--no-keepalive"
    assert cases["srv+no-keepalive"].opamp_agent_args == ()
    assert cases["agt+no-keepalive"].opamp_agent_args == ("--no-keepalive",)


def test_agent_variant_reaches_the_agent_command() -> None:
    case = parse_matrix({"agt": {**AGENT, "variants": ["chunked"]}})["agt+chunked"]
    args = reference.opamp_suite_args(
        case.opamp_agent or "", case.opamp_transport, extra=case.opamp_agent_args
    )
    command = next(a for a in args if a.startswith("--agent-cmd="))
    assert command.endswith(" --chunked")
    # The words after the module name parse as the reference agent's own options.
    words = shlex.split(command.removeprefix("--agent-cmd="))
    parsed = agent_args([w.replace("{opamp_url}", "http://h/v1/opamp") for w in words[3:]])
    assert parsed.chunked and not parsed.gzip


def test_extra_agent_words_are_quoted_and_braces_refused() -> None:
    command = reference.opamp_command(extra=("--ws-reconnect-every", "3", "a b"))
    assert command.endswith("--ws-reconnect-every 3 'a b'")
    with pytest.raises(ValueError, match="braces"):
        reference.opamp_command(extra=("{python}",))


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({**SERVER, "variants": ["gzip"]}, "variant 'gzip' is a variant of the reference OpAMP"),
        ({**AGENT, "variants": ["ws-close"]}, "variant 'ws-close' is a variant of the reference"),
        ({**AGENT, "variants": ["ws-reconnect"]}, "needs opamp_transport = 'ws'"),
        (
            {**AGENT, "opamp_transport": "ws", "variants": ["gzip"]},
            "needs opamp_transport = 'http'",
        ),
        (
            {"agent": "reference", "fail": [], "warn": [], "variants": ["chunked"]},
            "no target with wire variants",
        ),
        ({**SERVER, "variants": ["brotli"]}, "unknown variants"),
        ({**SERVER, "variants": ["chunked", "chunked"]}, "named twice"),
        ({**SERVER, "variants": "chunked"}, "a list of names"),
    ],
)
def test_variants_that_cannot_apply_are_refused(row: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_matrix({"case": row})


def test_the_variant_mark_is_kept_for_variant_cases() -> None:
    with pytest.raises(ValueError, match="kept for variant case names"):
        parse_matrix({f"a{VARIANT_MARK}b": {**SERVER}})


def test_variant_arguments_are_options_of_their_targets() -> None:
    for variant in VARIANTS.values():
        assert variant.roles(), variant.name
        if variant.server is not None:
            server_args(list(variant.server))
        if variant.opamp_agent is not None:
            agent_args(["--url=http://h/v1/opamp", *variant.opamp_agent])


def test_the_matrix_puts_the_references_and_a_twin_under_every_variant() -> None:
    matrix = load()
    for name in VARIANTS:
        under = {c.name.split(VARIANT_MARK)[0] for c in matrix.values() if c.variant == name}
        references = {"reference", "opamp-reference", "opamp-reference-ws"} & under
        twins = under - {"reference", "opamp-reference", "opamp-reference-ws"}
        assert references, f"no reference target runs under {name}"
        assert twins, f"no twin runs under {name}"
    # Each variant case differs from its base by the variant's arguments only.
    for case in matrix.values():
        if case.variant is None:
            continue
        base = matrix[case.name.split(VARIANT_MARK)[0]]
        variant = VARIANTS[case.variant]
        if "server" in base.roles() and variant.server is not None:
            assert case.server_args == base.server_args + variant.server
        if "opamp_agent" in base.roles() and variant.opamp_agent is not None:
            assert case.opamp_agent_args == base.opamp_agent_args + variant.opamp_agent
