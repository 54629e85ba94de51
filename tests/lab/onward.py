"""The second hop, as the twins meet it: a host script that reaches another machine (a DC's directory, the
Exchange PowerShell endpoint) from the host it runs on.

On Windows, a WinRM logon by NTLM is a network logon that holds no credentials the host could present to a third
machine. A script on a member server then cannot bind to a DC as the connection's user: ADSI fails with "An
operations error occurred." (0x80072020), the directory classes with ActiveDirectoryOperationException, and a
remote PowerShell session to Exchange with PSRemotingTransportException. It works with explicit credentials (the
modules' domain_username and domain_password), with a logon that can delegate (Basic, CredSSP, Kerberos with
delegation), or when the script runs on the DC itself. Wrong explicit credentials are refused by the DC with a
logon failure (0x8007052E). Twins call these functions before they touch the directory or Exchange.
"""

from __future__ import annotations

import typing as t

from tests.lab.fleet import HostException

if t.TYPE_CHECKING:
    from tests.lab.fleet import HostState
    from tests.lab.twins import Params, TwinContext

ADSI_ERROR = "System.DirectoryServices.DirectoryServicesCOMException"
ERROR_DS_OPERATIONS_ERROR = -2147016672  # 0x80072020 "An operations error occurred."
ERROR_LOGON_FAILURE = -2147023570  # 0x8007052E "The user name or password is incorrect."
REMOTING_ERROR = "System.Management.Automation.Remoting.PSRemotingTransportException"
SEC_E_NO_CREDENTIALS = -2146893042  # 0x8009030E, the Kerberos error WinRM names for a logon without credentials


def _explicit(params: Params) -> tuple[str | None, str | None]:
    keys = set(params)
    username = params["domain_username"] if "domain_username" in keys else None
    password = params["domain_password"] if "domain_password" in keys else None
    return username, password


def _check_explicit(context: TwinContext, username: str, password: str | None) -> None:
    if not context.fleet.credentials.accepts_basic(username, password or ""):
        raise HostException(ADSI_ERROR, "The user name or password is incorrect.", ERROR_LOGON_FAILURE)


def directory_access(context: TwinContext, params: Params, dc: HostState) -> None:
    """Raise what Windows raises when the script cannot bind to ``dc``'s directory; return when it can."""
    username, password = _explicit(params)
    if username:
        _check_explicit(context, username, password)
        return
    if context.host is dc or context.session.can_delegate:
        return
    raise HostException(ADSI_ERROR, "An operations error occurred.", ERROR_DS_OPERATIONS_ERROR)


def exchange_session(context: TwinContext, params: Params) -> None:
    """Raise what New-PSSession raises for the host's own Exchange endpoint without usable credentials."""
    username, password = _explicit(params)
    if username:
        _check_explicit(context, username, password)
        return
    if context.session.can_delegate:
        return
    # The Exchange endpoint authenticates with Kerberos; a network logon by NTLM has no ticket and no password.
    raise HostException(
        REMOTING_ERROR,
        f"Connecting to remote server {context.host.fqdn} failed with the following error message : WinRM cannot "
        "process the request. The following error with errorcode 0x8009030e occurred while using Kerberos "
        "authentication: A specified logon session does not exist. It may already have been terminated.",
        SEC_E_NO_CREDENTIALS,
    )
