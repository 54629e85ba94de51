"""The simulated state of the lab's hosts, loaded from a fleet YAML file."""

from __future__ import annotations

import copy
import threading
import time
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from cryptography import x509

from tests.lab import topology
from tests.lab.certs import Chain, Pki, PrivateKey, thumbprint
from tests.lab.directory import Directory
from tests.lab.exchange import ExchangeState, SendConnector
from tests.lab.generate import generate_fleet
from tests.lab.topology import EopSettings, Forest, Network, Reachability, Settings
from tests.lab.windows import (
    CAPI2_OPERATIONAL,
    LEVEL_ERROR,
    W32TIME_VALUES,
    W32TM_SERVICE_NOT_ACTIVE,
    CertificateStores,
    Event,
    EventLogs,
    Firewall,
    Service,
    StoredCertificate,
    W32TimeConfig,
    w32time_policy_key,
)

FLEETS_DIR = Path(__file__).resolve().parent / "fleets"


# Exception.HResult of the .NET exceptions the twins raise (the bootstrap reports it beside the type and message);
# COR_E_EXCEPTION for any other.
HRESULTS = {
    "System.UnauthorizedAccessException": -2147024891,  # 0x80070005 E_ACCESSDENIED
    "System.Security.SecurityException": -2146233078,  # 0x8013150A
    "System.ArgumentException": -2147024809,  # 0x80070057 E_INVALIDARG
    "System.InvalidOperationException": -2146233079,  # 0x80131509
    "System.Management.Automation.PSInvalidCastException": -2147467262,  # 0x80004002 E_NOINTERFACE
}
COR_E_EXCEPTION = -2146233088  # 0x80131500


class HostException(Exception):
    """An exception that escapes a host script on Windows: its .NET type name, message and HResult."""

    def __init__(self, error_type: str, message: str, hresult: int | None = None) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.hresult = HRESULTS.get(error_type, COR_E_EXCEPTION) if hresult is None else hresult


@dataclass(frozen=True)
class Credentials:
    domain: str
    username: str
    password: str

    def accepts_basic(self, username: str, password: str) -> bool:
        names = {
            self.username.lower(),
            f"{self.domain}\\{self.username}".lower(),
            f"{self.username}@{self.domain}".lower(),
        }
        return username.lower() in names and password == self.password


def registry_value_name(values: t.Mapping[str, t.Any], name: str) -> str | None:
    """The stored spelling of value ``name`` in a key's values, or None: Windows compares value names
    case-insensitively, so every reader of the emulated registry looks them up through this."""
    wanted = name.lower()
    return next((stored for stored in values if stored.lower() == wanted), None)


# The kinds of registry value the lab stores, as .NET's RegistryValueKind names them, and what a fleet file may
# give for each. REG_DWORD and REG_QWORD are stored unsigned, as the registry holds them.
REGISTRY_KINDS: dict[str, t.Callable[[t.Any], bool]] = {
    "DWord": lambda value: isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**32,
    "QWord": lambda value: isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**64,
    "String": lambda value: isinstance(value, str),
    "ExpandString": lambda value: isinstance(value, str),
    "MultiString": lambda value: isinstance(value, list) and all(isinstance(item, str) for item in value),
    "Binary": lambda value: isinstance(value, list) and all(isinstance(b, int) and 0 <= b < 256 for b in value),
}
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
# .NET's ArgumentException text when SetValue cannot convert a value to the kind it was asked for.
SET_VALUE_MISMATCH = (
    "The type of the value object did not match the specified RegistryValueKind or the object could not be properly "
    "converted."
)


def dotnet_registry_value(kind: str, stored: t.Any) -> t.Any:
    """A stored value as RegistryKey.GetValue returns it: a REG_DWORD is a signed Int32 (0xFFFFFFFF reads -1), a
    REG_QWORD a signed Int64."""
    if kind == "DWord" and stored >= 2**31:
        return stored - 2**32
    if kind == "QWord" and stored >= 2**63:
        return stored - 2**64
    return stored


def registry_path(path: str) -> str:
    """Registry paths compare case-insensitively on Windows; the lab keys them in one spelling."""
    return path.replace("/", "\\").rstrip("\\").upper()


# The OEM code page of a console, which decodes a process's stdin, by the host's system locale.
OEM_CODE_PAGES = {"en-US": "cp437", "sv-SE": "cp850", "de-DE": "cp850"}


@dataclass(frozen=True)
class WinRMService:
    """The WinRM service's settings that decide what a client may do (winrm get winrm/config/service).

    The defaults are those of a Windows Server out of the box: Basic authentication off, unencrypted messages
    refused; channel binding is checked on HTTPS.
    """

    allow_basic: bool = False
    allow_unencrypted: bool = False


@dataclass
class HostState:
    """One emulated Windows host. Twins read and change it; the lab's lock serialises them."""

    name: str
    fqdn: str
    roles: list[str]
    registry: dict[str, dict[str, tuple[str, t.Any]]] = field(default_factory=dict)
    registry_write_denied: set[str] = field(default_factory=set)
    # Faults of the host's listeners (refused, drop_mid_command, http_500, ...), applied by the lab at start.
    transport_faults: dict[str, t.Any] = field(default_factory=dict)
    winrm: WinRMService = field(default_factory=WinRMService)
    locale: str = "en-US"  # the system locale: what a console's code page and Windows' own texts follow
    # --- the articles' model (tests/lab/topology.py fills it from the fleet file) ---------------------------------
    ip: str = ""  # the address other hosts see (events, protocol logs); every listener is on 127.0.0.1
    site: str = "Default-First-Site-Name"
    logon_server: str | None = None  # the DC the host uses; None: the DC locator's choice (Fleet.dc_for)
    clock_offset: float = 0.0  # seconds this host's clock is ahead of true time
    services: dict[str, Service] = field(default_factory=dict)
    firewall: Firewall | None = None  # None: no host firewall in the model (everything inbound passes)
    exchange: ExchangeState | None = None
    certificates: CertificateStores = field(default_factory=CertificateStores)
    events: EventLogs = field(default_factory=EventLogs)
    # The W32Time configuration the running service works with: what the registry held when the service last
    # started or was told to re-read it (w32tm /config /update). Registry writes alone change nothing until then.
    w32time_in_use: W32TimeConfig | None = None

    # --- registry, as the .NET Microsoft.Win32.RegistryKey API sees it --------------------------------------------
    def registry_key(self, path: str) -> dict[str, tuple[str, t.Any]] | None:
        return self.registry.get(registry_path(path))

    def writable_registry_key(self, path: str, *, create: bool) -> dict[str, tuple[str, t.Any]] | None:
        key = registry_path(path)
        if key in self.registry_write_denied:
            # CreateSubKey and OpenSubKey(path, $true) fail differently on Windows; the twins see the same types.
            if create:
                raise HostException(
                    "System.UnauthorizedAccessException",
                    f"Access to the registry key 'HKEY_LOCAL_MACHINE\\{path.split(chr(92), 1)[1]}' is denied.",
                )
            raise HostException("System.Security.SecurityException", "Requested registry access is not allowed.")
        if create:
            return self.registry.setdefault(key, {})
        return self.registry.get(key)

    def registry_value(self, path: str, name: str) -> tuple[str, t.Any] | None:
        """(kind, value) as .NET reads value ``name`` of key ``path`` (names compare case-insensitively), or None."""
        values = self.registry_key(path)
        stored = registry_value_name(values, name) if values is not None else None
        if values is None or stored is None:
            return None
        kind, value = values[stored]
        return kind, dotnet_registry_value(kind, value)

    def set_registry_value(self, path: str, name: str, value: t.Any, kind: str) -> None:
        """RegistryKey.SetValue(name, value, kind) on a key opened for writing (CreateSubKey).

        A REG_DWORD is converted as .NET converts it, with Convert.ToInt32: it must fit a signed Int32, and is stored
        as the unsigned value it stands for (-1 is 0xFFFFFFFF). A value of the same name and another kind is
        replaced, as Windows does.
        """
        values = self.writable_registry_key(path, create=True)
        assert values is not None
        if kind == "DWord":
            if isinstance(value, bool) or not isinstance(value, int) or not INT32_MIN <= value <= INT32_MAX:
                raise HostException("System.ArgumentException", SET_VALUE_MISMATCH)
            value &= 0xFFFFFFFF
        elif not REGISTRY_KINDS[kind](value):
            raise HostException("System.ArgumentException", SET_VALUE_MISMATCH)
        existing = registry_value_name(values, name)
        if existing is not None:
            del values[existing]
        values[existing or name] = (kind, value)

    def delete_registry_value(self, path: str, name: str) -> bool:
        """RegistryKey.DeleteValue(name, $false) on a key opened for writing; False when there was nothing to delete."""
        values = self.writable_registry_key(path, create=False)
        existing = registry_value_name(values, name) if values is not None else None
        if values is None or existing is None:
            return False
        del values[existing]
        return True

    @property
    def oem_code_page(self) -> str:
        return OEM_CODE_PAGES[self.locale]

    # --- identity and clock ---------------------------------------------------------------------------------------
    @property
    def is_dc(self) -> bool:
        return "dc" in self.roles

    @property
    def is_exchange(self) -> bool:
        return "exchange" in self.roles

    @property
    def sam(self) -> str:
        """The sAMAccountName of the host's computer account."""
        return f"{self.name.upper()}$"

    def now(self) -> float:
        """The host's clock (seconds since the epoch): true time plus its offset."""
        return time.time() + self.clock_offset

    # --- services and W32Time ------------------------------------------------------------------------------------
    def service(self, name: str) -> Service | None:
        return next((item for key, item in self.services.items() if key.lower() == name.lower()), None)

    def start_service(self, name: str) -> None:
        """Start-Service: a service that starts reads its configuration (W32Time: from the registry, policy first)."""
        service = self._existing_service(name)
        if service.start_type == "Disabled":
            raise HostException(
                "Microsoft.PowerShell.Commands.ServiceCommandException",
                f"Service '{service.display_name} ({service.name})' cannot be started due to the following error: "
                f"Cannot start service {service.name} on computer '.'.",
            )
        service.status = "Running"
        if service.name.lower() == "w32time":
            self.w32time_in_use = self.w32time_configured()

    def stop_service(self, name: str) -> None:
        """Stop-Service: a stopped W32Time has no configuration in use (and serves no time)."""
        service = self._existing_service(name)
        service.status = "Stopped"
        if service.name.lower() == "w32time":
            self.w32time_in_use = None

    def restart_service(self, name: str) -> None:
        """Restart-Service: stop if running, then start (which re-reads the configuration)."""
        self.stop_service(name)
        self.start_service(name)

    def _existing_service(self, name: str) -> Service:
        service = self.service(name)
        if service is None:
            raise HostException(
                "Microsoft.PowerShell.Commands.ServiceCommandException",
                f"Cannot find any service with service name '{name}'.",
            )
        return service

    def w32time(self) -> W32TimeConfig | None:
        """The configuration W32Time works with (what time_source and resync follow); None while it is stopped."""
        service = self.service("W32Time")
        if service is not None and not service.running:
            return None
        return self.w32time_in_use

    def w32time_configured(self) -> W32TimeConfig | None:
        """What W32Time would take if it read the registry now: each value from its Group Policy key when set
        there, else from the service key. None when a value is in neither (no W32Time in the model)."""
        values: dict[str, t.Any] = {}
        from_policy: set[str] = set()
        for setting, (key, value_name, kind) in W32TIME_VALUES.items():
            policy = self._registry_data(w32time_policy_key(key), value_name)
            data = policy if policy is not None else self._registry_data(key, value_name)
            if data is None:
                return None
            if policy is not None:
                from_policy.add(setting)
            # A DWORD is 32 unsigned bits: a value stored as a signed Int32 (-1) means the same (0xFFFFFFFF).
            values[setting] = int(data) & 0xFFFFFFFF if kind == "DWord" else str(data)
        return W32TimeConfig(**values, from_policy=frozenset(from_policy))

    def _registry_data(self, key: str, value_name: str) -> t.Any:
        values = self.registry_key(key) or {}
        stored = registry_value_name(values, value_name)
        return values[stored][1] if stored is not None else None

    def w32time_config_update(self) -> int:
        """``w32tm /config /update``: the running service re-reads its configuration; returns w32tm's exit code
        (W32TM_SERVICE_NOT_ACTIVE when the service is stopped, and nothing changes)."""
        service = self.service("W32Time")
        if service is not None and not service.running:
            return W32TM_SERVICE_NOT_ACTIVE
        self.w32time_in_use = self.w32time_configured()
        return 0

    # --- event logs ----------------------------------------------------------------------------------------------
    def log_event(
        self,
        log: str,
        provider: str,
        event_id: int,
        *,
        level: int = LEVEL_ERROR,
        category: str | None = None,
        data: dict[str, t.Any] | None = None,
    ) -> Event | None:
        """Write an event stamped with the host's own clock; None when the channel is disabled."""
        return self.events.write(log, provider, event_id, time=self.now(), level=level, category=category, data=data)

    @property
    def capi2_logging(self) -> bool:
        return self.events.is_enabled(CAPI2_OPERATIONAL)

    def set_capi2_logging(self, enabled: bool) -> None:
        """Enable or disable Microsoft-Windows-CAPI2/Operational (wevtutil sl ... /e:true)."""
        self.events.enabled[CAPI2_OPERATIONAL] = enabled

    # --- certificate stores --------------------------------------------------------------------------------------
    def import_certificate(
        self, store: str, certificate: x509.Certificate, private_key: PrivateKey | None = None
    ) -> bool:
        """Import-Certificate -CertStoreLocation Cert:\\LocalMachine\\<store>; False when already there."""
        return self.certificates.add(store, certificate, private_key)

    def import_intermediates(self, certificates: t.Iterable[x509.Certificate]) -> list[str]:
        """KB 3212877 step 3: import into LocalMachine\\CA; returns the thumbprints that were added."""
        return [thumbprint(item) for item in certificates if self.certificates.add("CA", item)]

    def remove_certificate(self, store: str, thumbprint: str) -> bool:
        return self.certificates.remove(store, thumbprint)

    def smtp_certificate(self) -> StoredCertificate | None:
        return self.certificates.smtp()

    def send_connector_certificate(self, connector: SendConnector | None) -> StoredCertificate | None:
        """The TLS client certificate the host presents through ``connector``: one in LocalMachine\\My that its
        TlsCertificateName designates, with its private key (the latest to expire when several do); None when
        none does, and the host then presents no certificate at all."""
        if connector is None:
            return None
        matches = [
            entry
            for entry in self.certificates.entries("My")
            if entry.private_key is not None and connector.names(entry.certificate)
        ]
        return max(matches, key=lambda entry: entry.certificate.not_valid_after_utc, default=None)

    def smtp_chain(self) -> Chain | None:
        """The chain this host builds for its SMTP certificate, hence what it sends in a TLS handshake."""
        entry = self.certificates.smtp()
        return self.certificates.chain(entry) if entry is not None else None

    def snapshot(self) -> dict[str, t.Any]:
        return {
            "name": self.name,
            "fqdn": self.fqdn,
            "roles": list(self.roles),
            "registry": {
                key: {name: list(value) for name, value in values.items()} for key, values in self.registry.items()
            },
            "registry_write_denied": sorted(self.registry_write_denied),
            "ip": self.ip,
            "site": self.site,
            "logon_server": self.logon_server,
            "clock_offset": self.clock_offset,
            "w32time_in_use": _w32time_snapshot(self.w32time_in_use),
            "services": {
                name: {"status": item.status, "start_type": item.start_type} for name, item in self.services.items()
            },
            "firewall": self.firewall.snapshot() if self.firewall is not None else None,
            "exchange": self.exchange.snapshot() if self.exchange is not None else None,
            "certificates": self.certificates.snapshot(),
            "events": self.events.snapshot(),
        }


def _w32time_snapshot(config: W32TimeConfig | None) -> dict[str, t.Any] | None:
    if config is None:
        return None
    return {**{name: getattr(config, name) for name in W32TIME_VALUES}, "from_policy": sorted(config.from_policy)}


@dataclass
class Fleet:
    name: str
    credentials: Credentials
    hosts: dict[str, HostState]
    lock: threading.RLock = field(default_factory=threading.RLock)
    # --- the articles' model (tests/lab/topology.py) ---------------------------------------------------------------
    forest: Forest | None = None
    directory: Directory = field(default_factory=Directory)
    network: Network = field(default_factory=Network)
    pki: Pki | None = None
    eop: EopSettings | None = None
    settings: Settings = field(default_factory=Settings)
    # Counts changes made from outside the model (a script's writes, a fault set): Exchange's retries of an org
    # where nothing changed and nothing moved would only repeat themselves (see MailLab).
    revision: int = 0

    def host(self, name: str) -> HostState:
        """A host by name or FQDN, case-insensitively."""
        if name in self.hosts:
            return self.hosts[name]
        wanted = name.lower()
        for host in self.hosts.values():
            if wanted in (host.name.lower(), host.fqdn.lower()):
                return host
        raise KeyError(f"fleet {self.name}: no host {name!r}")

    def exchange_servers(self) -> list[HostState]:
        return [host for host in self.hosts.values() if host.is_exchange]

    def domain_controllers(self) -> list[HostState]:
        return [host for host in self.hosts.values() if host.is_dc]

    def pdc_emulator(self) -> HostState | None:
        if self.forest is None or not self.forest.pdc_emulator:
            return None
        return self.hosts[self.forest.pdc_emulator]

    def dc_for(self, host: HostState) -> HostState | None:
        """The DC ``host`` authenticates against (its KDC, whose directory replica it sees)."""
        return topology.dc_for(self, host)

    def reachable(self, source: str, destination: str, protocol: str, port: int) -> Reachability:
        """Whether ``source`` reaches ``destination`` on protocol/port: the network block list, then its firewall."""
        return topology.reachable(self, source, destination, protocol, port)

    def facts(self) -> dict[str, t.Any]:
        """The fleet-wide state without what follows from it (see Directory.facts): what the journal compares."""
        return {**self.snapshot(views=False), "directory": self.directory.facts()}

    def snapshot(self, *, views: bool = True) -> dict[str, t.Any]:
        """The fleet-wide state (per-host state is in HostState.snapshot)."""
        return {
            "forest": vars(self.forest) if self.forest is not None else None,
            "directory": self.directory.snapshot() if views else {},
            "network": {"blocked": [vars(block) for block in self.network.blocked]},
            "eop": vars(self.eop) if self.eop is not None else None,
            "settings": vars(self.settings),
        }


def load_fleet(path: str | Path) -> Fleet:
    """Read a fleet file; a bare name means one of the shipped fleets in fleets/, ``generated-N`` a generated one."""
    if isinstance(path, str) and path.startswith("generated-") and path[len("generated-") :].isdigit():
        return fleet_from_document(path, generate_fleet(int(path[len("generated-") :])))
    candidate = Path(path)
    if not candidate.suffix and not candidate.exists():
        candidate = FLEETS_DIR / f"{path}.yml"
    document = yaml.safe_load(candidate.read_text(encoding="utf-8"))
    return fleet_from_document(candidate.stem, document)


def _registry_value(fleet: str, host: t.Any, key: str, value_name: str, spec: t.Any) -> tuple[str, t.Any]:
    """A registry value of a fleet file, refused unless its kind and value are what Windows could hold."""
    where = f"fleet {fleet}: {host}: registry {key}\\{value_name}"
    if not isinstance(spec, dict) or set(spec) != {"kind", "value"}:
        raise ValueError(f"{where}: expected {{kind, value}}, got {spec!r}")
    kind, value = str(spec["kind"]), spec["value"]
    if kind not in REGISTRY_KINDS:
        raise ValueError(f"{where}: unknown kind {kind!r}; known: {sorted(REGISTRY_KINDS)}")
    if not REGISTRY_KINDS[kind](value):
        hint = " (REG_DWORD and REG_QWORD are unsigned: 0xFFFFFFFF is 4294967295)" if "Word" in kind else ""
        raise ValueError(f"{where}: {value!r} is not a {kind} value{hint}")
    return kind, value


def _winrm_service(fleet: str, entry: dict[str, t.Any]) -> WinRMService:
    settings = entry.get("winrm") or {}
    unknown = set(settings) - {"allow_basic", "allow_unencrypted"}
    if unknown:
        raise ValueError(f"fleet {fleet}: {entry.get('name')}: unknown winrm setting(s) {sorted(unknown)}")
    return WinRMService(**{key: bool(value) for key, value in settings.items()})


def _locale(fleet: str, entry: dict[str, t.Any]) -> str:
    locale = str(entry.get("locale", "en-US"))
    if locale not in OEM_CODE_PAGES:
        raise ValueError(
            f"fleet {fleet}: {entry.get('name')}: unknown locale {locale!r}; known: {sorted(OEM_CODE_PAGES)}"
        )
    return locale


def fleet_from_document(name: str, document: dict[str, t.Any]) -> Fleet:
    document = copy.deepcopy(document)
    creds = document.get("credentials", {})
    credentials = Credentials(
        domain=str(creds.get("domain", "LAB")),
        username=str(creds.get("username", "ansible")),
        password=str(creds.get("password", "Lab-Passw0rd!")),
    )
    hosts: dict[str, HostState] = {}
    for entry in document.get("hosts", []):
        registry: dict[str, dict[str, tuple[str, t.Any]]] = {}
        for key, values in (entry.get("registry") or {}).items():
            registry[registry_path(key)] = {
                str(value_name): _registry_value(name, entry.get("name"), key, str(value_name), spec)
                for value_name, spec in (values or {}).items()
            }
        faults = entry.get("faults") or {}
        host = HostState(
            name=str(entry["name"]),
            fqdn=str(entry.get("fqdn", f"{entry['name']}.contoso.example")),
            roles=list(entry.get("roles", [])),
            registry=registry,
            registry_write_denied={registry_path(key) for key in faults.get("registry_write_denied", [])},
            transport_faults={fault: value for fault, value in faults.items() if fault != "registry_write_denied"},
            winrm=_winrm_service(name, entry),
            locale=_locale(name, entry),
        )
        if host.name in hosts:
            raise ValueError(f"fleet {name}: host {host.name} is defined twice")
        hosts[host.name] = host
    if not hosts:
        raise ValueError(f"fleet {name}: no hosts")
    fleet = Fleet(name=name, credentials=credentials, hosts=hosts)
    topology.apply(fleet, document)
    return fleet
