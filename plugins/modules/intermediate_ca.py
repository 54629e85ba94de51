# Copyright: mailflow.remediation contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# This file holds documentation only; the module is the action plugin of the same name.

from __future__ import annotations

DOCUMENTATION = r"""
module: intermediate_ca
short_description: Complete the chain of the certificate Exchange presents over SMTP (KB 3212877 steps 1-3)
version_added: 0.1.0
description:
  - Exchange Online Protection answers C(550 5.7.64 TenantAttribution; Relay Access Denied) when the on-premises
    server does not send the intermediate CA certificates of its certificate in the TLS handshake. Windows sends
    the leaf plus the intermediates it finds in its C(LocalMachine) stores, and the intermediates are missing from
    C(LocalMachine\CA). KB 3212877 fixes it by hand (export the intermediates, C(Import-Certificate) into
    C(LocalMachine\CA)); this module does it across a fleet.
  - Steps 1-2. Reads the certificate the host presents and the chain Windows builds for it (C(X509Chain) in the
    machine context, no revocation check) from C(LocalMachine\My), C(CA) and C(Root), and computes which
    intermediates are missing for a chain to a root the host trusts.
  - Step 3. Imports exactly those, taken from the certificates you give (O(src) files on the controller or
    O(content)); nothing has to be copied to the host first. Certificates already in C(LocalMachine\CA) are
    recognised by thumbprint, so a second run changes nothing.
  - Which certificate, in this order. The one O(thumbprint) names (no Exchange session at all, so no second hop,
    also for an IIS SMTP server); else the one that the C(TlsCertificateName) of O(send_connector) designates; else
    the one that the C(TlsCertificateName) of this server's enabled send connector to Exchange Online Protection (a
    smart host in C(mail.protection.outlook.com)) designates, which is the certificate Exchange Online sees;
    else the certificate Exchange has enabled for SMTP (not its self-signed one when a purchased one is enabled too;
    the latest to expire among several).
  - Every certificate given is checked on the controller before any host is contacted, and refused with a message
    that names it when it is not a CA, lacks C(keyCertSign), is expired or not yet valid, is a self-signed root
    (that belongs in C(LocalMachine\Root), which this module does not change), comes with a private key, or cannot
    be read. With O(only_chain=true), certificates that do not form one chain are refused before host contact, and
    certificates that are not issuers on the host certificate's chain are refused after the read, before any write.
  - The certificates given are read and validated once per C(ansible-playbook) run, not once per host.
    C(ansible-playbook) runs each host's task in a forked worker process, so the verdict is kept in the run's
    temporary directory on the controller (C(DEFAULT_LOCAL_TMP), removed when the run ends), keyed by the SHA-256
    of the bytes given, and every other worker reads it (RV(bundle.validated)).
  - Returns the chain the host holds, with each certificate's DER, so that a play can take the intermediates from
    a server that has them and give them to the others (KB 3212877 step 2, export from the server); see the
    examples.
  - One round trip reads; at most one more imports and returns the stores after the import.
options:
  src:
    description:
      - Files on the controller with the intermediate CA certificates, each PEM (one or a bundle), DER (C(.cer)) or
        PKCS7 (C(.p7b)). A relative path is looked up like C(ansible.builtin.copy)'s C(src) (the role's
        C(files/), then the playbook's).
    type: list
    elements: path
    default: []
  content:
    description:
      - Intermediate CA certificates as text, each PEM or the base64 of a DER certificate or PKCS7 bundle, such
        as the RV(intermediates_der) that this module returns for another host.
    type: list
    elements: str
    default: []
  only_chain:
    description:
      - Every certificate given must be an issuer on the chain of the host's certificate (a cross-signed copy of
        one counts). Set V(false) to give a larger bundle and import from it only what this chain needs.
    type: bool
    default: true
  thumbprint:
    description:
      - The SHA-1 thumbprint of the certificate in C(LocalMachine\My) whose chain to complete, as C(certlm.msc)
        shows it (blanks and the invisible marks that copying from it brings along are ignored).
      - The module then opens no Exchange session (no second hop), which is also how to use it on an IIS SMTP
        server.
    type: str
  send_connector:
    description:
      - The name of the send connector whose C(TlsCertificateName) designates the certificate, for a relay other
        than Exchange Online Protection.
    type: str
extends_documentation_fragment:
  - mailflow.remediation.host_script
  - mailflow.remediation.domain_options
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - ansible.builtin.action_common_attributes.conn
  - ansible.builtin.action_common_attributes.actiongroups
notes:
  - Needs the Python library C(cryptography) 43 or newer on the controller (the collection's C(requirements.txt)).
    Without it the task fails and says how to install it.
  - Windows PowerShell 5.1 runs on .NET Framework, whose C(X509Chain) has no switch to forbid downloading a
    missing issuer from its AIA URL. The script cuts URL retrieval to one second, and the module counts only what
    the host's stores hold, so a downloaded issuer is still reported missing.
  - A root that the chain ends in but that is not in C(LocalMachine\Root) is reported in RV(unfixable) (CryptoAPI
    calls it untrusted, CAPI2 event 30 result C(800B0109)); this module never changes C(Root).
seealso:
  - module: mailflow.remediation.smtp_tls_chain
    description: Shows the chain the server actually presents, from outside, and whether Exchange Online would
      accept it
  - name: KB 3212877, 550 5.7.64 TenantAttribution when relaying through Exchange Online Protection
    description: The article whose steps 1-3 this module automates.
    link: https://learn.microsoft.com/troubleshoot/exchange/email-delivery/550-5-7-64-tenantattribution-error
author:
  - mailflow.remediation maintainers (@mailflow-remediation)
"""

EXAMPLES = r"""
- name: Audit the chain of the certificate Exchange presents to Exchange Online (run with --check --diff)
  mailflow.remediation.intermediate_ca:
    src: [files/intermediates.p7b]
  check_mode: true

- name: Import the missing intermediates, one bundle for the whole fleet
  mailflow.remediation.intermediate_ca:
    src:
      - files/issuing-ca.cer
      - files/policy-ca.pem
    domain_username: "{{ exchange_admin }}"
    domain_password: "{{ exchange_admin_password }}"

- name: Export the intermediates from a server that has them (KB 3212877 step 2)
  mailflow.remediation.intermediate_ca:
    thumbprint: 3F2A9C0B8D4E5F6A7B8C9D0E1F2A3B4C5D6E7F80
  register: reference
  delegate_to: ex02.contoso.example
  run_once: true

- name: Import them on every other server
  mailflow.remediation.intermediate_ca:
    content: "{{ reference.intermediates_der }}"
    thumbprint: 3F2A9C0B8D4E5F6A7B8C9D0E1F2A3B4C5D6E7F80
"""

RETURN = r"""
article:
  description: The Microsoft article this module serves.
  returned: always
  type: str
  sample: KB 3212877
step:
  description: The steps of that article.
  returned: always
  type: str
  sample: "1-3"
found:
  description: The certificate and its chain as found before the task, in words.
  returned: success
  type: str
  sample: "certificate: CN=mail.contoso.example (thumbprint 1A2B...), presented for send connector Outbound to Office
    365\nchain the host builds: incomplete: the issuer CN=Lab Public TLS Issuing CA of CN=mail.contoso.example is in
    none of its stores"
changes:
  description: What was imported, or in check mode what would be. Empty when nothing is missing.
  returned: success
  type: list
  elements: str
  sample: ["import CN=Lab Public TLS Issuing CA (thumbprint 9C1D...) into LocalMachine\\CA"]
unfixable:
  description: What is wrong but not this module's to fix, in an administrator's words (a root not in
    C(LocalMachine\Root), an issuer nobody gave, a certificate without its private key). Also shown as warnings.
  returned: success
  type: list
  elements: str
certificate:
  description: The certificate whose chain the task completes, and why it was chosen; null when there is none.
  returned: success
  type: dict
  contains:
    subject:
      description: Its subject (RFC 4514).
      type: str
    thumbprint:
      description: Its SHA-1 thumbprint, as Windows shows it.
      type: str
    sha256:
      description: The SHA-256 of its DER encoding.
      type: str
    presented_for:
      description: Why it was chosen (V(thumbprint), V(SMTP), V(send connector NAME)).
      type: list
      elements: str
    has_private_key:
      description: Whether C(LocalMachine\My) holds its private key.
      type: bool
chain:
  description: The chain after the task (in check mode, as it would be), leaf first, as far as the host's stores
    hold it, each with its subject, issuer, thumbprint, sha256, validity, role, stores and der (base64).
  returned: success
  type: list
  elements: dict
intermediates_der:
  description: The intermediates of that chain, DER as base64; give them as O(content) to another host.
  returned: success
  type: list
  elements: str
imported:
  description: The certificates imported into C(LocalMachine\CA) (in check mode, that would be), subject and
    thumbprint.
  returned: success
  type: list
  elements: dict
send_connectors:
  description: This server's send connectors as Exchange reports them (empty when O(thumbprint) is given).
  returned: success
  type: list
  elements: dict
bundle:
  description: The certificates given, after validation.
  returned: when O(src) or O(content) is given
  type: dict
  contains:
    sha256:
      description: The SHA-256 of everything given, the key of the validation verdict for the run.
      type: str
    certificates:
      description: Each certificate given (subject, issuer, thumbprint, sha256, validity, role).
      type: list
    validated:
      description: V(this task) when this host's task read and validated them, V(earlier in this run) when another
        task of the same run had.
      type: str
    validation_ms:
      description: How long reading and validating took, once.
      type: float
script:
  description: The host script that failed.
  returned: failure on the host
  type: str
  sample: certificate_chain
"""
