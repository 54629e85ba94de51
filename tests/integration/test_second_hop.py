"""The second hop, end to end: from Exchange servers (members) over an NTLM logon, every module that reaches Active
Directory works with one module_defaults entry for the action group, and the same play without it fails with a
message that names the second hop and the ways out, and writes nothing. Over winrm and over psrp."""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest

from tests.integration.conftest import PlaybookRunner, requires_lab, running_lab

pytestmark = [pytest.mark.integration, requires_lab]

GROUP = "group/mailflow.remediation.mailflow"
# What each module does from a member server: all three reach a DC's directory.
TASKS: list[dict[str, t.Any]] = [
    {"name": "time", "mailflow.remediation.w32time": {}},
    {"name": "replication", "mailflow.remediation.ad_replication": {}},
    {"name": "spns", "mailflow.remediation.spn": {"remove_duplicates": True}},
]
SECOND_HOP = (
    "this is the second hop: a WinRM logon by NTLM holds no credentials the host can pass on. Give domain_username "
    "and domain_password (once for every module: module_defaults for the group mailflow.remediation.mailflow), or "
    "connect with Kerberos delegation (ansible_winrm_kerberos_delegation: true) or CredSSP "
    "(ansible_winrm_transport: credssp, ansible_psrp_auth: credssp)"
)


@pytest.mark.parametrize("connection", ["winrm", "psrp"])
def test_one_module_defaults_entry_gives_every_module_the_second_hop(tmp_path: Path, connection: str) -> None:
    with running_lab("contoso", tmp_path / "lab") as lab:
        playbook = PlaybookRunner(lab, tmp_path, connection=connection, auth="ntlm")

        without = playbook.run([{**item, "ignore_errors": True} for item in TASKS])
        assert without.rc == 0, without.stdout + without.stderr
        for item in TASKS:
            module = next(key for key in item if key.startswith("mailflow."))
            for host in ("ex01", "ex02", "ex03"):
                result = without.task(item["name"], host)
                assert result["status"] == "failed"
                assert result["result"]["msg"] == (
                    f"{module} could not authenticate from {host} to Active Directory "
                    "(System.DirectoryServices.DirectoryServicesCOMException: An operations error occurred.); "
                    f"{SECOND_HOP}"
                )
        assert lab.journal() == []

        username = f"{lab.status['credentials']['domain']}\\{lab.status['credentials']['username']}"
        defaults = {GROUP: {"domain_username": username, "domain_password": lab.password}}
        with_defaults = playbook.run([{"name": "one entry", "module_defaults": defaults, "block": TASKS}])
        assert with_defaults.rc == 0, with_defaults.stdout + with_defaults.stderr
        results = {(item["task"], item["host"]): item for item in with_defaults.results}
        assert {item["status"] for item in results.values()} == {"ok"} and len(results) == 9
        # contoso's drift on the Exchange servers themselves: ex03's clock and its SPNs, ex01's duplicate, and the
        # DC ex03 uses, whose replication was down.
        assert {key for key, item in results.items() if item["result"]["changed"]} == {
            ("time", "ex03"),
            ("replication", "ex03"),
            ("spns", "ex01"),
            ("spns", "ex03"),
        }
        assert lab.journal() != []
        # One round trip per task without credentials (the read fails); with them, one to read, one more to change.
        trips = {name: numbers["round_trips"] for name, numbers in lab.counters().items() if name.startswith("ex")}
        assert trips == {"ex01": 3 + 4, "ex02": 3 + 3, "ex03": 3 + 6}


def test_wrong_credentials_are_refused_by_name(tmp_path: Path) -> None:
    with running_lab("contoso", tmp_path / "lab") as lab:
        defaults = {GROUP: {"domain_username": "CONTOSO\\ansible", "domain_password": "not the password"}}
        run = PlaybookRunner(lab, tmp_path).run(
            [{"name": "wrong", "module_defaults": defaults, "block": [{**TASKS[2], "ignore_errors": True}]}],
            hosts="ex01",
        )
        assert run.task("spns")["result"]["msg"] == (
            "mailflow.remediation.spn: Active Directory refused domain_username 'CONTOSO\\\\ansible' from ex01: "
            "System.DirectoryServices.DirectoryServicesCOMException: The user name or password is incorrect."
        )
        assert lab.journal() == []


def test_the_password_never_reaches_the_journal_or_a_command_line(tmp_path: Path) -> None:
    with running_lab("contoso", tmp_path / "lab") as lab:
        defaults = {GROUP: {"domain_username": "CONTOSO\\ansible", "domain_password": lab.password}}
        run = PlaybookRunner(lab, tmp_path).run(
            [{"name": "fix", "module_defaults": defaults, "block": [TASKS[2]]}], hosts="ex01", extra_args=["-vvv"]
        )
        assert run.rc == 0, run.stdout + run.stderr
        entries: list[dict[str, t.Any]] = lab.journal()
        assert entries and all(item["params"]["domain_password"] == "********" for item in entries)
        assert lab.password not in run.stdout + run.stderr
