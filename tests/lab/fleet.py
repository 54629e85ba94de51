"""The simulated state of the lab's hosts, loaded from a fleet YAML file."""

from __future__ import annotations

import copy
import threading
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

import yaml

FLEETS_DIR = Path(__file__).resolve().parent / "fleets"


class HostException(Exception):
    """An exception a host script would catch on Windows: its .NET type name and message."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


@dataclass(frozen=True)
class Credentials:
    domain: str
    username: str
    password: str

    def accepts_basic(self, username: str, password: str) -> bool:
        names = {self.username.lower(), f"{self.domain}\\{self.username}".lower(), f"{self.username}@{self.domain}".lower()}
        return username.lower() in names and password == self.password


def registry_path(path: str) -> str:
    """Registry paths compare case-insensitively on Windows; the lab keys them in one spelling."""
    return path.replace("/", "\\").rstrip("\\").upper()


@dataclass
class HostState:
    """One emulated Windows host. Twins read and change it; the lab's lock serialises them."""

    name: str
    fqdn: str
    roles: list[str]
    registry: dict[str, dict[str, tuple[str, t.Any]]] = field(default_factory=dict)
    registry_write_denied: set[str] = field(default_factory=set)

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

    def snapshot(self) -> dict[str, t.Any]:
        return {
            "name": self.name,
            "fqdn": self.fqdn,
            "roles": list(self.roles),
            "registry": {key: {name: list(value) for name, value in values.items()} for key, values in self.registry.items()},
            "registry_write_denied": sorted(self.registry_write_denied),
        }


@dataclass
class Fleet:
    name: str
    credentials: Credentials
    hosts: dict[str, HostState]
    lock: threading.RLock = field(default_factory=threading.RLock)


def load_fleet(path: str | Path) -> Fleet:
    """Read a fleet file; a bare name means one of the shipped fleets in fleets/."""
    candidate = Path(path)
    if not candidate.suffix and not candidate.exists():
        candidate = FLEETS_DIR / f"{path}.yml"
    document = yaml.safe_load(candidate.read_text(encoding="utf-8"))
    return fleet_from_document(candidate.stem, document)


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
                str(value_name): (str(spec["kind"]), spec["value"]) for value_name, spec in (values or {}).items()
            }
        faults = entry.get("faults") or {}
        host = HostState(
            name=str(entry["name"]),
            fqdn=str(entry.get("fqdn", f"{entry['name']}.contoso.example")),
            roles=list(entry.get("roles", [])),
            registry=registry,
            registry_write_denied={registry_path(key) for key in faults.get("registry_write_denied", [])},
        )
        if host.name in hosts:
            raise ValueError(f"fleet {name}: host {host.name} is defined twice")
        hosts[host.name] = host
    if not hosts:
        raise ValueError(f"fleet {name}: no hosts")
    return Fleet(name=name, credentials=credentials, hosts=hosts)
