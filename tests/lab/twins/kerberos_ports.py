"""Twin of plugins/plugin_utils/host_scripts/kerberos_ports.ps1 (reviewed against v1, with lib/directory.ps1 and
lib/firewall.ps1).

The probes answer as the network and the DC would: Fleet.reachable (the network block list, then the DC's own
firewall) decides whether a packet arrives; one that does not arrive is dropped (Windows Firewall drops inbound
traffic it does not allow, and so do most network firewalls), so the script sees no answer. A packet that arrives
at a DC whose KDC service is stopped is refused (a TCP reset, an ICMP port unreachable for UDP). A DC's own rules
are read over CIM only when its WinRM port is reachable and the logon can authenticate onward.
"""

from __future__ import annotations

import typing as t

from tests.lab import locale, onward
from tests.lab.libraries import KERBEROS_PORTS, computer_identity, firewall_state

if t.TYPE_CHECKING:
    from tests.lab.fleet import HostState
    from tests.lab.twins import Params, TwinContext

VERSION = 1
SHA256 = "084e6bbe9d986a0adb197de9004b5f0b3eb1d82edb8a8a46d1dad1aa32562a20"

NOT_FOUND = "System.DirectoryServices.ActiveDirectory.ActiveDirectoryObjectNotFoundException"
CIM_ERROR = "Microsoft.Management.Infrastructure.CimException"
WINRM_PORT = 5985
SOCKET_ERRORS = {"no_answer": None, "refused": "ConnectionRefused", "unresolved": "HostNotFound"}


def run(context: TwinContext, params: Params) -> dict[str, t.Any]:
    host, fleet = context.host, context.fleet
    identity = computer_identity(host, fleet)
    result: dict[str, t.Any] = {"host": identity, "firewall": None, "probes": [], "dc_firewalls": []}
    if host.is_dc:
        result["firewall"] = firewall_state(host)

    if params["domain_controllers"] is not None:
        names = [str(name) for name in params["domain_controllers"]]
    elif not host.is_dc:
        names = [dc.fqdn.lower() for dc in _domain_controllers(context, params)]
    else:
        names = []

    probes = []
    for name in names:
        target = _resolve(context, name)
        for protocol, port in (("TCP", 88), ("TCP", 464), ("UDP", 88)):
            outcome = "unresolved" if target is None else _probe(context, target, protocol, port)
            probes.append(
                {
                    "dc": name,
                    "protocol": protocol,
                    "port": port,
                    "result": outcome,
                    "error": SOCKET_ERRORS.get(outcome),
                }
            )
    # The script lists TCP 88, TCP 464 per DC, then its UDP probe: the same order.
    result["probes"] = probes

    silent = list(dict.fromkeys(str(probe["dc"]) for probe in probes if probe["result"] == "no_answer"))
    result["dc_firewalls"] = [_remote_firewall(context, params, name) for name in silent]
    return result


def _domain_controllers(context: TwinContext, params: Params) -> list[HostState]:
    """Get-MailflowDomain, then Domain.DomainControllers: through domain_server or the DC locator's choice."""
    fleet, host = context.fleet, context.host
    server = params["domain_server"]
    if server:
        dc = _resolve(context, str(server))
        if dc is None or not dc.is_dc:
            raise locale.exception(
                host,
                NOT_FOUND,
                "The specified domain controller {server} does not exist or could not be contacted.",
                server=server,
            )
    else:
        dc = fleet.dc_for(host)
        if dc is None:
            raise locale.exception(
                host,
                NOT_FOUND,
                "The specified domain controller {server} does not exist or could not be contacted.",
                server=identity_domain(context),
            )
    try:
        onward.directory_access(context, params, dc)
    except Exception as exc:
        from tests.lab.fleet import HostException

        if isinstance(exc, HostException):
            raise locale.localized(host, exc) from None
        raise
    return fleet.domain_controllers()


def identity_domain(context: TwinContext) -> str:
    return str(computer_identity(context.host, context.fleet)["domain"])


def _resolve(context: TwinContext, name: str) -> HostState | None:
    """DNS: a name or FQDN of a lab host; anything else does not resolve."""
    try:
        return context.fleet.host(name)
    except KeyError:
        return None


def _probe(context: TwinContext, dc: HostState, protocol: str, port: int) -> str:
    # Traffic a host sends to itself does not pass its own firewall's inbound filtering.
    if dc is not context.host and not context.fleet.reachable(context.host.name, dc.name, protocol, port).ok:
        return "no_answer"
    kdc = dc.service("Kdc")
    if port in KERBEROS_PORTS and kdc is not None and not kdc.running:
        return "refused"
    return "open"


def _remote_firewall(context: TwinContext, params: Params, name: str) -> dict[str, t.Any]:
    """New-CimSession to the DC (WinRM), then Get-MailflowFirewallState over it; a failure is recorded."""
    entry: dict[str, t.Any] = {"dc": name, "firewall": None, "error": None}
    host, fleet = context.host, context.fleet
    dc = _resolve(context, name)
    username, password = params["domain_username"], params["domain_password"]
    if dc is None or not fleet.reachable(host.name, dc.name, "TCP", WINRM_PORT).ok:
        message = locale.text(
            host,
            "The WinRM client cannot complete the operation within the time specified. Check if the machine name is "
            "valid and is reachable over the network and firewall exception for Windows Remote Management service "
            "is enabled.",
        )
    elif username and not fleet.credentials.accepts_basic(str(username), str(password or "")):
        message = locale.text(host, "Access is denied.")
    elif not username and not context.session.can_delegate:
        message = locale.text(
            host,
            "WinRM cannot process the request. The following error with errorcode 0x8009030e occurred while using "
            "Kerberos authentication: A specified logon session does not exist. It may already have been terminated.",
        )
    else:
        entry["firewall"] = firewall_state(dc)
        return entry
    entry["error"] = f"{CIM_ERROR}: {message}"
    return entry


CONTOSO_CREDENTIALS = {"domain_username": "CONTOSO\\ansible", "domain_password": "Lab-Passw0rd!"}
# Runs that exercise the script (tests/unit/lab/test_twin_discipline.py): (fleet, host, parameters).
EXAMPLES = [
    ("contoso", "ex01", {"timeout_ms": 1000, **CONTOSO_CREDENTIALS}),
    ("contoso", "ex02", {"timeout_ms": 1000, "domain_server": "dc02", **CONTOSO_CREDENTIALS}),
    ("contoso", "ex03", {"timeout_ms": 1000, "domain_controllers": ["dc01", "nowhere.contoso.example"]}),
    ("contoso", "dc02", {"timeout_ms": 1000}),
    ("contoso", "dc03", {"timeout_ms": 1000, "domain_controllers": ["dc01.contoso.example"]}),
    ("contoso", "ex01", {"timeout_ms": 1000}),
]
