"""The audit of a whole host: one round trip, and each check's verdict exactly its own module's in check mode."""

from __future__ import annotations

import importlib
import typing as t

import pytest
from ansible.errors import AnsibleActionFail
from ansible.playbook.task import Task

from ansible_collections.mailflow.remediation.plugins.action.audit import CHECKS, CONTROLLER_CHECKS
from ansible_collections.mailflow.remediation.plugins.action.audit import ActionModule as Audit
from tests.lab.fleet import Fleet, load_fleet
from tests.unit.conftest import EmulatedHost, wire_action
from tests.unit.plugins.action.fleet_hosts import emulate

CREDENTIALS = {"domain_username": "CONTOSO\\ansible", "domain_password": "Lab-Passw0rd!"}
HOST_CHECKS = [name for name in CHECKS if name not in CONTROLLER_CHECKS]
# Options some checks need to have something to decide (as audit.yml gives them).
OPTIONS: dict[str, dict[str, t.Any]] = {"w32time": {"ntp_servers": ["time.lab.example"]}}
# What a verdict is: whatever a user reads from a check-mode run.
VERDICT = ("changed", "changes", "unfixable", "found", "failed", "msg")


def action_for(action_class: type, fqcn: str, args: dict[str, t.Any], host: EmulatedHost) -> t.Any:
    """An action plugin on a real Task (the audit copies its task for each check), wired to the emulated host."""
    task = Task.load({"action": fqcn, "args": args})
    task._resolved_action = fqcn
    task.check_mode = True
    return wire_action(action_class, task, host)


def task_vars(fleet: Fleet, name: str) -> dict[str, t.Any]:
    groups = ["domain_controllers"] if fleet.hosts[name].is_dc else ["exchange_servers"]
    return {"inventory_hostname": name, "group_names": groups}


def audit(fleet: Fleet, name: str, **args: t.Any) -> tuple[dict[str, t.Any], EmulatedHost]:
    host = emulate(fleet, name)
    args = {**CREDENTIALS, "options": OPTIONS, **args}
    result = action_for(Audit, "mailflow.remediation.audit", args, host).run(task_vars=task_vars(fleet, name))
    return result, host


def module_verdict(fleet: Fleet, name: str, check: str) -> dict[str, t.Any]:
    module = importlib.import_module(f"ansible_collections.mailflow.remediation.plugins.action.{check}")
    args = {**CREDENTIALS, **OPTIONS.get(check, {})}
    action = action_for(module.ActionModule, f"mailflow.remediation.{check}", args, emulate(fleet, name))
    try:
        return t.cast(dict, action.run(task_vars=task_vars(fleet, name)))
    except AnsibleActionFail as exc:
        return {"failed": True, "msg": str(exc.message)}


def verdict(result: dict[str, t.Any]) -> dict[str, t.Any]:
    found = {key: result.get(key) for key in VERDICT}
    if "evidence" in result:
        # The evidence's words name its time window, which moves with the clock between two runs: its counts do not.
        found.update(found=None, counts=result["evidence"]["counts"])
    return found


@pytest.mark.parametrize("fleet_name", ["contoso", "clean"])
def test_each_check_is_exactly_its_modules_check_mode_verdict_in_one_round_trip(fleet_name: str) -> None:
    # One fleet for the audit and the modules' own runs: all in check mode, so none changes what the next one sees.
    fleet = load_fleet(fleet_name)
    for name in fleet.hosts:
        result, host = audit(fleet, name, checks=HOST_CHECKS)

        assert len(host.command_lines) == 1, name
        assert host.changes == [], name
        for check in HOST_CHECKS:
            expected = verdict(module_verdict(fleet, name, check))
            if check == "kerberos_logging" and "changed" in result["checks"][check]:
                assert result["checks"][check]["would_change"] == expected["changed"]
                expected["changed"] = False  # a diagnostic, never drift
            assert verdict(result["checks"][check]) == expected, (name, check)


def test_contoso_ex01_drifts_where_its_modules_do_and_reports_what_no_module_can_fix() -> None:
    result, _host = audit(load_fleet("contoso"), "ex01")
    assert set(result["checks"]) == {name for name, roles in CHECKS.items() if "exchange_server" in roles} - {
        "smtp_tls_chain"
    } | {"smtp_tls_chain"}
    assert result["drift"] == ["receive_connector_auth"]
    assert result["changed"] is True
    assert "kerberos_ports: ex01 -> dc03 TCP/88: no answer although dc03's firewall allows it" in " ".join(
        result["unfixable"]
    )


def test_a_check_that_fails_on_the_host_fails_only_its_own_entry() -> None:
    fleet = load_fleet("contoso")
    # Without credentials, the checks that reach Active Directory or Exchange from a member fail (the second hop);
    # Kerberos logging, read from the host's own registry, does not.
    result, host = audit(fleet, "ex02", domain_username=None, domain_password=None, checks=HOST_CHECKS)
    assert len(host.command_lines) == 1
    assert result["failed"] is True
    assert result["checks"]["kerberos_logging"]["found"].endswith("LogLevel = (not set)")
    assert set(result["failed_checks"]) == {
        "w32time",
        "ad_replication",
        "spn",
        "kerberos_ports",
        "receive_connector_auth",
        "intermediate_ca",
        "mailflow_evidence",
    }
    assert result["msg"].startswith("checks that could not run: w32time: mailflow.remediation.w32time could not ")


def test_a_controller_check_that_fails_fails_only_its_own_entry_and_says_why() -> None:
    # smtp_tls_chain runs on the controller: a CA file it cannot read fails it there, before any connection.
    options = {**OPTIONS, "smtp_tls_chain": {"ca_file": "/nonexistent/roots.pem"}}
    result, host = audit(load_fleet("contoso"), "ex01", options=options)
    why = "ca_file: cannot read /nonexistent/roots.pem on the controller (No such file or directory)"
    assert result["checks"]["smtp_tls_chain"] == {"failed": True, "msg": why}
    assert (result["failed"], result["failed_checks"]) == (True, ["smtp_tls_chain"])
    assert result["msg"] == f"checks that could not run: smtp_tls_chain: {why}"
    # The host's checks still ran, in their one round trip, and each has its verdict.
    assert len(host.command_lines) == 1
    others = {name: cell for name, cell in result["checks"].items() if name != "smtp_tls_chain"}
    assert others and all("found" in cell and not cell.get("failed") for cell in others.values())
    assert result["drift"] == ["receive_connector_auth"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            {"checks": ["w32time", "time"]},
            "value of checks must be one or more of: w32time, ad_replication, spn, kerberos_ports, kerberos_logging, "
            "receive_connector_auth, intermediate_ca, smtp_tls_chain, mailflow_evidence. Got no match for: time",
        ),
        (
            {"options": {"time": {}}},
            "options: no check named time; the checks are w32time, ad_replication, spn, kerberos_ports, "
            "kerberos_logging, receive_connector_auth, intermediate_ca, smtp_tls_chain, mailflow_evidence",
        ),
        ({"options": {"w32time": ["a"]}}, "options: w32time: must be a dictionary of that module's options"),
        ({"role": "mailbox"}, "value of role must be one of: auto, exchange_server, domain_controller, got: mailbox"),
        (
            # smtp_tls_chain runs on the controller, after the host's round trip: its options are validated before it.
            {"options": {"smtp_tls_chain": {"port": "eighty"}}},
            "mailflow.remediation.audit: smtp_tls_chain: argument 'port' is of type str and we were unable to convert "
            "to int: \"'eighty'\" cannot be converted to an int",
        ),
        (
            {"options": {"w32time": {"max_offset": -1}}},
            "mailflow.remediation.audit: w32time: max_offset: must be a number of seconds greater than 0, not -1",
        ),
    ],
)
def test_bad_input_for_any_check_fails_before_the_host_is_contacted(args: dict[str, t.Any], message: str) -> None:
    host = emulate(load_fleet("contoso"), "ex01")
    action = action_for(Audit, "mailflow.remediation.audit", {**CREDENTIALS, **args}, host)
    with pytest.raises(AnsibleActionFail) as raised:
        action.run(task_vars={"inventory_hostname": "ex01", "group_names": ["exchange_servers"]})
    assert raised.value.message == message
    assert host.command_lines == []


def test_a_host_in_no_group_is_audited_as_an_exchange_server_with_every_check_of_the_articles_for_one() -> None:
    host = emulate(load_fleet("contoso"), "ex01")
    action = action_for(Audit, "mailflow.remediation.audit", {**CREDENTIALS, "options": OPTIONS}, host)
    result = action.run(task_vars={"inventory_hostname": "ex01"})
    assert list(result["checks"]) == [
        "w32time",
        "spn",
        "kerberos_ports",
        "kerberos_logging",
        "receive_connector_auth",
        "intermediate_ca",
        "smtp_tls_chain",
        "mailflow_evidence",
    ]


def test_a_check_whose_read_runs_no_host_script_fails_the_audit_before_the_host_is_contacted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The audit sends one script per check in its one round trip: a read that runs none (or more) is a bug it names.
    w32time = importlib.import_module("ansible_collections.mailflow.remediation.plugins.action.w32time")
    monkeypatch.setattr(w32time.ActionModule, "read_state", lambda _self, _params: {})
    host = emulate(load_fleet("contoso"), "ex01")
    action = action_for(Audit, "mailflow.remediation.audit", {**CREDENTIALS, "options": OPTIONS}, host)
    with pytest.raises(AnsibleActionFail) as raised:
        action.run(task_vars={"inventory_hostname": "ex01", "group_names": ["exchange_servers"]})
    assert raised.value.message == "mailflow.remediation.audit: w32time: the check's read ran 0 host scripts, not one"
    assert host.command_lines == []
