"""Python twins of the collection's host scripts.

Each twin records the name, version and hash of the script it was written against. The lab refuses a script
whose hash differs from its twin's (the script changed and its twin was not revisited), and
tests/unit/lab/test_twin_discipline.py fails on the same condition without starting the lab.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

from tests.lab.fleet import HostException, HostState

from . import kerberos_log_level

# A twin records a write: operation and its parameters, for the journal.
RecordWrite = t.Callable[[str, dict[str, t.Any]], None]


@dataclass(frozen=True)
class Twin:
    name: str
    version: int
    sha256: str
    run: t.Callable[[HostState, dict[str, t.Any], RecordWrite], t.Any]


TWINS: dict[str, Twin] = {
    twin.name: twin
    for twin in (
        Twin(
            name="kerberos_log_level",
            version=kerberos_log_level.VERSION,
            sha256=kerberos_log_level.SHA256,
            run=kerberos_log_level.run,
        ),
    )
}

__all__ = ["TWINS", "HostException", "RecordWrite", "Twin"]
