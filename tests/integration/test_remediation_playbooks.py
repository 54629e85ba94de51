"""The remediation playbooks end to end on contoso, as an administrator runs them: check mode first (nothing
written), then remediate_454_4_7_0.yml and remediate_550_5_7_64.yml, then playbooks/audit.yml in check mode.

Afterwards the audit finds no drift, and nothing wrong but what no host can fix: the network firewall between ex01 and
dc03 (TCP 88), and the forest-root PDC emulator's time source while no reliable peers are given; the 454 4.7.0 and
5.7.64 queues drain. Run again, the playbooks change nothing. The revert playbook puts back a diagnosis window's
Kerberos logging that a run left on, and bad input fails before any host is contacted.
"""

from __future__ import annotations

import json
import typing as t
from pathlib import Path

import pytest

from tests.integration.conftest import PlaybookRunner, requires_lab, running_lab
from tests.lab.control import LabClient
from tests.lab.journal import MISSING, registry_value_changes
from tests.lab.smtp import wait_for
from tests.playbook import REPO_ROOT, PlaybookRun, run_playbook

pytestmark = [pytest.mark.integration, requires_lab]

PLAYBOOKS = REPO_ROOT / "playbooks"
EXCHANGE = ("ex01", "ex02", "ex03")
ACCOUNT = {"mailflow_domain_username": "CONTOSO\\ansible", "mailflow_domain_password": "Lab-Passw0rd!"}
NETWORK_BLOCK = (
    "kerberos_ports: ex01 -> dc03 TCP/88: no answer although dc03's firewall allows it: a network firewall between "
    "them blocks it (for its owner to open; this module never changes it)"
)


def settings(tmp_path: Path, **more: t.Any) -> list[str]:
    """What an administrator gives the playbooks for contoso: the domain account, where a diagnosis window keeps
    Kerberos logging's value, the fleet's trust anchor for the chain probe, and the server to export the
    intermediates from (KB 3212877 step 2)."""
    values = {
        **ACCOUNT,
        "fix_454_4_7_0_kerberos_logging_saved_dir": str(tmp_path / "kerberos_logging"),
        "fix_454_4_7_0_drain_timeout": 30,
        "fix_550_5_7_64_reference_host": "ex02",
        "fix_550_5_7_64_ca_file": "{{ lab_pki_dir }}/public-root.pem",
        "fix_550_5_7_64_eop_certificate_name": "mail.contoso.example",
        **more,
    }
    return ["-e", json.dumps(values)]


def play(name: str, inventory: Path, tmp_path: Path, extra: list[str], *, check: bool = False) -> PlaybookRun:
    run = run_playbook(PLAYBOOKS / name, inventory, tmp_path, extra_args=[*extra, *(["--check"] if check else [])])
    assert run.rc == 0, run.stdout + run.stderr
    return run


def changed(run: PlaybookRun) -> set[tuple[str, str]]:
    return {(item["host"], item["task"]) for item in run.results if item["result"].get("changed")}


def audit(inventory: Path, tmp_path: Path) -> dict[str, dict[str, t.Any]]:
    options = {
        "intermediate_ca": {"src": ["{{ lab_pki_dir }}/public-tls.pem", "{{ lab_pki_dir }}/public-policy.pem"]},
        "smtp_tls_chain": {"ca_file": "{{ lab_pki_dir }}/public-root.pem"},
    }
    extra = ["-e", json.dumps({**ACCOUNT, "mailflow_audit_options": options})]
    run = play("audit.yml", inventory, tmp_path, extra, check=True)
    return {item["host"]: item["result"] for item in run.results if "checks" in item["result"]}


@pytest.fixture(scope="module")
def contoso(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[LabClient]:
    with running_lab("contoso", tmp_path_factory.mktemp("contoso-remediation")) as client:
        yield client


def test_contoso_check_then_remediate_then_no_drift_and_again_nothing(contoso: LabClient, tmp_path: Path) -> None:
    inventory = contoso.write_inventory(tmp_path / "inventory.yml")
    saved = tmp_path / "kerberos_logging"

    # Check mode: every step's decision, nothing written, nothing saved on the controller.
    contoso.reset()
    checked = [
        play(name, inventory, tmp_path, settings(tmp_path), check=True)
        for name in ("remediate_454_4_7_0.yml", "remediate_550_5_7_64.yml")
    ]
    assert contoso.journal() == [] and not saved.exists()
    # dc01 is not among them: it needs reliable peers, which were not given.
    assert {host for run in checked for host, _task in changed(run)} == {"dc02", "dc03", "ex01", "ex02", "ex03"}

    # Remediate, without reliable peers for the forest-root PDC emulator: a cause no module may guess.
    play("remediate_454_4_7_0.yml", inventory, tmp_path, settings(tmp_path))
    play("remediate_550_5_7_64.yml", inventory, tmp_path, settings(tmp_path))
    found = audit(inventory, tmp_path)
    assert {host: result["drift"] for host, result in found.items()} == {host: [] for host in found}
    unfixable = {host: result["unfixable"] for host, result in found.items() if result["unfixable"]}
    assert set(unfixable) == {"dc01", "ex01"}
    assert unfixable["ex01"] == [NETWORK_BLOCK]
    assert (
        len(unfixable["dc01"]) == 1
        and unfixable["dc01"][0].startswith("w32time: ")
        and "ntp_servers" in (unfixable["dc01"][0])
    )

    # With the peers, that one is fixed too; the network block is all that is left.
    with_peers = settings(tmp_path, fix_454_4_7_0_ntp_servers=["time.lab.example"])
    play("remediate_454_4_7_0.yml", inventory, tmp_path, with_peers)
    found = audit(inventory, tmp_path)
    assert {host: (result["drift"], result["unfixable"]) for host, result in found.items()} == {
        host: ([], [NETWORK_BLOCK] if host == "ex01" else []) for host in found
    }

    # The symptoms are gone: no queue in 454 4.7.0, the relay through EOP accepted.
    for host in EXCHANGE:
        evidence = found[host]["checks"]["mailflow_evidence"]["evidence"]
        assert evidence["counts"]["queues_454"] == 0, host
    assert wait_for(lambda: all(queue["message_count"] == 0 for queue in eop_queues(contoso)), timeout=15)
    assert all(contoso.host(host)["exchange"]["relayed"] > 0 for host in ("ex01", "ex03"))

    # Kerberos logging is back as it was (absent everywhere in contoso), and nothing is left saved.
    for host in EXCHANGE:
        assert found[host]["checks"]["kerberos_logging"]["previous"]["exists"] is False, host
    assert list(saved.glob("*.json")) == []

    # Again: nothing changes, nothing is written.
    contoso.reset()
    again = [
        play(name, inventory, tmp_path, with_peers) for name in ("remediate_454_4_7_0.yml", "remediate_550_5_7_64.yml")
    ]
    assert [changed(run) for run in again] == [set(), set()]
    assert contoso.journal() == []


def eop_queues(lab: LabClient) -> list[dict[str, t.Any]]:
    return [queue for host in EXCHANGE for queue in lab.host(host)["exchange"]["queues"] if queue["target"] == "eop"]


def test_the_revert_playbook_puts_back_what_an_interrupted_window_left_on(tmp_path: Path) -> None:
    saved = tmp_path / "saved"
    with running_lab("single", tmp_path / "lab") as lab:
        runner = PlaybookRunner(lab, tmp_path)
        # A diagnosis window that opened and never closed: the run stopped before its always block.
        opened = runner.run(
            [
                {
                    "name": "open the window",
                    "ansible.builtin.include_role": {"name": "mailflow.remediation.kerberos_logging"},
                    "vars": {"kerberos_logging_state": "present", "kerberos_logging_saved_dir": str(saved)},
                }
            ]
        )
        assert opened.rc == 0, opened.stdout + opened.stderr
        assert json.loads((saved / "ex01.json").read_text(encoding="utf-8"))["exists"] is False

        extra = ["-e", json.dumps({"mailflow_kerberos_logging_saved_dir": str(saved)})]
        inventory = runner.inventory
        reverted = run_playbook(PLAYBOOKS / "kerberos_logging_revert.yml", inventory, tmp_path, extra_args=extra)
        assert reverted.rc == 0, reverted.stdout + reverted.stderr
        assert registry_value_changes(lab.journal(), "ex01") == [
            ("LogLevel", MISSING, ["DWord", 1]),
            ("LogLevel", ["DWord", 1], MISSING),
        ]
        assert not (saved / "ex01.json").exists()

        # Nothing saved any more: the playbook says so and changes nothing.
        lab.reset()
        again = run_playbook(PLAYBOOKS / "kerberos_logging_revert.yml", inventory, tmp_path, extra_args=extra)
        assert again.rc == 0 and changed(again) == set(), again.stdout
        assert "No saved Kerberos LogLevel for ex01" in again.stdout
        assert lab.journal() == [] and lab.counters()["ex01"]["requests"] == 0


@pytest.mark.parametrize(
    ("playbook", "values", "message"),
    [
        (
            "remediate_454_4_7_0.yml",
            {"mailflow_domain_username": "CONTOSO\\ansible"},
            "mailflow_domain_username and mailflow_domain_password go together: give both (the account that reaches "
            "Active Directory and Exchange from the hosts) or neither (a Kerberos-delegated or CredSSP connection)",
        ),
        (
            "remediate_454_4_7_0.yml",
            {**ACCOUNT, "fix_454_4_7_0_drain_timeout": -1},
            "fix_454_4_7_0_max_offset must be more than 0 (300) and fix_454_4_7_0_drain_timeout 0 or more (-1)",
        ),
        (
            "remediate_550_5_7_64.yml",
            ACCOUNT,
            "give the intermediate CA certificates in fix_550_5_7_64_src (files on the controller), "
            "fix_550_5_7_64_content (text) or fix_550_5_7_64_reference_host (an Exchange server of the inventory that "
            "holds them)",
        ),
        (
            "remediate_550_5_7_64.yml",
            {**ACCOUNT, "fix_550_5_7_64_reference_host": "ex09"},
            "fix_550_5_7_64_reference_host: ex09 is not in the inventory",
        ),
    ],
    ids=["credentials apart", "negative wait", "no intermediates", "unknown reference server"],
)
def test_bad_input_fails_in_the_preflight_before_any_host_is_contacted(
    contoso: LabClient, tmp_path: Path, playbook: str, values: dict[str, t.Any], message: str
) -> None:
    contoso.reset()
    inventory = contoso.write_inventory(tmp_path / "inventory.yml")
    run = run_playbook(PLAYBOOKS / playbook, inventory, tmp_path, extra_args=["-e", json.dumps(values)])
    assert run.rc != 0
    failures = [item["result"]["msg"] for item in run.results if item["status"] == "failed"]
    assert failures and set(failures) == {message}
    assert all(numbers["requests"] == 0 for numbers in contoso.counters().values())


def test_a_wrong_role_option_is_named_by_the_argument_spec(contoso: LabClient, tmp_path: Path) -> None:
    contoso.reset()
    inventory = contoso.write_inventory(tmp_path / "inventory.yml")
    extra = ["-e", json.dumps({**ACCOUNT, "fix_454_4_7_0_host_role": "mailbox"})]
    run = run_playbook(PLAYBOOKS / "remediate_454_4_7_0.yml", inventory, tmp_path, extra_args=extra)
    assert run.rc != 0
    failed = [item["result"] for item in run.results if item["status"] == "failed"]
    assert failed and all(
        "value of fix_454_4_7_0_host_role must be one of: auto, domain_controller, exchange_server, got: mailbox"
        in result["msg"]
        for result in failed
    )
    assert all(numbers["requests"] == 0 for numbers in contoso.counters().values())


def test_a_reference_server_without_intermediates_fails_before_any_import(tmp_path: Path) -> None:
    # ex03 holds neither intermediate of its chain in contoso: nothing to export, so nothing is imported anywhere.
    with running_lab("contoso", tmp_path / "lab") as lab:
        inventory = lab.write_inventory(tmp_path / "inventory.yml")
        extra = ["-e", json.dumps({**ACCOUNT, "fix_550_5_7_64_reference_host": "ex03"})]
        run = run_playbook(PLAYBOOKS / "remediate_550_5_7_64.yml", inventory, tmp_path, extra_args=extra)
        assert run.rc != 0
        failures = {item["result"]["msg"] for item in run.results if item["status"] == "failed"}
        assert failures == {
            "ex03 holds no intermediate CA certificate of its chain in its stores; export them from a server whose "
            "chain is complete, or give them in fix_550_5_7_64_src"
        }
        assert lab.journal() == []
