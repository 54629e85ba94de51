"""spn end to end: ansible-playbook -> winrm (NTLM) -> the lab's contoso fleet.

Check mode finds exactly the step 3 drift contoso plants (ex01's SMTPSVC/<FQDN> also on svc-mailrelay; ex03's on
svc-ex03-relay instead of EX03$, and SMTP/EX03 missing) and writes nothing; applied with remove_duplicates, it clears
it; applied again, nothing; read back, nothing. A duplicate on a user and on a second computer account is reported
without remove_duplicates and removed from exactly those accounts with it. A refused write, an unreachable DC and bad
input fail clearly.
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

MODULE = "mailflow.remediation.spn"
EX01 = "SMTPSVC/ex01.contoso.example"
EX03 = "SMTPSVC/ex03.contoso.example"


def task(name: str, args: dict[str, t.Any] | None = None, **keywords: t.Any) -> dict[str, t.Any]:
    return {"name": name, MODULE: args or {}, **keywords}


def accounts_written(lab: LabClient, dc: str) -> set[str]:
    """The accounts whose SPNs changed in ``dc``'s replica, as the lab's journal found them."""
    prefix = f"fleet/directory/views/{dc}/"
    return {item["path"][len(prefix) :] for item in lab.journal() if item["path"].startswith(prefix)}


def test_contoso_check_apply_again_read_back(tmp_path: Path) -> None:
    with running_lab("contoso", tmp_path / "lab") as lab:
        playbook = PlaybookRunner(lab, tmp_path)
        args = {"remove_duplicates": True}
        audit = playbook.run(with_domain_credentials(lab, task("audit", args)), extra_args=["--check", "--diff"])
        assert audit.rc == 0, audit.stdout + audit.stderr
        found = audit.results_by_host("audit")
        assert {host: result["changes"] for host, result in found.items()} == {
            "ex01": [f"remove {EX01} from svc-mailrelay (duplicate of EX01$)"],
            "ex02": [],
            "ex03": [
                f"remove {EX03} from svc-ex03-relay (it belongs on EX03$)",
                "add SMTP/EX03 to EX03$",
                f"add {EX03} to EX03$",
            ],
        }
        assert found["ex01"]["duplicates"] == {EX01: ["EX01$", "svc-mailrelay"]}
        assert "-svc-mailrelay:\n-  SMTPSVC/ex01.contoso.example" in audit.stdout
        assert lab.journal() == [], "check mode wrote"

        lab.reset()
        rhythm = playbook.run(
            with_domain_credentials(lab, task("apply", args), task("apply again", args), task("read back", args))
        )
        assert rhythm.rc == 0, rhythm.stdout + rhythm.stderr
        applied, again, read_back = (rhythm.results_by_host(name) for name in ("apply", "apply again", "read back"))
        assert {host for host, result in applied.items() if result["changed"]} == {"ex01", "ex03"}
        assert applied["ex03"]["added"] == {"EX03$": ["SMTP/EX03", EX03]}
        assert applied["ex03"]["removed"] == {"svc-ex03-relay": [EX03]}
        assert all(result["changed"] is False for result in [*again.values(), *read_back.values()])
        assert read_back["ex01"]["owners"][EX01] == ["EX01$"] and read_back["ex03"]["owners"][EX03] == ["EX03$"]
        assert read_back["ex03"]["duplicates"] == {}
        # Written where each server authenticates: ex01's fix on dc01, ex03's on dc03; nowhere else yet.
        assert accounts_written(lab, "dc01") == {"svc-mailrelay"}
        assert accounts_written(lab, "dc03") == {"EX03$", "svc-ex03-relay"}
        trips = {name: numbers["round_trips"] for name, numbers in lab.counters().items() if name.startswith("ex")}
        assert trips == {"ex01": 4, "ex02": 3, "ex03": 4}


def test_a_duplicate_on_a_user_and_a_second_computer_is_removed_from_exactly_those_accounts(tmp_path: Path) -> None:
    def plant(document: dict[str, t.Any]) -> None:
        document["accounts"] = [{"name": "svc-smtp", "kind": "user", "spns": [EX01, "HTTP/portal.contoso.example"]}]
        host_entry(document, "ex02")["computer_account"] = {"extra_spns": [EX01]}

    with running_lab(changed_fleet(tmp_path, "clean", plant), tmp_path / "lab") as lab:
        playbook = PlaybookRunner(lab, tmp_path)
        reported = playbook.run(with_domain_credentials(lab, task("report")), hosts="ex01")
        assert reported.rc == 0, reported.stdout + reported.stderr
        result = reported.task("report")["result"]
        assert result["changed"] is False
        assert result["duplicates"] == {EX01: ["EX01$", "EX02$", "svc-smtp"]}
        assert (
            "[WARNING]: cannot be fixed by this module: SMTPSVC/ex01.contoso.example is registered on EX01$ and on "
            in (reported.stdout + reported.stderr)
        )
        assert lab.journal() == []

        removed = playbook.run(with_domain_credentials(lab, task("remove", {"remove_duplicates": True})), hosts="ex01")
        assert removed.rc == 0, removed.stdout + removed.stderr
        result = removed.task("remove")["result"]
        assert result["removed"] == {"EX02$": [EX01], "svc-smtp": [EX01]} and result["added"] == {}
        assert accounts_written(lab, "dc01") == {"EX02$", "svc-smtp"}
        views = {
            item["path"].rsplit("/", 1)[-1]: item["after"] for item in lab.journal() if "/views/dc01/" in item["path"]
        }
        assert views["svc-smtp"] == ["HTTP/portal.contoso.example"]
        assert EX01 not in views["EX02$"] and "SMTPSVC/ex02.contoso.example" in views["EX02$"]


def test_a_write_the_account_may_not_make_fails_naming_it_and_writes_nothing(tmp_path: Path) -> None:
    def deny(document: dict[str, t.Any]) -> None:
        document["directory"]["write_denied"] = ["svc-mailrelay"]

    with running_lab(changed_fleet(tmp_path, "contoso", deny), tmp_path / "lab") as lab:
        run = PlaybookRunner(lab, tmp_path).run(
            with_domain_credentials(lab, task("fix", {"remove_duplicates": True})), hosts="ex01"
        )
        result = run.task("fix")
        assert result["status"] == "failed"
        assert result["result"]["msg"] == (
            "mailflow.remediation.spn: dc01.contoso.example refused to change the SPNs of svc-mailrelay (access "
            "denied: the account this task uses may not write its servicePrincipalName); the changes before it were "
            "made, the ones after it were not"
        )
        assert lab.journal() == []


def test_an_unreachable_dc_fails_clearly_and_writes_nothing(tmp_path: Path) -> None:
    def block_ldap(document: dict[str, t.Any]) -> None:
        document["network"]["blocked"].append({"from": "ex01", "to": "dc01", "protocol": "TCP", "port": 389})

    with running_lab(changed_fleet(tmp_path, "contoso", block_ldap), tmp_path / "lab") as lab:
        run = PlaybookRunner(lab, tmp_path).run(
            with_domain_credentials(lab, task("fix", {"remove_duplicates": True})), hosts="ex01"
        )
        result = run.task("fix")
        assert result["status"] == "failed"
        assert result["result"]["msg"] == (
            "host script spn_owners failed on the host: System.Runtime.InteropServices.COMException: The server is not "
            "operational."
        )
        assert lab.journal() == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"spns": ["SMTPSVC"]}, "spns: 'SMTPSVC' is not a service principal name (serviceclass/host[:port])"),
        (
            {"state": "absent", "remove_duplicates": True},
            "remove_duplicates: only applies to state=present, not state=absent",
        ),
        ({"state": "missing"}, "value of state must be one of: present, absent, got: missing"),
        (
            {"accounts": ["EX01$"]},
            "Unsupported parameters for (mailflow.remediation.spn) module: accounts. Supported parameters include: "
            "account, domain_password, domain_server, domain_username, remove_duplicates, spns, state.",
        ),
    ],
)
def test_bad_input_is_one_clear_message_and_no_round_trip(
    tmp_path: Path, contoso: LabClient, args: dict[str, t.Any], message: str
) -> None:
    contoso.reset()
    run = PlaybookRunner(contoso, tmp_path).run([task("bad", args)], hosts="ex01")
    result = run.task("bad")
    assert result["status"] == "failed" and result["result"]["msg"] == message
    assert contoso.counters()["ex01"]["requests"] == 0 and contoso.counters()["ex01"]["round_trips"] == 0


@pytest.fixture(scope="module")
def contoso(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[LabClient]:
    with running_lab("contoso", tmp_path_factory.mktemp("contoso")) as client:
        yield client
