"""Python twins of the collection's host scripts.

A twin is a module of this package named after its script. It records the version and hash of the script text it
was reviewed against (``VERSION``, ``SHA256``) and answers a run with ``run(context, params)``: the result the
script would return, after making the changes the script would make to the emulated host or fleet.

The lab refuses a script whose hash differs from its twin's (the script changed and its twin was not revisited),
and tests/unit/lab/test_twin_discipline.py fails on the same condition without starting the lab. A twin reports
nothing about its writes: the lab finds them itself, by comparing the state before and after (see
tests/lab/journal.py), so a twin that forgets a write cannot hide it. ``params`` admits only the inputs the
script's contract declares.
"""

from __future__ import annotations

import importlib
import pkgutil
import typing as t
from dataclasses import dataclass

from tests.lab.fleet import Fleet, HostException, HostState


@dataclass(frozen=True)
class Session:
    """Who the script runs as, and how the WinRM client logged on: what decides a second hop on Windows.

    ``auth`` is the mechanism of the logon (``basic``, ``ntlm``, ``negotiate``, ...). A network logon by NTLM holds
    no credentials the host could pass to a third machine; Basic (a cleartext logon) and CredSSP do.
    """

    auth: str
    user: str

    @property
    def can_delegate(self) -> bool:
        return self.auth in ("basic", "credssp")


@dataclass(frozen=True)
class TwinContext:
    host: HostState
    fleet: Fleet
    session: Session


class Params(t.Mapping[str, t.Any]):
    """A script's parameters as the twin may read them: only what the script's contract declares as input."""

    def __init__(self, script: str, values: t.Mapping[str, t.Any], declared: t.Iterable[str]) -> None:
        self._script = script
        self._values = dict(values)
        self._declared = frozenset(declared)

    def __getitem__(self, key: str) -> t.Any:
        if key not in self._declared:
            raise KeyError(f"the twin of {self._script} reads {key!r}, which its script does not declare as input")
        return self._values.get(key)

    def __iter__(self) -> t.Iterator[str]:
        return iter(sorted(self._declared))

    def __len__(self) -> int:
        return len(self._declared)


@dataclass(frozen=True)
class Twin:
    name: str
    version: int
    sha256: str
    run: t.Callable[[TwinContext, Params], dict[str, t.Any]]


def _discover() -> dict[str, Twin]:
    twins = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        twins[info.name] = Twin(name=info.name, version=module.VERSION, sha256=module.SHA256, run=module.run)
    return twins


TWINS: dict[str, Twin] = _discover()

__all__ = ["TWINS", "HostException", "Params", "Session", "Twin", "TwinContext"]
