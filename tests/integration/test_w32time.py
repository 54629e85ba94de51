"""w32time end to end: ansible-playbook -> winrm (NTLM) -> the lab's contoso fleet.

Check mode finds exactly the step 1 drift contoso plants (dc01, the forest root, on the domain hierarchy; dc02's
W32Time stopped and manual; ex03 not syncing and seven minutes ahead) and writes nothing; applied, it clears it;
applied again, nothing; read back in check mode, nothing. The offset boundary, a DC that does not answer NTP, access
denied, a fix that does not take and bad input are shown the same way.
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

MODULE = "mailflow.remediation.w32time"
NTP_SERVERS = ["time.lab.example"]


def task(name: str, args: dict[str, t.Any] | None = None, **keywords: t.Any) -> dict[str, t.Any]:
    return {"name": name, MODULE: args or {}, **keywords}


def test_contoso_check_apply_again_read_back(tmp_path: Path) -> None:
    with running_lab("contoso", tmp_path / "lab") as lab:
        playbook = PlaybookRunner(lab, tmp_path)
        args = {"ntp_servers": NTP_SERVERS}

        audit = playbook.run(
            with_domain_credentials(lab, task("audit", args)), hosts="all", extra_args=["--check", "--diff"]
        )
        assert audit.rc == 0, audit.stdout + audit.stderr
        found = audit.results_by_host("audit")
        assert {host for host, result in found.items() if result["changed"]} == {"dc01", "dc02", "ex03"}
        assert found["ex03"]["changes"] == [
            r"set HKLM\SYSTEM\CurrentControlSet\Services\W32Time\Parameters\Type: NoSync -> NT5DS",
            "resync the clock of ex03.contoso.example: it is 420.0 s ahead of dc03.contoso.example (its domain "
            "controller)",
        ]
        assert "-clock = 420.0 s ahead of dc03.contoso.example" in audit.stdout
        assert "+clock = within 300 s of dc03.contoso.example" in audit.stdout
        assert lab.journal() == [], "check mode wrote"
        assert {name: numbers["round_trips"] for name, numbers in lab.counters().items()} == dict.fromkeys(found, 1)

        lab.reset()
        rhythm = playbook.run(
            with_domain_credentials(
                lab, task("apply", args), task("apply again", args), task("read back", args, check_mode=True)
            ),
            hosts="all",
        )
        assert rhythm.rc == 0, rhythm.stdout + rhythm.stderr
        applied, again, read_back = (rhythm.results_by_host(name) for name in ("apply", "apply again", "read back"))
        assert {host for host, result in applied.items() if result["changed"]} == {"dc01", "dc02", "ex03"}
        assert all(result["changed"] is False for result in [*again.values(), *read_back.values()])
        assert all(result["unfixable"] == [] for result in read_back.values())
        assert read_back["ex03"]["offset"] == 0 and read_back["ex03"]["w32time"]["type"] == "NT5DS"
        assert read_back["dc01"]["w32time"]["ntp_server"] == "time.lab.example,0x8"
        assert read_back["dc02"]["w32time"]["service"] == {"start_type": "Automatic", "status": "Running"}
        # Only the three hosts with drift were written to, once each; every run took one round trip, two to change.
        assert {entry["host"] for entry in lab.journal()} == {"dc01", "dc02", "ex03"}
        assert {entry["script"] for entry in lab.journal()} == {"w32time_sync"}
        trips = {name: numbers["round_trips"] for name, numbers in lab.counters().items()}
        assert trips == {name: 2 + (2 if name in ("dc01", "dc02", "ex03") else 1) for name in trips}


@pytest.mark.parametrize(("offset", "drift"), [(299, False), (301, True)], ids=["299 s", "301 s"])
def test_the_offset_boundary_at_max_offset_300(tmp_path: Path, offset: int, drift: bool) -> None:
    fleet = changed_fleet(tmp_path, "clean", lambda document: host_entry(document, "ex01").update(clock_offset=offset))
    with running_lab(fleet, tmp_path / "lab") as lab:
        run = PlaybookRunner(lab, tmp_path).run(
            with_domain_credentials(lab, task("audit", {"max_offset": 300}, check_mode=True)), hosts="ex01"
        )
        assert run.rc == 0, run.stdout + run.stderr
        result = run.task("audit")["result"]
        assert (result["changed"], result["offset"]) == (drift, offset)
        assert lab.journal() == []


def test_a_dc_that_does_not_answer_ntp_is_named_and_nothing_fails(tmp_path: Path) -> None:
    def silence_dc02(document: dict[str, t.Any]) -> None:
        host_entry(document, "dc02")["firewall"] = {"inbound": [{"name": "ADDS-W32Time-NTP-UDP-In", "enabled": False}]}

    with running_lab(changed_fleet(tmp_path, "clean", silence_dc02), tmp_path / "lab") as lab:
        run = PlaybookRunner(lab, tmp_path).run(with_domain_credentials(lab, task("audit")), hosts="exchange_servers")
        assert run.rc == 0, run.stdout + run.stderr
        for host in ("ex01", "ex02"):
            result = run.task("audit", host)["result"]
            assert result["changed"] is False
            assert (
                f"dc02.contoso.example does not answer NTP (UDP 123) from {host}.contoso.example: TimedOut"
                in (result["unfixable"])
            )
        assert "[WARNING]: cannot be fixed by this module: dc02.contoso.example does not answer NTP" in (
            run.stdout + run.stderr
        )
        assert lab.journal() == []


def test_access_denied_and_a_fix_that_does_not_take_fail_clearly(tmp_path: Path) -> None:
    def plant(document: dict[str, t.Any]) -> None:
        # ex01 may not write the W32Time key; dc02 is more than MaxPosPhaseCorrection (48 h) ahead of dc01.
        host_entry(document, "ex01").update(
            w32time={"type": "NoSync"},
            faults={"registry_write_denied": [r"HKLM\SYSTEM\CurrentControlSet\Services\W32Time\Parameters"]},
        )
        host_entry(document, "dc02")["clock_offset"] = 200000

    with running_lab(changed_fleet(tmp_path, "clean", plant), tmp_path / "lab") as lab:
        run = PlaybookRunner(lab, tmp_path).run(
            with_domain_credentials(lab, task("fix", ignore_errors=True)), hosts="ex01,dc02"
        )
        assert [run.task("fix", host)["status"] for host in ("ex01", "dc02")] == ["failed", "failed"]
        denied, stuck = run.task("fix", "ex01")["result"], run.task("fix", "dc02")["result"]
        assert denied["script"] == "w32time_sync" and denied["error_type"] == "System.UnauthorizedAccessException"
        assert stuck["msg"] == (
            "mailflow.remediation.w32time: the clock of dc02.contoso.example is still 200000.0 s ahead of "
            "dc01.contoso.example (PDC emulator) after the fix (w32tm /resync exit code 0x800705B4)"
        )
        assert not [item for item in lab.journal() if item["host"] == "ex01"]
        assert lab.host("ex01")["registry"][r"HKLM\SYSTEM\CURRENTCONTROLSET\SERVICES\W32TIME\PARAMETERS"]["Type"] == [
            "String",
            "NoSync",
        ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"max_offset": "five minutes"}, "max_offset: must be a number of seconds greater than 0, not 'five minutes'"),
        ({"max_offset": 0}, "max_offset: must be a number of seconds greater than 0, not 0"),
        ({"ntp_timeout": 60}, "ntp_timeout: must be from 1 to 30 seconds, not 60"),
        (
            {"ntp_servers": ["time.example.com 0x8"]},
            "ntp_servers: 'time.example.com 0x8' is not a host name or address, optionally with flags (name,0x8)",
        ),
        ({"domain_password": "x"}, "parameters are required together: domain_username, domain_password"),
        (
            {"max_skew": 300},
            "Unsupported parameters for (mailflow.remediation.w32time) module: max_skew. Supported parameters "
            "include: domain_controllers, domain_password, domain_server, domain_username, max_offset, ntp_servers, "
            "ntp_timeout, pdc_emulator.",
        ),
    ],
)
def test_bad_input_is_one_clear_message_and_no_round_trip(
    contoso: LabClient, tmp_path: Path, args: dict[str, t.Any], message: str
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
