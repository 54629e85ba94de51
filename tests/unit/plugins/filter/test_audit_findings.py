"""The audit_findings filter, the CI gate of playbooks/audit.yml: hostvars in, one sentence per finding out."""

from __future__ import annotations

import typing as t

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.mailflow.remediation.plugins.filter.audit_findings import FilterModule, audit_findings
from tests.unit.plugins.plugin_utils.test_drift_report import audit, result

DRIFT = "ex01 receive_connector_auth: drift: EX01\\Default EX01: AuthMechanism add ExchangeServer"
CLOCKS = (
    "fleet clock_spread: the clocks of ex01 and dc01 are 400 s apart, more than 300 s: Kerberos fails between them "
    "(KB 979174 step 1: all clocks within 5 minutes of each other)"
)
FIREWALL = "ex01 kerberos_ports: cannot be fixed by a module: ex01 -> dc03 TCP/88: a network firewall between them"


def hostvars(register: str = "mailflow_audit") -> dict[str, dict[str, t.Any]]:
    """A small fleet after the audit, as hostvars has it: ex01 drifts and is 400 s ahead of dc01, dc01 is clean."""
    ex01 = audit(
        w32time=result(step="1", offsets=[{"peer": "dc01.c.example", "answered": True, "offset": 400.0}]),
        receive_connector_auth=result(changed=True, changes=["EX01\\Default EX01: AuthMechanism add ExchangeServer"]),
        kerberos_ports=result(step="4", unfixable=["ex01 -> dc03 TCP/88: a network firewall between them"]),
    )
    dc01 = audit(w32time=result(step="1", offsets=[]), ad_replication=result(step="2"))
    return {
        "ex01": {"inventory_hostname": "ex01", "group_names": ["exchange_servers"], register: ex01},
        "dc01": {"inventory_hostname": "dc01", "group_names": ["domain_controllers"], register: dc01},
    }


def test_the_filter_is_called_audit_findings() -> None:
    assert FilterModule().filters() == {"audit_findings": audit_findings}


def test_the_audits_results_are_read_from_mailflow_audit_unless_told_otherwise() -> None:
    assert audit_findings(hostvars(), ["dc01", "ex01"]) == [FIREWALL, DRIFT, CLOCKS]
    assert audit_findings(hostvars("audit_run"), ["dc01", "ex01"], register="audit_run") == [FIREWALL, DRIFT, CLOCKS]


@pytest.mark.parametrize(
    ("unfixable", "max_clock_spread", "expected"),
    [(False, 300, [DRIFT, CLOCKS]), (True, 500, [FIREWALL, DRIFT]), (False, "500", [DRIFT])],
    ids=["unfixable passes", "clocks 500 s apart allowed", "both, spread as a string"],
)
def test_what_fails_the_gate_follows_unfixable_and_max_clock_spread(
    unfixable: bool, max_clock_spread: t.Any, expected: list[str]
) -> None:
    found = audit_findings(hostvars(), ["ex01", "dc01"], unfixable=unfixable, max_clock_spread=max_clock_spread)
    assert found == expected


def test_a_clean_fleet_passes_the_gate() -> None:
    assert audit_findings(hostvars(), ["dc01"]) == []


@pytest.mark.parametrize("hosts", ["ex01", "ex01,dc01", {"ex01", "dc01"}, None], ids=["name", "names", "set", "none"])
def test_hosts_that_are_not_a_list_of_names_are_refused(hosts: t.Any) -> None:
    with pytest.raises(AnsibleFilterError) as raised:
        audit_findings(hostvars(), hosts)
    assert raised.value.message == "audit_findings: hosts must be a list of inventory host names"


def test_a_host_the_audit_did_not_run_on_is_named_not_skipped() -> None:
    fleet = hostvars()
    fleet["dc02"] = {"inventory_hostname": "dc02", "group_names": ["domain_controllers"]}
    assert audit_findings(fleet, ["dc01", "dc02"]) == [
        "dc02: no audit result (mailflow_audit is not set): the audit did not run there"
    ]
    assert audit_findings(fleet, ["dc02"], register="audit_run") == [
        "dc02: no audit result (audit_run is not set): the audit did not run there"
    ]


def test_an_audit_that_failed_on_a_dc_fails_the_dc_checks_not_the_exchange_ones() -> None:
    fleet = hostvars()
    fleet["dc02"] = {
        "inventory_hostname": "dc02",
        "group_names": ["domain_controllers"],
        "mailflow_audit": {"failed": True, "msg": "access denied"},
    }
    assert audit_findings(fleet, ["dc01", "dc02"]) == [
        "dc02 w32time: could not run: access denied",
        "dc02 ad_replication: could not run: access denied",
        "dc02 kerberos_ports: could not run: access denied",
        "dc02 mailflow_evidence: could not run: access denied",
    ]
