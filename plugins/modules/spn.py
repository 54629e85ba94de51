# Copyright: mailflow.remediation contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# This file holds documentation only; the module is the action plugin of the same name.

from __future__ import annotations

DOCUMENTATION = r"""
module: spn
short_description: Register the Exchange server's SMTP and SMTPSVC SPNs, once in the forest (KB 979174 step 3)
version_added: 0.1.0
description:
  - KB 979174 step 3 asks that C(SMTP/) and C(SMTPSVC/), for the short name and the FQDN of the Exchange server, be
    registered on its computer account, and that no SPN be registered twice (C(setspn -X)). Other Exchange servers
    authenticate to it with Kerberos for C(SMTPSVC/<FQDN>); a duplicate makes the KDC refuse the ticket.
  - Keyed by SPN, with C(setspn -S) and C(setspn -X) semantics. The module finds every owner of each SPN forest-wide
    through the global catalog and ensures the SPNs on O(account) (O(state=present)) or not (O(state=absent)).
  - It reads the directory as one domain controller sees it, O(domain_server) or else the one the host
    authenticates against, the one whose replica the Kerberos tickets come from. An SPN written on another domain
    controller that has not replicated there yet shows as missing, and the fix writes on that same domain controller,
    so that it takes effect for that host at once (M(mailflow.remediation.ad_replication) spreads it).
  - A duplicate is always reported, in RV(duplicates) and RV(unfixable). Only with O(remove_duplicates=true) is it
    removed from the other accounts, each in its own write, before anything is added, because a domain controller
    (Windows Server 2012 R2 and later) refuses to add an SPN another account holds (error 8647). Without it, an SPN
    held by another account is not added to O(account) either, and RV(unfixable) says so, since the write would be
    refused.
  - The diff lists the SPNs of each account involved, before and after; RV(added) and RV(removed) list them per
    account.
  - Reaching a domain controller from a member server over a plain NTLM logon is the second hop (see
    O(domain_username)).
  - One round trip reads; at most one more writes and reads again.
options:
  account:
    description:
      - The sAMAccountName of the account the SPNs belong on, for example V(EX01$) or V(svc-mail).
      - Defaults to the computer account of the host the task runs on.
    type: str
  spns:
    description:
      - The SPNs to ensure.
      - Defaults to C(SMTP/) and C(SMTPSVC/) for the short name and the FQDN of the host the task runs on, the four
        SPNs of KB 979174 step 3. Only C(SMTPSVC/<FQDN>) decides Exchange authentication; the others are the
        article's hygiene.
    type: list
    elements: str
  state:
    description:
      - V(present) registers the SPNs on O(account); V(absent) removes them from it.
    type: str
    choices: [present, absent]
    default: present
  remove_duplicates:
    description:
      - Remove each of the SPNs from every other account that holds it (C(setspn -X), then C(setspn -S)).
      - Only with O(state=present).
    type: bool
    default: false
extends_documentation_fragment:
  - mailflow.remediation.host_script
  - mailflow.remediation.domain_options
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - ansible.builtin.action_common_attributes.conn
  - ansible.builtin.action_common_attributes.actiongroups
notes:
  - The domain controller read must be a global catalog (most are); the search runs against its C(GC://) port 3268.
  - The account the task uses (the connection's, or O(domain_username)) needs the right to write
    C(servicePrincipalName) on every account it changes; a refused write fails the task and names the account.
seealso:
  - name: KB 979174, 454 4.7.0 Temporary authentication failure
    description: The article whose step 3 this module automates.
    link: https://learn.microsoft.com/troubleshoot/exchange/mail-flow/454-4-7-0-temporary-authentication-failure
  - name: SPN and UPN uniqueness
    description: Why a domain controller refuses an SPN that another account holds.
    link: https://learn.microsoft.com/windows-server/identity/ad-ds/manage/component-updates/spn-and-upn-uniqueness
author:
  - mailflow.remediation maintainers (@mailflow-remediation)
"""

EXAMPLES = r"""
- name: Audit the Exchange servers' SPNs (run with --check --diff)
  mailflow.remediation.spn:
  check_mode: true

- name: Register them, taking duplicates off other accounts
  mailflow.remediation.spn:
    remove_duplicates: true

- name: An SPN for a load-balanced name, on a service account
  mailflow.remediation.spn:
    account: svc-smtp
    spns:
      - SMTPSVC/mail.contoso.com
"""

RETURN = r"""
article:
  description: The Microsoft article this module serves.
  returned: always
  type: str
  sample: KB 979174
step:
  description: The step of that article.
  returned: always
  type: str
  sample: "3"
found:
  description: The SPNs of every account involved, as the domain controller saw them before the task.
  returned: success
  type: str
  sample: "as dc01.contoso.com sees them:\nEX01$:\n  SMTPSVC/ex01.contoso.com\nsvc-mailrelay:\n
    SMTPSVC/ex01.contoso.com"
changes:
  description: What was changed, or in check mode what would be changed. Empty when nothing needs changing.
  returned: success
  type: list
  elements: str
  sample:
    - "remove SMTPSVC/ex01.contoso.com from svc-mailrelay (duplicate of EX01$)"
    - "add SMTP/EX01 to EX01$"
unfixable:
  description: Duplicates and SPNs held by other accounts that the task leaves alone, in words; also warnings.
  returned: success
  type: list
  elements: str
dc:
  description: The domain controller whose view the module read and wrote.
  returned: success
  type: str
  sample: dc01.contoso.com
account:
  description: The account the SPNs belong on, C(sam), C(dn) and C(kind) (V(computer), V(user), ...).
  returned: success
  type: dict
  sample: {"sam": "EX01$", "found": true, "dn": "CN=EX01,CN=Computers,DC=contoso,DC=com", "kind": "computer"}
spns:
  description: The SPNs the task ensured.
  returned: success
  type: list
  elements: str
  sample: [SMTP/EX01, SMTP/ex01.contoso.com, SMTPSVC/EX01, SMTPSVC/ex01.contoso.com]
owners:
  description: Each SPN and the accounts holding it after the task (in check mode, as found).
  returned: success
  type: dict
  sample: {"SMTPSVC/ex01.contoso.com": ["EX01$"]}
duplicates:
  description: Each SPN that more than one account held before the task, with those accounts.
  returned: success
  type: dict
  sample: {"SMTPSVC/ex01.contoso.com": ["EX01$", "svc-mailrelay"]}
added:
  description: Per account, the SPNs added (in check mode, the SPNs that would be added).
  returned: success
  type: dict
  sample: {"EX01$": ["SMTP/EX01"]}
removed:
  description: Per account, the SPNs removed (in check mode, the SPNs that would be removed).
  returned: success
  type: dict
  sample: {"svc-mailrelay": ["SMTPSVC/ex01.contoso.com"]}
script:
  description: The host script that failed.
  returned: failure on the host
  type: str
  sample: spn_owners
"""
