"""KB 3212877 end to end on the contoso lab fleet: ansible-playbook -> winrm (NTLM) -> the lab, and SMTP with
STARTTLS from the controller to each Exchange host.

Before the fix smtp_tls_chain sees only the leaf on ex01 and ex03 and the EOP stand-in answers 550 5.7.64;
intermediate_ca exports the intermediates from ex02 (KB 3212877 step 2), reports in check mode what it would import
with zero writes, imports them, changes nothing the second time; afterwards smtp_tls_chain verifies and the EOP
stand-in accepts the relay. Round trips and bytes per run come from the lab's counters.
"""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest

from tests.integration.conftest import PlaybookRunner, requires_lab, running_lab
from tests.lab.control import LabClient
from tests.lab.smtp import REPLY_TENANT_ATTRIBUTION, wait_for
from tests.playbook import PlaybookRun

pytestmark = [pytest.mark.integration, requires_lab]

CHAIN = "mailflow.remediation.intermediate_ca"
PROBE = "mailflow.remediation.smtp_tls_chain"
EXCHANGE = ("ex01", "ex02", "ex03")
CREDENTIALS = {"domain_username": "CONTOSO\\ansible", "domain_password": "{{ ansible_password }}"}
ROOT = "{{ lab_pki_dir }}/public-root.pem"
GIVEN = {"content": "{{ hostvars['ex02'].exported.intermediates_der }}", **CREDENTIALS}


@pytest.fixture(scope="module")
def contoso(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[LabClient]:
    with running_lab("contoso", tmp_path_factory.mktemp("contoso-3212877")) as client:
        yield client


@pytest.fixture
def playbook(contoso: LabClient, tmp_path: Path) -> PlaybookRunner:
    contoso.reset()
    return PlaybookRunner(contoso, tmp_path)


def export_task() -> dict[str, t.Any]:
    # KB 3212877 step 2: the intermediates as the reference server holds them.
    return {"name": "export", CHAIN: dict(CREDENTIALS), "register": "exported", "when": "inventory_hostname == 'ex02'"}


def eop_queue(lab: LabClient, host: str) -> dict[str, t.Any]:
    return next(queue for queue in lab.host(host)["exchange"]["queues"] if queue["target"] == "eop")


def results(run: PlaybookRun, task: str) -> dict[str, dict[str, t.Any]]:
    return {host: run.task(task, host)["result"] for host in EXCHANGE}


def test_kb_3212877_before_check_apply_again_and_after(contoso: LabClient, playbook: PlaybookRunner) -> None:
    # Before: the chain each host presents, and EOP's verdict on the queued relays.
    before = playbook.run([{"name": "probe", PROBE: {"ca_file": ROOT, "eop_certificate_name": "mail.contoso.example"}}])
    assert before.rc == 0, before.stdout + before.stderr
    probe = results(before, "probe")
    assert [len(probe[host]["presented"]) for host in EXCHANGE] == [1, 3, 1]
    assert [probe[host]["verified"] for host in EXCHANGE] == [False, True, False]
    assert probe["ex01"]["missing_issuer"].endswith("CN=Lab Public TLS Issuing CA")
    assert [probe[host]["eop"]["accepted"] for host in EXCHANGE] == [False, True, False]
    assert all(probe[host]["changed"] is False for host in EXCHANGE)
    assert eop_queue(contoso, "ex01")["last_error"].startswith(REPLY_TENANT_ATTRIBUTION)
    # smtp_tls_chain never touched the WinRM listeners.
    assert all(numbers["requests"] == 0 for numbers in contoso.counters().values())

    # Check mode: the decision, and zero writes.
    audit = playbook.run([export_task(), {"name": "audit", CHAIN: GIVEN, "check_mode": True, "diff": True}])
    assert audit.rc == 0, audit.stdout + audit.stderr
    checked = results(audit, "audit")
    assert [len(checked[host]["imported"]) for host in EXCHANGE] == [1, 0, 2]
    assert [checked[host]["changed"] for host in EXCHANGE] == [True, False, True]
    assert checked["ex01"]["changes"][0].startswith("import O=Mailflow Lab Test PKI,CN=Lab Public TLS Issuing CA")
    assert "+LocalMachine\\CA: O=Mailflow Lab Test PKI,CN=Lab Public TLS Issuing CA" in audit.stdout
    assert contoso.journal() == []

    # Apply, measured alone: one read and one import per host that changes, one read for the one that does not.
    contoso.reset()
    applied = playbook.run([export_task(), {"name": "apply", CHAIN: GIVEN}])
    assert applied.rc == 0, applied.stdout + applied.stderr
    counters = contoso.counters()
    # ex02 runs the export and the apply (one read each); ex01 and ex03 read and import.
    assert {host: counters[host]["round_trips"] for host in EXCHANGE} == {"ex01": 2, "ex02": 2, "ex03": 2}
    written = {(entry["host"], entry["path"].split("/")[2]) for entry in contoso.journal()}
    assert written == {("ex01", "CA"), ("ex03", "CA")}
    assert all(entry["script"] == "certificate_chain" for entry in contoso.journal())

    # Again: unchanged; read back in check mode: complete everywhere.
    again = playbook.run(
        [
            export_task(),
            {"name": "again", CHAIN: GIVEN},
            {"name": "read back", CHAIN: GIVEN, "check_mode": True},
        ]
    )
    assert again.rc == 0, again.stdout + again.stderr
    assert all(not result["changed"] for result in results(again, "again").values())
    for host, result in results(again, "read back").items():
        assert result["changed"] is False and result["unfixable"] == [], host
        assert [link["stores"] for link in result["chain"]] == [["My"], ["CA"], ["CA"], ["Root"]], host
    assert [entry["host"] for entry in contoso.journal()].count("ex02") == 0

    # After: every host presents its whole chain, and the next queue retry relays through EOP.
    after = playbook.run([{"name": "probe", PROBE: {"ca_file": ROOT, "eop_certificate_name": "mail.contoso.example"}}])
    probe = results(after, "probe")
    assert [len(probe[host]["presented"]) for host in EXCHANGE] == [3, 3, 3]
    assert all(probe[host]["verified"] and probe[host]["eop"]["accepted"] for host in EXCHANGE)
    assert all(probe[host]["unfixable"] == [] for host in EXCHANGE)
    assert wait_for(lambda: eop_queue(contoso, "ex01")["message_count"] == 0, timeout=15)
    assert eop_queue(contoso, "ex01")["last_error"] == ""
    assert contoso.host("ex01")["exchange"]["relayed"] > 0


def test_round_trips_and_bytes_per_run(contoso: LabClient, playbook: PlaybookRunner) -> None:
    """Numbers for the closing note: a read-only run and (on a fresh fleet) an importing run, per host."""
    contoso.reset()
    run = playbook.run([{"name": "read", CHAIN: {"src": ["{{ lab_pki_dir }}/public-tls.pem"], **CREDENTIALS}}])
    assert run.rc == 0, run.stdout + run.stderr
    for host, numbers in contoso.counters().items():
        if host in EXCHANGE:
            assert numbers["round_trips"] == 1, host
            print(f"intermediate_ca, nothing to import, {host}: {numbers}")


def test_an_import_run_costs_two_round_trips(tmp_path: Path) -> None:
    with running_lab("contoso", tmp_path / "lab") as lab:
        runner = PlaybookRunner(lab, tmp_path)
        given = {"src": ["{{ lab_pki_dir }}/public-tls.pem", "{{ lab_pki_dir }}/public-policy.pem"], **CREDENTIALS}
        run = runner.run([{"name": "import", CHAIN: given}])
        assert run.rc == 0, run.stdout + run.stderr
        counters = lab.counters()
        for host in EXCHANGE:
            changed = run.task("import", host)["result"]["changed"]
            assert counters[host]["round_trips"] == (2 if changed else 1), host
            print(f"intermediate_ca, changed={changed}, {host}: {counters[host]}")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"content": ["not a certificate"]}, "content[0]: is neither PEM"),
        ({"src": ["{{ lab_pki_dir }}/public-root.pem"]}, "is a self-signed root; a root belongs in LocalMachine\\Root"),
        ({"src": ["{{ lab_pki_dir }}/nowhere.pem"]}, "nowhere.pem): no such file on the controller"),
        ({"thumbprint": "12:34"}, "thumbprint: '12:34' is not a SHA-1 thumbprint"),
    ],
)
def test_bad_input_fails_without_any_round_trip(playbook: PlaybookRunner, args: dict[str, t.Any], message: str) -> None:
    run = playbook.run([{"name": "bad", CHAIN: args}])
    for host in EXCHANGE:
        result = run.task("bad", host)
        assert result["status"] == "failed" and message in result["result"]["msg"], result
    assert all(numbers["requests"] == 0 for numbers in playbook.lab.counters().values())


def test_without_credentials_the_second_hop_fails_and_nothing_is_written(playbook: PlaybookRunner) -> None:
    run = playbook.run([{"name": "no credentials", CHAIN: {"src": ["{{ lab_pki_dir }}/public-tls.pem"]}}])
    record = run.task("no credentials", "ex01")
    assert record["status"] == "failed"
    assert "could not authenticate from ex01 to Exchange" in record["result"]["msg"]
    assert "this is the second hop" in record["result"]["msg"]
    assert playbook.lab.journal() == []
