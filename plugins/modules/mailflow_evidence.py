# Copyright: mailflow.remediation contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# This file holds documentation only; the module is the action plugin of the same name.

from __future__ import annotations

DOCUMENTATION = r"""
module: mailflow_evidence
short_description: The symptoms of KB 979174 and KB 3212877 on a host, before and after a fix
version_added: 0.1.0
description:
  - An info module; it never changes anything and never reports C(changed). It collects, within O(since), what a
    person looks at before and after a fix of either article, as counts per host and the newest few samples.
  - On an Exchange server, its delivery queues whose C(LastError) carries C(454 4.7.0) (KB 979174) or C(5.7.64)
    (KB 3212877), matched on the SMTP status codes, not on the text around them, which Exchange writes in the
    server's language; and the send protocol log lines (CSV files under the server's
    C(TransportRoles\Logs\Hub\ProtocolLog\SmtpSend) and C(...\FrontEnd\...)) whose reply carries C(5.7.64).
  - On every host, by log, provider, ID and event data field (C(Get-WinEvent -FilterHashtable)), never by message
    text - event 1035 of C(MSExchangeTransport) (category SmtpReceive) in the Application log; CAPI2 Operational
    event 30 whose result (event data C(Result.value)) is C(800B0109) or C(800B010A); KDC event 11 (duplicate
    SPN) on domain controllers; and Kerberos errors and warnings in the System log
    (C(Microsoft-Windows-Security-Kerberos)), counted per event ID.
  - One round trip. Queues are read through a session to the server's own Exchange endpoint, the second hop (see
    O(domain_username)).
options:
  since:
    description:
      - The window. A duration back from the host's own clock (V(30m), V(24h), V(7d)), or a moment in ISO 8601
        (V(2024-05-01T08:00:00Z); without a zone, UTC).
      - Events carry the time of the host's clock when they were logged. On a host whose clock was stepped back
        (a W32Time fix), events logged before the step may carry later times than the fix; compare the newest
        sample's C(record_id) to tell new events from old ones.
    type: str
    default: 24h
  samples:
    description: How many of the newest entries of each kind to return, from 0 to 50.
    type: int
    default: 5
extends_documentation_fragment:
  - mailflow.remediation.host_script
  - mailflow.remediation.domain_options
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - ansible.builtin.action_common_attributes.conn
  - ansible.builtin.action_common_attributes.actiongroups
notes:
  - O(domain_server) is accepted (it is set for the whole action group) but plays no part.
  - IIS SMTP hosts' own logs are not read.
seealso:
  - name: KB 979174, 454 4.7.0 Temporary authentication failure
    description: The article whose symptoms this module collects.
    link: https://learn.microsoft.com/troubleshoot/exchange/mail-flow/454-4-7-0-temporary-authentication-failure
author:
  - mailflow.remediation maintainers (@mailflow-remediation)
"""

EXAMPLES = r"""
- name: Before the fix
  mailflow.remediation.mailflow_evidence:
    since: 24h
  register: evidence_before

- name: After the fix, only what is new
  mailflow.remediation.mailflow_evidence:
    since: "{{ fix_started }}"
  register: evidence_after

- name: No queue in 454 4.7.0 any more
  ansible.builtin.assert:
    that: evidence_after.evidence.counts.queues_454 == 0
"""

RETURN = r"""
article:
  description: The Microsoft articles whose symptoms this module collects.
  returned: always
  type: str
  sample: KB 979174, KB 3212877
step:
  description: Always V(symptoms).
  returned: always
  type: str
  sample: symptoms
found:
  description: The counts, one line per kind.
  returned: success
  type: str
  sample: "EX01 since 2024-05-01T08:00:00Z ...: queues with 454 4.7.0: 2 (14 messages)"
changes:
  description: Always empty.
  returned: success
  type: list
  elements: str
  sample: []
unfixable:
  description: Always empty; an info module finds nothing to fix.
  returned: success
  type: list
  elements: str
  sample: []
evidence:
  description: What was found within O(since).
  returned: success
  type: dict
  contains:
    host:
      description: C(name), C(fqdn), C(is_dc), the host's clock C(now) and the window's start C(since) (UTC).
      type: dict
    counts:
      description:
        - C(queues_454), C(messages_454), C(queues_5_7_64), C(messages_5_7_64), C(protocol_log_5_7_64),
          C(event_1035), C(capi2_event_30), C(kdc_event_11), C(kerberos_errors). What a CI gate compares.
      type: dict
    queues_454:
      description: The queues whose LastError carries 454 4.7.0 (C(identity), C(next_hop_domain), C(status),
        C(message_count), C(last_error)).
      type: list
      elements: dict
    queues_5_7_64:
      description: The queues whose LastError carries 5.7.64, the same keys.
      type: list
      elements: dict
    protocol_log_5_7_64:
      description: C(files) read, C(count) of lines, and the newest C(samples) (C(time), C(connector), C(session),
        C(remote), C(data)).
      type: dict
    events:
      description: Per kind (C(event_1035), C(capi2_event_30), C(kdc_event_11), C(kerberos_errors)) the C(count),
        C(by_id) and the newest C(samples) (C(time), C(id), C(record_id), C(provider), C(level), C(category), and
        C(data), the event data fields by name).
      type: dict
  sample: {"counts": {"queues_454": 2, "messages_454": 14, "event_1035": 4, "capi2_event_30": 2}}
script:
  description: The host script that failed.
  returned: failure on the host
  type: str
  sample: mailflow_evidence
"""
