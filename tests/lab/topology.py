"""The fleet-wide part of a fleet file: forest, sites, accounts and replication, network, PKI, EOP, settings.

:func:`apply` reads those sections and the per-host sections that belong to them, and fills the Fleet and its
HostStates. A fleet file without a ``forest`` section (the foundation's ``single.yml``) gets no generated state:
only what it declares.

Fleet file, in brief (``contoso.yml`` uses every key)::

    forest: {name, netbios, pdc_emulator, sites: [..]}
    settings: {max_clock_skew: 300, queue_retry_seconds: 2, max_events_per_log: 1000}
    pki: [{name, subject, issuer}]                      # issuer omitted: a root
    eop: {tenant_domain, tls_sender_certificate_name, trusted_roots: [..], connector_name}
    network: {blocked: [{from, to, protocol, port}]}    # "*" for any; to: external is the internet
    accounts: [{name, kind: user|computer, spns: [..]}] # accounts that are not lab hosts
    directory: {pending: [{dc, account, add: [..], remove: [..]}],   # writes not yet replicated
                write_denied: [sAMAccountName..],   # accounts whose SPNs the lab's account may not write
                sync_denied: [dc..]}                # DCs where it may not request a replication sync
    hosts:
      - name, fqdn, roles: [dc|exchange], ip, site, logon_server, clock_offset
        w32time: {type, ntp_server, announce_flags, max_pos_phase_correction, max_neg_phase_correction,
                  special_poll_interval, ntp_client_enabled, ntp_server_enabled}
        services: {W32Time: {status: Running|Stopped, start_type: Automatic|Manual|Disabled}}
        computer_account: {spns: [..] | spns_absent: [..], extra_spns: [..]}
        replication_partners: [dc02 | {source, last_result, consecutive_failures, last_success_age, persistent}]
        firewall: {enabled, write_denied, inbound: [{name, protocol, port, enabled, action}]}   # merged over a
                  # DC's defaults; write_denied: the firewall cmdlets refuse changes (access denied)
        locale: en-US | sv-SE | de-DE   # the display language: texts for people, never read by the collection
        exchange: {receive_connectors: [{name, auth_mechanism, permission_groups, ...}], queues: [{to, messages}],
                   send_connectors: [{name, address_spaces, smart_hosts, tls_certificate_name, require_tls,
                                      enabled}]}   # merged over the default "Outbound to Office 365" (with eop)
        certificates: {smtp: {issuer, subject, dns} | null, ca: [authority..], root: [authority..]}
        capi2_logging: true|false
        events: [{log, provider, id, level, category, data, age_seconds}]
"""

from __future__ import annotations

import time
import typing as t
from dataclasses import dataclass, field

from tests.lab.certs import Pki, generate_pki
from tests.lab.directory import RPC_S_SERVER_UNAVAILABLE, Account, ReplicationLink
from tests.lab.exchange import (
    EOP,
    OFFICE365_SEND_CONNECTOR,
    ExchangeState,
    Queue,
    ReceiveConnector,
    SendConnector,
    default_connectors,
    set_receive_connector,
    tls_certificate_name,
)
from tests.lab.windows import (
    LEVEL_ERROR,
    W32TIME_VALUES,
    Firewall,
    FirewallRule,
    Service,
    dc_default_rules,
    w32time_defaults,
)

if t.TYPE_CHECKING:
    from tests.lab.fleet import Fleet, HostState

EXTERNAL = "external"  # a network destination outside the fleet: the internet's NTP servers
ANY = "*"
SMTP_SERVICE = "SMTP"


@dataclass
class Forest:
    name: str  # the forest root domain's DNS name (one domain per forest in the lab)
    netbios: str
    pdc_emulator: str
    sites: list[str] = field(default_factory=list)


@dataclass
class Settings:
    max_clock_skew: float = 300.0  # Kerberos MaxClockSkew, 5 minutes by default
    queue_retry_seconds: float = 2.0  # how often the lab's Exchange servers retry their queues
    max_events_per_log: int = 1000


@dataclass
class EopSettings:
    """The tenant's certificate-based inbound connector in Exchange Online Protection."""

    tenant_domain: str
    tls_sender_certificate_name: str
    trusted_roots: list[str]  # authority names of the fleet PKI that EOP trusts (public roots)
    connector_name: str = "Inbound from on-premises"

    @property
    def mx(self) -> str:
        return self.tenant_domain.replace(".", "-") + ".mail.protection.outlook.com"


@dataclass(frozen=True)
class Block:
    """A network firewall between hosts drops this traffic (reported by the collection, never changed)."""

    source: str
    destination: str
    protocol: str
    port: int | None

    def matches(self, source: str, destination: str, protocol: str, port: int) -> bool:
        return (
            self.source in (ANY, source)
            and self.destination in (ANY, destination)
            and self.protocol in (ANY, protocol.upper())
            and self.port in (None, int(port))
        )


@dataclass
class Network:
    blocked: list[Block] = field(default_factory=list)


@dataclass(frozen=True)
class Reachability:
    ok: bool
    blocked_by: str | None = None  # network | firewall
    rule: str | None = None  # the firewall rule that blocked, when one did


# --- queries the Fleet exposes ----------------------------------------------------------------------------------


def dc_for(fleet: Fleet, host: HostState) -> HostState | None:
    """The DC a host authenticates against: itself for a DC, its logon server, a DC of its site, the PDC."""
    dcs = fleet.domain_controllers()
    if host.is_dc:
        return host
    if host.logon_server:
        return fleet.host(host.logon_server)
    in_site = [dc for dc in dcs if dc.site == host.site]
    if in_site:
        return in_site[0]
    return fleet.pdc_emulator() or (dcs[0] if dcs else None)


def reachable(fleet: Fleet, source: str, destination: str, protocol: str, port: int) -> Reachability:
    block = next((item for item in fleet.network.blocked if item.matches(source, destination, protocol, port)), None)
    if block is not None:
        return Reachability(ok=False, blocked_by="network")
    target = fleet.hosts.get(destination)
    if target is not None and target.firewall is not None:
        allowed, rule = target.firewall.allows(protocol, port)
        if not allowed:
            return Reachability(ok=False, blocked_by="firewall", rule=rule.name if rule else None)
    return Reachability(ok=True)


# --- loading ----------------------------------------------------------------------------------------------------


def apply(fleet: Fleet, document: dict[str, t.Any]) -> None:
    """Fill ``fleet`` (already holding its HostStates) from the fleet-wide and per-host model sections."""
    entries = {str(entry["name"]): entry for entry in document.get("hosts", [])}
    settings = _keys(
        "settings", document.get("settings") or {}, {"max_clock_skew", "queue_retry_seconds", "max_events_per_log"}
    )
    fleet.settings = Settings(**{key: type(getattr(Settings, key))(value) for key, value in settings.items()})
    fleet.network = Network([_block(item) for item in (document.get("network") or {}).get("blocked", [])])
    if document.get("pki"):
        fleet.pki = generate_pki(document["pki"])

    forest_doc = document.get("forest")
    if forest_doc:
        _keys("forest", forest_doc, {"name", "netbios", "pdc_emulator", "sites"})
        dcs = [name for name, entry in entries.items() if "dc" in entry.get("roles", [])]
        fleet.forest = Forest(
            name=str(forest_doc["name"]),
            netbios=str(forest_doc.get("netbios", str(forest_doc["name"]).split(".", maxsplit=1)[0].upper())),
            pdc_emulator=str(forest_doc.get("pdc_emulator", dcs[0] if dcs else "")),
            sites=list(forest_doc.get("sites", [])),
        )
    for index, (name, entry) in enumerate(entries.items()):
        _host(fleet, fleet.hosts[name], entry, index)

    if fleet.forest is not None:
        _directory(fleet, document, entries)
    eop = document.get("eop")
    if eop:
        _keys("eop", eop, {"tenant_domain", "tls_sender_certificate_name", "trusted_roots", "connector_name"})
        roots = [name for name, authority in (fleet.pki.authorities.items() if fleet.pki else []) if authority.is_root]
        fleet.eop = EopSettings(
            tenant_domain=str(eop["tenant_domain"]),
            tls_sender_certificate_name=str(eop["tls_sender_certificate_name"]),
            trusted_roots=[str(item) for item in eop.get("trusted_roots", roots)],
            connector_name=str(eop.get("connector_name", "Inbound from on-premises")),
        )
        for root in fleet.eop.trusted_roots:
            _authority(fleet.pki, root, "eop.trusted_roots")
    # Send connectors once EOP is known: the default one points at its MX and names each host's SMTP certificate.
    for name, entry in entries.items():
        _send_connectors(fleet, fleet.hosts[name], (entry.get("exchange") or {}).get("send_connectors", []))
    # Queues last: they name other hosts and EOP, which must all exist by now.
    for name, entry in entries.items():
        for queue_doc in (entry.get("exchange") or {}).get("queues", []):
            queue_doc = _keys(f"{name}.exchange.queues", queue_doc, {"to", "messages"})
            submit(fleet, fleet.hosts[name], str(queue_doc["to"]), int(queue_doc.get("messages", 0)))
    _validate_references(fleet)


def _host(fleet: Fleet, host: HostState, entry: dict[str, t.Any], index: int) -> None:
    from tests.lab.fleet import registry_path, registry_value_name

    rich = fleet.forest is not None
    if rich and "fqdn" not in entry:
        host.fqdn = f"{host.name}.{fleet.forest.name}" if fleet.forest else host.fqdn
    host.site = str(entry.get("site", fleet.forest.sites[0] if fleet.forest and fleet.forest.sites else host.site))
    host.ip = str(entry.get("ip", f"10.0.0.{10 + index}"))
    host.logon_server = entry.get("logon_server")
    host.clock_offset = float(entry.get("clock_offset", 0))
    host.events.max_events = fleet.settings.max_events_per_log

    if rich or "w32time" in entry:
        values = {
            **w32time_defaults(is_dc=host.is_dc),
            **_keys(f"{host.name}.w32time", entry.get("w32time") or {}, set(W32TIME_VALUES)),
        }
        for setting, (key, value_name, kind) in W32TIME_VALUES.items():
            # Directly, not through writable_registry_key: a write-denied fault concerns the twins, not the loader.
            existing = host.registry.setdefault(registry_path(key), {})
            # A value the fleet file sets under ``registry`` wins over the generated one.
            if registry_value_name(existing, value_name) is None:
                existing[value_name] = (kind, int(values[setting]) if kind == "DWord" else str(values[setting]))

    services: dict[str, Service] = {}
    if rich:
        names = ["W32Time"]
        names += ["Kdc", "NTDS"] if host.is_dc else []
        names += ["MSExchangeTransport", "MSExchangeFrontEndTransport"] if host.is_exchange else []
        services = {name: Service(name) for name in names}
    for name, spec in (entry.get("services") or {}).items():
        spec = (
            {"status": spec}
            if isinstance(spec, str)
            else _keys(f"{host.name}.services.{name}", spec, {"status", "start_type"})
        )
        services[str(name)] = Service(
            str(name), str(spec.get("status", "Running")), str(spec.get("start_type", "Automatic"))
        )
    host.services = services
    # As after boot: a running W32Time works with what the registry (and Group Policy in it) holds.
    w32time_service = host.service("W32Time")
    if w32time_service is None or w32time_service.running:
        host.w32time_in_use = host.w32time_configured()

    firewall_doc = _keys(f"{host.name}.firewall", entry.get("firewall") or {}, {"enabled", "inbound", "write_denied"})
    if (rich and host.is_dc) or firewall_doc:
        firewall = Firewall(
            enabled=bool(firewall_doc.get("enabled", True)),
            rules=dc_default_rules(host.locale) if host.is_dc else [],
            write_denied=bool(firewall_doc.get("write_denied", False)),
        )
        for rule_doc in firewall_doc.get("inbound", []):
            rule_doc = _keys(
                f"{host.name}.firewall.inbound",
                rule_doc,
                {"name", "protocol", "port", "enabled", "action", "display_name"},
            )
            rule = firewall.rule(str(rule_doc["name"]))
            if rule is None:
                rule = FirewallRule(str(rule_doc["name"]), str(rule_doc["protocol"]).upper(), int(rule_doc["port"]))
                firewall.rules.append(rule)
            rule.enabled = bool(rule_doc.get("enabled", rule.enabled))
            rule.action = str(rule_doc.get("action", rule.action))
            rule.display_name = str(rule_doc.get("display_name", rule.display_name))
        host.firewall = firewall

    exchange_doc = _keys(
        f"{host.name}.exchange", entry.get("exchange") or {}, {"receive_connectors", "send_connectors", "queues"}
    )
    if (rich and host.is_exchange) or exchange_doc:
        host.exchange = _exchange(fleet, host, exchange_doc)

    _certificates(fleet, host, entry)
    host.set_capi2_logging(bool(entry.get("capi2_logging", False)))
    for event in entry.get("events", []):
        event = _keys(
            f"{host.name}.events", event, {"log", "provider", "id", "level", "category", "data", "age_seconds"}
        )
        host.events.write(
            str(event["log"]),
            str(event["provider"]),
            int(event["id"]),
            time=host.now() - float(event.get("age_seconds", 0)),
            level=int(event.get("level", LEVEL_ERROR)),
            category=event.get("category"),
            data=dict(event.get("data") or {}),
        )


def _exchange(fleet: Fleet, host: HostState, document: dict[str, t.Any]) -> ExchangeState:
    from tests.lab.fleet import HostException

    server = host.name.upper()
    state = ExchangeState(server=server, receive_connectors=default_connectors(server))
    host.exchange = state
    for connector_doc in document.get("receive_connectors", []):
        connector_doc = _keys(
            f"{host.name}.receive_connectors",
            connector_doc,
            {
                "name",
                "transport_role",
                "bindings",
                "auth_mechanism",
                "permission_groups",
                "remote_ip_ranges",
                "enabled",
            },
        )
        connector = state.connector(str(connector_doc["name"]))
        if connector is None:
            connector = ReceiveConnector(
                server=server,
                name=str(connector_doc["name"]),
                transport_role=str(connector_doc.get("transport_role", "FrontendTransport")),
                bindings=list(connector_doc.get("bindings", ["0.0.0.0:25"])),
                auth_mechanism=[],
                permission_groups=[],
            )
            state.receive_connectors.append(connector)
        for key in ("remote_ip_ranges", "bindings"):
            if key in connector_doc:
                setattr(connector, key, [str(item) for item in connector_doc[key]])
        connector.enabled = bool(connector_doc.get("enabled", connector.enabled))
        # A connector Exchange would refuse to save cannot exist on a server: planting one is a fleet error.
        try:
            set_receive_connector(
                connector,
                auth_mechanism=connector_doc.get("auth_mechanism", connector.auth_mechanism),
                permission_groups=connector_doc.get("permission_groups", connector.permission_groups),
            )
        except HostException as exc:
            raise ValueError(f"{host.name}.receive_connectors {connector.name!r}: {exc.message}") from exc
    return state


def _send_connectors(fleet: Fleet, host: HostState, documents: list[dict[str, t.Any]]) -> None:
    state = host.exchange
    if state is None:
        return
    if fleet.eop is not None:
        smtp = host.smtp_certificate()
        state.send_connectors.append(
            SendConnector(
                name=OFFICE365_SEND_CONNECTOR,
                address_spaces=["*"],
                smart_hosts=[fleet.eop.mx],
                tls_certificate_name=tls_certificate_name(smtp.certificate) if smtp is not None else None,
            )
        )
    for document in documents:
        document = _keys(
            f"{host.name}.send_connectors",
            document,
            {"name", "address_spaces", "smart_hosts", "tls_certificate_name", "require_tls", "enabled"},
        )
        connector = state.send_connector(str(document["name"]))
        if connector is None:
            connector = SendConnector(name=str(document["name"]), address_spaces=["*"], smart_hosts=[])
            state.send_connectors.append(connector)
        for key in ("address_spaces", "smart_hosts"):
            if key in document:
                setattr(connector, key, [str(item) for item in document[key]])
        if "tls_certificate_name" in document:
            value = document["tls_certificate_name"]
            connector.tls_certificate_name = None if value is None else str(value)
        connector.require_tls = bool(document.get("require_tls", connector.require_tls))
        connector.enabled = bool(document.get("enabled", connector.enabled))


def submit(fleet: Fleet, host: HostState, target: str, count: int) -> Queue:
    """Mail from ``host`` for ``target`` (another Exchange server, or "eop") enters the right queue."""
    state = host.exchange
    if state is None:
        raise ValueError(f"{host.name} is not an Exchange server")
    if target == EOP:
        if fleet.eop is None:
            raise ValueError(f"{host.name}: a queue to eop needs an eop section")
        return state.submit(EOP, count, next_hop_domain=fleet.eop.mx, delivery_type="SmartHostConnectorDelivery")
    receiver = fleet.host(target)
    if receiver.exchange is None:
        raise ValueError(f"{host.name}: queue target {target} is not an Exchange server")
    return state.submit(receiver.name, count, next_hop_domain=receiver.fqdn, delivery_type="SmtpDeliveryToMailbox")


def _certificates(fleet: Fleet, host: HostState, entry: dict[str, t.Any]) -> None:
    document = _keys(f"{host.name}.certificates", entry.get("certificates") or {}, {"smtp", "ca", "root"})
    pki = fleet.pki
    if pki is None:
        if document:
            raise ValueError(f"{host.name}: certificates need a pki section")
        return
    for name in document.get("root", [n for n, a in pki.authorities.items() if a.is_root]):
        host.certificates.add("Root", _authority(pki, name, f"{host.name}.certificates.root"))
    for name in document.get("ca", [n for n, a in pki.authorities.items() if not a.is_root]):
        host.certificates.add("CA", _authority(pki, name, f"{host.name}.certificates.ca"))
    smtp = document.get("smtp", {} if host.is_exchange else None)
    if smtp is None:
        return
    smtp = _keys(f"{host.name}.certificates.smtp", smtp, {"issuer", "subject", "dns"})
    issuer = str(smtp.get("issuer", _issuing_authority(pki)))
    subject = str(smtp.get("subject", host.fqdn))
    leaf, key = pki.issue_leaf(issuer, subject, [str(name) for name in smtp.get("dns", [host.fqdn])])
    host.certificates.add("My", leaf, key, services=[SMTP_SERVICE])


def _issuing_authority(pki: Pki) -> str:
    """The CA that issues TLS certificates: one that issues no other CA (the deepest), else the first root."""
    issuers = {authority.issuer for authority in pki.authorities.values()}
    leaves = [name for name, authority in pki.authorities.items() if name not in issuers and not authority.is_root]
    return leaves[0] if leaves else next(iter(pki.authorities))


def default_spns(host: HostState, forest: str) -> list[str]:
    short, fqdn = host.name.upper(), host.fqdn
    spns = [f"HOST/{short}", f"HOST/{fqdn}", f"RestrictedKrbHost/{short}", f"RestrictedKrbHost/{fqdn}"]
    if host.is_dc:
        spns += [f"ldap/{fqdn}", f"ldap/{short}", f"GC/{fqdn}/{forest}"]
    if host.is_exchange:
        spns += smtp_spns(host)
    return spns


def smtp_spns(host: HostState) -> list[str]:
    """The SPNs KB 979174 step 3 lists for an Exchange server: SMTP and SMTPSVC, short name and FQDN (what the spn
    module audits; only :func:`exchange_auth_spn` decides whether Exchange authentication works)."""
    short, fqdn = host.name.upper(), host.fqdn
    return [f"SMTP/{short}", f"SMTP/{fqdn}", f"SMTPSVC/{short}", exchange_auth_spn(host)]


def exchange_auth_spn(host: HostState) -> str:
    """The SPN other Exchange servers ask the KDC for when they authenticate to ``host`` (Exchange authentication)."""
    return f"SMTPSVC/{host.fqdn}"


def _directory(fleet: Fleet, document: dict[str, t.Any], entries: dict[str, dict[str, t.Any]]) -> None:
    assert fleet.forest is not None
    directory = fleet.directory
    for host in fleet.hosts.values():
        spec = _keys(
            f"{host.name}.computer_account",
            entries[host.name].get("computer_account") or {},
            {"spns", "spns_absent", "extra_spns"},
        )
        spns = [str(item) for item in spec.get("spns", default_spns(host, fleet.forest.name))]
        absent = {str(item).lower() for item in spec.get("spns_absent", [])}
        spns = [spn for spn in spns if spn.lower() not in absent] + [str(item) for item in spec.get("extra_spns", [])]
        directory.add_account(Account(sam=host.sam, kind="computer", host=host.name, spns=spns))
    for account_doc in document.get("accounts", []):
        account_doc = _keys("accounts", account_doc, {"name", "kind", "spns"})
        kind = str(account_doc.get("kind", "user"))
        directory.add_account(
            Account(sam=str(account_doc["name"]), kind=kind, spns=[str(item) for item in account_doc.get("spns", [])])
        )

    dcs = fleet.domain_controllers()
    for dc in dcs:
        directory.add_dc(dc.name)
    now = time.time()
    for dc in dcs:
        partners = entries[dc.name].get("replication_partners", [other.name for other in dcs if other is not dc])
        for partner in partners:
            spec = (
                {"source": partner}
                if isinstance(partner, str)
                else _keys(
                    f"{dc.name}.replication_partners",
                    partner,
                    {"source", "last_result", "consecutive_failures", "last_success_age", "persistent"},
                )
            )
            source = str(spec["source"])
            if source not in directory.seen or source == dc.name:
                raise ValueError(f"{dc.name}: replication partner {source} is not another domain controller")
            persistent = bool(spec.get("persistent", False))
            last_result = int(spec.get("last_result", RPC_S_SERVER_UNAVAILABLE if persistent else 0))
            failures = int(spec.get("consecutive_failures", 1 if last_result else 0))
            directory.links.append(
                ReplicationLink(
                    destination=dc.name,
                    source=source,
                    last_result=last_result,
                    consecutive_failures=failures,
                    last_success=now - float(spec.get("last_success_age", 0 if not last_result else 3600)),
                    last_attempt=now,
                    persistent=persistent,
                )
            )
    directory_doc = _keys("directory", document.get("directory") or {}, {"pending", "write_denied", "sync_denied"})
    directory.write_denied = {str(sam).lower() for sam in directory_doc.get("write_denied", [])}
    directory.sync_denied = {str(dc) for dc in directory_doc.get("sync_denied", [])}
    for name in directory.sync_denied:
        if name not in directory.seen:
            raise ValueError(f"directory.sync_denied: {name} is not a domain controller")
    for write in directory_doc.get("pending", []):
        write = _keys("directory.pending", write, {"dc", "account", "add", "remove"})
        # Pending writes may plant duplicates (made before 2012 R2 or on two DCs before replication): unchecked.
        directory.write(
            str(write["dc"]),
            str(write["account"]),
            add=write.get("add", []),
            remove=write.get("remove", []),
            check_uniqueness=False,
        )


def _validate_references(fleet: Fleet) -> None:
    names = set(fleet.hosts)
    for host in fleet.hosts.values():
        if host.logon_server and host.logon_server not in names:
            raise ValueError(f"{host.name}: logon_server {host.logon_server} is not a host of the fleet")
        if host.logon_server and not fleet.hosts[host.logon_server].is_dc:
            raise ValueError(f"{host.name}: logon_server {host.logon_server} is not a domain controller")
    if fleet.forest is not None and fleet.forest.pdc_emulator and fleet.forest.pdc_emulator not in names:
        raise ValueError(f"forest: pdc_emulator {fleet.forest.pdc_emulator} is not a host of the fleet")
    for block in fleet.network.blocked:
        for end in (block.source, block.destination):
            if end not in names and end not in (ANY, EXTERNAL):
                raise ValueError(f"network.blocked: {end} is neither a host, {ANY!r} nor {EXTERNAL!r}")


def _block(document: dict[str, t.Any]) -> Block:
    document = _keys("network.blocked", document, {"from", "to", "protocol", "port"})
    port = document.get("port")
    return Block(
        source=str(document.get("from", ANY)),
        destination=str(document.get("to", ANY)),
        protocol=str(document.get("protocol", ANY)).upper(),
        port=None if port in (None, ANY) else int(port),
    )


def _authority(pki: Pki | None, name: str, where: str) -> t.Any:
    if pki is None or name not in pki.authorities:
        raise ValueError(f"{where}: no authority {name!r} in the pki section")
    return pki.authorities[name].certificate


def _keys(where: str, document: t.Any, allowed: set[str]) -> dict[str, t.Any]:
    """A section's keys, refusing unknown ones: a misspelt key must not silently model nothing."""
    if not isinstance(document, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(document).__name__}")
    unknown = set(document) - allowed
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}; known: {sorted(allowed)}")
    return document
