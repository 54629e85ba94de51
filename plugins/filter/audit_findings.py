# Copyright: mailflow.remediation contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter mailflow.remediation.audit_findings: what fails the CI gate of playbooks/audit.yml (docs in the .yml)."""

from __future__ import annotations

import typing as t

from ansible.errors import AnsibleFilterError

from ansible_collections.mailflow.remediation.plugins.plugin_utils._drift_report import (
    AUDIT,
    COLLECTION,
    Report,
    gate_findings,
)
from ansible_collections.mailflow.remediation.plugins.plugin_utils._fleet_checks import MAX_CLOCK_SPREAD


def audit_findings(
    hostvars: t.Mapping[str, t.Any],
    hosts: t.Sequence[str],
    register: str = "mailflow_audit",
    unfixable: bool = True,
    max_clock_spread: float = MAX_CLOCK_SPREAD,
) -> list[str]:
    if isinstance(hosts, str) or not isinstance(hosts, t.Sequence):
        raise AnsibleFilterError("audit_findings: hosts must be a list of inventory host names")
    report = Report(max_clock_spread=float(max_clock_spread))
    found = []
    for host in hosts:
        variables = hostvars[host]
        result = variables.get(register)
        if not isinstance(result, t.Mapping):
            # Never silently missing: a host of the audit's groups that has no result did not get audited.
            found.append(f"{host}: no audit result ({register} is not set): the audit did not run there")
            continue
        report.add_result(
            host, f"{COLLECTION}.{AUDIT}", result, check_mode=True, groups=list(variables.get("group_names") or [])
        )
    return found + gate_findings(report.document(generated="-"), unfixable=bool(unfixable))


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"audit_findings": audit_findings}
