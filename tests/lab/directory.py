"""Active Directory as the articles need it: accounts and their SPNs, one replica per domain controller.

Every DC starts from the same converged baseline. A write (an SPN added or removed) originates on one DC and is
visible there at once; another DC sees it only after it replicated it over an inbound link from a DC that has it.
A link whose last result is an error does not replicate on its own schedule; a forced sync (the effect of
``repadmin /syncall /AdeP``) retries it and succeeds unless the link is ``persistent`` (the cause lies outside AD:
a network or DNS failure that a sync cannot fix).

One domain per forest: SPN uniqueness is forest-wide, and with one domain every DC's replica is what the KDC and the
global catalog search. SPNs compare case-insensitively, as AD compares them.

Since Windows Server 2012 R2 a DC refuses an originating write that adds an SPN another account already holds
(:class:`SpnNotUniqueError`). Duplicates still arise, and a fleet file may plant them: accounts made before 2012 R2,
or the same SPN written on two DCs before either change replicated; each DC checks only what its replica holds.
"""

from __future__ import annotations

import time
import typing as t
from dataclasses import dataclass, field

# Win32 errors repadmin reports for a failing link; the lab uses them as numbers, never as text.
RPC_S_SERVER_UNAVAILABLE = 1722
# A sync requested by an account without the "Replicating Directory Changes"/"Replication Synchronization" rights.
ERROR_DS_DRA_ACCESS_DENIED = 8453
# winerror.h: ERROR_DS_SPN_VALUE_NOT_UNIQUE_IN_FOREST is 8647 (0x21C7, the code in "000021C7: AtrErr ... Att 90303
# (servicePrincipalName)" that ldap_modify reports). Microsoft's "SPN and UPN uniqueness" page says "8467 or 8468":
# transpositions of 8647 and of its UPN twin, ERROR_DS_UPN_VALUE_NOT_UNIQUE_IN_FOREST (8648).
ERROR_DS_SPN_VALUE_NOT_UNIQUE_IN_FOREST = 8647
SPN_NOT_UNIQUE_TEXT = (
    "The operation failed because SPN value provided for addition/modification is not unique forest-wide."
)


class SpnNotUniqueError(Exception):
    """A DC refused an originating write: ``spn`` is already held by ``owner`` in its replica."""

    win32_error = ERROR_DS_SPN_VALUE_NOT_UNIQUE_IN_FOREST
    message = SPN_NOT_UNIQUE_TEXT  # what FormatMessage gives for the error on an English host

    def __init__(self, *, dc: str, account: str, spn: str, owner: str) -> None:
        super().__init__(f"{SPN_NOT_UNIQUE_TEXT} {spn} is held by {owner}; the write to {account} on {dc} was refused.")
        self.dc = dc
        self.account = account
        self.spn = spn
        self.owner = owner


@dataclass
class Account:
    sam: str  # sAMAccountName: EX01$ for a computer
    kind: str = "computer"  # computer | user
    host: str | None = None  # the lab host a computer account belongs to
    spns: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DirectoryChange:
    seq: int
    origin: str  # the DC the write was made on
    account: str
    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    time: float = 0.0


@dataclass
class ReplicationLink:
    """An inbound replication link: ``destination`` pulls changes from ``source``."""

    destination: str
    source: str
    last_result: int = 0  # 0 or the Win32 error of the last attempt
    consecutive_failures: int = 0
    last_success: float = field(default_factory=time.time)
    last_attempt: float = field(default_factory=time.time)
    persistent: bool = False  # a forced sync fails too, with last_result

    def snapshot(self) -> dict[str, t.Any]:
        return {
            "destination": self.destination,
            "source": self.source,
            "last_result": self.last_result,
            "consecutive_failures": self.consecutive_failures,
            "last_success": self.last_success,
            "last_attempt": self.last_attempt,
            "persistent": self.persistent,
        }


@dataclass(frozen=True)
class SyncResult:
    destination: str
    source: str
    ok: bool
    result: int
    changes: int  # changes the destination received over this link


@dataclass
class Directory:
    accounts: dict[str, Account] = field(default_factory=dict)  # baseline, keyed by lower-case sAMAccountName
    dcs: list[str] = field(default_factory=list)
    links: list[ReplicationLink] = field(default_factory=list)
    changes: list[DirectoryChange] = field(default_factory=list)
    seen: dict[str, set[int]] = field(default_factory=dict)  # per DC: the changes it has applied
    # What the lab's account may not do (fleet file ``directory:``): write the SPNs of these accounts (lower-case
    # sAMAccountNames), or request a replication sync on these DCs (it lacks "Replication Synchronization" there).
    write_denied: set[str] = field(default_factory=set)
    sync_denied: set[str] = field(default_factory=set)
    # Views are cached by the set of changes a replica has applied, so DCs in the same state share one and a
    # write or a sync needs no invalidation: a fleet of hundreds asks thousands of times per retry.
    _views: dict[frozenset[int], tuple[dict[str, list[str]], dict[str, list[str]]]] = field(
        default_factory=dict, repr=False
    )

    def invalidate(self) -> None:
        """Forget cached views; call it after changing an Account's ``spns`` directly."""
        self._views.clear()

    # --- setup --------------------------------------------------------------------------------------------------
    def add_account(self, account: Account) -> None:
        key = account.sam.lower()
        if key in self.accounts:
            raise ValueError(f"directory: account {account.sam} is defined twice")
        self.accounts[key] = account
        self.invalidate()

    def add_dc(self, name: str) -> None:
        if name not in self.dcs:
            self.dcs.append(name)
            self.seen[name] = set()

    def link(self, destination: str, source: str) -> ReplicationLink | None:
        return next((item for item in self.links if item.destination == destination and item.source == source), None)

    def links_into(self, destination: str) -> list[ReplicationLink]:
        return [item for item in self.links if item.destination == destination]

    def account(self, sam: str) -> Account | None:
        return self.accounts.get(sam.lower())

    # --- reads, as one DC answers them --------------------------------------------------------------------------
    def _require_dc(self, dc: str) -> None:
        if dc not in self.seen:
            raise KeyError(f"directory: {dc} is not a domain controller")

    def view(self, dc: str) -> dict[str, list[str]]:
        """sAMAccountName -> servicePrincipalName as ``dc``'s replica holds them."""
        return {sam: list(spns) for sam, spns in self._view(dc)[0].items()}

    def converged_spns(self, sam: str) -> list[str]:
        """The account's SPNs once every DC has every change: what a complete forced sync would leave everywhere."""
        return list(self._state(frozenset(change.seq for change in self.changes))[0].get(self._sam(sam), []))

    def _view(self, dc: str) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
        self._require_dc(dc)
        return self._state(frozenset(self.seen[dc]))

    def _state(self, seen: frozenset[int]) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
        """Accounts after the changes in ``seen``, and the index lower-case SPN -> owners; computed once per state."""
        cached = self._views.get(seen)
        if cached is not None:
            return cached
        state = {account.sam: list(account.spns) for account in self.accounts.values()}
        for change in self.changes:
            if change.seq not in seen:
                continue
            spns = state.setdefault(self._sam(change.account), [])
            removed = {spn.lower() for spn in change.remove}
            spns[:] = [spn for spn in spns if spn.lower() not in removed]
            spns.extend(spn for spn in change.add if spn.lower() not in {item.lower() for item in spns})
        index: dict[str, list[str]] = {}
        for sam, spns in state.items():
            for spn in {item.lower() for item in spns}:
                index.setdefault(spn, []).append(sam)
        self._views[seen] = (state, index)
        return state, index

    def spns(self, dc: str, sam: str) -> list[str]:
        return list(self._view(dc)[0].get(self._sam(sam), []))

    def owners(self, dc: str, spn: str) -> list[str]:
        """Accounts holding ``spn`` in ``dc``'s replica (more than one is a duplicate: setspn -X)."""
        return list(self._view(dc)[1].get(spn.lower(), []))

    def duplicates(self, dc: str) -> dict[str, list[str]]:
        """Lower-case SPN -> its owners, for every SPN more than one account holds."""
        return {spn: list(sams) for spn, sams in self._view(dc)[1].items() if len(sams) > 1}

    def backlog(self, destination: str) -> list[DirectoryChange]:
        """Changes some DC has applied that ``destination`` has not (what a forced sync would bring, if it can)."""
        self._require_dc(destination)
        known = set().union(*self.seen.values()) if self.seen else set()
        return [change for change in self.changes if change.seq in known and change.seq not in self.seen[destination]]

    # --- writes -------------------------------------------------------------------------------------------------
    def write(
        self,
        dc: str,
        sam: str,
        *,
        add: t.Iterable[str] = (),
        remove: t.Iterable[str] = (),
        check_uniqueness: bool = True,
    ) -> DirectoryChange | None:
        """An originating write on ``dc``; None when it changes nothing there (as an idempotent setspn).

        Raises SpnNotUniqueError, and changes nothing, when an added SPN is held by another account in ``dc``'s
        replica. Only a fleet's loader passes ``check_uniqueness=False``, to plant writes made before 2012 R2.
        """
        self._require_dc(dc)
        current = {spn.lower() for spn in self.spns(dc, sam)}
        to_add = tuple(dict.fromkeys(spn for spn in add if spn.lower() not in current))
        to_remove = tuple(dict.fromkeys(spn for spn in remove if spn.lower() in current))
        if not to_add and not to_remove:
            return None
        if self.account(sam) is None:
            raise KeyError(f"directory: no account {sam}")
        if check_uniqueness:
            # One LDAP modify: a single duplicate refuses the whole write, removals included.
            for spn in to_add:
                others = [owner for owner in self.owners(dc, spn) if owner.lower() != self._sam(sam).lower()]
                if others:
                    raise SpnNotUniqueError(dc=dc, account=self._sam(sam), spn=spn, owner=others[0])
        change = DirectoryChange(len(self.changes) + 1, dc, self._sam(sam), to_add, to_remove, time.time())
        self.changes.append(change)
        self.seen[dc].add(change.seq)
        return change

    def replicate(self, *, force: bool, destination: str | None = None) -> list[SyncResult]:
        """Pull over inbound links until nothing moves. Without ``force`` only healthy links replicate."""
        now = time.time()
        results: dict[tuple[str, str], SyncResult] = {}
        progress = True
        while progress:
            progress = False
            for item in self.links:
                if destination is not None and item.destination != destination:
                    continue
                key = (item.destination, item.source)
                if not force and item.last_result != 0:
                    continue
                if item.persistent:
                    if key not in results:
                        item.last_attempt = now
                        item.consecutive_failures += 1
                        results[key] = SyncResult(item.destination, item.source, False, item.last_result, 0)
                    continue
                incoming = self.seen[item.source] - self.seen[item.destination]
                self.seen[item.destination] |= incoming
                item.last_result, item.consecutive_failures = 0, 0
                item.last_success = item.last_attempt = now
                previous = results.get(key)
                results[key] = SyncResult(
                    item.destination, item.source, True, 0, len(incoming) + (previous.changes if previous else 0)
                )
                progress = progress or bool(incoming)
        return list(results.values())

    def sync_all(self, home: str, *, push: bool, cross_site: bool, site_of: t.Mapping[str, str]) -> list[SyncResult]:
        """DsReplicaSyncAll on ``home`` (DomainController.SyncReplicaFromAllServers), for one naming context.

        Pull (the default): ``home`` synchronizes from every DC, transitively: a spanning tree over inbound links,
        executed from its leaves toward ``home`` so that changes flow in. ``push`` (PushChangeOutward) reverses it:
        every DC pulls from ``home``, transitively, nearest first. Without ``cross_site`` only DCs in ``home``'s site
        take part. Each link of the tree syncs once: a persistent link fails with its error, a DC on which the lab's
        account may not request a sync fails with ERROR_DS_DRA_ACCESS_DENIED and changes nothing.
        """
        self._require_dc(home)
        site = site_of.get(home)
        reached, order = {home}, []
        frontier = [home]
        while frontier:
            following = []
            for node in frontier:
                candidates = [
                    item
                    for item in self.links
                    if (item.source == node if push else item.destination == node)
                    and (cross_site or site_of.get(item.destination if push else item.source) == site)
                ]
                for item in candidates:
                    other = item.destination if push else item.source
                    if other in reached:
                        continue
                    reached.add(other)
                    order.append(item)
                    following.append(other)
            frontier = following
        # Pulling toward home runs the farthest links first; pushing runs the nearest first.
        now = time.time()
        results = []
        for item in order if push else reversed(order):
            if item.destination in self.sync_denied:
                results.append(SyncResult(item.destination, item.source, False, ERROR_DS_DRA_ACCESS_DENIED, 0))
                continue
            item.last_attempt = now
            if item.persistent:
                item.consecutive_failures += 1
                results.append(SyncResult(item.destination, item.source, False, item.last_result, 0))
                continue
            incoming = self.seen[item.source] - self.seen[item.destination]
            self.seen[item.destination] |= incoming
            item.last_result, item.consecutive_failures, item.last_success = 0, 0, now
            results.append(SyncResult(item.destination, item.source, True, 0, len(incoming)))
        return results

    def _sam(self, sam: str) -> str:
        account = self.account(sam)
        return account.sam if account is not None else sam

    def facts(self) -> dict[str, t.Any]:
        """What the directory holds, without what follows from it (each DC's view, its backlog): the baseline
        accounts, every originating write, which DC has applied which, the links and the denials. The lab's journal
        compares these before and after each script: small, and enough to find any write or replication."""
        return {
            "accounts": {account.sam: list(account.spns) for account in self.accounts.values()},
            "changes": {
                str(change.seq): {
                    "origin": change.origin,
                    "account": change.account,
                    "add": list(change.add),
                    "remove": list(change.remove),
                }
                for change in self.changes
            },
            "seen": {dc: sorted(seqs) for dc, seqs in self.seen.items()},
            "links": {f"{item.destination}<-{item.source}": item.snapshot() for item in self.links},
            "write_denied": sorted(self.write_denied),
            "sync_denied": sorted(self.sync_denied),
        }

    def snapshot(self) -> dict[str, t.Any]:
        return {
            "dcs": list(self.dcs),
            "links": [item.snapshot() for item in self.links],
            "backlog": {dc: [change.seq for change in self.backlog(dc)] for dc in self.dcs},
            "write_denied": sorted(self.write_denied),
            "sync_denied": sorted(self.sync_denied),
            "views": {dc: self.view(dc) for dc in self.dcs},
        }
