"""Active Directory as a host script meets it through lib/directory.ps1: the twins' side of that library.

The computer's identity from CIM, the DC locator, a DC by name, distinguished names, and the errors Windows raises
when a DC cannot be reached or found. Reaching a DC's directory also takes the second hop (tests/lab/onward.py):
:func:`bind` checks both, in the order Windows meets them (the network first, then authentication).

The scripts find and bind the DC with ADSI (RootDSE, serverless or at domain_server) before they use the directory
classes of System.DirectoryServices.ActiveDirectory, so that a failure to reach or authenticate carries ADSI's
well-known HResults (0x8007203A, 0x80072020, 0x8007052E), which the controller maps, rather than the types those
classes wrap them in (DomainController.FindOne, too, binds to validate credentials).
"""

from __future__ import annotations

import typing as t

from tests.lab import onward
from tests.lab.fleet import HostException

if t.TYPE_CHECKING:
    from tests.lab.fleet import Fleet, HostState
    from tests.lab.twins import Params, TwinContext

# ADSI's "The server is not operational." (0x8007203A): nothing answers LDAP on that name and port. No LDAP session
# means no extended error, so .NET raises a plain COMException rather than a DirectoryServicesCOMException.
ERROR_DS_SERVER_DOWN = -2147016646
COM_ERROR = "System.Runtime.InteropServices.COMException"
# A serverless bind when the DC locator finds no DC (HRESULT_FROM_WIN32(ERROR_NO_SUCH_DOMAIN)).
ERROR_NO_SUCH_DOMAIN = -2147023541
LDAP_PORT = 389
GLOBAL_CATALOG_PORT = 3268


def identity(context: TwinContext) -> dict[str, t.Any]:
    """Get-MailflowComputerIdentity: Win32_ComputerSystem, no directory access."""
    host, forest = context.host, context.fleet.forest
    domain = forest.name if forest is not None else "WORKGROUP"
    return {
        "name": host.name.upper(),
        "fqdn": host.fqdn.lower(),
        "domain": domain,
        "part_of_domain": forest is not None,
        "is_dc": host.is_dc,
    }


def domain_dn(fleet: Fleet) -> str:
    name = fleet.forest.name if fleet.forest is not None else ""
    return ",".join(f"DC={label}" for label in name.split("."))


def partitions(fleet: Fleet) -> list[str]:
    """The naming contexts every DC of a one-domain forest holds (DomainController.Partitions)."""
    root = domain_dn(fleet)
    return [
        root,
        f"CN=Configuration,{root}",
        f"CN=Schema,CN=Configuration,{root}",
        f"DC=DomainDnsZones,{root}",
        f"DC=ForestDnsZones,{root}",
    ]


def account_dn(fleet: Fleet, sam: str) -> str:
    """Where an account lives: computers in CN=Computers (DCs in OU=Domain Controllers), users in CN=Users."""
    account = fleet.directory.account(sam)
    name = account.sam if account is not None else sam
    if account is not None and account.kind == "computer":
        host = fleet.hosts.get(account.host or "")
        container = "OU=Domain Controllers" if host is not None and host.is_dc else "CN=Computers"
        return f"CN={name.rstrip('$')},{container},{domain_dn(fleet)}"
    return f"CN={name},CN=Users,{domain_dn(fleet)}"


def account_by_dn(fleet: Fleet, dn: str) -> str | None:
    """The sAMAccountName of the account at ``dn`` (DNs compare case-insensitively), or None."""
    wanted = dn.lower()
    return next(
        (
            account.sam
            for account in fleet.directory.accounts.values()
            if account_dn(fleet, account.sam).lower() == wanted
        ),
        None,
    )


def locate_dc(context: TwinContext) -> HostState:
    """The DC a serverless bind (LDAP://RootDSE) reaches: the DC locator's choice, the DC the host authenticates
    against (itself on a DC)."""
    dc = context.fleet.dc_for(context.host) if context.fleet.forest is not None else None
    if dc is None:
        raise HostException(
            COM_ERROR, "The specified domain either does not exist or could not be contacted.", ERROR_NO_SUCH_DOMAIN
        )
    return dc


def bind(context: TwinContext, params: Params, name: str | None, *, port: int = LDAP_PORT) -> HostState:
    """A DirectoryEntry bound from the host, as the scripts bind first (RootDSE.RefreshCache): to ``name``, or
    serverless (None) to the DC locator's DC; ``port`` 3268 for the global catalog (GC://). The name must be a DC
    the network carries the port to, then the DC must accept the logon (the second hop); every failure carries
    ADSI's HResult. Returns the DC, whose dnsHostName the script reads from RootDSE."""
    if name is None:
        dc: HostState | None = locate_dc(context)
    else:
        try:
            dc = context.fleet.host(name)
        except KeyError:
            dc = None
    if (
        dc is None
        or not dc.is_dc
        or (dc is not context.host and not context.fleet.reachable(context.host.name, dc.name, "TCP", port).ok)
    ):
        raise HostException(COM_ERROR, "The server is not operational.", ERROR_DS_SERVER_DOWN)
    onward.directory_access(context, params, dc)
    return dc
