"""The lab's journal of writes, found by the lab itself: the emulated host and fleet before and after a script.

A twin does not report its writes. The lab takes a snapshot of the host the script ran on and of the fleet-wide
state (the directory, the network) before the twin runs and after, under the fleet's lock, and records every value
that differs. A twin that changes something without meaning to, or a check mode that writes, shows up here
whatever the twin believes it did.
"""

from __future__ import annotations

import typing as t

if t.TYPE_CHECKING:
    from tests.lab.fleet import Fleet, HostState

Path = tuple[str, ...]


def state_of(host: HostState, fleet: Fleet) -> dict[str, t.Any]:
    """What a script on ``host`` could change: the host itself and the fleet-wide state."""
    host_state = host.snapshot()
    # A registry key's own existence is a fact of its own (an empty key is still there): KEY/exists, KEY/values/NAME.
    host_state["registry"] = {key: {"exists": True, "values": values} for key, values in host_state["registry"].items()}
    # Events by record id rather than by position: a full log drops its oldest event, which would shift every index.
    host_state["events"]["logs"] = {
        log: {str(event["record_id"]): event for event in events}
        for log, events in host_state["events"]["logs"].items()
    }
    return {"host": host_state, "fleet": fleet.snapshot()}


def flatten(value: t.Any, path: Path = ()) -> dict[Path, t.Any]:
    """Leaves by path. An empty mapping has none: where a container's existence matters, the state says so itself
    (a registry key's "exists")."""
    if isinstance(value, dict):
        return {leaf: item for key, child in value.items() for leaf, item in flatten(child, (*path, str(key))).items()}
    if isinstance(value, list) and value and any(isinstance(item, (dict, list)) for item in value):
        return {
            leaf: item
            for index, child in enumerate(value)
            for leaf, item in flatten(child, (*path, str(index))).items()
        }
    return {path: value}


MISSING = "(absent)"


def changes(before: dict[str, t.Any], after: dict[str, t.Any]) -> list[dict[str, t.Any]]:
    """Every leaf that differs, as {"path", "before", "after"}; a leaf that appeared or vanished is MISSING on the
    side where it does not exist."""
    old, new = flatten(before), flatten(after)
    found = []
    for path in sorted(set(old) | set(new)):
        if (path in old) != (path in new) or old.get(path) != new.get(path):
            found.append({"path": "/".join(path), "before": old.get(path, MISSING), "after": new.get(path, MISSING)})
    return found


def registry_value_changes(entries: t.Iterable[dict[str, t.Any]], host: str) -> list[tuple[str, t.Any, t.Any]]:
    """From journal entries: the registry values the lab found changed on ``host``, as (value name, before, after),
    where before or after is MISSING for a value that did not exist, or no longer does."""
    return [
        (entry["path"].rsplit("/", 1)[-1], entry["before"], entry["after"])
        for entry in entries
        if entry["host"] == host and entry["path"].startswith("host/registry/") and "/values/" in entry["path"]
    ]
