"""receive_connector_auth end to end against contoso: ansible-playbook -> winrm (NTLM) -> the lab, in the rhythm
check mode -> apply -> apply again -> read back."""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest

from tests.integration.conftest import PlaybookRunner, requires_lab, running_lab
from tests.lab.control import LabClient

pytestmark = [pytest.mark.integration, requires_lab]

MODULE = "mailflow.remediation.receive_connector_auth"
CREDENTIALS = {"domain_username": "CONTOSO\\ansible", "domain_password": "Lab-Passw0rd!"}


@pytest.fixture(scope="module")
def contoso(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[LabClient]:
    with running_lab("contoso", tmp_path_factory.mktemp("contoso")) as client:
        yield client


def task(name: str, args: dict[str, t.Any] | None = None, **keywords: t.Any) -> dict[str, t.Any]:
    return {"name": name, MODULE: {**CREDENTIALS, **(args or {})}, **keywords}


def connector(lab: LabClient, host: str) -> dict[str, t.Any]:
    exchange = lab.host(host)["exchange"]
    return next(item for item in exchange["receive_connectors"] if item["name"] == f"Default {host.upper()}")


def test_check_apply_again_read_back(contoso: LabClient, tmp_path: Path) -> None:
    contoso.reset()
    before = {host: connector(contoso, host) for host in ("ex01", "ex02", "ex03")}
    run = PlaybookRunner(contoso, tmp_path).run(
        [
            task("audit", check_mode=True, diff=True),
            task("apply"),
            task("apply again"),
            task("read back", check_mode=True),
        ]
    )
    assert run.rc == 0, run.stdout + run.stderr
    assert {host: run.task("audit", host)["result"]["changes"] for host in ("ex01", "ex02", "ex03")} == {
        "ex01": [
            "EX01\\Default EX01: AuthMechanism add ExchangeServer",
            "EX01\\Default EX01: PermissionGroups add ExchangeServers",
        ],
        "ex02": ["EX02\\Default EX02: PermissionGroups add ExchangeServers"],
        "ex03": [],
    }
    for host in ("ex01", "ex02", "ex03"):
        assert run.task("apply", host)["result"]["changed"] is (host != "ex03")
        assert run.task("apply again", host)["result"]["changed"] is False
        assert run.task("read back", host)["result"]["connectors"] == run.task("apply", host)["result"]["connectors"]
    # Only the real run wrote, only to the two connectors, and only by adding names.
    writes = {(entry["host"], entry["path"].rsplit("/", 1)[-1]) for entry in contoso.journal()}
    assert writes == {("ex01", "auth_mechanism"), ("ex01", "permission_groups"), ("ex02", "permission_groups")}
    for host in ("ex01", "ex02"):
        after = connector(contoso, host)
        assert set(before[host]["auth_mechanism"]) <= set(after["auth_mechanism"])
        assert set(before[host]["permission_groups"]) <= set(after["permission_groups"])
        assert "ExchangeServer" in after["auth_mechanism"] and "ExchangeServers" in after["permission_groups"]
    trips = {name: numbers["round_trips"] for name, numbers in contoso.counters().items() if name.startswith("ex")}
    assert trips == {"ex01": 5, "ex02": 5, "ex03": 4}  # four reads, one change where there was something to add


def test_a_host_without_exchange_fails_clearly(contoso: LabClient, tmp_path: Path) -> None:
    contoso.reset()
    run = PlaybookRunner(contoso, tmp_path).run([task("on a DC")], hosts="dc01")
    result = run.task("on a DC", "dc01")
    assert result["status"] == "failed"
    assert "Exchange Server 2013 or later is not installed on this host" in result["result"]["msg"]
    assert contoso.journal() == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"connectors": []}, "connectors: give at least one connector name or identity, or leave it out"),
        ({"domain_password": "x"}, "parameters are required together: domain_username, domain_password"),
    ],
)
def test_bad_input_fails_naming_the_option_without_any_round_trip(
    contoso: LabClient, tmp_path: Path, args: dict[str, t.Any], message: str
) -> None:
    contoso.reset()
    run = PlaybookRunner(contoso, tmp_path).run([{"name": "bad", MODULE: args}], hosts="ex01")
    result = run.task("bad")
    assert result["status"] == "failed" and message in result["result"]["msg"]
    assert contoso.counters()["ex01"]["requests"] == 0


def test_without_credentials_the_second_hop_is_named(contoso: LabClient, tmp_path: Path) -> None:
    contoso.reset()
    run = PlaybookRunner(contoso, tmp_path).run([{"name": "bare", MODULE: {}}], hosts="ex02")
    result = run.task("bare", "ex02")
    assert result["status"] == "failed"
    assert "could not authenticate from ex02 to Exchange" in result["result"]["msg"]
    assert contoso.journal() == []
