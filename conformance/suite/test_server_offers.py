"""What a server offers an agent: only what the agent accepts, and config when its hash is stale."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import strategies as st

from conformance.checks import Refusals, Transcript, converse
from conformance.drivers import HttpDriver, WsDriver
from conformance.messages import full_status, heartbeat, new_uid
from conformance.outcomes import not_applicable, not_judged
from conformance.plugin.fixtures import Clients
from conformance.properties import conformance_property
from conformance.strategies import agent_capabilities
from conformance.target import Transport
from conformance.verdicts import require
from conformance.wire import (
    AgentCap,
    AgentToServer,
    ServerCap,
    ServerToAgent,
    cap_names,
    has_field,
)

#: (the ServerToAgent field a server offers with, the agent capability it needs).
OFFERS: tuple[tuple[str, int], ...] = (
    ("remote_config", AgentCap.ACCEPTS_REMOTE_CONFIG),
    ("packages_available", AgentCap.ACCEPTS_PACKAGES),
    ("command", AgentCap.ACCEPTS_RESTART_COMMAND),
    ("connection_settings.opamp", AgentCap.ACCEPTS_OPAMP_CONNECTION_SETTINGS),
)


def offered(reply: ServerToAgent, name: str) -> bool:
    if name == "connection_settings.opamp":
        return has_field(reply, "connection_settings") and reply.connection_settings.HasField(
            "opamp"
        )
    return has_field(reply, name)


def _send(
    transcript: Transcript, driver: HttpDriver | WsDriver, msg: AgentToServer
) -> ServerToAgent:
    return converse(transcript, lambda: driver.send(msg), driver.close)


def _with_config_hash(msg: AgentToServer, config_hash: bytes) -> AgentToServer:
    """``msg`` reporting ``config_hash`` as the last remote config it received."""
    msg.remote_config_status.last_remote_config_hash = config_hash
    msg.remote_config_status.status = 1  # type: ignore[assignment]  # APPLIED
    return msg


#: Steps of a conversation that gives a server reasons to offer things.
offer_steps = st.lists(st.sampled_from(["full", "heartbeat", "stale-hash"]), min_size=1, max_size=5)


@pytest.mark.requirement("SRV-CAP-RESPECT")
def test_nothing_offered_that_the_agent_cannot_accept(opamp: Clients, transport: Transport) -> None:
    """remote_config, packages, commands and OpAMP connection settings go only to takers.

    A reply with error_response offers nothing (it may carry nothing else): a
    run whose every reply was one judged nothing and ends *not judged*.
    """
    refusals = Refusals()

    @conformance_property(caps=agent_capabilities(), plan=offer_steps, stale=st.binary(max_size=32))
    def conversation(caps: int, plan: list[str], stale: bytes) -> None:
        transcript = Transcript()
        uid = new_uid()
        with opamp.open(transport) as driver:
            for seq, step in enumerate(["full", *plan]):
                msg = (
                    heartbeat(uid, seq, caps)
                    if step == "heartbeat"
                    else full_status(uid, seq, caps)
                )
                if step == "stale-hash" and caps & AgentCap.REPORTS_REMOTE_CONFIG:
                    msg = _with_config_hash(msg, stale)
                reply = _send(transcript, driver, msg)
                refusals.count(reply)
                for name, needed in OFFERS:
                    require(
                        "SRV-CAP-RESPECT",
                        not offered(reply, name) or bool(caps & needed),
                        f"offered {name} to an agent whose capabilities {caps:#x} lack"
                        f" {cap_names(needed)[0]} ({needed:#x})",
                        transcript.render(),
                    )
                uid = reply.agent_identification.new_instance_uid or uid

    conversation()
    refusals.require_judged("SRV-CAP-RESPECT")


#: Capabilities of an agent that takes remote config and reports what it applied.
CONFIG_AGENT = (
    AgentCap.REPORTS_STATUS | AgentCap.ACCEPTS_REMOTE_CONFIG | AgentCap.REPORTS_REMOTE_CONFIG
)


@dataclass
class OfferCount:
    """How many generated agents got a first offer (the rule needs one to judge)."""

    judged: int = 0
    unjudged: int = 0


@pytest.mark.requirement("SRV-RCFG-HASH")
def test_remote_config_resent_when_agent_hash_differs(opamp: Clients, transport: Transport) -> None:
    """An agent reporting a stale last_remote_config_hash is sent remote_config."""
    count = OfferCount()

    @conformance_property(
        extra=agent_capabilities(),
        wrong=st.binary(max_size=40),
        settle_first=st.booleans(),
    )
    def conversation(extra: int, wrong: bytes, settle_first: bool) -> None:
        caps = CONFIG_AGENT | extra
        transcript = Transcript()
        uid = new_uid()
        with opamp.open(transport) as driver:
            reply = _send(transcript, driver, full_status(uid, 0, caps))
            seq = 1
            offer = reply.remote_config.config_hash if reply.HasField("remote_config") else None
            if offer is None:
                reply = _send(transcript, driver, heartbeat(uid, seq, caps))
                seq += 1
                if reply.HasField("remote_config"):
                    offer = reply.remote_config.config_hash
            if offer is None:
                count.unjudged += 1
                return
            count.judged += 1
            if settle_first:  # the agent applied the offer, then drifts away from it
                _send(transcript, driver, _with_config_hash(full_status(uid, seq, caps), offer))
                seq += 1
            stale = wrong if wrong != offer else offer[::-1] + b"\x00"
            reply = _send(transcript, driver, _with_config_hash(full_status(uid, seq, caps), stale))
            require(
                "SRV-RCFG-HASH",
                reply.HasField("remote_config"),
                f"the agent reported last_remote_config_hash {stale.hex() or '<empty>'} while the"
                f" offered config has hash {offer.hex() or '<empty>'}, and the reply carried no"
                " remote_config",
                transcript.render(),
            )

    _require_offers(opamp, transport)
    conversation()
    if count.judged == 0:
        not_judged(
            "the target declares OffersRemoteConfig but offered no remote_config to any of"
            f" {count.unjudged} generated agents that accept it: the rule could not be observed",
            "configure the target to offer a remote config to new agents that accept one"
            " (AcceptsRemoteConfig), and run again",
        )


#: New agents asked whether the target offers remote config before giving up.
DECLARE_TRIES = 3


def _require_offers(opamp: Clients, transport: Transport) -> None:
    """Return when the first reply to a config-taking agent declares OffersRemoteConfig.

    Otherwise end the test: *not applicable* when the target's reply declares
    capabilities without it (its own answer), *not judged* when every reply was
    an error_response (which may carry no capabilities).
    """
    transcript = Transcript()
    refusals = Refusals()
    with opamp.open(transport) as driver:
        for _ in range(DECLARE_TRIES):
            reply = _send(transcript, driver, full_status(new_uid(), 0, CONFIG_AGENT))
            if refusals.count(reply):
                break
    refusals.require_judged("SRV-RCFG-HASH (whether the target offers remote config)")
    if not reply.capabilities:
        not_judged(
            "the first reply to a new agent declared no capabilities at all (SRV-CAPS-FIRST),"
            " so whether the target offers remote config is unknown",
            "fix the first reply's capabilities (SRV-CAPS-FIRST) and run again",
        )
    if not reply.capabilities & ServerCap.OFFERS_REMOTE_CONFIG:
        names = ", ".join(cap_names(reply.capabilities, ServerCap)) or "none"
        not_applicable(
            "the target does not declare OffersRemoteConfig (0x2): it offers no remote config",
            "the first reply to a new agent declaring AcceptsRemoteConfig had capabilities"
            f" {reply.capabilities:#x} ({names}): {transcript.exchanges[-1].summary()}",
        )
