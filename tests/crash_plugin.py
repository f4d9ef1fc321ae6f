"""A pytest plugin for one self-test: an xdist worker dies under a suite test.

Loaded with ``-p tests.crash_plugin``; only with ``FLEET_CONFORMANCE_CRASH`` set
to a requirement ID, in an xdist worker, does it end the worker process in the
middle of each test that checks that requirement (as an out-of-memory kill or a
segfault would).
"""

from __future__ import annotations

import os

import pytest

from conformance.plugin.results import requirement_ids


def pytest_runtest_call(item: pytest.Item) -> None:
    wanted = os.environ.get("FLEET_CONFORMANCE_CRASH")
    if wanted and hasattr(item.config, "workerinput") and wanted in requirement_ids(item):
        os._exit(9)
