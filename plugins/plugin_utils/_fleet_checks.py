# Copyright: mailflow.remediation contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fleet-level checks: what no single host can judge, computed on the controller from every host's results.

Private to the mailflow.remediation collection; not a public API and may change without notice.

- ``clock_spread``: the largest offset between the clocks of any two hosts (KB 979174 step 1, "all clocks within 5
  minutes of each other"). Each w32time result holds the offsets its host measured to its domain controllers by
  SNTP; together they form a graph of clock differences, from which every clock is placed on one time line. Two
  Exchange servers that are each 200 s from their DC in opposite directions are 400 s apart, which neither sees.
  The clocks are the hosts' and their domain controllers' (named by w32time), not the external NTP peers of the
  forest-root PDC emulator.
- ``duplicate_spns``: an SPN held by more than one account (KB 979174 step 3), over the views of every Exchange
  server's DC: a duplicate that only one DC holds yet is still a duplicate.
- ``failing_partners``: a DC that replicates from a partner that fails (KB 979174 step 2): its own inbound link
  fails, or the partner's own inbound replication does, so what it pulls from there is out of date.

The input is the drift report's cells (``_drift_report``): dicts with ``host``, ``check``, ``status``,
``check_mode`` and ``evidence`` (the module's result). A check-mode result shows the state as found in the
``*_before`` values where a module has them; a real run's result shows the state after it.
"""

from __future__ import annotations

import typing as t

# The article's limit: Kerberos' default maximum tolerance for computer clock synchronization.
MAX_CLOCK_SPREAD = 300.0
USABLE = frozenset({"ok", "drift", "fixed"})
FAILING_LINKS = frozenset({"failing", "stale"})

Cell = t.Mapping[str, t.Any]


def fleet_checks(cells: t.Iterable[Cell], *, max_clock_spread: float = MAX_CLOCK_SPREAD) -> dict[str, t.Any]:
    """Every fleet-level check, by name, each with ``status`` (``ok``, ``drift`` or ``unknown``), ``summary`` and
    ``findings`` (sentences; empty when ``ok``)."""
    cells = list(cells)
    return {
        "clock_spread": clock_spread(cells, limit=max_clock_spread),
        "duplicate_spns": duplicate_spns(cells),
        "failing_partners": failing_partners(cells),
    }


class Names:
    """Names hosts the way the report does: a peer an Exchange server names by FQDN is the inventory host of that
    name, or the one whose first label it is (inventories name hosts either way); anything else keeps its name."""

    def __init__(self, hosts: t.Iterable[str]) -> None:
        self._exact = {host.lower(): host for host in hosts}
        labels: dict[str, list[str]] = {}
        for host in self._exact.values():
            labels.setdefault(host.split(".", 1)[0].lower(), []).append(host)
        self._labels = {label: found[0] for label, found in labels.items() if len(found) == 1}

    def __call__(self, name: str) -> str:
        lowered = name.lower()
        if lowered in self._exact:
            return self._exact[lowered]
        return self._labels.get(lowered.split(".", 1)[0], lowered)


def _usable(cells: t.Iterable[Cell], check: str) -> list[Cell]:
    return [cell for cell in cells if cell["check"] == check and cell["status"] in USABLE]


def _as_found(cell: Cell, key: str) -> t.Any:
    """The value as the host had it when it was read: the module's ``KEY_before`` in check mode, when it has one."""
    evidence = cell.get("evidence") or {}
    if cell.get("check_mode") and f"{key}_before" in evidence:
        return evidence[f"{key}_before"]
    return evidence.get(key)


# --- clocks -----------------------------------------------------------------------------------------------------


def clock_spread(cells: t.Sequence[Cell], *, limit: float = MAX_CLOCK_SPREAD) -> dict[str, t.Any]:
    names = Names(cell["host"] for cell in cells)
    # clock(a) - clock(b) = seconds, as host a measured peer b.
    edges: dict[str, list[tuple[str, float]]] = {}
    measured = _usable(cells, "w32time")
    # The fleet's clocks: its hosts and its domain controllers. The forest root's external NTP peers are its time
    # sources, judged by w32time on that host, not clocks of the fleet.
    fleet = {cell["host"] for cell in cells}
    for cell in measured:
        evidence = cell.get("evidence") or {}
        dcs = [*(evidence.get("domain_controllers") or []), evidence.get("pdc_emulator")]
        fleet.update(names(str(name)) for name in dcs if name)
    for cell in measured:
        for entry in _as_found(cell, "offsets") or []:
            if not entry.get("answered") or entry.get("offset") is None:
                continue
            host, peer, seconds = cell["host"], names(str(entry["peer"])), float(entry["offset"])
            if peer == host or peer not in fleet:
                continue
            edges.setdefault(host, []).append((peer, seconds))
            edges.setdefault(peer, []).append((host, -seconds))
    unmeasured = sorted(
        {cell["host"] for cell in cells if cell["check"] == "w32time"} - set(edges),
        key=str.lower,
    )
    result: dict[str, t.Any] = {
        "title": "Largest clock offset between two hosts",
        "limit": limit,
        "spread": None,
        "ahead": None,
        "behind": None,
        "clocks": {},
        "reference": None,
        "unmeasured": unmeasured,
        "groups": 0,
    }
    if not edges:
        return {
            **result,
            "status": "unknown",
            "summary": "no host measured a clock (no w32time result with an answered peer)",
            "findings": [],
        }

    groups = _place_clocks(edges)
    # Every clock relative to the largest group's reference; with several groups (no measurement links them),
    # each is judged on its own and the spread is the largest of theirs.
    groups.sort(key=lambda group: (-len(group[1]), group[0].lower()))
    reference, clocks = groups[0]
    extremes = []
    for _root, placed in groups:
        ahead = max(placed, key=lambda node: (placed[node], node))
        behind = min(placed, key=lambda node: (placed[node], node))
        extremes.append((placed[ahead] - placed[behind], ahead, behind))
    spread, ahead, behind = max(extremes, key=lambda item: item[0])
    spread = round(spread, 3)
    result.update(
        spread=spread,
        ahead=ahead,
        behind=behind,
        clocks={node: round(seconds, 3) for node, seconds in sorted(clocks.items(), key=lambda item: item[0].lower())},
        reference=reference,
        groups=len(groups),
    )
    if len(groups) > 1:
        others = sorted((node for _root, placed in groups[1:] for node in placed), key=str.lower)
        result["not_compared"] = others
    apart = f"{ahead} is {spread:g} s ahead of {behind}"
    if spread > limit:
        return {
            **result,
            "status": "drift",
            "summary": f"{apart}: more than {limit:g} s",
            "findings": [
                f"the clocks of {ahead} and {behind} are {spread:g} s apart, more than {limit:g} s: Kerberos fails "
                f"between them (KB 979174 step 1: all clocks within 5 minutes of each other)"
            ],
        }
    return {**result, "status": "ok", "summary": f"{apart}, within {limit:g} s", "findings": []}


def _place_clocks(edges: dict[str, list[tuple[str, float]]]) -> list[tuple[str, dict[str, float]]]:
    """Each connected group of clocks on one time line, relative to its best-measured clock (0 s): a breadth-first
    walk, each clock placed from the first clock that measured it or that it measured."""
    placed_anywhere: set[str] = set()
    groups = []
    # The best-connected clock first (a DC that everyone measured), then by name, so the result is reproducible.
    for root in sorted(edges, key=lambda node: (-len(edges[node]), node.lower())):
        if root in placed_anywhere:
            continue
        clocks = {root: 0.0}
        queue = [root]
        while queue:
            node = queue.pop(0)
            for peer, seconds in sorted(edges[node], key=lambda edge: edge[0].lower()):
                if peer not in clocks:
                    # clock(node) - clock(peer) = seconds
                    clocks[peer] = clocks[node] - seconds
                    queue.append(peer)
        placed_anywhere.update(clocks)
        groups.append((root, clocks))
    return groups


# --- SPNs --------------------------------------------------------------------------------------------------------


def _owners_as_found(cell: Cell) -> dict[str, list[str]]:
    """The spn module's ``owners`` (after the task) taken back to what the DC held when it was read, in check mode:
    what would be added is taken off, what would be removed is put back."""
    evidence = cell.get("evidence") or {}
    owners = {spn: list(holders) for spn, holders in (evidence.get("owners") or {}).items()}
    if not cell.get("check_mode"):
        return owners
    for account, spns in (evidence.get("added") or {}).items():
        for spn in spns:
            owners[spn] = [holder for holder in owners.get(spn, []) if holder != account]
    for account, spns in (evidence.get("removed") or {}).items():
        for spn in spns:
            owners.setdefault(spn, [])
            if account not in owners[spn]:
                owners[spn].append(account)
    return {spn: holders for spn, holders in owners.items() if holders}


def duplicate_spns(cells: t.Sequence[Cell]) -> dict[str, t.Any]:
    holders: dict[str, dict[str, set[str]]] = {}  # spn (lower) -> account (lower) -> where seen
    spelled: dict[str, str] = {}
    accounts: dict[str, str] = {}
    views = _usable(cells, "spn")
    for cell in views:
        dc = (cell.get("evidence") or {}).get("dc")
        where = f"{cell['host']} through {dc}" if dc else str(cell["host"])
        for spn, owners in _owners_as_found(cell).items():
            spelled.setdefault(spn.lower(), spn)
            for account in owners:
                accounts.setdefault(account.lower(), account)
                holders.setdefault(spn.lower(), {}).setdefault(account.lower(), set()).add(where)
    duplicates = {
        spelled[spn]: sorted(accounts[account] for account in by_account)
        for spn, by_account in sorted(holders.items())
        if len(by_account) > 1
    }
    found = []
    for spn, owners in duplicates.items():
        seen = sorted({where for account in owners for where in holders[spn.lower()][account.lower()]})
        found.append(
            f"{spn} is registered on {' and '.join(owners)} (seen from {', '.join(seen)}): Kerberos cannot tell "
            f"which account a ticket for it is for (KB 979174 step 3)"
        )
    result = {"title": "SPNs registered on more than one account", "duplicates": duplicates, "spns": len(holders)}
    if not views:
        return {**result, "status": "unknown", "summary": "no spn result to compare", "findings": []}
    if duplicates:
        return {**result, "status": "drift", "summary": f"{len(duplicates)} SPN(s) on two accounts", "findings": found}
    return {**result, "status": "ok", "summary": f"{len(holders)} SPN(s), each on one account", "findings": []}


# --- replication --------------------------------------------------------------------------------------------------


def failing_partners(cells: t.Sequence[Cell]) -> dict[str, t.Any]:
    names = Names(cell["host"] for cell in cells)
    links: dict[tuple[str, str], dict[str, t.Any]] = {}  # (DC, partner) -> what the DC found about that link
    failing_inbound: dict[str, list[str]] = {}  # DC -> partners it fails to replicate from
    reports = _usable(cells, "ad_replication")
    for cell in reports:
        dc = names(str((cell.get("evidence") or {}).get("dc") or cell["host"]))
        for neighbour in _as_found(cell, "neighbors") or []:
            partner = names(str(neighbour["source"]))
            link = links.setdefault((dc, partner), {"partitions": [], "failing": [], "texts": set()})
            link["partitions"].append(neighbour.get("partition"))
            if neighbour.get("status") in FAILING_LINKS:
                link["failing"].append(neighbour.get("partition"))
                link["texts"].add(str(neighbour.get("text") or neighbour.get("status")))
                if partner not in failing_inbound.setdefault(dc, []):
                    failing_inbound[dc].append(partner)
    unreachable = {cell["host"] for cell in cells if cell["status"] == "unreachable"}
    found = []
    pairs = []
    for (dc, partner), link in sorted(links.items(), key=lambda item: (item[0][0].lower(), item[0][1].lower())):
        if link["failing"]:
            contexts = len(link["failing"])
            found.append(
                f"{dc} replicates from {partner}, and that link fails in {contexts} naming context(s): "
                f"{'; '.join(sorted(link['texts']))} (KB 979174 step 2)"
            )
            pairs.append({"dc": dc, "partner": partner, "why": "link", "partitions": link["failing"]})
        elif failing_inbound.get(partner):
            found.append(
                f"{dc} replicates from {partner}, whose own inbound replication fails (from "
                f"{', '.join(sorted(failing_inbound[partner], key=str.lower))}): what {dc} gets from {partner} may be "
                f"out of date (KB 979174 step 2)"
            )
            pairs.append({"dc": dc, "partner": partner, "why": "partner", "partitions": link["partitions"]})
    not_audited = sorted({partner for (_dc, partner) in links if partner in unreachable}, key=str.lower)
    result = {
        "title": "DCs that replicate from a failing partner",
        "pairs": pairs,
        "links": len(links),
        "partners_not_audited": not_audited,
    }
    if not reports:
        return {**result, "status": "unknown", "summary": "no ad_replication result to compare", "findings": []}
    if found:
        dcs = sorted({pair["dc"] for pair in pairs}, key=str.lower)
        return {
            **result,
            "status": "drift",
            "summary": f"{len(dcs)} DC(s) replicate from a failing partner: {', '.join(dcs)}",
            "findings": found,
        }
    return {**result, "status": "ok", "summary": f"{len(links)} replication link(s), none failing", "findings": []}
