"""``fleet-conformance``: the installed suite, runnable from any directory.

Everything after the command goes to pytest, so every option of the plugin
(and of pytest, xdist, Hypothesis and Allure) works as in the repository:
``fleet-conformance --target=http://fleet:8220 -n auto --profile=nightly``.
Reports go to ``./reports`` unless ``--report-dir=DIR`` says otherwise.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import conformance

#: An empty pytest configuration shipped with the package, so an ini file in
#: the caller's directory (another project's addopts) cannot change the run.
CLI_INI = Path(conformance.__file__).parent / "cli.ini"


def pytest_args(argv: list[str]) -> list[str]:
    """The pytest command line ``fleet-conformance ARGV`` stands for."""
    package_root = Path(conformance.__file__).parent.parent
    return [
        "--pyargs",
        "conformance.suite",
        f"--rootdir={package_root}",
        "-c",
        str(CLI_INI),
        "-p",
        "no:cacheprovider",
        *argv,
    ]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    return int(pytest.main(pytest_args(list(args))))


if __name__ == "__main__":
    raise SystemExit(main())
