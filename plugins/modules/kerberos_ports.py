# Copyright: mailflow.remediation contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# This file holds documentation only; the module is the action plugin of the same name.

from __future__ import annotations

DOCUMENTATION = r"""
module: kerberos_ports
short_description: Check that Kerberos reaches the domain controllers, open the DCs' inbound rules (KB 979174 step 4)
version_added: 0.1.0
description:
  - KB 979174 step 4 asks that the ports Kerberos needs are open. On an Exchange server (any host that is not a
    domain controller) the module probes, from the host, each domain controller it uses (every DC of the host's
    domain, found through the directory, or O(domain_controllers)) on TCP 88 and TCP 464 with a connect, and on
    UDP 88 with a minimal Kerberos AS-REQ for a principal that does not exist; any Kerberos answer, a KRB-ERROR
    included, counts as open. No answer is a drop somewhere between the two hosts.
  - For a DC that leaves a port unanswered, the module reads that DC's own inbound rules over CIM (WinRM, with the
    O(domain_username) credentials when given) to tell the DC's firewall from a network firewall in between.
  - On a domain controller, the module checks its own inbound rules that allow TCP and UDP 88 and 464, found by
    their port filters (C(Get-NetFirewallPortFilter)), never by display name, which is localized. It fixes them;
    it enables the existing rule (by its name), preferring the one Windows added at promotion, or, when no rule
    opens a port, adds its own rule C(mailflow.remediation-Kerberos-<PROTOCOL>-<PORT>-In) for C(lsass.exe).
  - What it cannot change is reported in RV(unfixable) and as a warning, never as a change and never failing the
    task by itself; see RV(unfixable).
  - One round trip reads everything; on a domain controller with something to fix, one more changes the rules and
    returns them as they are after the change.
options:
  domain_controllers:
    description:
      - The domain controllers to probe, by name or FQDN. By default, every domain controller of the host's domain
        (a directory lookup, which needs the second hop, see O(domain_username)).
      - On a domain controller, given DCs are probed as well; without them a DC checks only its own rules.
    type: list
    elements: str
  timeout:
    description:
      - Seconds to wait for an answer. Every probe starts at once and they share this one deadline.
      - From 1 to 60.
    type: int
    default: 3
extends_documentation_fragment:
  - mailflow.remediation.host_script
  - mailflow.remediation.domain_options
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - ansible.builtin.action_common_attributes.conn
  - ansible.builtin.action_common_attributes.actiongroups
notes:
  - A module runs on one host and changes only that host. From an Exchange server it cannot open another host's
    firewall; when a DC's own rules leave a port closed, the finding says to run this module on that DC, which
    then fixes it. Run it on the domain controllers before the Exchange servers (the remediation playbook does).
  - A network firewall between the hosts is reported with source, destination, protocol and port, and never
    changed.
  - Rules that block (action Block) are reported, not overridden; rules set by Group Policy are reported, since a
    local change would not stay.
  - Rules are matched by protocol and local port (a port, or a range that holds it); rules for any port, address
    conditions and firewall profiles are not evaluated.
seealso:
  - name: KB 979174, 454 4.7.0 Temporary authentication failure
    description: The article whose step 4 this module automates.
    link: https://learn.microsoft.com/troubleshoot/exchange/mail-flow/454-4-7-0-temporary-authentication-failure
author:
  - mailflow.remediation maintainers (@mailflow-remediation)
"""

EXAMPLES = r"""
- name: Open the KDC's inbound rules on the domain controllers
  mailflow.remediation.kerberos_ports:
  when: "'domain_controllers' in group_names"

- name: Then check from every Exchange server that Kerberos gets through
  mailflow.remediation.kerberos_ports:
    timeout: 5
  register: kerberos_ports
  when: "'exchange_servers' in group_names"

- name: Probe given DCs only (no directory lookup, so no second hop)
  mailflow.remediation.kerberos_ports:
    domain_controllers: [dc01.contoso.example, dc02.contoso.example]
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
  sample: "4"
found:
  description: What was found, one line per inbound port (on a DC) and per probed DC.
  returned: success
  type: str
  sample: "ex01 -> dc03.contoso.example: TCP/88 no answer, TCP/464 open, UDP/88 open"
changes:
  description: The rules enabled or added (in check mode, that would be). Only ever on a domain controller.
  returned: success
  type: list
  elements: str
  sample: ["dc02: enable inbound rule KerberosKeyDistributionCenter-UDP-In (UDP/88)"]
unfixable:
  description:
    - What the module found wrong but cannot fix from this host, in an administrator's words, each also shown as a
      warning. Not a change and not a failure; a CI gate counts them.
    - A network firewall between the hosts; another DC's own firewall (run the module on that DC); a Block rule;
      a rule disabled by Group Policy; a DC that refuses (its KDC does not run) or whose name does not resolve.
  returned: success
  type: list
  elements: str
  sample:
    - "ex01 -> dc03 TCP/88: no answer although dc03's firewall allows it: a network firewall between them blocks
      it (for its owner to open; this module never changes it)"
    - "ex02 -> dc02 UDP/88: no answer: dc02's own firewall: closed: rule KerberosKeyDistributionCenter-UDP-In
      disabled; fix it by running mailflow.remediation.kerberos_ports on dc02"
probes:
  description: Each probe from this host.
  returned: success
  type: list
  elements: dict
  contains:
    source:
      description: This host's name.
      type: str
    destination:
      description: The domain controller, as found or given.
      type: str
    protocol:
      description: V(TCP) or V(UDP).
      type: str
    port:
      description: 88 or 464.
      type: int
    result:
      description: V(open), V(no_answer), V(refused), V(unresolved), V(not_kerberos) or V(error).
      type: str
  sample: [{"source": "ex01", "destination": "dc03.contoso.example", "protocol": "TCP", "port": 88,
            "result": "no_answer"}]
firewall:
  description:
    - On a domain controller, its firewall after the task (in check mode, as a real run would leave it), else
      null. C(rules) lists the inbound rules for TCP/UDP 88 and 464 with C(name), C(display_name) (localized, for
      people), C(protocol), C(local_ports), C(enabled), C(action) and C(source) (C(Local), C(GroupPolicy), ...).
  returned: success
  type: dict
  sample: {"enabled": true, "rules": [{"name": "KerberosKeyDistributionCenter-UDP-In", "enabled": true,
           "action": "Allow", "protocol": "UDP", "local_ports": ["88"], "source": "Local",
           "display_name": "Kerberos Key Distribution Center (UDP-In)"}]}
script:
  description: The host script that failed.
  returned: failure on the host
  type: str
  sample: kerberos_ports
"""
