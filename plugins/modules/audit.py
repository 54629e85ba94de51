# Copyright: mailflow.remediation contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# This file holds documentation only; the module is the action plugin of the same name.

from __future__ import annotations

DOCUMENTATION = r"""
module: audit
short_description: Audit every check of KB 979174 and KB 3212877 on a host in one round trip
version_added: 0.1.0
description:
  - Runs the checks of both articles on the host (by default those that apply to an Exchange server or to a domain
    controller) and returns each check's verdict under RV(checks), exactly as that check's own module returns it in
    check mode. Each check is its module; the audit lets the module validate its options and build its read, sends
    the reads of every check in one invocation over the task's connection, and hands each module its answer.
  - It never writes, with or without check mode. A check that fails on the host fails only its own entry; the task
    fails when any check could not run, and is C(changed) when any check found drift.
  - Kerberos logging (KB 979174 step 5) is a diagnostic, not a setting to enforce; it is reported and never counts as
    drift. M(mailflow.remediation.smtp_tls_chain) runs from the controller and needs no round trip.
options:
  checks:
    description:
      - The checks to run, by module name.
      - By default those for the host's role (O(role)). On an Exchange server, V(w32time), V(spn),
        V(kerberos_ports), V(kerberos_logging), V(receive_connector_auth), V(intermediate_ca), V(smtp_tls_chain) and
        V(mailflow_evidence); on a domain controller, V(w32time), V(ad_replication), V(kerberos_ports) and
        V(mailflow_evidence).
    type: list
    elements: str
    choices: [w32time, ad_replication, spn, kerberos_ports, kerberos_logging, receive_connector_auth, intermediate_ca,
              smtp_tls_chain, mailflow_evidence]
  role:
    description:
      - Which checks apply by default. V(auto) takes V(domain_controller) for a host in the inventory group
        C(domain_controllers), and V(exchange_server) for any other.
    type: str
    choices: [auto, exchange_server, domain_controller]
    default: auto
  options:
    description:
      - "Options for a check, by its module's name, as that module takes them, for example
        C({w32time: {ntp_servers: [time.example.com]}, intermediate_ca: {src: [issuing-ca.pem]}})."
      - The C(domain_*) options of the audit go to every check; a check's own O(options) win over them.
    type: dict
    default: {}
extends_documentation_fragment:
  - mailflow.remediation.host_script
  - mailflow.remediation.domain_options
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - ansible.builtin.action_common_attributes.conn
  - ansible.builtin.action_common_attributes.actiongroups
seealso:
  - module: mailflow.remediation.w32time
  - module: mailflow.remediation.ad_replication
  - module: mailflow.remediation.spn
  - module: mailflow.remediation.kerberos_ports
  - module: mailflow.remediation.kerberos_logging
  - module: mailflow.remediation.receive_connector_auth
  - module: mailflow.remediation.intermediate_ca
  - module: mailflow.remediation.smtp_tls_chain
  - module: mailflow.remediation.mailflow_evidence
author:
  - mailflow.remediation maintainers (@mailflow-remediation)
"""

EXAMPLES = r"""
- name: Audit an Exchange server (every check that applies, one round trip)
  mailflow.remediation.audit:
    domain_username: CONTOSO\svc-mailflow-audit
    domain_password: "{{ vault_mailflow_audit_password }}"
    options:
      intermediate_ca:
        src:
          - files/issuing-ca.pem
  register: mailflow_audit

- name: Only time and SPNs
  mailflow.remediation.audit:
    checks: [w32time, spn]
"""

RETURN = r"""
checks:
  description:
    - Each check's result, by module name, as that module returns it in check mode (C(changed) is drift,
      C(changes), C(unfixable), C(found), the module's own return values), or C(failed) and C(msg) when the check
      could not run.
    - The Kerberos logging check also has C(diagnostic) (true) and C(would_change), and is never C(changed).
  returned: always
  type: dict
drift:
  description: The checks that found something a real run of their module would change.
  returned: success
  type: list
  elements: str
failed_checks:
  description: The checks that could not run.
  returned: success
  type: list
  elements: str
unfixable:
  description: What the checks found wrong but no module can change from this host, each after its check's name.
  returned: success
  type: list
  elements: str
article:
  description: The articles the audit serves.
  returned: always
  type: str
  sample: KB 979174, KB 3212877
step:
  description: Always C(audit).
  returned: always
  type: str
"""
