# Copyright: mailflow.remediation contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# This file holds documentation only; the module is the action plugin of the same name.

from __future__ import annotations

DOCUMENTATION = r"""
module: w32time
short_description: Keep W32Time in the domain hierarchy and the clock within Kerberos' skew (KB 979174 step 1)
version_added: 0.1.0
description:
  - KB 979174 step 1 asks that the clocks of the Exchange servers and of every domain controller that can
    authenticate them be within 5 minutes of each other. This module audits and fixes that on the host it runs on.
  - "It reads the W32Time configuration, C(Type) and C(NtpServer) under
    C(HKLM\\SYSTEM\\CurrentControlSet\\Services\\W32Time\\Parameters) and C(AnnounceFlags) under C(...\\Config), as
    the service key and Group Policy (C(HKLM\\SOFTWARE\\Policies\\Microsoft\\W32Time)) hold them, and the start type
    and status of the W32Time service."
  - It measures the host's clock offset to its domain's PDC emulator, to the domain controller the host uses, and to
    every domain controller it is given or finds, by an SNTP exchange from the host itself (UDP 123), never by reading
    the text C(w32tm) prints. A domain controller that does not answer is reported by name, in RV(unfixable), and
    does not fail the task.
  - "Desired state by role: domain members take their time from the domain hierarchy (C(Type=NT5DS)); domain
    controllers too, and announce themselves as time servers the default way (C(AnnounceFlags=10)); the PDC emulator
    of the forest root domain takes its time from the reliable peers in O(ntp_servers) (C(Type=NTP),
    C(AnnounceFlags=5)). Nothing else of W32Time is changed."
  - The host's clock is judged against its time source, the first of these that answers NTP; for a member its domain
    controller, then the PDC emulator; for another domain controller the PDC emulator; for the forest-root PDC
    emulator the peers of O(ntp_servers). An offset of more than O(max_offset) seconds is drift. A domain controller
    whose clock is more than O(max_offset) from that source is reported in RV(unfixable); run the module on it.
  - "The fix, in one round trip: write the values that differ, make the service start automatically, restart it (a
    stopped service starts and every service reads its configuration again), C(w32tm /resync) (run for its exit code
    only), and measure again. An offset still over O(max_offset) after that fails the task with the numbers."
  - A value that Group Policy sets is reported in RV(unfixable) as set by Group Policy and never written; when the
    policy decides C(Type), clock drift is reported there too rather than fought.
  - Without O(pdc_emulator) and O(domain_controllers), the module asks Active Directory for them, through the domain
    controller the DC locator gives the host (the one it authenticates against) or O(domain_server), which is then
    taken as the DC the host uses. From a member server over a plain NTLM logon, that is the second hop (see
    O(domain_username)). Give both options to measure without asking the directory; a member's clock is then judged
    against the PDC emulator, and the given PDC emulator is taken to be the forest root's.
  - One round trip reads and measures; at most one more changes, resyncs and measures again.
options:
  max_offset:
    description:
      - The largest offset, in seconds, that is not drift. Kerberos allows 300 seconds of clock skew by default
        (MaxClockSkew), which is what KB 979174 step 1 means by 5 minutes.
    type: float
    default: 300
  ntp_servers:
    description:
      - The reliable time sources of the forest-root PDC emulator, as host names or addresses, each optionally with
        W32Time's flags (V(time.example.com,0x8)); without flags, C(0x8) (client mode) is used.
      - Used only on the forest-root PDC emulator, where they are also measured. Without them, that host's
        C(Type) and C(AnnounceFlags) cannot be fixed and the module says so in RV(unfixable) rather than guessing.
    type: list
    elements: str
  pdc_emulator:
    description:
      - The PDC emulator of the host's domain, by name. Found in Active Directory when not given.
    type: str
  domain_controllers:
    description:
      - The domain controllers to measure the offset to. Found in Active Directory (every DC of the domain) when not
        given.
    type: list
    elements: str
  ntp_timeout:
    description:
      - How long to wait for each NTP answer, in seconds (1 to 30).
    type: int
    default: 2
extends_documentation_fragment:
  - mailflow.remediation.host_script
  - mailflow.remediation.domain_options
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - ansible.builtin.action_common_attributes.conn
  - ansible.builtin.action_common_attributes.actiongroups
seealso:
  - name: KB 979174, 454 4.7.0 Temporary authentication failure
    description: The article whose step 1 this module automates.
    link: https://learn.microsoft.com/troubleshoot/exchange/mail-flow/454-4-7-0-temporary-authentication-failure
  - name: Windows Time service tools and settings
    description: What Type, NtpServer and AnnounceFlags mean.
    link: https://learn.microsoft.com/windows-server/networking/windows-time-service/windows-time-service-tools-and-settings
author:
  - mailflow.remediation maintainers (@mailflow-remediation)
"""

EXAMPLES = r"""
- name: Audit time synchronization across the fleet (run with --check --diff)
  mailflow.remediation.w32time:
  check_mode: true

- name: Fix it, the forest-root PDC emulator taking its time from reliable peers
  mailflow.remediation.w32time:
    ntp_servers:
      - time1.example.com
      - time2.example.com,0x8

- name: From member servers over NTLM, with the second hop given once for every module of the collection
  module_defaults:
    group/mailflow.remediation.mailflow:
      domain_username: CONTOSO\svc-mailflow
      domain_password: "{{ mailflow_domain_password }}"
  block:
    - name: Keep the Exchange servers' clocks in step with their domain controllers
      mailflow.remediation.w32time:
        max_offset: 120
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
  sample: "1"
found:
  description: The configuration, the service and the clock as found before the task, in words.
  returned: success
  type: str
  sample: "Type = NoSync\nNtpServer = time.windows.com,0x8\nAnnounceFlags = 10\nW32Time service = Automatic, Running\n
    clock = 420.0 s ahead of dc03.contoso.com (its domain controller)"
changes:
  description: What was changed, or in check mode what would be changed. Empty when nothing needs changing.
  returned: success
  type: list
  elements: str
  sample:
    - "set HKLM\\SYSTEM\\CurrentControlSet\\Services\\W32Time\\Parameters\\Type: NoSync -> NT5DS"
    - "resync the clock of ex03.contoso.com: it is 420.0 s ahead of dc03.contoso.com (its domain controller)"
unfixable:
  description:
    - What is wrong but this task cannot fix, in words; also shown as warnings. Never fails the task by itself.
    - Domain controllers that do not answer NTP, values set by Group Policy, clocks of other DCs that are off, the
      forest-root PDC emulator without O(ntp_servers).
  returned: success
  type: list
  elements: str
  sample:
    - "dc02.contoso.com does not answer NTP (UDP 123) from ex02.contoso.com: TimedOut"
role:
  description: The host's role for time, V(member), V(domain controller) or V(forest-root PDC emulator).
  returned: success
  type: str
  sample: member
pdc_emulator:
  description: The PDC emulator of the host's domain, as given or found.
  returned: success
  type: str
  sample: dc01.contoso.com
domain_controllers:
  description: The domain controllers measured, as given or found.
  returned: success
  type: list
  elements: str
  sample: [dc01.contoso.com, dc02.contoso.com, dc03.contoso.com]
time_source:
  description: The peer the host's clock was judged against (after the change, when there was one), or null.
  returned: success
  type: str
  sample: dc03.contoso.com
offset:
  description: Seconds the host's clock is ahead of RV(time_source) (negative when behind), or null.
  returned: success
  type: float
  sample: 0.004
offsets:
  description:
    - Each peer measured, after the change when there was one (in check mode, as found).
    - C(offset) is how many seconds the host's clock is ahead of the peer's (negative when behind); C(error) names
      why no answer came (C(TimedOut), C(ConnectionReset), C(HostNotFound), C(BadReply)).
  returned: success
  type: list
  elements: dict
  sample: [{"peer": "dc03.contoso.com", "answered": true, "offset": 0.004, "error": null}]
offsets_before:
  description: Each peer measured before the change, as RV(offsets).
  returned: success
  type: list
  elements: dict
w32time:
  description: The values W32Time takes (Group Policy's where it sets them) and the service, after the task.
  returned: success
  type: dict
  sample: {"type": "NT5DS", "ntp_server": "time.windows.com,0x8", "announce_flags": 10, "set_by_policy": [],
           "service": {"start_type": "Automatic", "status": "Running"}}
resync_exit_code:
  description: The exit code of C(w32tm /resync) when the task changed something, else null.
  returned: success
  type: int
  sample: 0
script:
  description: The host script that failed.
  returned: failure on the host
  type: str
  sample: w32time_sync
"""
