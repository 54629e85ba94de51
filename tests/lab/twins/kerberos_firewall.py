"""Twin of plugins/plugin_utils/host_scripts/kerberos_firewall.ps1 (reviewed against v1, with lib/firewall.ps1).

Enable-NetFirewallRule by Name and New-NetFirewallRule as Windows does them in the persistent store: a name that
no rule has, or a new rule whose name exists, fails (the cmdlets raise CimException); a firewall that refuses
changes (no administrator) fails before anything changes.
"""

from __future__ import annotations

import typing as t

from tests.lab import locale
from tests.lab.libraries import firewall_state
from tests.lab.windows import FirewallRule

if t.TYPE_CHECKING:
    from tests.lab.twins import Params, TwinContext

VERSION = 1
SHA256 = "d75cd4c0836ec619ca24232e9ef1a328f03e63a014db78641c00b16597f515d2"

CIM_ERROR = "Microsoft.Management.Infrastructure.CimException"
E_ACCESSDENIED = -2147024891
ERROR_ALREADY_EXISTS = -2147024713  # 0x800700B7
OWN_GROUP = "mailflow.remediation"


def run(context: TwinContext, params: Params) -> dict[str, t.Any]:
    host = context.host
    firewall = host.firewall
    enable = [str(name) for name in params["enable"]]
    create = [dict(item) for item in params["create"]]
    if firewall is None or firewall.write_denied:
        raise locale.exception(host, CIM_ERROR, "Access is denied.", E_ACCESSDENIED)
    for name in enable:
        rule = firewall.rule(name)
        if rule is None:
            raise locale.exception(
                host,
                CIM_ERROR,
                "No MSFT_NetFirewallRule objects found with property 'Name' equal to '{name}'.  Verify the value of "
                "the property and retry.",
                name=name,
            )
        rule.enabled = True
    for spec in create:
        if firewall.rule(str(spec["name"])) is not None:
            raise locale.exception(
                host, CIM_ERROR, "Cannot create a file when that file already exists.", ERROR_ALREADY_EXISTS
            )
        firewall.rules.append(
            FirewallRule(
                name=str(spec["name"]),
                protocol=str(spec["protocol"]).upper(),
                local_port=int(spec["port"]),
                display_name=str(spec["display_name"]),
                group=OWN_GROUP,
            )
        )
    return {"firewall": firewall_state(host)}


EXAMPLES = [
    ("contoso", "dc02", {"enable": ["KerberosKeyDistributionCenter-UDP-In"], "create": []}),
    (
        "contoso",
        "dc01",
        {
            "enable": [],
            "create": [
                {
                    "name": "mailflow.remediation-Kerberos-TCP-88-In",
                    "display_name": "Kerberos (TCP 88 in), mailflow.remediation",
                    "protocol": "TCP",
                    "port": 88,
                }
            ],
        },
    ),
    ("contoso", "dc03", {"enable": ["NoSuchRule"], "create": []}),
]
