"""ad_replication: the neighbours judged, the sync (pull from all partners, then push outward) and what it must leave,
check mode, a partner that still fails, a denied sync, the DC a member server audits, and argument validation."""

from __future__ import annotations

import typing as t

import pytest
from ansible.errors import AnsibleActionFail

from ansible_collections.mailflow.remediation.plugins.action.ad_replication import ActionModule
from tests.lab.fleet import Fleet, fleet_from_document, load_fleet
from tests.lab.topology import Block
from tests.unit.conftest import EmulatedHost, make_action
from tests.unit.lab.conftest import fleet_document, host_entry

FQCN = "mailflow.remediation.ad_replication"
CREDENTIALS = {"domain_username": "CONTOSO\\ansible", "domain_password": "Lab-Passw0rd!"}
PARTITIONS = [
    "DC=contoso,DC=example",
    "CN=Configuration,DC=contoso,DC=example",
    "CN=Schema,CN=Configuration,DC=contoso,DC=example",
    "DC=DomainDnsZones,DC=contoso,DC=example",
    "DC=ForestDnsZones,DC=contoso,DC=example",
]


def on(fleet: Fleet, name: str) -> EmulatedHost:
    emulated = EmulatedHost(fleet.hosts[name])
    emulated.fleet = fleet
    return emulated


def run(emulated: EmulatedHost, args: dict[str, t.Any], *, check_mode: bool = False) -> dict[str, t.Any]:
    action = make_action(ActionModule, args, emulated, check_mode=check_mode, fqcn=FQCN)
    return t.cast(dict, action.run(task_vars={"inventory_hostname": emulated.state.name}))


def links(fleet: Fleet, dc: str) -> dict[str, tuple[int, int]]:
    return {link.source: (link.last_result, link.consecutive_failures) for link in fleet.directory.links_into(dc)}


SYNC_DC03 = [
    f"sync {partition} on dc03.contoso.example from dc01.contoso.example, dc02.contoso.example across sites, then "
    "push it outward (repadmin /syncall /AdeP)"
    for partition in PARTITIONS
]


@pytest.mark.parametrize(
    ("host", "args", "dc", "changes"),
    [
        pytest.param("dc03", {}, "dc03.contoso.example", SYNC_DC03, id="dc03, its Branch links down"),
        pytest.param("dc01", {}, "dc01.contoso.example", [], id="dc01 healthy"),
        pytest.param("ex03", CREDENTIALS, "dc03.contoso.example", SYNC_DC03, id="ex03 audits the DC it uses"),
        pytest.param(
            "ex01",
            {**CREDENTIALS, "domain_server": "dc03.contoso.example"},
            "dc03.contoso.example",
            SYNC_DC03,
            id="ex01 given domain_server",
        ),
        pytest.param(
            "dc01", {"domain_server": "dc03.contoso.example"}, "dc01.contoso.example", [], id="a DC audits itself"
        ),
    ],
)
@pytest.mark.parametrize("check_mode", [True, False], ids=["check", "apply"])
def test_contoso_step_2_drift_is_found_the_same_in_check_mode_and_for_real(
    host: str, args: dict[str, t.Any], dc: str, changes: list[str], check_mode: bool
) -> None:
    fleet = load_fleet("contoso")
    emulated = on(fleet, host)
    result = run(emulated, args, check_mode=check_mode)

    assert (result["article"], result["step"], result["dc"]) == ("KB 979174", "2", dc)
    assert result["changes"] == changes and result["changed"] is bool(changes)
    assert result["partitions"] == PARTITIONS
    assert len(emulated.calls) == (2 if changes and not check_mode else 1)
    if check_mode or not changes:
        assert emulated.changes == []
        assert links(fleet, "dc03") == {"dc01": (1722, 24), "dc02": (1722, 24)}
        return
    assert links(fleet, "dc03") == {"dc01": (0, 0), "dc02": (0, 0)}
    assert {neighbor["status"] for neighbor in result["neighbors"]} == {"ok"}
    assert {neighbor["status"] for neighbor in result["neighbors_before"]} == {"failing"}
    # ex02's SPNs, written on dc01, reached dc03 with the sync.
    assert not fleet.directory.backlog("dc03")
    again = run(on(fleet, host), args)
    assert (again["changed"], again["changes"]) == (False, [])


def test_the_diff_shows_each_neighbour_per_naming_context() -> None:
    result = run(on(load_fleet("contoso"), "dc03"), {}, check_mode=True)
    before = result["diff"]["before"].splitlines()
    after = result["diff"]["after"].splitlines()
    assert before[0] == after[0] == "dc03.contoso.example:" and len(before) == len(after) == 1 + 2 * len(PARTITIONS)
    domain_nc = next(line for line in before if line.startswith("  DC=contoso,DC=example <- dc01"))
    assert domain_nc.startswith(
        "  DC=contoso,DC=example <- dc01.contoso.example: failing with 1722 (RPC_S_SERVER_UNAVAILABLE), 24 "
        "consecutive failures, last success "
    )
    assert domain_nc.endswith(" s ago)")
    assert "  DC=contoso,DC=example <- dc01.contoso.example: ok" in after


@pytest.mark.parametrize(
    ("age", "max_age", "changed"),
    [(3000, 3600, False), (3700, 3600, True), (20000, 21600, False), (22000, 21600, True)],
    ids=["within an hour", "past an hour", "within the default", "past the default"],
)
def test_a_neighbour_without_recent_success_is_stale(age: int, max_age: int, changed: bool) -> None:
    document = fleet_document("clean")
    host_entry(document, "dc02")["replication_partners"] = [{"source": "dc01", "last_success_age": age}]
    fleet = fleet_from_document("stale", document)
    args = {} if max_age == 21600 else {"max_age": max_age}
    result = run(on(fleet, "dc02"), args)
    assert result["changed"] is changed
    if changed:
        assert {n["text"] for n in result["neighbors_before"]} == {f"no success for {age} s (max_age {max_age})"}
        assert {n["status"] for n in result["neighbors"]} == {"ok"}


def dc01_link_failing_for_good() -> Fleet:
    """contoso with dc03's link from dc01 still failing after any sync (dc02's recovers)."""
    document = fleet_document("contoso")
    host_entry(document, "dc03")["replication_partners"][0]["persistent"] = True
    return fleet_from_document("persistent", document)


def test_a_partner_that_still_fails_fails_the_task_with_its_error_code() -> None:
    fleet = dc01_link_failing_for_good()
    with pytest.raises(AnsibleActionFail) as raised:
        run(on(fleet, "dc03"), {})
    message = raised.value.message
    assert message.startswith(
        "mailflow.remediation.ad_replication: dc03.contoso.example still fails to replicate after the sync: from "
        "dc01.contoso.example: error 1722 (RPC_S_SERVER_UNAVAILABLE) (DC=contoso,DC=example, "
    )
    assert "; the sync reported dc03.contoso.example from dc01.contoso.example: 1722 (RPC_S_SERVER_UNAVAILABLE)" in (
        message
    )
    assert "dc02.contoso.example: error" not in message  # the other partner recovered
    assert links(fleet, "dc03")["dc02"] == (0, 0)


def test_the_failed_result_carries_what_the_sync_reported_and_each_neighbour_after_it() -> None:
    with pytest.raises(AnsibleActionFail) as raised:
        run(on(dc01_link_failing_for_good(), "dc03"), {})
    # What an administrator reads in the failed task's result (and a playbook can register), beyond its message.
    result = raised.value.result
    assert result["failed"] is True
    assert [(e["target"], e["source"], e["partition"], e["code"]) for e in result["sync_errors"]] == [
        ("dc03.contoso.example", "dc01.contoso.example", partition, 1722) for partition in PARTITIONS
    ]
    assert sorted((n["source"], n["partition"], n["status"]) for n in result["neighbors"]) == sorted(
        [("dc01.contoso.example", partition, "failing") for partition in PARTITIONS]
        + [("dc02.contoso.example", partition, "ok") for partition in PARTITIONS]
    )


def test_a_sync_the_account_may_not_request_fails_and_replicates_nothing() -> None:
    document = fleet_document("contoso")
    document["directory"]["sync_denied"] = ["dc01", "dc02", "dc03"]
    fleet = fleet_from_document("denied", document)
    emulated = on(fleet, "dc03")
    with pytest.raises(AnsibleActionFail) as raised:
        run(emulated, {})
    assert "the sync reported dc01.contoso.example from dc03.contoso.example: 8453 (ERROR_DS_DRA_ACCESS_DENIED)" in (
        raised.value.message
    )
    assert emulated.changes == [] and fleet.directory.backlog("dc03")


def test_without_credentials_a_member_fails_with_the_second_hop() -> None:
    emulated = on(load_fleet("contoso"), "ex03")
    result = run(emulated, {})
    assert result["failed"] is True and "this is the second hop" in result["msg"]
    assert result["msg"].startswith("mailflow.remediation.ad_replication could not authenticate from ex03")
    assert emulated.changes == []


def test_an_unreachable_dc_is_a_clear_failure() -> None:
    fleet = load_fleet("contoso")
    fleet.network.blocked.append(Block("ex01", "dc03", "TCP", 389))
    result = run(on(fleet, "ex01"), {**CREDENTIALS, "domain_server": "dc03.contoso.example"})
    assert result["msg"] == (
        "host script ad_replication failed on the host: System.Runtime.InteropServices.COMException: The server is "
        "not operational."
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"max_age": 0}, "max_age: must be a number of seconds greater than 0, not 0"),
        (
            {"max_age": "a day"},
            "argument 'max_age' is of type str and we were unable to convert to int: \"'a day'\" cannot be converted "
            "to an int",
        ),
        ({"domain_password": "x"}, "parameters are required together: domain_username, domain_password"),
        (
            {"partition": "DC=contoso,DC=example"},
            "Unsupported parameters for (mailflow.remediation.ad_replication) module: partition. Supported "
            "parameters include: domain_password, domain_server, domain_username, max_age.",
        ),
    ],
)
def test_bad_input_names_the_option_and_never_reaches_the_host(args: dict[str, t.Any], message: str) -> None:
    emulated = on(load_fleet("contoso"), "dc03")
    with pytest.raises(AnsibleActionFail) as raised:
        run(emulated, args)
    assert raised.value.message == message
    assert emulated.calls == [] and emulated.stdins == []
