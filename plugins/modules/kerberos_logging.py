# Copyright: mailflow.remediation contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# This file holds documentation only; the module is the action plugin of the same name.

from __future__ import annotations

DOCUMENTATION = r"""
module: kerberos_logging
short_description: Enable, remove or restore Kerberos event logging (KB 979174 step 5)
version_added: 0.1.0
description:
  - Manages the C(REG_DWORD) value C(LogLevel) under
    C(HKLM\SYSTEM\CurrentControlSet\Control\Lsa\Kerberos\Parameters). With C(LogLevel=1), Windows writes Kerberos
    errors to the System event log, which KB 979174 step 5 uses to diagnose C(454 4.7.0 Temporary authentication
    failure) on the Exchange server that logs event 1035.
  - Every run returns the value it found as RV(previous), so that a playbook can enable logging, collect evidence,
    and then put back exactly what was there with O(state=restored).
  - One round trip reads the value; at most one more changes it and returns the value after the change.
options:
  state:
    description:
      - V(present) sets C(LogLevel) to O(level), replacing a value of another registry kind.
      - V(absent) removes the value.
      - V(restored) puts back O(previous), the RV(previous) of an earlier run, including "did not exist".
    type: str
    choices: [present, absent, restored]
    default: present
  level:
    description:
      - The C(LogLevel) to set with O(state=present). V(1) logs Kerberos errors, V(0) turns that off.
      - Defaults to V(1). Only valid with O(state=present).
    type: int
    choices: [0, 1]
  previous:
    description:
      - The RV(previous) value an earlier run of this module returned. Required with O(state=restored), and only
        valid with it.
    type: dict
    suboptions:
      exists:
        description: Whether C(LogLevel) existed.
        type: bool
        required: true
      value:
        description:
          - The value it had; required when O(previous.exists) is true. Only a C(REG_DWORD) can be restored.
          - A whole number from V(-2147483648) to V(4294967295). .NET reads a C(REG_DWORD) as a signed 32-bit number,
            so an earlier run returns C(0xFFFFFFFF) as V(-1); both spellings restore the same value.
        type: raw
      kind:
        description: The .NET registry value kind the earlier run found, for example V(DWord).
        type: str
      key_exists:
        description: Whether the C(Parameters) key existed. Informational; the key is never removed.
        type: bool
extends_documentation_fragment:
  - mailflow.remediation.host_script
  - mailflow.remediation.domain_options.unused
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - ansible.builtin.action_common_attributes.conn
  - ansible.builtin.action_common_attributes.actiongroups
seealso:
  - name: KB 979174, 454 4.7.0 Temporary authentication failure
    description: The article whose step 5 this module automates.
    link: https://learn.microsoft.com/troubleshoot/exchange/mail-flow/454-4-7-0-temporary-authentication-failure
author:
  - mailflow.remediation maintainers (@mailflow-remediation)
"""

EXAMPLES = r"""
- name: Enable Kerberos logging on the server that logs event 1035
  mailflow.remediation.kerberos_logging:
    state: present
  register: kerberos_logging_before

- name: Put back whatever was there before
  mailflow.remediation.kerberos_logging:
    state: restored
    previous: "{{ kerberos_logging_before.previous }}"

- name: Audit only (run the play with --check --diff)
  mailflow.remediation.kerberos_logging:
    state: absent
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
  sample: "5"
found:
  description: The value as found before the task, in words.
  returned: success
  type: str
  sample: HKLM\SYSTEM\CurrentControlSet\Control\Lsa\Kerberos\Parameters\LogLevel = (not set)
changes:
  description: What was changed, or in check mode what would be changed. Empty when nothing needs changing.
  returned: success
  type: list
  elements: str
  sample:
    - "create HKLM\\SYSTEM\\CurrentControlSet\\Control\\Lsa\\Kerberos\\Parameters\\LogLevel:
      (not set) -> 1 (REG_DWORD)"
previous:
  description: The value as found before the task; pass it to O(previous) to restore it later.
  returned: success
  type: dict
  contains:
    key_exists:
      description: Whether the C(Parameters) key existed.
      type: bool
    exists:
      description: Whether C(LogLevel) existed.
      type: bool
    kind:
      description: The .NET registry value kind (V(DWord), V(String), ...), or null.
      type: str
    value:
      description: The value, or null.
      type: raw
  sample: {"key_exists": true, "exists": false, "kind": null, "value": null}
log_level:
  description: The value after the task (in check mode, the value a real run would leave). Same keys as RV(previous).
  returned: success
  type: dict
  sample: {"key_exists": true, "exists": true, "kind": "DWord", "value": 1}
script:
  description: The host script that failed.
  returned: failure on the host
  type: str
  sample: kerberos_log_level
"""
