"""KB 979174's causality over a Fleet: when Exchange-to-Exchange authentication fails, and what that looks like.

Mail from Exchange server A to B authenticates (Exchange authentication is Kerberos for SMTPSVC/<B's FQDN>, the
one SPN it needs) only while every cause is absent:

- ``clock_skew``: A, B and the DCs they use are not all within ``max_clock_skew`` (300 s) of each other;
- ``spn_missing``: B's computer account lacks SMTPSVC/<FQDN> as A's DC sees it, and would still lack it once
  replication converged (``held_by`` names an account that holds it instead);
- ``spn_not_replicated``: A's DC lacks it only because a change that adds it has not replicated there yet;
- ``spn_duplicate``: more than one account holds it, as A's DC sees it;
- ``kerberos_port_blocked``: A does not reach its DC on TCP 88 or UDP 88 (network block list or the DC firewall);
- ``receive_connector_auth_mechanism`` / ``receive_connector_permission_groups``: B's ``Default <B>`` connector
  does not offer ExchangeServer / grant ExchangeServers.

The other SPNs KB 979174 step 3 lists (SMTP/ for both names, SMTPSVC/ for the short name) are hygiene that the spn
module audits (topology.smtp_spns), not causes of the symptom.

While a cause holds, A's queue to B is in Retry with the 454 4.7.0 LastError and B logs event 1035; once none
holds, the next retry delivers. A's DC is the KDC it gets the ticket from, so SPNs are read from that DC's replica.
The lab models no failover to another KDC: a DC that answers the locator but drops Kerberos is the case to find.

The lab's clocks neither drift nor synchronise by themselves: a host's clock changes only through :func:`resync`,
which a twin calls for ``w32tm /resync``. Time sources and resyncs follow the configuration W32Time has in use
(HostState.w32time), not the registry: a registry change takes effect with ``w32tm /config /update`` or a restart
of the service (HostState.w32time_config_update, HostState.restart_service), and Group Policy values win.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, field

from tests.lab import locale
from tests.lab.exchange import EOP, Queue, internal_connector_name
from tests.lab.topology import EXTERNAL, exchange_auth_spn
from tests.lab.windows import APPLICATION, LEVEL_ERROR, PHASE_CORRECTION_UNLIMITED, SYSTEM

if t.TYPE_CHECKING:
    from tests.lab.fleet import Fleet, HostState

CLOCK_SKEW = "clock_skew"
SPN_MISSING = "spn_missing"
SPN_NOT_REPLICATED = "spn_not_replicated"
SPN_DUPLICATE = "spn_duplicate"
KERBEROS_PORT_BLOCKED = "kerberos_port_blocked"
CONNECTOR_AUTH_MECHANISM = "receive_connector_auth_mechanism"
CONNECTOR_PERMISSION_GROUPS = "receive_connector_permission_groups"
CAUSES = (
    CLOCK_SKEW,
    SPN_MISSING,
    SPN_NOT_REPLICATED,
    SPN_DUPLICATE,
    KERBEROS_PORT_BLOCKED,
    CONNECTOR_AUTH_MECHANISM,
    CONNECTOR_PERMISSION_GROUPS,
)

# The symptom, as the English article quotes it (a Swedish or German server writes it in its language, see
# tests/lab/locale.py; match the status codes, never the text).
LAST_ERROR_454 = (
    '451 4.4.0 Primary target IP address responded with: "454 4.7.0 Temporary authentication failure." '
    "Attempted failover to alternate host, but that did not succeed. Either there are no alternate hosts, "
    "or delivery failed to all alternate hosts."
)
TRANSPORT_PROVIDER = "MSExchangeTransport"  # the event source behind "MSExchange Transport" in Event Viewer
EVENT_INBOUND_AUTH_FAILED = 1035
CATEGORY_SMTP_RECEIVE = "SmtpReceive"

KERBEROS_PARAMETERS = r"HKLM\SYSTEM\CurrentControlSet\Control\Lsa\Kerberos\Parameters"
KERBEROS_PROVIDER = "Microsoft-Windows-Security-Kerberos"
EVENT_KERBEROS_ERROR = 3  # "A Kerberos error message was received" (only with LogLevel set)
# The client got KRB_AP_ERR_MODIFIED, always logged: the service ticket was encrypted for another account than the
# server's, which is what an SPN registered on a single wrong account does.
EVENT_KRB_AP_ERR_MODIFIED = 4
# The KDC found the SPN on more than one account (KDCEVENT_NAME_NOT_UNIQUE, System log of the DC); its data are
# the name and its type, never the accounts: finding them is setspn -X's (the spn module's) job.
KDC_PROVIDER = "Microsoft-Windows-Kerberos-Key-Distribution-Center"
EVENT_KDC_DUPLICATE_NAME = 11
KDC_NAME_TYPE_SPN = "DS_SERVICE_PRINCIPAL_NAME"
KDC_ERR_S_PRINCIPAL_UNKNOWN = 0x7
KRB_AP_ERR_SKEW = 0x25
KRB_AP_ERR_MODIFIED = 0x29
KERBEROS_ERROR_NAMES = {
    KDC_ERR_S_PRINCIPAL_UNKNOWN: "KDC_ERR_S_PRINCIPAL_UNKNOWN",
    KRB_AP_ERR_SKEW: "KRB_AP_ERR_SKEW",
    KRB_AP_ERR_MODIFIED: "KRB_AP_ERR_MODIFIED",
}
KERBEROS_PORTS = (("TCP", 88), ("UDP", 88))


@dataclass(frozen=True)
class Cause:
    name: str
    detail: dict[str, t.Any] = field(default_factory=dict, hash=False, compare=False)


def auth_causes(
    fleet: Fleet, sender: HostState, receiver: HostState, *, dc_of: t.Mapping[str, HostState | None] | None = None
) -> list[Cause]:
    """Which causes make Exchange authentication from ``sender`` to ``receiver`` fail (empty: it succeeds).

    ``dc_of`` (host name -> its DC) saves the DC locator's work when asking for many pairs at once.
    """
    if fleet.forest is None or receiver.exchange is None:
        return []
    causes: list[Cause] = []
    if dc_of is None:
        dc_of = {host.name: fleet.dc_for(host) for host in (sender, receiver)}
    sender_dc, receiver_dc = dc_of[sender.name], dc_of[receiver.name]
    if sender_dc is None or receiver_dc is None:
        return [Cause(KERBEROS_PORT_BLOCKED, {"dc": None})]

    clocks = {host.name: host.clock_offset for host in (sender, receiver, sender_dc, receiver_dc)}
    spread = max(clocks.values()) - min(clocks.values())
    if spread > fleet.settings.max_clock_skew:
        causes.append(Cause(CLOCK_SKEW, {"offsets": clocks, "spread": spread, "max": fleet.settings.max_clock_skew}))

    directory = fleet.directory
    spn = exchange_auth_spn(receiver)
    owners = directory.owners(sender_dc.name, spn)
    if receiver.sam.lower() not in {owner.lower() for owner in owners}:
        if spn.lower() in {item.lower() for item in directory.converged_spns(receiver.sam)}:
            # Missing on A's KDC but present once replication converges: a forced sync fixes it, registering not.
            present_on = [dc for dc in directory.dcs if receiver.sam in directory.owners(dc, spn)]
            causes.append(
                Cause(
                    SPN_NOT_REPLICATED,
                    {"account": receiver.sam, "spn": spn, "dc": sender_dc.name, "present_on": present_on},
                )
            )
        else:
            # Who holds it instead matters to the fix: a DC refuses the SPN while another account has it.
            causes.append(Cause(SPN_MISSING, {"account": receiver.sam, "spn": spn, "held_by": owners}))
    if len(owners) > 1:
        causes.append(Cause(SPN_DUPLICATE, {"dc": sender_dc.name, "spn": spn, "owners": owners}))

    if sender_dc is not sender:
        blocked = {}
        for protocol, port in KERBEROS_PORTS:
            path = fleet.reachable(sender.name, sender_dc.name, protocol, port)
            if not path.ok:
                blocked[f"{protocol}/{port}"] = {"blocked_by": path.blocked_by, "rule": path.rule}
        if blocked:
            causes.append(Cause(KERBEROS_PORT_BLOCKED, {"dc": sender_dc.name, "blocked": blocked}))

    connector = receiver.exchange.connector(internal_connector_name(receiver.exchange.server))
    if connector is None or not connector.enabled or not connector.offers("ExchangeServer"):
        causes.append(Cause(CONNECTOR_AUTH_MECHANISM, {"connector": internal_connector_name(receiver.exchange.server)}))
    if connector is not None and not connector.grants("ExchangeServers"):
        causes.append(Cause(CONNECTOR_PERMISSION_GROUPS, {"connector": connector.identity}))
    return causes


def causes_by_pair(fleet: Fleet) -> dict[tuple[str, str], list[str]]:
    """For every ordered pair of distinct Exchange servers (A, B): the names of the causes that hold."""
    servers = fleet.exchange_servers()
    dc_of = {host.name: fleet.dc_for(host) for host in servers}
    return {
        (sender.name, receiver.name): [cause.name for cause in auth_causes(fleet, sender, receiver, dc_of=dc_of)]
        for sender in servers
        for receiver in servers
        if sender is not receiver
    }


# --- queues -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RelayReply:
    """What the next hop answered to a relay attempt (the SMTP reply that decided it)."""

    code: int  # 250, 550, ... ; 0 when no SMTP reply came (connection failed)
    text: str  # the reply line, e.g. "550 5.7.64 TenantAttribution; Relay Access Denied [...]"


Relay = t.Callable[["HostState", Queue], RelayReply]


@dataclass(frozen=True)
class Attempt:
    sender: str
    queue: str
    target: str
    messages: int
    delivered: bool
    causes: tuple[str, ...] = ()
    reply: str = ""


def retry_queues(fleet: Fleet, *, relay: Relay | None = None) -> list[Attempt]:
    """One retry of every queue that holds mail (and of every queue to EOP, see below): deliver or record failure.

    Queues to EOP need a real SMTP/TLS relay (tests/lab/smtp.py passes ``relay``); without one they are left alone.
    Users keep sending mail out, so a queue to EOP makes an attempt on every retry, with at least one message.
    """
    attempts: list[Attempt] = []
    with fleet.lock:
        servers = fleet.exchange_servers()
        # Found on first use: most retries of a large fleet find no queue with mail in it, and then ask nothing.
        dc_of = _DomainControllers(fleet)
        for sender in servers:
            if sender.exchange is None:
                continue  # a fleet without a forest models no transport (single.yml)
            for queue in list(sender.exchange.queues):
                if queue.target == EOP:
                    if relay is not None:
                        attempts.append(_relay(fleet, sender, queue, relay))
                elif queue.message_count > 0:
                    attempts.append(_deliver(fleet, sender, queue, dc_of))
    return attempts


class _DomainControllers(dict[str, "HostState | None"]):
    """Host name -> the DC it uses, computed when first asked."""

    def __init__(self, fleet: Fleet) -> None:
        super().__init__()
        self.fleet = fleet

    def __missing__(self, name: str) -> HostState | None:
        dc = self[name] = self.fleet.dc_for(self.fleet.hosts[name])
        return dc


def _deliver(fleet: Fleet, sender: HostState, queue: Queue, dc_of: t.Mapping[str, HostState | None]) -> Attempt:
    receiver = fleet.hosts[queue.target]
    assert sender.exchange is not None and receiver.exchange is not None
    causes = auth_causes(fleet, sender, receiver, dc_of=dc_of)
    count = queue.message_count
    queue.last_retry_time = sender.now()
    if not causes:
        receiver.exchange.received += count
        queue.message_count, queue.status, queue.last_error, queue.next_retry_time = 0, "Ready", "", None
        return Attempt(sender.name, queue.identity, receiver.name, count, True)
    # Exchange writes LastError in the server's language (the Swedish article quotes it in Swedish): codes stay.
    queue.status, queue.last_error = "Retry", locale.text(sender, LAST_ERROR_454)
    queue.next_retry_time = sender.now() + fleet.settings.queue_retry_seconds
    receiver.log_event(
        APPLICATION,
        TRANSPORT_PROVIDER,
        EVENT_INBOUND_AUTH_FAILED,
        level=LEVEL_ERROR,
        category=CATEGORY_SMTP_RECEIVE,
        # %1 error, %2 receive connector, %3 authentication mechanism, %4 the client's address.
        data={
            "1": "IllegalMessage",
            "2": internal_connector_name(receiver.exchange.server),
            "3": "ExchangeAuth",
            "4": sender.ip,
        },
    )
    _kerberos_events(fleet, sender, receiver, {cause.name: cause for cause in causes})
    return Attempt(
        sender.name, queue.identity, receiver.name, count, False, tuple(cause.name for cause in causes), LAST_ERROR_454
    )


def _kerberos_events(fleet: Fleet, sender: HostState, receiver: HostState, causes: dict[str, Cause]) -> None:
    """What Kerberos itself logs for the causes (KB step 5 looks for them).

    A duplicate: A's DC (the KDC) logs event 11 and answers KDC_ERR_S_PRINCIPAL_UNKNOWN. The SPN on a single wrong
    account: the KDC issues a ticket B cannot decrypt, B answers KRB_AP_ERR_MODIFIED and A logs event 4. Event 3,
    the error as the client received it, only appears where Kerberos LogLevel is set.
    """
    target = exchange_auth_spn(receiver)
    realm = fleet.forest.name.upper() if fleet.forest else ""
    base = {
        "TargetName": target,
        "ServerName": target,
        "ClientName": sender.sam,
        "ClientRealm": realm,
        "ServerRealm": realm,
    }
    errors: list[tuple[HostState, int]] = []
    if CLOCK_SKEW in causes:
        errors += [(receiver, KRB_AP_ERR_SKEW), (sender, KRB_AP_ERR_SKEW)]
    if SPN_DUPLICATE in causes:
        kdc = fleet.hosts[causes[SPN_DUPLICATE].detail["dc"]]
        kdc.log_event(SYSTEM, KDC_PROVIDER, EVENT_KDC_DUPLICATE_NAME, data={"Name": target, "Type": KDC_NAME_TYPE_SPN})
        errors.append((sender, KDC_ERR_S_PRINCIPAL_UNKNOWN))
    elif SPN_MISSING in causes and causes[SPN_MISSING].detail["held_by"]:
        sender.log_event(
            SYSTEM, KERBEROS_PROVIDER, EVENT_KRB_AP_ERR_MODIFIED, data={"Server": receiver.sam, "TargetName": target}
        )
        errors.append((sender, KRB_AP_ERR_MODIFIED))
    elif SPN_MISSING in causes or SPN_NOT_REPLICATED in causes:
        errors.append((sender, KDC_ERR_S_PRINCIPAL_UNKNOWN))
    for host, code in errors:
        if kerberos_log_level(host):
            data = {**base, "ErrorCode": f"0x{code:x}", "ErrorMessage": KERBEROS_ERROR_NAMES[code]}
            host.log_event(SYSTEM, KERBEROS_PROVIDER, EVENT_KERBEROS_ERROR, data=data)


def kerberos_log_level(host: HostState) -> int:
    values = host.registry_key(KERBEROS_PARAMETERS) or {}
    match = next((value for name, value in values.items() if name.lower() == "loglevel"), None)
    try:
        return int(match[1]) if match is not None else 0
    except (TypeError, ValueError):
        return 0


def _relay(fleet: Fleet, sender: HostState, queue: Queue, relay: Relay) -> Attempt:
    assert sender.exchange is not None
    count = max(queue.message_count, 1)
    queue.last_retry_time = sender.now()
    reply = relay(sender, queue)
    if reply.code == 250:
        sender.exchange.relayed += count
        queue.message_count, queue.status, queue.last_error, queue.next_retry_time = 0, "Ready", "", None
        return Attempt(sender.name, queue.identity, EOP, count, True, reply=reply.text)
    if 500 <= reply.code < 600:
        # A permanent failure: every message is returned to its sender in an NDR and leaves the queue.
        sender.exchange.ndrs.append(
            {"time": sender.now(), "count": count, "status": _enhanced(reply.text), "remote": reply.text}
        )
        queue.message_count, queue.status, queue.last_error, queue.next_retry_time = 0, "Ready", reply.text, None
    else:
        queue.status, queue.last_error = "Retry", reply.text
        queue.next_retry_time = sender.now() + fleet.settings.queue_retry_seconds
    return Attempt(sender.name, queue.identity, EOP, count, False, reply=reply.text)


def _enhanced(reply: str) -> str:
    parts = reply.split()
    return parts[1] if len(parts) > 1 and parts[1].count(".") == 2 else ""


def settle(fleet: Fleet, *, relay: Relay | None = None) -> list[Attempt]:
    """What happens between two looks at the fleet: healthy links replicate, queues retry."""
    with fleet.lock:
        fleet.directory.replicate(force=False)
        return retry_queues(fleet, relay=relay)


# --- time -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimeSource:
    peer: str | None  # a host name, EXTERNAL, or None when there is no usable source
    kind: str  # domain | ntp | none
    offset: float | None = None  # the source's clock offset
    # Why there is none: service_stopped, not_configured, nosync, hierarchy_root, no_source, unreachable.
    reason: str = ""


def time_source(fleet: Fleet, host: HostState) -> TimeSource:
    """Where W32Time on ``host`` takes its time from, following the Type it has in use as Windows does."""
    service = host.service("W32Time")
    if service is not None and not service.running:
        return TimeSource(None, "none", reason="service_stopped")
    config = host.w32time()
    if config is None or not config.ntp_client_enabled:
        return TimeSource(None, "none", reason="not_configured")
    kind = config.type.upper()
    candidates: list[tuple[str, str]] = []
    reason = "nosync" if kind == "NOSYNC" else "no_source"
    if kind in ("NT5DS", "ALLSYNC"):
        pdc = fleet.pdc_emulator()
        if host.is_dc and (pdc is None or pdc is host):
            reason = "hierarchy_root"  # the forest root PDC emulator has no domain source above it
        else:
            parent = pdc if host.is_dc else fleet.dc_for(host)
            if parent is not None:
                candidates.append((parent.name, "domain"))
    if kind in ("NTP", "ALLSYNC"):
        for peer in config.peers:
            try:
                candidates.append((fleet.host(peer).name, "ntp"))
            except KeyError:
                candidates.append((EXTERNAL, "ntp"))
    for peer, source_kind in candidates:
        if not fleet.reachable(host.name, peer, "UDP", 123).ok:
            reason = "unreachable"
            continue
        if peer == EXTERNAL:
            return TimeSource(EXTERNAL, source_kind, 0.0)
        source = fleet.hosts[peer]
        serving = source.service("W32Time")
        source_config = source.w32time()
        if (serving is not None and not serving.running) or (
            source_config is not None and not source_config.ntp_server_enabled
        ):
            reason = "unreachable"
            continue
        return TimeSource(peer, source_kind, source.clock_offset)
    return TimeSource(None, "none", reason=reason)


@dataclass(frozen=True)
class Resync:
    ok: bool
    source: TimeSource
    offset_before: float
    offset_after: float
    reason: str = ""


def resync(fleet: Fleet, host: HostState) -> Resync:
    """``w32tm /resync``: take the source's time unless the step exceeds Max{Pos,Neg}PhaseCorrection in use
    (0xFFFFFFFF, the default of domain members, means no limit)."""
    source = time_source(fleet, host)
    before = host.clock_offset
    if source.offset is None:
        return Resync(False, source, before, before, source.reason)
    config = host.w32time()
    step = source.offset - before
    limit = (
        (config.max_pos_phase_correction if step > 0 else config.max_neg_phase_correction)
        if config
        else PHASE_CORRECTION_UNLIMITED
    )
    if limit != PHASE_CORRECTION_UNLIMITED and abs(step) > limit:
        return Resync(False, source, before, before, "phase_correction_limit")
    host.clock_offset = source.offset
    return Resync(True, source, before, host.clock_offset)


def resync_all(fleet: Fleet) -> dict[str, Resync]:
    """Every host resyncs once, top of the hierarchy first (PDC emulator, other DCs, members)."""
    pdc = fleet.pdc_emulator()
    order = sorted(fleet.hosts.values(), key=lambda host: (host is not pdc, not host.is_dc, host.name))
    return {host.name: resync(fleet, host) for host in order}
