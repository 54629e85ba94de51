"""Check mode is an audit: for every module of the collection, and for the audit playbook, across the contoso
fleet (every cause of both articles present somewhere), the lab's journal shows that nothing was written."""

from __future__ import annotations

import json
import typing as t
from pathlib import Path

import pytest

from tests.integration.conftest import PlaybookRunner, requires_lab, running_lab
from tests.lab.control import LabClient
from tests.lab.journal import MISSING, registry_value_changes
from tests.playbook import REPO_ROOT, run_playbook

pytestmark = [pytest.mark.integration, requires_lab]

# Arguments that make each module want a change somewhere in contoso, so that check mode has something to withhold.
# The lab's domain account, for the modules that reach Active Directory or Exchange from the host (the second hop):
# given to every module through one module_defaults entry for the action group, as a user would, which every module
# of the collection must accept, whether it uses it or not.
MODULE_DEFAULTS = {
    "group/mailflow.remediation.mailflow": {"domain_username": "CONTOSO\\ansible", "domain_password": "Lab-Passw0rd!"}
}
CHECK_MODE_TASKS: dict[str, list[dict[str, t.Any]]] = {
    "ad_replication": [{}, {"domain_server": "dc03.contoso.example"}],
    "audit": [{}, {"checks": ["spn", "receive_connector_auth"]}],
    "intermediate_ca": [{"src": ["{{ lab_pki_dir }}/public-tls.pem", "{{ lab_pki_dir }}/public-policy.pem"]}],
    "kerberos_logging": [{}, {"level": 0}, {"state": "restored", "previous": {"exists": True, "value": 0}}],
    "kerberos_ports": [{}, {"domain_controllers": ["dc02", "dc03"]}],
    "mailflow_evidence": [{}, {"since": "7d", "samples": 50}],
    "receive_connector_auth": [{}],
    "smtp_tls_chain": [{"ca_file": "{{ lab_pki_dir }}/public-root.pem"}],
    "spn": [{}, {"remove_duplicates": True}, {"state": "absent"}],
    "w32time": [{}, {"max_offset": 30, "ntp_servers": ["time.lab.example"]}],
}
# Where a module has something to change in contoso, when not on the Exchange servers (kerberos_ports: the DCs).
CHECK_MODE_HOSTS: dict[str, str] = {"kerberos_ports": "all"}
# Modules that only report (the symptoms, the chain seen from outside) never report a change; in check mode they
# must write nothing all the same. smtp_tls_chain must find contoso's incomplete chains, as unfixable.
NEVER_CHANGED = {"mailflow_evidence", "smtp_tls_chain"}
FINDS_UNFIXABLE = {"smtp_tls_chain"}


@pytest.fixture(scope="module")
def contoso(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[LabClient]:
    with running_lab("contoso", tmp_path_factory.mktemp("contoso")) as client:
        yield client


def test_every_module_is_covered() -> None:
    modules = {path.stem for path in (REPO_ROOT / "plugins" / "modules").glob("*.py")}
    assert set(CHECK_MODE_TASKS) == modules


@pytest.mark.parametrize("module", sorted(CHECK_MODE_TASKS))
def test_module_in_check_mode_writes_nothing(contoso: LabClient, tmp_path: Path, module: str) -> None:
    contoso.reset()
    tasks = [
        {"name": f"{module} {index}", f"mailflow.remediation.{module}": args, "check_mode": True}
        for index, args in enumerate(CHECK_MODE_TASKS[module])
    ]
    block = [{"name": module, "module_defaults": MODULE_DEFAULTS, "block": tasks}]
    run = PlaybookRunner(contoso, tmp_path).run(block, hosts=CHECK_MODE_HOSTS.get(module, "exchange_servers"))
    assert run.rc == 0, run.stdout + run.stderr
    if module in NEVER_CHANGED:
        assert not any(item["result"].get("changed") for item in run.results)
        if module in FINDS_UNFIXABLE:
            assert any(item["result"].get("unfixable") for item in run.results), "found nothing to report"
    else:
        assert any(item["result"].get("changed") for item in run.results), "check mode found nothing to change"
    assert contoso.journal() == []


@pytest.mark.parametrize("extra_args", [["--check"], []], ids=["with --check", "--check forgotten"])
def test_audit_playbook_writes_nothing_and_kerberos_logging_is_not_drift(
    contoso: LabClient, tmp_path: Path, extra_args: list[str]
) -> None:
    contoso.reset()
    inventory = contoso.write_inventory(tmp_path / "inventory.yml", connection="psrp", auth="negotiate")
    account = {"mailflow_domain_username": "CONTOSO\\ansible", "mailflow_domain_password": "Lab-Passw0rd!"}
    credentials = ["-e", json.dumps(account)]
    run = run_playbook(
        REPO_ROOT / "playbooks" / "audit.yml", inventory, tmp_path, extra_args=[*extra_args, *credentials]
    )
    assert run.rc == 0, run.stdout + run.stderr
    audits = {item["host"]: item["result"] for item in run.results if "checks" in item["result"]}
    assert sorted(audits) == ["dc01", "dc02", "dc03", "ex01", "ex02", "ex03"]
    # LogLevel is not set anywhere in contoso: the audit reports it, and does not call it drift.
    for host in ("ex01", "ex02", "ex03"):
        logging = audits[host]["checks"]["kerberos_logging"]
        assert (logging["changed"], logging["diagnostic"], logging["previous"]["exists"]) == (False, True, False)
        assert "kerberos_logging" not in audits[host]["drift"]
    assert contoso.journal() == []
    # Every host is audited in one round trip.
    assert {name: numbers["round_trips"] for name, numbers in contoso.counters().items()} == dict.fromkeys(audits, 1)


def test_remediation_turns_kerberos_logging_on_only_for_the_diagnosis_window(
    contoso: LabClient, tmp_path: Path
) -> None:
    contoso.reset()
    inventory = contoso.write_inventory(tmp_path / "inventory.yml")
    settings = {
        "mailflow_domain_username": "CONTOSO\\ansible",
        "mailflow_domain_password": "Lab-Passw0rd!",
        "fix_454_4_7_0_kerberos_logging_saved_dir": str(tmp_path / "saved"),
    }
    playbook = REPO_ROOT / "playbooks" / "remediate_454_4_7_0.yml"
    run = run_playbook(playbook, inventory, tmp_path, extra_args=["-e", json.dumps(settings)])
    assert run.rc == 0, run.stdout + run.stderr
    # Enabled, then put back: on every Exchange server, LogLevel was written twice and is gone again.
    for host in ("ex01", "ex02", "ex03"):
        # (ex03's W32Time is fixed on the way: only LogLevel is the diagnosis window's.)
        changes = [change for change in registry_value_changes(contoso.journal(), host) if change[0] == "LogLevel"]
        assert changes == [("LogLevel", MISSING, ["DWord", 1]), ("LogLevel", ["DWord", 1], MISSING)], host
