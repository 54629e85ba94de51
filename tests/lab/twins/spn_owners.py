"""Twin of plugins/plugin_utils/host_scripts/spn_owners.ps1 (reviewed against v1)."""

from __future__ import annotations

import typing as t

from tests.lab import domain
from tests.lab.directory import SpnNotUniqueError

if t.TYPE_CHECKING:
    from tests.lab.fleet import HostState
    from tests.lab.twins import Params, TwinContext

VERSION = 1
SHA256 = "9dcd6e8374f9f92a1909d7bef10ecd9b158b050854568c299e20b8f3dda48f97"

ADSI_ERROR = "System.DirectoryServices.DirectoryServicesCOMException"
ACCESS_DENIED = "System.UnauthorizedAccessException"
E_ACCESSDENIED = -2147024891  # 0x80070005
# LDAP constraintViolation as ADSI reports it ("A constraint violation occurred."); the DC's extended error says why.
ERROR_DS_CONSTRAINT_VIOLATION = -2147016657  # 0x8007202F
ERROR_DS_NO_SUCH_OBJECT = -2147016656  # 0x80072030 "There is no such object on the server."


def run(context: TwinContext, params: Params) -> dict[str, t.Any]:
    fleet = context.fleet
    identity = domain.identity(context)
    server = params["domain_server"]
    dc = domain.bind(context, params, str(server) if server else None)

    refused = None
    if params["action"] == "write":
        for write in params["writes"] or []:
            refused = _write(context, dc, write)
            if refused is not None:
                break

    # The global catalog of the same DC (its port must be open too): in a one-domain forest, that DC's replica.
    domain.bind(context, params, dc.fqdn, port=domain.GLOBAL_CATALOG_PORT)
    wanted = [str(spn) for spn in params["spns"] or [] if spn]
    for service in params["host_services"] or []:
        if service:
            wanted += [f"{service}/{identity['name']}", f"{service}/{identity['fqdn']}"]
    account_name = str(params["account"] or f"{identity['name']}$")
    wanted_lower = {spn.lower() for spn in wanted}
    directory = fleet.directory
    owners = []
    for known in directory.accounts.values():
        held = [spn for spn in directory.spns(dc.name, known.sam) if spn.lower() in wanted_lower]
        if held:
            owners.append(_entry(context, known.sam, spns=held))
    found = directory.account(account_name)
    account = (
        {**_entry(context, found.sam), "found": True}
        if found is not None
        else {"sam": account_name, "found": False, "dn": None, "kind": None}
    )
    return {
        "identity": identity,
        "dc": dc.fqdn,
        "spns": wanted,
        "account": account,
        "owners": owners,
        "refused": refused,
    }


def _entry(context: TwinContext, sam: str, **extra: t.Any) -> dict[str, t.Any]:
    account = context.fleet.directory.account(sam)
    assert account is not None
    return {"sam": account.sam, "dn": domain.account_dn(context.fleet, account.sam), "kind": account.kind, **extra}


def _write(context: TwinContext, dc: HostState, write: t.Any) -> dict[str, t.Any] | None:
    """One LDAP modify on ``dc``: None when it was made, else what the DC refused it with."""
    fleet = context.fleet
    dn = str(write["dn"])
    sam = domain.account_by_dn(fleet, dn)
    if sam is None:
        return {"dn": dn, "type": ADSI_ERROR, "hresult": ERROR_DS_NO_SUCH_OBJECT, "extended_error": 8240}
    if sam.lower() in fleet.directory.write_denied:
        return {"dn": dn, "type": ACCESS_DENIED, "hresult": E_ACCESSDENIED, "extended_error": None}
    try:
        fleet.directory.write(dc.name, sam, add=write.get("add") or [], remove=write.get("remove") or [])
    except SpnNotUniqueError as exc:
        return {
            "dn": dn,
            "type": ADSI_ERROR,
            "hresult": ERROR_DS_CONSTRAINT_VIOLATION,
            "extended_error": exc.win32_error,
        }
    return None


# Runs that exercise the script (tests/unit/lab/test_twin_discipline.py): (fleet, host, parameters).
_CREDENTIALS = {"domain_username": "CONTOSO\\ansible", "domain_password": "Lab-Passw0rd!"}
_SMTP = ["SMTP", "SMTPSVC"]
EXAMPLES = [
    ("contoso", "ex03", {"action": "read", "host_services": _SMTP, **_CREDENTIALS}),
    ("contoso", "dc01", {"action": "read", "spns": ["SMTPSVC/ex01.contoso.example"], "account": "EX01$"}),
    (
        "contoso",
        "ex03",
        {
            "action": "write",
            "host_services": _SMTP,
            "writes": [
                {"dn": "CN=svc-ex03-relay,CN=Users,DC=contoso,DC=example", "remove": ["SMTPSVC/ex03.contoso.example"]},
                {
                    "dn": "CN=EX03,CN=Computers,DC=contoso,DC=example",
                    "add": ["SMTP/EX03", "SMTPSVC/ex03.contoso.example"],
                },
            ],
            **_CREDENTIALS,
        },
    ),
    (
        "contoso",
        "ex01",
        {
            "action": "write",
            "spns": ["SMTPSVC/ex01.contoso.example"],
            "account": "svc-ex03-relay",
            "writes": [
                {"dn": "CN=svc-ex03-relay,CN=Users,DC=contoso,DC=example", "add": ["SMTPSVC/ex01.contoso.example"]}
            ],
            **_CREDENTIALS,
        },
    ),
]
