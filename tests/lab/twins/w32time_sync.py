"""Twin of plugins/plugin_utils/host_scripts/w32time_sync.ps1 (reviewed against v1)."""

from __future__ import annotations

import typing as t

from tests.lab import domain, model
from tests.lab.fleet import HostException
from tests.lab.topology import EXTERNAL
from tests.lab.windows import W32TIME_CONFIG, W32TIME_PARAMETERS, W32TIME_POLICY_ROOT, W32TIME_ROOT

if t.TYPE_CHECKING:
    from tests.lab.fleet import Fleet, HostState
    from tests.lab.twins import Params, TwinContext

VERSION = 1
SHA256 = "a20c24e77c99733098309a13f821fa8ac9ce5f4a7a076827623dcc0a8479be7d"

# (result key, key under the W32Time root, value name, kind), as Read-W32TimeValues and 'configure' use them.
VALUES = (
    ("type", W32TIME_PARAMETERS, "Type", "String"),
    ("ntp_server", W32TIME_PARAMETERS, "NtpServer", "String"),
    ("announce_flags", W32TIME_CONFIG, "AnnounceFlags", "DWord"),
)
# w32tm's exit codes are HRESULTs, as $LASTEXITCODE holds them (signed). The service is not running
# (HRESULT_FROM_WIN32(ERROR_SERVICE_NOT_ACTIVE)); no source gave time data within the wait (ERROR_TIMEOUT).
W32TM_SERVICE_NOT_ACTIVE = 0x80070426 - 2**32
W32TM_NO_TIME_DATA = 0x800705B4 - 2**32
SERVICE_ERROR = "Microsoft.PowerShell.Commands.ServiceCommandException"


def run(context: TwinContext, params: Params) -> dict[str, t.Any]:
    host, fleet = context.host, context.fleet
    identity = domain.identity(context)
    pdc = params["pdc_emulator"]
    dcs = [str(name) for name in params["domain_controllers"] or [] if name]
    forest_root: bool | None = None
    dc_in_use: str | None = identity["fqdn"] if host.is_dc else params["dc_in_use"]
    if identity["part_of_domain"] and params["action"] == "read" and (not pdc or not dcs):
        server = domain.bind(context, params, params["domain_server"])
        dc_in_use = dc_in_use or server.fqdn
        emulator = fleet.pdc_emulator()
        pdc = pdc or (emulator.fqdn if emulator is not None else None)
        dcs = dcs or [dc.fqdn for dc in fleet.domain_controllers()]
        forest_root = True  # one domain per forest in the lab

    resync_exit_code: int | None = None
    if params["action"] == "configure":
        for setting, key, name, kind in VALUES:
            value = params[setting]
            if value is None:
                continue
            # [int] / [string] as the script converts them before SetValue.
            host.set_registry_value(key, name, int(value) if kind == "DWord" else str(value), kind)
        service = _service(host)
        if params["automatic"]:
            service.start_type = "Automatic"
        host.restart_service("W32Time")
        for _attempt in range(3):
            resync_exit_code = _resync(fleet, host)
            if resync_exit_code == 0:
                break

    own_names = (identity["fqdn"], identity["name"].lower())
    # The forest-root PDC emulator's reliable peers are measured on that host only.
    is_root_pdc = bool(pdc) and str(pdc).lower() in own_names and forest_root is not False
    root_peers = [str(peer) for peer in params["ntp_peers"] or [] if peer] if is_root_pdc else []
    peers: list[str] = []
    for peer in [pdc, dc_in_use, *dcs, *root_peers]:
        if not peer or str(peer).lower() in own_names:
            continue
        if str(peer).lower() not in {item.lower() for item in peers}:
            peers.append(str(peer))
    offsets = [_measure(fleet, host, peer) for peer in peers]

    service = _service(host)
    return {
        "identity": identity,
        "pdc_emulator": pdc,
        "domain_controllers": dcs,
        "forest_root": forest_root,
        "dc_in_use": dc_in_use,
        "configured": _values(host, W32TIME_ROOT),
        "policy": _values(host, W32TIME_POLICY_ROOT),
        "service": {"start_type": service.start_type, "status": service.status},
        "offsets": offsets,
        "resync_exit_code": resync_exit_code,
    }


def _service(host: HostState) -> t.Any:
    service = host.service("W32Time")
    if service is None:
        raise HostException(SERVICE_ERROR, "Cannot find any service with service name 'W32Time'.")
    return service


def _values(host: HostState, root: str) -> dict[str, t.Any]:
    values: dict[str, t.Any] = {}
    for setting, key, name, _kind in VALUES:
        found = host.registry_value(root + key[len(W32TIME_ROOT) :], name)
        values[setting] = found[1] if found is not None else None
    return values


def _resync(fleet: Fleet, host: HostState) -> int:
    """``w32tm /resync``: its exit code, after the clock took the source's time (or did not)."""
    service = host.service("W32Time")
    if service is None or not service.running:
        return W32TM_SERVICE_NOT_ACTIVE
    return 0 if model.resync(fleet, host).ok else W32TM_NO_TIME_DATA


def _serves_ntp(peer: HostState) -> bool:
    """W32Time answers NTP while it runs with its NTP server provider enabled (a DC's default, not a member's)."""
    config = peer.w32time()
    return config is not None and bool(config.ntp_server_enabled)


def _measure(fleet: Fleet, host: HostState, peer: str) -> dict[str, t.Any]:
    """One SNTP exchange from ``host``: how far its clock is ahead of the peer's, or why nothing came back."""
    measured: dict[str, t.Any] = {"peer": peer, "answered": False, "offset": None, "error": None}
    try:
        target: HostState | None = fleet.host(peer)
    except KeyError:
        target = None
    forest = fleet.forest.name.lower() if fleet.forest is not None else ""
    if target is None and ("." not in peer or (forest and peer.lower().endswith("." + forest))):
        measured["error"] = "HostNotFound"  # a name in the forest's DNS that no host has
        return measured
    destination = target.name if target is not None else EXTERNAL
    # A DC's firewall drops what it does not allow, and it sends no ICMP unreachable (stealth mode): a time-out.
    if not fleet.reachable(host.name, destination, "UDP", 123).ok or (target is not None and not _serves_ntp(target)):
        measured["error"] = "TimedOut"
        return measured
    peer_clock = target.clock_offset if target is not None else 0.0  # the internet's time servers are right
    measured.update(answered=True, offset=round(host.clock_offset - peer_clock, 3))
    return measured


# Runs that exercise the script (tests/unit/lab/test_twin_discipline.py): (fleet, host, parameters).
_DOMAIN = {"domain_server": None, "domain_username": None, "domain_password": None}
_READ = {**_DOMAIN, "action": "read", "timeout_ms": 2000}
_CONFIGURE = {"action": "configure", "timeout_ms": 2000, "automatic": True}
EXAMPLES = [
    ("contoso", "dc01", _READ),
    ("contoso", "dc01", {**_READ, "ntp_peers": ["time.lab.example"]}),
    (
        "contoso",
        "ex03",
        {**_READ, "domain_username": "CONTOSO\\ansible", "domain_password": "Lab-Passw0rd!"},
    ),
    ("contoso", "ex02", {**_READ, "pdc_emulator": "dc01", "domain_controllers": ["dc01", "dc02", "dc03"]}),
    (
        "contoso",
        "dc01",
        {
            **_CONFIGURE,
            "pdc_emulator": "dc01.contoso.example",
            "domain_controllers": ["dc02.contoso.example"],
            "ntp_peers": ["time.lab.example"],
            "type": "NTP",
            "ntp_server": "time.lab.example,0x8",
            "announce_flags": 5,
        },
    ),
    (
        "contoso",
        "ex03",
        {**_CONFIGURE, "pdc_emulator": "dc01.contoso.example", "domain_controllers": [], "type": "NT5DS"},
    ),
    ("contoso", "dc02", {**_CONFIGURE, "pdc_emulator": "dc01.contoso.example", "domain_controllers": []}),
]
