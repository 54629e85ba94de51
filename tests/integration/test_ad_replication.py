"""ad_replication end to end: ansible-playbook -> winrm (NTLM) -> the lab's contoso fleet.

Check mode finds exactly the step 2 drift contoso plants (dc03's inbound links from dc01 and dc02 failing with 1722
for a day) and writes nothing; applied, it syncs and clears it; applied again, nothing; read back, nothing. A partner
that still fails, a sync the account may not request, an unreachable DC and bad input fail clearly.
"""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest

from tests.integration.conftest import (
    PlaybookRunner,
    changed_fleet,
    requires_lab,
    running_lab,
    with_domain_credentials,
)
from tests.lab.control import LabClient
from tests.unit.lab.conftest import host_entry

pytestmark = [pytest.mark.integration, requires_lab]

MODULE = "mailflow.remediation.ad_replication"


def task(name: str, args: dict[str, t.Any] | None = None, **keywords: t.Any) -> dict[str, t.Any]:
    return {"name": name, MODULE: args or {}, **keywords}


def test_contoso_check_apply_again_read_back(tmp_path: Path) -> None:
    with running_lab("contoso", tmp_path / "lab") as lab:
        playbook = PlaybookRunner(lab, tmp_path)
        audit = playbook.run([task("audit")], hosts="domain_controllers", extra_args=["--check", "--diff"])
        assert audit.rc == 0, audit.stdout + audit.stderr
        found = audit.results_by_host("audit")
        assert {host for host, result in found.items() if result["changed"]} == {"dc03"}
        assert len(found["dc03"]["changes"]) == 5 and found["dc03"]["changes"][0] == (
            "sync DC=contoso,DC=example on dc03.contoso.example from dc01.contoso.example, dc02.contoso.example across "
            "sites, then push it outward (repadmin /syncall /AdeP)"
        )
        assert "+  DC=contoso,DC=example <- dc01.contoso.example: ok" in audit.stdout
        assert lab.journal() == [], "check mode wrote"

        lab.reset()
        rhythm = playbook.run(
            [task("apply"), task("apply again"), task("read back", check_mode=True)], hosts="domain_controllers"
        )
        assert rhythm.rc == 0, rhythm.stdout + rhythm.stderr
        applied, again, read_back = (rhythm.results_by_host(name) for name in ("apply", "apply again", "read back"))
        assert {host for host, result in applied.items() if result["changed"]} == {"dc03"}
        assert all(result["changed"] is False for result in [*again.values(), *read_back.values()])
        assert {n["status"] for n in read_back["dc03"]["neighbors"]} == {"ok"}
        assert {(n["source"], n["last_result"]) for n in read_back["dc03"]["neighbors"]} == {
            ("dc01.contoso.example", 0),
            ("dc02.contoso.example", 0),
        }
        # ex02's SPNs, written on dc01 and stuck there, reached dc03.
        directory = lab.journal()
        assert {item["host"] for item in directory} == {"dc03"} and {item["script"] for item in directory} == {
            "ad_replication"
        }
        assert any(item["path"] == "fleet/directory/backlog/dc03" and item["after"] == [] for item in directory)
        trips = {name: numbers["round_trips"] for name, numbers in lab.counters().items() if name.startswith("dc")}
        assert trips == {"dc01": 3, "dc02": 3, "dc03": 4}


def test_from_a_member_server_it_audits_the_dc_that_server_uses(tmp_path: Path) -> None:
    with running_lab("contoso", tmp_path / "lab") as lab:
        run = PlaybookRunner(lab, tmp_path).run(
            with_domain_credentials(lab, task("audit", check_mode=True)), hosts="exchange_servers"
        )
        assert run.rc == 0, run.stdout + run.stderr
        assert {host: result["dc"] for host, result in run.results_by_host("audit").items()} == {
            "ex01": "dc01.contoso.example",
            "ex02": "dc02.contoso.example",
            "ex03": "dc03.contoso.example",
        }
        assert {host for host, result in run.results_by_host("audit").items() if result["changed"]} == {"ex03"}
        assert lab.journal() == []


def test_a_partner_that_still_fails_fails_the_task_with_its_error_code(tmp_path: Path) -> None:
    def persistent(document: dict[str, t.Any]) -> None:
        host_entry(document, "dc03")["replication_partners"][0]["persistent"] = True

    with running_lab(changed_fleet(tmp_path, "contoso", persistent), tmp_path / "lab") as lab:
        run = PlaybookRunner(lab, tmp_path).run([task("fix")], hosts="dc03")
        result = run.task("fix", "dc03")
        assert result["status"] == "failed"
        assert result["result"]["msg"].startswith(
            "mailflow.remediation.ad_replication: dc03.contoso.example still fails to replicate after the sync: from "
            "dc01.contoso.example: error 1722 (RPC_S_SERVER_UNAVAILABLE) (DC=contoso,DC=example, "
        )
        assert "dc02.contoso.example: error" not in result["result"]["msg"]


def test_a_sync_the_account_may_not_request_fails_and_writes_nothing(tmp_path: Path) -> None:
    def deny(document: dict[str, t.Any]) -> None:
        document["directory"]["sync_denied"] = ["dc01", "dc02", "dc03"]

    with running_lab(changed_fleet(tmp_path, "contoso", deny), tmp_path / "lab") as lab:
        run = PlaybookRunner(lab, tmp_path).run([task("fix")], hosts="dc03")
        result = run.task("fix", "dc03")
        assert result["status"] == "failed"
        assert "8453 (ERROR_DS_DRA_ACCESS_DENIED)" in result["result"]["msg"]
        assert lab.journal() == []


def test_an_unreachable_dc_fails_clearly_and_writes_nothing(tmp_path: Path) -> None:
    def block_ldap(document: dict[str, t.Any]) -> None:
        document["network"]["blocked"].append({"from": "ex03", "to": "dc03", "protocol": "TCP", "port": 389})

    with running_lab(changed_fleet(tmp_path, "contoso", block_ldap), tmp_path / "lab") as lab:
        run = PlaybookRunner(lab, tmp_path).run(with_domain_credentials(lab, task("fix")), hosts="ex03")
        result = run.task("fix", "ex03")
        assert result["status"] == "failed"
        assert result["result"]["msg"] == (
            "host script ad_replication failed on the host: System.Runtime.InteropServices.COMException: The server "
            "is not operational."
        )
        assert lab.journal() == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"max_age": -1}, "max_age: must be a number of seconds greater than 0, not -1"),
        ({"domain_username": "CONTOSO\\ansible"}, "parameters are required together: domain_username, domain_password"),
        (
            {"force": True},
            "Unsupported parameters for (mailflow.remediation.ad_replication) module: force. Supported parameters "
            "include: domain_password, domain_server, domain_username, max_age.",
        ),
    ],
)
def test_bad_input_is_one_clear_message_and_no_round_trip(
    tmp_path: Path, contoso: LabClient, args: dict[str, t.Any], message: str
) -> None:
    contoso.reset()
    run = PlaybookRunner(contoso, tmp_path).run([task("bad", args)], hosts="dc03")
    result = run.task("bad", "dc03")
    assert result["status"] == "failed" and result["result"]["msg"] == message
    assert contoso.counters()["dc03"]["requests"] == 0 and contoso.counters()["dc03"]["round_trips"] == 0


@pytest.fixture(scope="module")
def contoso(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[LabClient]:
    with running_lab("contoso", tmp_path_factory.mktemp("contoso")) as client:
        yield client
