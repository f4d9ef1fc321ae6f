#!/usr/bin/env python3
"""Regenerate the committed protobuf modules in ``conformance/pb/opamp/v1``.

The ``.proto`` sources live in ``protos/opamp/v1``. This script compiles them
with the protoc bundled in ``grpcio-tools`` (``--python_out``) and the
``protoc-gen-mypy`` plugin from ``mypy-protobuf`` (``--mypy_out``) into a
scratch directory, then rewrites the absolute ``opamp.v1`` imports protoc
emits so that they point into the ``conformance.pb.opamp.v1`` package.

Usage::

    python scripts/regen_protos.py           # rewrite the committed files
    python scripts/regen_protos.py --check   # exit 1 if they are stale
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = REPO_ROOT / "protos"

# Proto files, as named relative to the include root (``protos/``).
PROTO_FILES: tuple[str, ...] = ("opamp/v1/anyvalue.proto", "opamp/v1/opamp.proto")

# Module path protoc derives from the proto file layout, and where it must go.
SOURCE_PACKAGE = "opamp.v1"
TARGET_PACKAGE = "conformance.pb.opamp.v1"
# Output directory (relative to the repository root) of the generated modules.
OUTPUT_DIR = Path(*TARGET_PACKAGE.split("."))

# Packages that must exist (with an ``__init__.py``) for the output to import.
PACKAGE_DIRS: tuple[Path, ...] = (
    Path("conformance/pb"),
    Path("conformance/pb/opamp"),
    Path("conformance/pb/opamp/v1"),
)

_SRC = re.escape(SOURCE_PACKAGE)
# ``from opamp.v1 import anyvalue_pb2 as ...`` (protoc .py and mypy-protobuf .pyi).
_FROM_IMPORT_RE = re.compile(rf"^(?P<indent>[ \t]*)from {_SRC} import ", re.MULTILINE)
# ``opamp.v1.anyvalue_pb2`` as a dotted module reference: covers
# ``import opamp.v1.anyvalue_pb2``, attribute access through such an import,
# and the module name string passed to ``BuildTopDescriptorsAndMessages``.
_DOTTED_RE = re.compile(rf"(?<![\w.]){_SRC}\.(?=\w+_pb2\b)")
# Anything still mentioning the source package after rewriting is an error.
_LEFTOVER_RE = re.compile(rf"(?<![\w.]){_SRC}(?![\w])")


class RegenError(RuntimeError):
    """Raised when protoc fails or its output cannot be rewritten."""


def _load_protoc() -> ModuleType:
    """Import ``grpc_tools.protoc`` (untyped, hence loaded through importlib)."""
    return importlib.import_module("grpc_tools.protoc")


def _grpc_tools_include(protoc: ModuleType) -> Path:
    """Return the directory of well-known ``.proto`` files bundled with grpc_tools."""
    if protoc.__file__ is None:
        raise RegenError("cannot locate the grpc_tools package directory")
    return Path(protoc.__file__).resolve().parent / "_proto"


def _mypy_plugin() -> Path:
    """Locate ``protoc-gen-mypy`` next to the running interpreter (venv bin dir)."""
    bin_dir = Path(sys.executable).parent
    for name in ("protoc-gen-mypy", "protoc-gen-mypy.exe"):
        candidate = bin_dir / name
        if candidate.is_file():
            return candidate
    found = shutil.which("protoc-gen-mypy")
    if found is not None:
        return Path(found)
    raise RegenError(f"protoc-gen-mypy not found in {bin_dir} or on PATH; install mypy-protobuf")


def rewrite_imports(text: str) -> str:
    """Point protoc's ``opamp.v1`` module references at ``conformance.pb.opamp.v1``."""
    out_lines: list[str] = []
    for line in text.splitlines(keepends=True):
        # Never touch the serialized descriptor literal.
        if "AddSerializedFile(" in line:
            out_lines.append(line)
            continue
        line = _FROM_IMPORT_RE.sub(rf"\g<indent>from {TARGET_PACKAGE} import ", line)
        line = _DOTTED_RE.sub(f"{TARGET_PACKAGE}.", line)
        out_lines.append(line)
    result = "".join(out_lines)
    for line in result.splitlines():
        if "AddSerializedFile(" in line or line.lstrip().startswith("#"):
            continue
        stripped = line.replace(TARGET_PACKAGE, "")
        if _LEFTOVER_RE.search(stripped):
            raise RegenError(f"unrewritten reference to {SOURCE_PACKAGE!r}: {line.strip()}")
    return result


def _run_protoc(out_dir: Path, proto_root: Path) -> None:
    protoc = _load_protoc()
    args = [
        "grpc_tools.protoc",
        f"--proto_path={proto_root}",
        f"--proto_path={_grpc_tools_include(protoc)}",
        f"--plugin=protoc-gen-mypy={_mypy_plugin()}",
        f"--python_out={out_dir}",
        f"--mypy_out={out_dir}",
        *(str(proto_root / name) for name in PROTO_FILES),
    ]
    # protoc and the protoc-gen-mypy subprocess write to file descriptor 2
    # (the plugin chatters "Writing mypy to ..."); capture it at the fd level
    # and only show it if protoc fails.
    with tempfile.TemporaryFile() as err:
        sys.stderr.flush()
        saved_fd = os.dup(2)
        try:
            os.dup2(err.fileno(), 2)
            status = int(protoc.main(args))
        finally:
            os.dup2(saved_fd, 2)
            os.close(saved_fd)
        err.seek(0)
        messages = err.read().decode("utf-8", errors="replace")
    if status != 0:
        raise RegenError(f"protoc exited with status {status}:\n{messages}")


def render(proto_root: Path = PROTO_ROOT) -> dict[str, bytes]:
    """Compile the protos and return the rewritten modules.

    Keys are POSIX paths relative to the repository root, for example
    ``conformance/pb/opamp/v1/opamp_pb2.py``.
    """
    result: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="regen_protos_") as tmp:
        tmp_dir = Path(tmp)
        _run_protoc(tmp_dir, proto_root)
        src_dir = tmp_dir / Path(*SOURCE_PACKAGE.split("."))
        for path in sorted(src_dir.iterdir()):
            if path.suffix not in (".py", ".pyi") or not path.is_file():
                continue
            text = path.read_text(encoding="utf-8")
            rel = (OUTPUT_DIR / path.name).as_posix()
            result[rel] = rewrite_imports(text).encode("utf-8")
    expected = {
        (OUTPUT_DIR / f"{Path(name).stem}_pb2{ext}").as_posix()
        for name in PROTO_FILES
        for ext in (".py", ".pyi")
    }
    if set(result) != expected:
        raise RegenError(f"unexpected protoc output: {sorted(result)} != {sorted(expected)}")
    return result


def generate(dest_root: Path, proto_root: Path = PROTO_ROOT) -> dict[str, bytes]:
    """Generate the modules and write them below ``dest_root``.

    ``dest_root`` plays the role of the repository root: files land in
    ``dest_root / "conformance/pb/opamp/v1"``. Returns the written contents
    keyed by their path relative to ``dest_root``.
    """
    files = render(proto_root)
    for rel, content in files.items():
        target = dest_root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    return files


def stale_files(files: Mapping[str, bytes], root: Path = REPO_ROOT) -> list[str]:
    """Return the paths in ``files`` whose copy under ``root`` is missing or different."""
    stale: list[str] = []
    for rel, content in sorted(files.items()):
        target = root / rel
        if not target.is_file() or target.read_bytes() != content:
            stale.append(rel)
    return stale


def _ensure_packages(root: Path) -> None:
    for pkg in PACKAGE_DIRS:
        init = root / pkg / "__init__.py"
        if not init.exists():
            init.parent.mkdir(parents=True, exist_ok=True)
            init.write_text("")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--check",
        action="store_true",
        help="do not write; exit 1 and list the files that differ from the committed ones",
    )
    args = parser.parse_args(argv)

    try:
        files = render()
    except RegenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    if args.check:
        stale = stale_files(files)
        if stale:
            print("generated protobuf code is out of date:", file=sys.stderr)
            for rel in stale:
                print(f"  {rel}", file=sys.stderr)
            print("run: python scripts/regen_protos.py", file=sys.stderr)
            return 1
        print(f"{len(files)} generated files are up to date")
        return 0

    _ensure_packages(REPO_ROOT)
    for rel, content in files.items():
        target = REPO_ROOT / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.is_file() or target.read_bytes() != content:
            target.write_bytes(content)
            print(f"wrote {rel}")
        else:
            print(f"unchanged {rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
