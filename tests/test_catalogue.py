"""The catalogue and the suite stay in step: every test names known requirements, every
requirement has a test, and the kill matrix proves every requirement."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from collections.abc import Callable, Iterator

import conformance.suite
from conformance.catalogue import CATALOGUE, REQUIREMENTS, Level
from fixtures.kill_matrix import load

ID_PATTERN = re.compile(r"^(SRV|AGT|FLEET)-[A-Z0-9]+(-[A-Z0-9]+)*$")


def suite_tests() -> Iterator[tuple[str, Callable[..., object]]]:
    for info in pkgutil.iter_modules(conformance.suite.__path__):
        if not info.name.startswith("test_"):
            continue
        module = importlib.import_module(f"conformance.suite.{info.name}")
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            if name.startswith("test_") and fn.__module__ == module.__name__:
                yield f"{info.name}.{name}", fn


def declared(fn: Callable[..., object]) -> list[str]:
    marks = getattr(fn, "pytestmark", [])
    return [str(a) for m in marks if m.name == "requirement" for a in m.args]


def test_every_suite_test_names_known_requirements() -> None:
    tests = list(suite_tests())
    assert tests
    for name, fn in tests:
        ids = declared(fn)
        assert ids, f"{name} declares no @pytest.mark.requirement"
        unknown = [i for i in ids if i not in CATALOGUE]
        assert not unknown, f"{name} names unknown requirements {unknown}"


def test_every_requirement_has_a_test() -> None:
    covered = {i for _, fn in suite_tests() for i in declared(fn)}
    assert set(CATALOGUE) - covered == set()


def test_catalogue_entries_are_well_formed() -> None:
    assert len(CATALOGUE) == len(REQUIREMENTS), "duplicate IDs"
    for req in REQUIREMENTS:
        assert ID_PATTERN.match(req.id), req.id
        assert req.title and not req.title.endswith(".")
        assert req.source.startswith("https://")


def test_kill_matrix_proves_every_must_and_should() -> None:
    matrix = load()
    assert not matrix["reference"].fail and not matrix["reference"].warn
    assert matrix["reference"].behaviour == "reference"
    killed = {i for case in matrix.values() for i in case.fail | case.warn}
    unproven = {r.id for r in REQUIREMENTS if r.level not in (Level.MAY, Level.INFO)} - killed
    assert not unproven, f"no faulty target proves {sorted(unproven)}"
    assert killed <= set(CATALOGUE)
