# Copyright: mailflow.remediation contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation of the options every module has that reaches Active Directory or Exchange from the host."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  domain_server:
    description:
      - The domain controller to talk to, by name. By default the DC locator chooses, as it does for the host.
    type: str
  domain_username:
    description:
      - The account to reach Active Directory or Exchange with, from the host, as C(DOMAIN\user) or a UPN.
      - A WinRM logon by NTLM holds no credentials the host can pass on to a domain controller or to the Exchange
        PowerShell endpoint (the second hop). Give O(domain_username) and O(domain_password), or connect with
        Kerberos delegation or CredSSP; without any of these, the task fails and says so.
      - Set it once for every module of the collection with C(module_defaults) and the group
        C(group/mailflow.remediation.mailflow).
    type: str
  domain_password:
    description:
      - The password of O(domain_username). It travels to the host on stdin, never on a command line or in a script.
    type: str
notes:
  - The module reaches Active Directory or Exchange from the host. Explicit credentials (O(domain_username),
    O(domain_password)), Kerberos delegation (C(ansible_winrm_kerberos_delegation=true)) or CredSSP give it the
    second hop; a plain NTLM WinRM logon does not.
"""

    # For the modules that reach nothing beyond the host (or run on the controller): they accept the options, so that
    # one module_defaults entry for the group serves every module of the collection, and do not use them.
    UNUSED = r"""
options:
  domain_server:
    description:
      - Not used by this module. Accepted so that one C(module_defaults) entry for the group
        C(group/mailflow.remediation.mailflow) can give the C(domain_*) options to every module of the collection.
    type: str
  domain_username:
    description:
      - Not used by this module; see O(domain_server).
    type: str
  domain_password:
    description:
      - Not used by this module; see O(domain_server).
    type: str
"""
