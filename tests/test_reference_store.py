"""The reference server's shared state store: two handles on one file act as one service."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.messages import full_status, heartbeat, new_uid
from conformance.model.fullstate import AgentHistory
from conformance.wire import ServerFlag
from fixtures.reference.logic import OpAMPLogic
from fixtures.reference.store import MemoryAgents, SqliteAgents


def test_histories_round_trip_and_are_seen_by_another_process_handle(tmp_path: Path) -> None:
    path = tmp_path / "agents.sqlite"
    first, second = SqliteAgents(path), SqliteAgents(path)
    uid = new_uid()
    history = AgentHistory(known=True, last_seq=41, said_goodbye=True, awaiting_full=True)
    with first.transaction():
        first[uid] = history
    assert second[uid] == history
    assert uid in second and len(second) == 1 and list(second) == [uid]
    del second[uid]
    assert uid not in first
    first.close()
    second.close()


def test_a_failed_transaction_leaves_nothing_behind(tmp_path: Path) -> None:
    store = SqliteAgents(tmp_path / "agents.sqlite")
    uid = new_uid()
    with pytest.raises(RuntimeError), store.transaction():
        store[uid] = AgentHistory(known=True)
        raise RuntimeError("boom")
    assert uid not in store
    store.close()


def test_two_logics_sharing_a_file_judge_drift_as_one(tmp_path: Path) -> None:
    path = tmp_path / "agents.sqlite"
    one, two = OpAMPLogic(SqliteAgents(path)), OpAMPLogic(SqliteAgents(path))
    uid = new_uid()
    replies = []
    for seq, logic in enumerate([one, two, one]):
        msg = full_status(uid, seq) if seq == 0 else heartbeat(uid, seq)
        with logic.transaction():
            replies.append(logic.handle(msg))
    assert all(r is not None and not r.flags & ServerFlag.REPORT_FULL_STATE for r in replies)
    with two.transaction():
        duplicate = two.handle(heartbeat(uid, 2))
    assert duplicate is not None and duplicate.flags & ServerFlag.REPORT_FULL_STATE


def test_memory_store_is_a_dict_with_a_no_op_transaction() -> None:
    store = MemoryAgents()
    with store.transaction():
        store[b"x" * 16] = AgentHistory(known=True)
    assert store[b"x" * 16].known
