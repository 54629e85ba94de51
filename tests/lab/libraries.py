"""What the host libraries' functions return, for the twins of the scripts that use them.

A library (plugins/plugin_utils/host_scripts/lib/NAME.ps1) is reviewed with every script that requires it: its
text is part of each such twin's hash. The functions here answer as the library's functions do over the lab's
model, so that two twins of scripts sharing a library also share its behaviour.
"""

from __future__ import annotations

import typing as t

if t.TYPE_CHECKING:
    from tests.lab.fleet import Fleet, HostState

KERBEROS_PORTS = (88, 464)


def computer_identity(host: HostState, fleet: Fleet) -> dict[str, t.Any]:
    """lib/directory.ps1 Get-MailflowComputerIdentity: Win32_ComputerSystem's view of the host."""
    domain = fleet.forest.name if fleet.forest is not None else host.fqdn.partition(".")[2]
    return {
        "name": host.name.upper(),
        "fqdn": host.fqdn.lower(),
        "domain": domain,
        "part_of_domain": bool(domain),
        "is_dc": host.is_dc,
    }


def firewall_state(host: HostState, ports: t.Iterable[int] = KERBEROS_PORTS) -> dict[str, t.Any]:
    """lib/firewall.ps1 Get-MailflowFirewallState: the domain profile's state and the inbound TCP/UDP rules whose
    port filter lists one of ``ports``, in the order the firewall keeps them. A host without a firewall in the
    model has it turned off."""
    firewall = host.firewall
    if firewall is None:
        return {"enabled": False, "rules": []}
    wanted = set(ports)
    return {
        "enabled": firewall.enabled,
        "rules": [
            {
                "name": rule.name,
                "display_name": rule.display_name,
                "protocol": rule.protocol.upper(),
                "local_ports": [str(rule.local_port)],
                "enabled": rule.enabled,
                "action": rule.action,
                "source": "Local",
            }
            for rule in firewall.rules
            if rule.direction == "Inbound" and rule.protocol.upper() in ("TCP", "UDP") and rule.local_port in wanted
        ],
    }
