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
    return {"host": host_state, "fleet": fleet.facts()}


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
    return _diff(before, after, ())


def _diff(old: t.Any, new: t.Any, path: Path) -> list[dict[str, t.Any]]:
    # Most scripts only read: a part that did not change is told apart by one comparison, without walking its leaves
    # (a 500-host fleet has thousands of them).
    if old == new:
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in sorted(set(old) | set(new), key=str):
            found += _diff(old.get(key, _ABSENT), new.get(key, _ABSENT), (*path, str(key)))
        return found
    old_leaves = {} if old is _ABSENT else flatten(old, path)
    new_leaves = {} if new is _ABSENT else flatten(new, path)
    return [
        {"path": "/".join(leaf), "before": old_leaves.get(leaf, MISSING), "after": new_leaves.get(leaf, MISSING)}
        for leaf in sorted(set(old_leaves) | set(new_leaves))
        if (leaf in old_leaves) != (leaf in new_leaves) or old_leaves.get(leaf) != new_leaves.get(leaf)
    ]


_ABSENT = object()


def registry_value_changes(entries: t.Iterable[dict[str, t.Any]], host: str) -> list[tuple[str, t.Any, t.Any]]:
    """From journal entries: the registry values the lab found changed on ``host``, as (value name, before, after),
    where before or after is MISSING for a value that did not exist, or no longer does."""
    return [
        (entry["path"].rsplit("/", 1)[-1], entry["before"], entry["after"])
        for entry in entries
        if entry["host"] == host and entry["path"].startswith("host/registry/") and "/values/" in entry["path"]
    ]
