"""Pieces of an emulated Windows host that the articles touch: event logs, services, firewall, W32Time, cert stores.

Each is what a script would read through a locale-independent API (event IDs and providers, registry values,
firewall rule names and ports, certificate objects), never the text Windows prints for people.
"""

from __future__ import annotations

import datetime as dt
import typing as t
from dataclasses import dataclass, field
from functools import cached_property

from cryptography import x509

from tests.lab.certs import Chain, PrivateKey, build_chain, common_name, thumbprint

# --- event logs -------------------------------------------------------------------------------------------------

APPLICATION = "Application"
SYSTEM = "System"
CAPI2_OPERATIONAL = "Microsoft-Windows-CAPI2/Operational"

LEVEL_CRITICAL = 1
LEVEL_ERROR = 2
LEVEL_WARNING = 3
LEVEL_INFORMATION = 4


def iso_time(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Event:
    """One event as Get-WinEvent returns it, minus the rendered message (which is localized and never read).

    ``data`` holds the event's data fields by name: for manifest providers the names of EventData/UserData, for
    classic sources (MSExchangeTransport) the insertion-string positions "1".."n" of %1..%n.
    """

    log: str
    provider: str
    event_id: int
    level: int
    time: float  # TimeCreated, by the host's own clock (seconds since the epoch)
    record_id: int
    category: str | None = None
    data: dict[str, t.Any] = field(default_factory=dict)

    def snapshot(self) -> dict[str, t.Any]:
        return {
            "log": self.log,
            "provider": self.provider,
            "id": self.event_id,
            "level": self.level,
            "time": iso_time(self.time),
            "record_id": self.record_id,
            "category": self.category,
            "data": dict(self.data),
        }


@dataclass
class EventLogs:
    """A host's logs. Application and System always record; analytic/operational channels only when enabled,
    as Microsoft-Windows-CAPI2/Operational is disabled until an administrator enables it."""

    logs: dict[str, list[Event]] = field(default_factory=dict)
    enabled: dict[str, bool] = field(
        default_factory=lambda: {APPLICATION: True, SYSTEM: True, CAPI2_OPERATIONAL: False}
    )
    # A log has a maximum size and overwrites its oldest events, so a lab that runs for hours stays small.
    max_events: int = 1000
    _next_record: dict[str, int] = field(default_factory=dict)

    def is_enabled(self, log: str) -> bool:
        return self.enabled.get(log, True)

    def write(
        self,
        log: str,
        provider: str,
        event_id: int,
        *,
        time: float,
        level: int = LEVEL_ERROR,
        category: str | None = None,
        data: dict[str, t.Any] | None = None,
    ) -> Event | None:
        if not self.is_enabled(log):
            return None
        record_id = self._next_record.get(log, 1)
        self._next_record[log] = record_id + 1
        event = Event(log, provider, event_id, level, time, record_id, category, dict(data or {}))
        entries = self.logs.setdefault(log, [])
        entries.append(event)
        del entries[: max(0, len(entries) - self.max_events)]
        return event

    def query(self, log: str | None = None, *, provider: str | None = None, event_id: int | None = None) -> list[Event]:
        names = [log] if log is not None else list(self.logs)
        return [
            event
            for name in names
            for event in self.logs.get(name, [])
            if (provider is None or event.provider.lower() == provider.lower())
            and (event_id is None or event.event_id == event_id)
        ]

    def snapshot(self) -> dict[str, t.Any]:
        return {
            "enabled": dict(self.enabled),
            "logs": {name: [event.snapshot() for event in events] for name, events in self.logs.items()},
        }


# --- services ---------------------------------------------------------------------------------------------------


@dataclass
class Service:
    """A Windows service as Win32_Service / ServiceController report it (Status and StartType are enums)."""

    name: str
    status: str = "Running"  # Running | Stopped
    start_type: str = "Automatic"  # Automatic | Manual | Disabled

    @property
    def running(self) -> bool:
        return self.status == "Running"

    @property
    def display_name(self) -> str:
        return SERVICE_DISPLAY_NAMES.get(self.name.lower(), self.name)


# The services of the model by name, with the display names their cmdlet errors quote (English hosts).
SERVICE_DISPLAY_NAMES = {
    "w32time": "Windows Time",
    "kdc": "Kerberos Key Distribution Center",
    "ntds": "Active Directory Domain Services",
    "msexchangetransport": "Microsoft Exchange Transport",
    "msexchangefrontendtransport": "Microsoft Exchange Frontend Transport",
}


# --- Windows Defender Firewall ----------------------------------------------------------------------------------


@dataclass
class FirewallRule:
    """An inbound rule as Get-NetFirewallRule and its port filter give it; ``name`` is the locale-free rule ID."""

    name: str
    protocol: str  # TCP | UDP
    local_port: int
    enabled: bool = True
    action: str = "Allow"  # Allow | Block
    direction: str = "Inbound"
    display_name: str = ""
    group: str = ""

    def matches(self, protocol: str, port: int) -> bool:
        return (
            self.direction == "Inbound" and self.protocol.upper() == protocol.upper() and self.local_port == int(port)
        )

    def snapshot(self) -> dict[str, t.Any]:
        return {
            "name": self.name,
            "display_name": self.display_name,
            "group": self.group,
            "direction": self.direction,
            "protocol": self.protocol,
            "local_port": self.local_port,
            "action": self.action,
            "enabled": self.enabled,
        }


# The inbound rules a domain controller has after promotion (Kerberos KDC, Kerberos password change, W32Time).
# The lab keys them by rule name, which Windows does not translate; the display names are for people only.
DC_DEFAULT_RULES: tuple[tuple[str, str, int, str], ...] = (
    ("KerberosKeyDistributionCenter-TCP-In", "TCP", 88, "Kerberos Key Distribution Center (TCP-In)"),
    ("KerberosKeyDistributionCenter-UDP-In", "UDP", 88, "Kerberos Key Distribution Center (UDP-In)"),
    ("KerberosKeyDistributionCenterPCR-TCP-In", "TCP", 464, "Kerberos Key Distribution Center - PCR (TCP-In)"),
    ("KerberosKeyDistributionCenterPCR-UDP-In", "UDP", 464, "Kerberos Key Distribution Center - PCR (UDP-In)"),
    ("ADDS-W32Time-NTP-UDP-In", "UDP", 123, "Active Directory Domain Controller - W32Time (NTP-UDP-In)"),
)
# Windows Server enables WinRM out of the box, with this inbound rule for the domain and private profiles: how an
# administrator (and kerberos_ports, from an Exchange server) reads a DC's firewall rules over CIM.
WINRM_RULE = ("WINRM-HTTP-In-TCP", "TCP", 5985, "Windows Remote Management (HTTP-In)")


# A DC's directory is reached over LDAP and the global catalog (the w32time, ad_replication and spn scripts bind to
# it from members): Active Directory Domain Services enables these inbound rules at promotion too.
DC_DIRECTORY_RULES: tuple[tuple[str, str, int, str], ...] = (
    ("ADDS-LDAP-TCP-In", "TCP", 389, "Active Directory Domain Controller - LDAP (TCP-In)"),
    ("ADDS-LDAPGC-TCP-In", "TCP", 3268, "Active Directory Domain Controller - LDAP for Global Catalog (TCP-In)"),
)


def dc_default_rules(locale: str = "en-US") -> list[FirewallRule]:
    """A DC's inbound rules after promotion, with the display names and groups of its display language."""
    from tests.lab.locale import firewall_display_name, firewall_group

    groups = (
        (DC_DEFAULT_RULES, "Kerberos Key Distribution Center"),
        ((WINRM_RULE,), "Windows Remote Management"),
        (DC_DIRECTORY_RULES, "Active Directory Domain Services"),
    )
    return [
        FirewallRule(
            name=name,
            protocol=protocol,
            local_port=port,
            display_name=firewall_display_name(locale, name, display),
            group=firewall_group(locale, group),
        )
        for rules, group in groups
        for name, protocol, port, display in rules
    ]


@dataclass
class Firewall:
    """The active profile of a host's firewall: inbound traffic is blocked unless an enabled rule allows it."""

    enabled: bool = True
    rules: list[FirewallRule] = field(default_factory=list)
    # A host fault: the firewall cmdlets refuse changes (the connection's user is no administrator there).
    write_denied: bool = False

    def rule(self, name: str) -> FirewallRule | None:
        return next((rule for rule in self.rules if rule.name.lower() == name.lower()), None)

    def allows(self, protocol: str, port: int) -> tuple[bool, FirewallRule | None]:
        """Whether inbound traffic passes, and the rule that decided it (None: the profile is off or no rule)."""
        if not self.enabled:
            return True, None
        matching = [rule for rule in self.rules if rule.enabled and rule.matches(protocol, port)]
        # Windows Firewall evaluates block rules before allow rules.
        blocking = next((rule for rule in matching if rule.action == "Block"), None)
        if blocking is not None:
            return False, blocking
        allowing = next((rule for rule in matching if rule.action == "Allow"), None)
        return allowing is not None, allowing

    def snapshot(self) -> dict[str, t.Any]:
        return {"enabled": self.enabled, "rules": [rule.snapshot() for rule in self.rules]}


# --- W32Time, as its registry configuration ---------------------------------------------------------------------

W32TIME_ROOT = r"HKLM\SYSTEM\CurrentControlSet\Services\W32Time"
W32TIME_PARAMETERS = W32TIME_ROOT + r"\Parameters"
W32TIME_CONFIG = W32TIME_ROOT + r"\Config"
W32TIME_NTP_CLIENT = W32TIME_ROOT + r"\TimeProviders\NtpClient"
W32TIME_NTP_SERVER = W32TIME_ROOT + r"\TimeProviders\NtpServer"
# Where the Windows Time Service policies (W32Time.admx) write; a value there wins over the service's own value, so
# the w32time module must report it as set by Group Policy instead of writing the service key in vain.
W32TIME_POLICY_ROOT = r"HKLM\SOFTWARE\Policies\Microsoft\W32Time"

# Fleet-file name -> (registry key, value name, value kind). The registry is the one source of truth: a twin that
# reads or writes W32Time settings goes through it, as the w32time script does on Windows.
W32TIME_VALUES: dict[str, tuple[str, str, str]] = {
    "type": (W32TIME_PARAMETERS, "Type", "String"),
    "ntp_server": (W32TIME_PARAMETERS, "NtpServer", "String"),
    "announce_flags": (W32TIME_CONFIG, "AnnounceFlags", "DWord"),
    "max_pos_phase_correction": (W32TIME_CONFIG, "MaxPosPhaseCorrection", "DWord"),
    "max_neg_phase_correction": (W32TIME_CONFIG, "MaxNegPhaseCorrection", "DWord"),
    "special_poll_interval": (W32TIME_NTP_CLIENT, "SpecialPollInterval", "DWord"),
    "ntp_client_enabled": (W32TIME_NTP_CLIENT, "Enabled", "DWord"),
    "ntp_server_enabled": (W32TIME_NTP_SERVER, "Enabled", "DWord"),
}


def w32time_policy_key(key: str) -> str:
    """The Group Policy key whose values override those of the W32Time service key ``key``."""
    if not key.upper().startswith(W32TIME_ROOT.upper()):
        raise ValueError(f"{key} is not a W32Time service key")
    return W32TIME_POLICY_ROOT + key[len(W32TIME_ROOT) :]


# No limit on how far W32Time may step the clock. The registry holds the DWORD 0xFFFFFFFF (4294967295); .NET's
# RegistryKey.GetValue hands a DWORD back as a signed Int32, so a script reads it as -1.
PHASE_CORRECTION_UNLIMITED = 0xFFFFFFFF
# What Windows Server 2016-2022 sets for a domain controller (48 hours); domain members get no limit at all, and
# stand-alone servers 54000 (15 hours, not modelled: every lab host is domain-joined).
DC_PHASE_CORRECTION = 172800

# w32tm's exit code when the service it asks is not running (HRESULT_FROM_WIN32(ERROR_SERVICE_NOT_ACTIVE)).
W32TM_SERVICE_NOT_ACTIVE = 0x80070426


def w32time_defaults(*, is_dc: bool) -> dict[str, t.Any]:
    """What a domain-joined Windows Server has out of the box."""
    phase_correction = DC_PHASE_CORRECTION if is_dc else PHASE_CORRECTION_UNLIMITED
    return {
        "type": "NT5DS",
        "ntp_server": "time.windows.com,0x8",
        "announce_flags": 10,
        "max_pos_phase_correction": phase_correction,
        "max_neg_phase_correction": phase_correction,
        "special_poll_interval": 3600,
        "ntp_client_enabled": 1,
        "ntp_server_enabled": 1 if is_dc else 0,
    }


@dataclass(frozen=True)
class W32TimeConfig:
    type: str
    ntp_server: str
    announce_flags: int
    max_pos_phase_correction: int
    max_neg_phase_correction: int
    special_poll_interval: int
    ntp_client_enabled: int
    ntp_server_enabled: int
    # The settings (W32TIME_VALUES names) whose value came from the policy key rather than the service key.
    from_policy: frozenset[str] = frozenset()

    @property
    def peers(self) -> list[str]:
        """NtpServer is a space-separated list of ``peer,0xFLAGS``; the flags do not change which peer is asked."""
        return [entry.split(",", 1)[0] for entry in self.ntp_server.split() if entry.split(",", 1)[0]]


# --- certificate stores -----------------------------------------------------------------------------------------

STORES = ("My", "CA", "Root")


@dataclass
class StoredCertificate:
    """A certificate in a LocalMachine store; ``services`` are the Exchange services it is enabled for (SMTP...)."""

    certificate: x509.Certificate
    private_key: PrivateKey | None = None
    services: set[str] = field(default_factory=set)

    @cached_property
    def thumbprint(self) -> str:
        return thumbprint(self.certificate)

    def snapshot(self) -> dict[str, t.Any]:
        return {
            "thumbprint": self.thumbprint,
            "subject": self.certificate.subject.rfc4514_string(),
            "issuer": self.certificate.issuer.rfc4514_string(),
            "common_name": common_name(self.certificate),
            "not_after": self.certificate.not_valid_after_utc.isoformat(),
            "has_private_key": self.private_key is not None,
            "services": sorted(self.services),
        }


@dataclass
class CertificateStores:
    """LocalMachine\\My, \\CA and \\Root of one host, each keyed by thumbprint (imports are idempotent by it)."""

    stores: dict[str, dict[str, StoredCertificate]] = field(default_factory=lambda: {name: {} for name in STORES})

    def store(self, name: str) -> dict[str, StoredCertificate]:
        for known, entries in self.stores.items():
            if known.lower() == name.lower():
                return entries
        raise KeyError(f"no certificate store LocalMachine\\{name}")

    def entries(self, name: str) -> list[StoredCertificate]:
        return list(self.store(name).values())

    def add(
        self,
        name: str,
        certificate: x509.Certificate,
        private_key: PrivateKey | None = None,
        services: t.Iterable[str] = (),
    ) -> bool:
        """Import; False when a certificate with that thumbprint is already there (as Import-Certificate)."""
        entry = StoredCertificate(certificate, private_key, set(services))
        entries = self.store(name)
        if entry.thumbprint in entries:
            return False
        entries[entry.thumbprint] = entry
        return True

    def remove(self, name: str, thumbprint: str) -> bool:
        return self.store(name).pop(thumbprint.upper(), None) is not None

    def smtp(self) -> StoredCertificate | None:
        """The certificate Exchange uses for SMTP: one in My, enabled for SMTP, with its private key."""
        return next(
            (entry for entry in self.entries("My") if "SMTP" in entry.services and entry.private_key is not None), None
        )

    def chain(self, entry: StoredCertificate) -> Chain:
        """The chain CryptoAPI builds for ``entry`` from this host's stores (no AIA retrieval)."""
        candidates = [item.certificate for item in self.entries("My") + self.entries("CA")]
        return build_chain(entry.certificate, candidates, [item.certificate for item in self.entries("Root")])

    def snapshot(self) -> dict[str, list[dict[str, t.Any]]]:
        return {name: [entry.snapshot() for entry in entries.values()] for name, entries in self.stores.items()}
