# Copyright: mailflow.remediation contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# This file holds documentation only; the module is the action plugin of the same name.

from __future__ import annotations

DOCUMENTATION = r"""
module: ad_replication
short_description: Find and force Active Directory replication between domain controllers (KB 979174 step 2)
version_added: 0.1.0
description:
  - KB 979174 step 2 asks to force replication between the domain controllers to see whether replication fails. An
    Exchange server's SPN that has not reached the domain controller another Exchange server authenticates against
    makes Exchange authentication fail.
  - The module reads a domain controller's inbound replication neighbours, per naming context, through the .NET
    directory classes (C(DomainController.GetAllReplicationNeighbors)), never the text C(repadmin) prints, with the
    last result (a Win32 error code), the consecutive failures and the last success of each.
  - A neighbour is drift when its last result is an error, or when its last success is older than O(max_age).
  - "The fix, in one round trip: for every naming context the domain controller holds, it synchronizes from all its
    partners across sites (a pull, which is what retries its failing inbound neighbours), then pushes its changes out
    to all partners (C(PushChangeOutward), the effect of C(repadmin /syncall /AdeP)), and reads the neighbours again.
    A partner that still fails fails the task with its Win32 error code."
  - On a domain controller the module audits that domain controller. On any other host it audits the domain
    controller given as O(domain_server), else the one the host authenticates against; reaching it from a member
    server over a plain NTLM logon is the second hop (see O(domain_username)). On a domain controller O(domain_server)
    is not used, so that one C(module_defaults) entry can serve every host.
  - Check mode names the naming contexts and the partners that would be synchronized.
  - One round trip reads; at most one more synchronizes and reads again.
options:
  max_age:
    description:
      - Seconds since a neighbour's last successful replication after which it is drift even without an error.
      - The default, 21600 (6 hours), is twice the default replication interval of a site link (180 minutes).
    type: int
    default: 21600
extends_documentation_fragment:
  - mailflow.remediation.host_script
  - mailflow.remediation.domain_options
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - ansible.builtin.action_common_attributes.conn
  - ansible.builtin.action_common_attributes.actiongroups
notes:
  - The account needs the right to synchronize replication (C(Replication Synchronization), which Domain Admins and
    Enterprise Admins have) on every naming context; without it each partner reports C(8453)
    (C(ERROR_DS_DRA_ACCESS_DENIED)) and the task fails.
seealso:
  - name: KB 979174, 454 4.7.0 Temporary authentication failure
    description: The article whose step 2 this module automates.
    link: https://learn.microsoft.com/troubleshoot/exchange/mail-flow/454-4-7-0-temporary-authentication-failure
  - name: DomainController.SyncReplicaFromAllServers
    description: The .NET method the fix calls, with its options.
    link: https://learn.microsoft.com/dotnet/api/system.directoryservices.activedirectory.domaincontroller.syncreplicafromallservers
author:
  - mailflow.remediation maintainers (@mailflow-remediation)
"""

EXAMPLES = r"""
- name: Audit replication on every domain controller (run with --check --diff)
  mailflow.remediation.ad_replication:
  check_mode: true

- name: Force replication where it fails, and fail on a partner that still fails
  mailflow.remediation.ad_replication:
    max_age: 10800

- name: From an Exchange server, the DC it authenticates against, with the second hop given explicitly
  mailflow.remediation.ad_replication:
    domain_username: CONTOSO\svc-mailflow
    domain_password: "{{ mailflow_domain_password }}"
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
  sample: "2"
found:
  description: The neighbours as found before the task, in words.
  returned: success
  type: str
  sample: "dc03.contoso.com:\n  DC=contoso,DC=com <- dc01.contoso.com: failing with 1722 (RPC_S_SERVER_UNAVAILABLE),
    24 consecutive failures, last success 2024-05-01T10:00:00.0000000Z (86400 s ago)"
changes:
  description: The naming contexts that were (in check mode, would be) synchronized, with their partners.
  returned: success
  type: list
  elements: str
  sample:
    - "sync DC=contoso,DC=com on dc03.contoso.com from dc01.contoso.com, dc02.contoso.com across sites, then push it
      outward (repadmin /syncall /AdeP)"
unfixable:
  description: Always empty; a partner that still fails after the sync fails the task.
  returned: success
  type: list
  elements: str
dc:
  description: The domain controller audited.
  returned: success
  type: str
  sample: dc03.contoso.com
partitions:
  description: The naming contexts the domain controller holds.
  returned: success
  type: list
  elements: str
  sample: [DC=contoso,DC=com, CN=Configuration,DC=contoso,DC=com]
neighbors:
  description:
    - The inbound neighbours after the task (in check mode, as found), one per naming context and partner.
    - C(status) is V(ok), V(failing) or V(stale); C(last_result) is a Win32 error code, 0 for success; times are UTC.
  returned: success
  type: list
  elements: dict
  sample: [{"partition": "DC=contoso,DC=com", "source": "dc01.contoso.com", "last_result": 0,
            "consecutive_failures": 0, "last_success": "2024-05-02T10:00:00.0000000Z",
            "last_attempt": "2024-05-02T10:00:00.0000000Z", "status": "ok", "text": "ok"}]
neighbors_before:
  description: The inbound neighbours as found before the task, as RV(neighbors).
  returned: success
  type: list
  elements: dict
sync_errors:
  description:
    - What each synchronization reported as failed, by naming context, mode (V(pull) or V(push)), source and target
      server, category and Win32 error code. Empty when nothing was synchronized or everything succeeded.
  returned: success
  type: list
  elements: dict
script:
  description: The host script that failed.
  returned: failure on the host
  type: str
  sample: ad_replication
"""
