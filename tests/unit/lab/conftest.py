"""Fleets for the lab's model tests: the clean fleet as a document to introduce one cause into, and loaders."""

from __future__ import annotations

import copy
import typing as t

import pytest
import yaml

from tests.lab.fleet import FLEETS_DIR, Fleet, fleet_from_document

_DOCUMENTS: dict[str, dict[str, t.Any]] = {}


def fleet_document(name: str) -> dict[str, t.Any]:
    """A shipped fleet file as a document a test may change (parsed once, copied for every test)."""
    if name not in _DOCUMENTS:
        _DOCUMENTS[name] = yaml.safe_load((FLEETS_DIR / f"{name}.yml").read_text(encoding="utf-8"))
    return copy.deepcopy(_DOCUMENTS[name])


def host_entry(document: dict[str, t.Any], name: str) -> dict[str, t.Any]:
    return next(entry for entry in document["hosts"] if entry["name"] == name)


@pytest.fixture
def clean_document() -> dict[str, t.Any]:
    return fleet_document("clean")


@pytest.fixture
def load() -> t.Callable[[dict[str, t.Any]], Fleet]:
    return lambda document: fleet_from_document("test", document)
