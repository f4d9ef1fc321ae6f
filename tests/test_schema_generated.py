"""The committed code in conformance/pb/opamp/v1 must match a fresh generation."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import cast

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
REGEN_SCRIPT = REPO_ROOT / "scripts" / "regen_protos.py"
GENERATED_DIR = REPO_ROOT / "conformance" / "pb" / "opamp" / "v1"
REGEN_HINT = "run `python scripts/regen_protos.py` and commit the result"


def _load_regen_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("regen_protos", REGEN_SCRIPT)
    assert spec is not None and spec.loader is not None, f"cannot load {REGEN_SCRIPT}"
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _committed_generated_files() -> set[str]:
    return {
        path.relative_to(REPO_ROOT).as_posix()
        for path in GENERATED_DIR.iterdir()
        if path.is_file() and path.suffix in (".py", ".pyi") and path.stem.endswith("_pb2")
    }


def test_committed_generated_code_matches_fresh_generation(tmp_path: Path) -> None:
    pytest.importorskip(
        "grpc_tools",
        reason="grpcio-tools is not installed (install the dev extras: pip install -e '.[dev]')",
    )
    regen = _load_regen_script()
    generate = cast(Callable[[Path], dict[str, bytes]], regen.generate)

    files = generate(tmp_path)

    assert files, "the generator produced no files"
    problems: list[str] = []
    for rel, content in sorted(files.items()):
        assert (tmp_path / rel).read_bytes() == content, f"generate() did not write {rel}"
        committed = REPO_ROOT / rel
        if not committed.is_file():
            problems.append(f"{rel}: not committed")
        elif committed.read_bytes() != content:
            problems.append(f"{rel}: differs from a fresh generation")
    problems.extend(
        f"{rel}: committed but not produced by the generator (stale?)"
        for rel in sorted(_committed_generated_files() - set(files))
    )
    assert not problems, (
        "generated protobuf code is out of date:\n  " + "\n  ".join(problems) + f"\n{REGEN_HINT}"
    )
