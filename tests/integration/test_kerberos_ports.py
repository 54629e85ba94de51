"""kerberos_ports end to end against contoso: ansible-playbook -> winrm (NTLM) -> the lab.

The rhythm: check mode -> apply -> apply again -> read back, across the DCs and the Exchange servers, with the
lab's journal (nothing written in check mode, only the DCs' rules when applied) and its counters (round trips and
bytes per run).
"""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest

from tests.integration.conftest import PlaybookRunner, requires_lab, running_lab
from tests.lab.control import LabClient

pytestmark = [pytest.mark.integration, requires_lab]

MODULE = "mailflow.remediation.kerberos_ports"
CREDENTIALS = {"domain_username": "CONTOSO\\ansible", "domain_password": "Lab-Passw0rd!"}
NETWORK_BLOCK = (
    "ex01 -> dc03 TCP/88: no answer although dc03's firewall allows it: a network firewall between them blocks it "
    "(for its owner to open; this module never changes it)"
)


@pytest.fixture(scope="module")
def contoso(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[LabClient]:
    with running_lab("contoso", tmp_path_factory.mktemp("contoso")) as client:
        yield client


def task(name: str, args: dict[str, t.Any] | None = None, **keywords: t.Any) -> dict[str, t.Any]:
    return {"name": name, MODULE: {**CREDENTIALS, **(args or {})}, **keywords}


def test_check_apply_again_read_back(contoso: LabClient, tmp_path: Path) -> None:
    contoso.reset()
    playbook = PlaybookRunner(contoso, tmp_path)
    audit = playbook.run([task("audit", check_mode=True, diff=True)], hosts="all")
    assert audit.rc == 0, audit.stdout + audit.stderr
    assert contoso.journal() == []
    assert {host: audit.task("audit", host)["result"]["changed"] for host in ("dc01", "dc02", "dc03", "ex01")} == {
        "dc01": False,
        "dc02": True,
        "dc03": True,
        "ex01": False,
    }
    assert audit.task("audit", "dc02")["result"]["changes"] == [
        "dc02: enable inbound rule KerberosKeyDistributionCenter-UDP-In (UDP/88)"
    ]
    assert NETWORK_BLOCK in audit.task("audit", "ex01")["result"]["unfixable"]
    assert "+  UDP/88: allowed by rule KerberosKeyDistributionCenter-UDP-In" in audit.stdout
    assert all(numbers["round_trips"] == 1 for numbers in contoso.counters().values())

    # The DCs first, then the Exchange servers see what the DCs opened.
    contoso.reset()
    run = playbook.run([task("apply")], hosts="domain_controllers")
    assert run.rc == 0, run.stdout + run.stderr
    # A read, and one more round trip only where something changed.
    trips = {name: numbers["round_trips"] for name, numbers in contoso.counters().items() if name.startswith("dc")}
    assert trips == {"dc01": 1, "dc02": 2, "dc03": 2}
    written = sorted((entry["host"], entry["path"], entry["after"]) for entry in contoso.journal())
    assert written == [("dc02", "host/firewall/rules/1/enabled", True), ("dc03", "host/firewall/rules/3/enabled", True)]
    contoso.reset()
    again = playbook.run([task("apply again"), task("read back", check_mode=True)], hosts="all")
    assert again.rc == 0, again.stdout + again.stderr
    assert contoso.journal() == []
    for host in ("dc01", "dc02", "dc03", "ex01", "ex02", "ex03"):
        result = again.task("apply again", host)["result"]
        assert result["changed"] is False and result["changes"] == [], host
        assert result["unfixable"] == ([NETWORK_BLOCK] if host == "ex01" else []), host
        assert again.task("read back", host)["result"]["found"] == result["found"]
    # Two runs per host, each one round trip: nothing left to change.
    assert all(numbers["round_trips"] == 2 for numbers in contoso.counters().values())
    dc02 = contoso.host("dc02")
    assert dc02["firewall"] is not None
    assert [rule["name"] for rule in dc02["firewall"]["rules"]].count("KerberosKeyDistributionCenter-UDP-In") == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"timeout": 0}, "timeout: must be from 1 to 60 seconds, not 0"),
        ({"domain_controllers": []}, "domain_controllers: give at least one domain controller, or leave it out"),
        ({"ports": [88]}, "Unsupported parameters for (mailflow.remediation.kerberos_ports) module: ports"),
    ],
)
def test_bad_input_fails_naming_the_option_without_any_round_trip(
    contoso: LabClient, tmp_path: Path, args: dict[str, t.Any], message: str
) -> None:
    contoso.reset()
    run = PlaybookRunner(contoso, tmp_path).run([task("bad", args)], hosts="ex01")
    result = run.task("bad")
    assert result["status"] == "failed" and message in result["result"]["msg"]
    counters = contoso.counters()["ex01"]
    assert counters["requests"] == 0 and counters["round_trips"] == 0


def test_without_credentials_the_second_hop_is_named_and_nothing_is_written(contoso: LabClient, tmp_path: Path) -> None:
    contoso.reset()
    run = PlaybookRunner(contoso, tmp_path).run([{"name": "bare", MODULE: {}}], hosts="ex01")
    result = run.task("bare")
    assert result["status"] == "failed"
    assert "could not authenticate from ex01 to Active Directory" in result["result"]["msg"]
    assert "second hop" in result["result"]["msg"]
    assert contoso.journal() == []
