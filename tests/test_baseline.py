"""Expected-failure baselines: reading them, and what they do to verdicts and exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.baseline import BaselineError, Entry, load
from conformance.plugin.embedded import EmbeddedServer
from conformance.plugin.results import Finding, Results
from conformance.verdicts import Verdict
from tests.suite_runner import run_suite


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "baseline.yaml"
    path.write_text(text)
    return path


def test_entries_are_read_with_reason_and_optional_target(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "- id: SRV-FS-QUIET\n  reason: flags every reply\n"
        "- id: SRV-413\n  reason: no limit\n  target: http://x:1\n",
    )
    assert load(path) == [
        Entry("SRV-FS-QUIET", "flags every reply"),
        Entry("SRV-413", "no limit", "http://x:1"),
    ]
    assert load(write(tmp_path, "")) == []


@pytest.mark.parametrize(
    "text, message",
    [
        ("- id: SRV-FS-QUIET\n", "needs a reason"),
        ("- id: SRV-FS-QUIET\n  reason: '  '\n", "needs a reason"),
        ("- id: NOT-AN-ID\n  reason: x\n", "not a catalogue requirement"),
        ("- id: SRV-413\n  reason: x\n  colour: red\n", "unknown keys"),
        ("id: SRV-413\n", "list of entries"),
        ("- [unclosed\n", "not YAML"),
    ],
)
def test_bad_baselines_are_refused(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(BaselineError, match=message):
        load(write(tmp_path, text))


def test_listed_failures_pass_unlisted_fail_and_listed_passes_are_stale() -> None:
    results = Results()
    results.add("t1", [Finding("SRV-UID-ECHO", Verdict.FAIL, "reversed")])
    results.add("t2", [Finding("SRV-REPLY", Verdict.PASS)])
    assert results.exit_status() == 1
    results.apply_baseline([Entry("SRV-UID-ECHO", "known")], ["http://t"])
    assert results.exit_status() == 0
    assert results.by_id["SRV-UID-ECHO"].to_json()["baseline"] == {
        "status": "expected",
        "reason": "known",
    }
    results.apply_baseline([Entry("SRV-REPLY", "was broken")], ["http://t"])
    assert results.by_id["SRV-REPLY"].baseline == "stale"
    assert results.exit_status() == 1


def test_entries_for_another_target_do_not_apply() -> None:
    results = Results()
    results.add("t1", [Finding("SRV-UID-ECHO", Verdict.FAIL, "reversed")])
    results.apply_baseline([Entry("SRV-UID-ECHO", "known", "http://other")], ["http://t"])
    assert results.exit_status() == 1


def test_a_run_with_a_baseline(tmp_path: Path) -> None:
    server = EmbeddedServer(args=["--behaviour", "wrong-instance-uid"])
    url = server.start()
    chosen = ["--requirement=SRV-UID-ECHO", "--requirement=SRV-REPLY", "-q", f"--target={url}"]
    try:
        listed = write(tmp_path, "- id: SRV-UID-ECHO\n  reason: uid bytes reversed\n")
        ok = run_suite([*chosen, f"--expected-failures={listed}"], tmp_path / "ok")
        stale_file = tmp_path / "stale.yaml"
        stale_file.write_text(listed.read_text() + "- id: SRV-REPLY\n  reason: fixed since\n")
        stale = run_suite([*chosen, f"--expected-failures={stale_file}"], tmp_path / "stale")
        bare = tmp_path / "bare.yaml"
        bare.write_text("- id: SRV-UID-ECHO\n")
        refused = run_suite([*chosen, f"--expected-failures={bare}"], tmp_path / "bad")
    finally:
        server.stop()
    assert ok.returncode == 0, ok.output
    assert "FAIL (expected) SRV-UID-ECHO" in ok.output
    assert stale.returncode == 1, stale.output
    assert "STALE SRV-REPLY" in stale.output
    assert refused.returncode == 4 and "needs a reason" in refused.output
