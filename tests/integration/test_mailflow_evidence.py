"""mailflow_evidence end to end against contoso: the symptoms before, and what this collection's modules clear."""

from __future__ import annotations

import time
import typing as t
from pathlib import Path

import pytest

from tests.integration.conftest import PlaybookRunner, requires_lab, running_lab
from tests.lab.control import LabClient

pytestmark = [pytest.mark.integration, requires_lab]

MODULE = "mailflow.remediation.mailflow_evidence"
CREDENTIALS = {"domain_username": "CONTOSO\\ansible", "domain_password": "Lab-Passw0rd!"}


@pytest.fixture(scope="module")
def contoso(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[LabClient]:
    with running_lab("contoso", tmp_path_factory.mktemp("contoso")) as client:
        yield client


def evidence(playbook: PlaybookRunner, hosts: str = "all", **args: t.Any) -> dict[str, dict[str, t.Any]]:
    run = playbook.run([{"name": "evidence", MODULE: {**CREDENTIALS, **args}, "check_mode": True}], hosts=hosts)
    assert run.rc == 0, run.stdout + run.stderr
    results = {item["host"]: item["result"] for item in run.results}
    assert all(result["changed"] is False for result in results.values())
    return {host: result["evidence"] for host, result in results.items()}


def test_before_the_fix_every_symptom_shows_and_nothing_is_written(contoso: LabClient, tmp_path: Path) -> None:
    contoso.reset()
    found = evidence(PlaybookRunner(contoso, tmp_path))
    counts = {host: item["counts"] for host, item in found.items()}
    assert {host: counts[host]["queues_454"] for host in ("ex01", "ex02", "ex03")} == {"ex01": 2, "ex02": 2, "ex03": 1}
    assert all(counts[host]["event_1035"] > 0 for host in ("ex01", "ex02", "ex03"))
    assert counts["ex01"]["capi2_event_30"] > 0 and counts["ex01"]["queues_5_7_64"] == 1
    assert counts["ex01"]["protocol_log_5_7_64"] > 0 and counts["ex03"]["protocol_log_5_7_64"] > 0
    assert counts["dc02"]["kdc_event_11"] > 0 and counts["dc03"]["kdc_event_11"] > 0
    assert contoso.journal() == []
    # One round trip per host and run.
    assert all(numbers["round_trips"] == 1 for numbers in contoso.counters().values())


def test_a_queue_drains_once_its_causes_are_fixed_by_this_collection(contoso: LabClient, tmp_path: Path) -> None:
    playbook = PlaybookRunner(contoso, tmp_path)
    # ex01 -> ex02 fails for one cause only: ex02's connector lacks the ExchangeServers permission group.
    fixed = playbook.run(
        [{"name": "connectors", "mailflow.remediation.receive_connector_auth": CREDENTIALS}], hosts="ex02"
    )
    assert fixed.rc == 0, fixed.stdout + fixed.stderr
    deadline = time.monotonic() + 20
    queues: list[dict[str, t.Any]] = []
    while time.monotonic() < deadline:
        queues = evidence(playbook, hosts="ex01")["ex01"]["queues_454"]
        if [queue["next_hop_domain"] for queue in queues] == ["ex03.contoso.example"]:
            break
        time.sleep(1)
    assert [queue["next_hop_domain"] for queue in queues] == ["ex03.contoso.example"]


def newest_1035(found: dict[str, t.Any]) -> int:
    samples = found["events"]["event_1035"]["samples"]
    return max((sample["record_id"] for sample in samples), default=0)


def test_after_every_cause_is_fixed_no_queue_is_in_454_and_no_new_event_1035(
    contoso: LabClient, tmp_path: Path
) -> None:
    playbook = PlaybookRunner(contoso, tmp_path)
    defaults = {"group/mailflow.remediation.mailflow": CREDENTIALS}
    before = evidence(playbook, hosts="exchange_servers")
    assert all(before[host]["counts"]["event_1035"] > 0 for host in ("ex01", "ex02", "ex03"))

    # Every step of KB 979174 by this collection's modules: the domain controllers first, then the Exchange servers.
    domain_controllers = [
        {"name": "time", "mailflow.remediation.w32time": {"ntp_servers": ["time.lab.example"]}},
        {"name": "replication", "mailflow.remediation.ad_replication": {}},
        {"name": "ports", "mailflow.remediation.kerberos_ports": {}},
    ]
    exchange_servers = [
        {"name": "time", "mailflow.remediation.w32time": {}},
        {"name": "spns", "mailflow.remediation.spn": {"remove_duplicates": True}},
        {"name": "connectors", "mailflow.remediation.receive_connector_auth": {}},
    ]
    for hosts, tasks in (("domain_controllers", domain_controllers), ("exchange_servers", exchange_servers)):
        run = playbook.run([{"name": "fix", "module_defaults": defaults, "block": tasks}], hosts=hosts)
        assert run.rc == 0, run.stdout + run.stderr

    last_1035 = {host: newest_1035(found) for host, found in evidence(playbook, hosts="exchange_servers").items()}
    # While the causes held, each retry logged event 1035 on the receivers again.
    assert any(last_1035[host] > newest_1035(before[host]) for host in before)

    # The next queue retries (every two seconds in contoso) deliver what was held.
    deadline = time.monotonic() + 30
    after = before
    while time.monotonic() < deadline:
        after = evidence(playbook, hosts="exchange_servers")
        if all(found["counts"]["queues_454"] == 0 for found in after.values()):
            break
        time.sleep(1)
    assert {host: found["counts"]["queues_454"] for host, found in after.items()} == {"ex01": 0, "ex02": 0, "ex03": 0}
    # No event 1035 since the fix: the newest is the one from before it.
    assert {host: newest_1035(found) for host, found in after.items()} == last_1035
