"""Hosts of a whole lab fleet for the action plugins' unit tests: each answers through the lab's cmd shell path
(tests/unit/conftest.py's EmulatedHost), all sharing one fleet, so that a probe from an Exchange server meets the
DC's firewall and a change on a DC is what the next probe meets."""

from __future__ import annotations

import typing as t

from tests.lab.fleet import Fleet, fleet_from_document
from tests.unit.conftest import EmulatedHost, make_action
from tests.unit.lab.conftest import fleet_document, host_entry

CREDENTIALS = {"domain_username": "CONTOSO\\ansible", "domain_password": "Lab-Passw0rd!"}


def fleet_of(
    name: str, *, locale: str | None = None, change: t.Callable[[dict[str, t.Any]], None] | None = None
) -> Fleet:
    """A shipped fleet, every host in ``locale`` when given, after ``change`` to its document."""
    document = fleet_document(name)
    if locale is not None:
        for entry in document["hosts"]:
            entry["locale"] = locale
    if change is not None:
        change(document)
    return fleet_from_document(name, document)


def emulate(fleet: Fleet, name: str) -> EmulatedHost:
    host = EmulatedHost(fleet.hosts[name])
    host.fleet = fleet
    return host


def run(
    action_class: type,
    fleet: Fleet,
    name: str,
    args: dict[str, t.Any] | None = None,
    *,
    check_mode: bool = False,
    fqcn: str,
) -> tuple[dict[str, t.Any], EmulatedHost]:
    host = emulate(fleet, name)
    result = make_action(action_class, dict(args or {}), host, check_mode=check_mode, fqcn=fqcn).run(task_vars={})
    return result, host


__all__ = ["CREDENTIALS", "emulate", "fleet_of", "host_entry", "run"]
