# Copyright: mailflow.remediation contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# This file holds documentation only; the module is the action plugin of the same name.

from __future__ import annotations

DOCUMENTATION = r"""
module: receive_connector_auth
short_description: Exchange authentication on the receive connectors that take internal mail (KB 979174 step 6)
version_added: 0.1.0
description:
  - KB 979174 step 6 asks that the receive connectors taking mail from other Exchange servers have Exchange
    authentication. On a Mailbox server (Exchange Server 2013 or later), the module ensures that C(AuthMechanism)
    includes C(ExchangeServer) and C(PermissionGroups) includes C(ExchangeServers) on those connectors; by default
    the Transport service's connectors (C(TransportRole) C(HubTransport)) bound to port 2525, such as
    C(Default <SERVER>), or the ones named in O(connectors).
  - It adds only what is missing and leaves every other value as it was. It computes values Exchange accepts
    (C(ExchangeServer) needs C(Tls), which it adds with it) and sets both in one C(Set-ReceiveConnector); a value
    Exchange refuses anyway fails the task with Exchange's exception type and message.
  - Exchange cmdlets are reached the way Microsoft supports them, through a remote PowerShell session to the
    server's own Exchange endpoint, with O(domain_username) and O(domain_password) when given. The Exchange
    Management Shell snap-in is not used. A host without Exchange fails with a clear message.
  - One round trip reads the connectors; at most one more changes them and returns them as they are after.
options:
  connectors:
    description:
      - The receive connectors to manage, by name (C(Default EX01)) or identity (C(EX01\Default EX01)). An unknown
        one fails the task, naming the connectors the server has.
      - By default, the connectors of the C(HubTransport) role with a binding on port 2525.
    type: list
    elements: str
extends_documentation_fragment:
  - mailflow.remediation.host_script
  - mailflow.remediation.domain_options
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - ansible.builtin.action_common_attributes.conn
  - ansible.builtin.action_common_attributes.actiongroups
notes:
  - O(domain_server) is accepted (it is set for the whole action group) but plays no part; the session goes to the
    host's own Exchange endpoint.
  - A connector that is externally secured (C(ExternalAuthoritative)), a disabled one, or a server without any
    connector on port 2525 is reported in RV(unfixable), not changed.
seealso:
  - name: KB 979174, 454 4.7.0 Temporary authentication failure
    description: The article whose step 6 this module automates.
    link: https://learn.microsoft.com/troubleshoot/exchange/mail-flow/454-4-7-0-temporary-authentication-failure
author:
  - mailflow.remediation maintainers (@mailflow-remediation)
"""

EXAMPLES = r"""
- name: Exchange authentication on the connectors that take internal mail
  mailflow.remediation.receive_connector_auth:
    domain_username: CONTOSO\ansible-exchange
    domain_password: "{{ vault_exchange_password }}"

- name: A custom connector as well
  mailflow.remediation.receive_connector_auth:
    connectors: [Default EX01, Internal relay EX01]
  check_mode: true
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
  sample: "6"
found:
  description: Every receive connector of the server as found, one line each.
  returned: success
  type: str
  sample: "EX01\\Default EX01 (HubTransport, 0.0.0.0:2525 [::]:2525): AuthMechanism Tls, Integrated;
    PermissionGroups ExchangeUsers"
changes:
  description: What was added (in check mode, would be), per connector.
  returned: success
  type: list
  elements: str
  sample: ["EX01\\Default EX01: AuthMechanism add ExchangeServer", "EX01\\Default EX01: PermissionGroups add
    ExchangeServers"]
unfixable:
  description:
    - What the module found wrong but does not change, in an administrator's words, each also a warning; never a
      change or a failure by itself. A disabled connector, an externally secured one, no connector on 2525.
  returned: success
  type: list
  elements: str
  sample: ["EX01\\Default EX01 is disabled: other Exchange servers cannot deliver through it; enable it
    (Set-ReceiveConnector -Enabled $true) if that is not on purpose"]
connectors:
  description: The managed connectors after the task (in check mode, as a real run would leave them).
  returned: success
  type: list
  elements: dict
  contains:
    identity:
      description: The connector's identity, C(SERVER\Name).
      type: str
    name:
      description: Its name.
      type: str
    transport_role:
      description: C(HubTransport) or C(FrontendTransport).
      type: str
    bindings:
      description: Its bindings, C(address:port).
      type: list
      elements: str
    auth_mechanism:
      description: C(AuthMechanism) flag names.
      type: list
      elements: str
    permission_groups:
      description: C(PermissionGroups) flag names.
      type: list
      elements: str
    enabled:
      description: Whether the connector is enabled.
      type: bool
script:
  description: The host script that failed.
  returned: failure on the host
  type: str
  sample: receive_connectors
"""
