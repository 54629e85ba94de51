"""Twin of plugins/plugin_utils/host_scripts/receive_connectors.ps1 (reviewed against v1, with lib/directory.ps1
and lib/exchange.ps1).

Exchange is installed where the lab models an Exchange server's transport (HostState.exchange). The session to
the Exchange endpoint is the second hop (tests/lab/onward.py). Set-ReceiveConnector is tests/lab/exchange.py's
set_receive_connector, with Exchange's validation; a refusal does not escape the script (implicit remoting turns it
into an error the script catches) but comes back in ``failures`` with Exchange's exception type and a message in
the host's language.
"""

from __future__ import annotations

import typing as t

from tests.lab import locale, onward
from tests.lab.exchange import set_receive_connector
from tests.lab.fleet import HostException

if t.TYPE_CHECKING:
    from tests.lab.twins import Params, TwinContext

VERSION = 1
SHA256 = "4fd67bbec4a4b7d837a1e6df8a1791752e13d4c9e75c8bf6e159c4d0228887d5"

# What Get-MailflowExchangeSetup reads from the setup key of the lab's Exchange servers (Exchange 2019 CU14).
SETUP = {"install_path": "C:\\Program Files\\Microsoft\\Exchange Server\\V15\\", "version": "15.2.1544.4"}
NOT_FOUND = "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException"


def run(context: TwinContext, params: Params) -> dict[str, t.Any]:
    host = context.host
    result: dict[str, t.Any] = {"exchange": None, "server": None, "connectors": [], "failures": []}
    exchange = host.exchange
    if exchange is None:
        return result
    result["exchange"] = dict(SETUP)
    result["server"] = host.name.upper()
    try:
        onward.exchange_session(context, params)
    except HostException as exc:
        raise locale.localized(host, exc) from None
    action = params["action"]
    failures = []
    if action == "set":
        for change in params["changes"]:
            identity = str(change["identity"])
            name = identity.rpartition("\\")[2]
            connector = exchange.connector(name)
            if connector is None or identity.rpartition("\\")[0].lower() not in ("", exchange.server.lower()):
                failures.append(
                    {
                        "identity": identity,
                        "type": NOT_FOUND,
                        "message": f"The operation couldn't be performed because object '{identity}' couldn't be "
                        "found.",
                    }
                )
                continue
            try:
                set_receive_connector(
                    connector,
                    auth_mechanism=change.get("auth_mechanism"),
                    permission_groups=change.get("permission_groups"),
                )
            except HostException as exc:
                refused = locale.localized(host, exc)
                failures.append({"identity": identity, "type": refused.error_type, "message": refused.message})
    elif action != "read":
        raise HostException("System.ArgumentException", "action must be read or set")
    result["connectors"] = [
        {
            "identity": connector.identity,
            "name": connector.name,
            "transport_role": connector.transport_role,
            "bindings": list(connector.bindings),
            "auth_mechanism": list(connector.auth_mechanism),
            "permission_groups": list(connector.permission_groups),
            "enabled": connector.enabled,
        }
        for connector in exchange.receive_connectors
    ]
    result["failures"] = failures
    return result


CONTOSO_CREDENTIALS = {"domain_username": "CONTOSO\\ansible", "domain_password": "Lab-Passw0rd!"}
EXAMPLES = [
    ("contoso", "ex01", {"action": "read", "changes": [], **CONTOSO_CREDENTIALS}),
    (
        "contoso",
        "ex01",
        {
            "action": "set",
            "changes": [
                {
                    "identity": "EX01\\Default EX01",
                    "auth_mechanism": "Tls,Integrated,BasicAuth,BasicAuthRequireTLS,ExchangeServer",
                    "permission_groups": "ExchangeUsers,ExchangeServers,ExchangeLegacyServers",
                }
            ],
            **CONTOSO_CREDENTIALS,
        },
    ),
    (
        "contoso",
        "ex02",
        {
            "action": "set",
            "changes": [
                {"identity": "EX02\\Default EX02", "auth_mechanism": "Integrated", "permission_groups": None},
                {"identity": "EX02\\Nowhere", "auth_mechanism": None, "permission_groups": "ExchangeServers"},
            ],
            **CONTOSO_CREDENTIALS,
        },
    ),
    ("contoso", "dc01", {"action": "read", "changes": []}),
    ("contoso", "ex03", {"action": "read", "changes": []}),
]
