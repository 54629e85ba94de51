# Copyright: mailflow.remediation contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# This file holds documentation only; the module is the action plugin of the same name.

from __future__ import annotations

DOCUMENTATION = r"""
module: smtp_tls_chain
short_description: Show the certificate chain an SMTP server presents, as Exchange Online sees it (KB 3212877 cause)
version_added: 0.1.0
description:
  - The cause of C(550 5.7.64 TenantAttribution) in KB 3212877, seen from outside. The module connects from the
    controller to the host's SMTP port, says EHLO, starts TLS (STARTTLS) and records every certificate the server
    presents (subjects, issuers, thumbprints, validity), not only the leaf.
  - It checks whether that chain, and only that chain, leads to a root of the trust bundle (the system's, or
    O(ca_file)), and names the issuer that is missing when it does not (RV(missing_issuer)).
  - It also runs the view of Exchange Online Protection. Would a verifier that trusts only the given roots
    (O(eop_ca_file), else the trust bundle) accept the chain as a TLS client certificate, by RFC 5280 path
    validation? Optionally, does the certificate match the name the Exchange Online connector expects
    (O(eop_certificate_name))?
  - A chain that does not verify is returned in RV(unfixable) and shown as a warning; the task does not fail for
    it. Nothing is ever changed. mailflow.remediation.intermediate_ca fixes what this module finds.
  - It never uses the task's connection (WinRM or PSRP); the probe is a TCP connection from the controller.
    A server that does not answer in time, refuses the connection, or does not offer STARTTLS fails the task with
    a message that says which.
options:
  host:
    description:
      - The name or address to connect to. Defaults to the host's C(ansible_host), else its inventory name.
    type: str
  port:
    description:
      - The SMTP port. Defaults to the host variable C(mailflow_smtp_port) when the inventory sets it, else V(25).
    type: int
  timeout:
    description: Seconds to wait for the connection and for each reply.
    type: float
    default: 10
  ehlo_name:
    description: The name to give in EHLO. Defaults to the controller's fully qualified name.
    type: str
  ca_file:
    description:
      - A PEM file on the controller with the roots to verify the chain against. Defaults to the system's trust
        store, the one OpenSSL uses on the controller.
    type: path
  eop_ca_file:
    description:
      - A PEM file on the controller with the only roots the Exchange Online view trusts. Defaults to the roots of
        O(ca_file) (or the system's).
    type: path
  eop_certificate_name:
    description:
      - The certificate name (C(TlsSenderCertificateName)) of the Exchange Online inbound connector, such as
        V(mail.contoso.com) or V(*.contoso.com). When given, the leaf's common name or a DNS name of its subject
        alternative names must match it.
    type: str
extends_documentation_fragment:
  - mailflow.remediation.domain_options.unused
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - ansible.builtin.action_common_attributes.conn
  - ansible.builtin.action_common_attributes.actiongroups
attributes:
  action:
    support: full
  action_group:
    support: full
    membership:
      - mailflow.remediation.mailflow
  async:
    support: none
  become:
    support: none
    details: Nothing runs on the host.
  bypass_host_loop:
    support: none
  check_mode:
    support: full
    details: The module changes nothing; check mode runs the same probe.
  connection:
    support: none
    details: The task's connection is not used; the controller connects to the SMTP port itself.
  delegation:
    support: none
  diff_mode:
    support: none
  platform:
    support: full
    platforms: all
    details: Any SMTP server with STARTTLS, Exchange or not.
notes:
  - Needs the Python library C(cryptography) 43 or newer on the controller (the collection's C(requirements.txt)).
  - The certificate an Exchange server presents to clients on its SMTP port is the one enabled for SMTP; to
    Exchange Online it presents the one its send connector's C(TlsCertificateName) names. Both chains are built from
    the same C(LocalMachine) stores. mailflow.remediation.intermediate_ca reports which certificate the connector
    uses.
seealso:
  - module: mailflow.remediation.intermediate_ca
    description: Imports the intermediates that this module finds missing.
  - name: KB 3212877, 550 5.7.64 TenantAttribution when relaying through Exchange Online Protection
    description: The article whose cause this module shows.
    link: https://learn.microsoft.com/troubleshoot/exchange/email-delivery/550-5-7-64-tenantattribution-error
author:
  - mailflow.remediation maintainers (@mailflow-remediation)
"""

EXAMPLES = r"""
- name: See the chain each Exchange server presents, and what Exchange Online would make of it
  mailflow.remediation.smtp_tls_chain:
    eop_certificate_name: mail.contoso.com
  register: smtp_chain

- name: Against a private trust bundle, on a port other than 25
  mailflow.remediation.smtp_tls_chain:
    port: 587
    ca_file: /etc/pki/contoso-roots.pem
"""

RETURN = r"""
article:
  description: The Microsoft article this module serves.
  returned: always
  type: str
  sample: KB 3212877
step:
  description: What of the article it serves.
  returned: always
  type: str
  sample: cause
changed:
  description: Always false.
  returned: always
  type: bool
found:
  description: The chain presented, in words.
  returned: success
  type: str
  sample: "127.0.0.1:25 presents 1 certificate(s): mail.contoso.com; the chain does not verify against system roots"
changes:
  description: Always empty.
  returned: always
  type: list
  elements: str
unfixable:
  description: What is wrong with the chain, in an administrator's words (also shown as warnings).
  returned: success
  type: list
  elements: str
server:
  description: Where the module connected (host, port) and the server's greeting (banner).
  returned: always
  type: dict
presented:
  description: Each certificate the server presented, leaf first, with subject, issuer, thumbprint, sha256,
    not_before, not_after and role.
  returned: success
  type: list
  elements: dict
verified:
  description: Whether the certificates presented lead to a root of the trust bundle.
  returned: success
  type: bool
missing_issuer:
  description: The issuer (subject name) that was not presented and is not in the trust bundle, or null.
  returned: success
  type: str
  sample: CN=Contoso Issuing CA 2,O=Contoso
trust:
  description: The trust bundle used, V(system) or the path of O(ca_file).
  returned: success
  type: str
eop:
  description: The Exchange Online view.
  returned: success
  type: dict
  contains:
    accepted:
      description: Whether a verifier trusting only those roots accepts the chain as a client certificate.
      type: bool
    reason:
      description: Why not (cryptography's path validation message), or empty.
      type: str
    roots:
      description: V(system) or the path of the roots file used.
      type: str
    certificate_name_matches:
      description: Whether the leaf matches O(eop_certificate_name); only when it is given.
      type: bool
"""
