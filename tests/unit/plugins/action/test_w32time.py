"""w32time: the decision by role, the clock judged by SNTP against the time source, check mode, Group Policy, a fix
that does not take, argument validation and the second hop, against hosts of the lab's fleets."""

from __future__ import annotations

import typing as t

import pytest
from ansible.errors import AnsibleActionFail

from ansible_collections.mailflow.remediation.plugins.action.w32time import ActionModule
from tests.lab.fleet import Fleet, load_fleet
from tests.lab.windows import W32TIME_CONFIG, W32TIME_PARAMETERS, W32TIME_POLICY_ROOT
from tests.unit.conftest import EmulatedHost, make_action

FQCN = "mailflow.remediation.w32time"
CREDENTIALS = {"domain_username": "CONTOSO\\ansible", "domain_password": "Lab-Passw0rd!"}
TYPE = r"HKLM\SYSTEM\CurrentControlSet\Services\W32Time\Parameters\Type"
NTP_SERVER = r"HKLM\SYSTEM\CurrentControlSet\Services\W32Time\Parameters\NtpServer"
ANNOUNCE_FLAGS = r"HKLM\SYSTEM\CurrentControlSet\Services\W32Time\Config\AnnounceFlags"
FOREST_ROOT = (
    "dc01.contoso.example is the forest-root PDC emulator: it should take its time from reliable peers (Type NTP, "
    "AnnounceFlags 5), not from the domain hierarchy, which has nothing above it; give ntp_servers"
)
DC02_SILENT = "dc02.contoso.example does not answer NTP (UDP 123) from {host}.contoso.example: TimedOut"


def on(fleet: Fleet, name: str) -> EmulatedHost:
    emulated = EmulatedHost(fleet.hosts[name])
    emulated.fleet = fleet
    return emulated


def run(emulated: EmulatedHost, args: dict[str, t.Any], *, check_mode: bool = False) -> dict[str, t.Any]:
    action = make_action(ActionModule, args, emulated, check_mode=check_mode, fqcn=FQCN)
    return t.cast(dict, action.run(task_vars={"inventory_hostname": emulated.state.name}))


def w32time_values(fleet: Fleet, name: str) -> tuple[t.Any, ...]:
    host = fleet.hosts[name]
    values = [host.registry_value(key, value) for key, value in ((W32TIME_PARAMETERS, "Type"),)]
    values += [
        host.registry_value(W32TIME_PARAMETERS, "NtpServer"),
        host.registry_value(W32TIME_CONFIG, "AnnounceFlags"),
    ]
    service = host.service("W32Time")
    assert service is not None
    return (*values, service.start_type, service.status, host.clock_offset)


# contoso's planted step 1 drift, host by host: dc01 is the forest root on the domain hierarchy, dc02's W32Time is
# stopped and manual, ex03 does not sync and is seven minutes ahead; ex01 and ex02 are fine but see dc02 silent.
CONTOSO = [
    pytest.param("dc01", {}, [], [FOREST_ROOT, DC02_SILENT.format(host="dc01")], id="dc01 without ntp_servers"),
    pytest.param(
        "dc01",
        {"ntp_servers": ["time.lab.example"]},
        [
            f"set {TYPE}: NT5DS -> NTP",
            f"set {NTP_SERVER}: time.windows.com,0x8 -> time.lab.example,0x8",
            f"set {ANNOUNCE_FLAGS}: 10 -> 5",
        ],
        [DC02_SILENT.format(host="dc01")],
        id="dc01 with ntp_servers",
    ),
    pytest.param(
        "dc02",
        {},
        ["make the W32Time service start automatically (Manual)", "start the W32Time service (Stopped)"],
        [],
        id="dc02 stopped",
    ),
    pytest.param(
        "ex03",
        CREDENTIALS,
        [
            f"set {TYPE}: NoSync -> NT5DS",
            "resync the clock of ex03.contoso.example: it is 420.0 s ahead of dc03.contoso.example (its domain "
            "controller)",
        ],
        [DC02_SILENT.format(host="ex03")],
        id="ex03 NoSync and ahead",
    ),
    pytest.param("ex01", CREDENTIALS, [], [DC02_SILENT.format(host="ex01")], id="ex01 fine"),
]


@pytest.mark.parametrize(("host", "args", "changes", "unfixable"), CONTOSO)
@pytest.mark.parametrize("check_mode", [True, False], ids=["check", "apply"])
def test_contoso_step_1_drift_is_found_the_same_in_check_mode_and_for_real(
    host: str, args: dict[str, t.Any], changes: list[str], unfixable: list[str], check_mode: bool
) -> None:
    fleet = load_fleet("contoso")
    emulated = on(fleet, host)
    before = w32time_values(fleet, host)

    result = run(emulated, args, check_mode=check_mode)

    assert (result["article"], result["step"]) == ("KB 979174", "1")
    assert result["changes"] == changes and result["changed"] is bool(changes)
    assert result["unfixable"] == unfixable
    assert len(emulated.calls) == (2 if changes and not check_mode else 1)
    if check_mode or not changes:
        assert emulated.changes == [] and w32time_values(fleet, host) == before
        return
    # Applied: the cause is gone, and a second run finds nothing to do.
    assert result["diff"]["after"] != result["diff"]["before"]
    assert result["w32time"]["service"] == {"start_type": "Automatic", "status": "Running"}
    assert result["offset"] is not None and abs(result["offset"]) <= 300
    again = run(on(fleet, host), args)
    assert (again["changed"], again["changes"]) == (False, [])


def test_check_mode_shows_the_fix_in_the_diff() -> None:
    result = run(on(load_fleet("contoso"), "ex03"), CREDENTIALS, check_mode=True)
    before, after = result["diff"]["before"], result["diff"]["after"]
    assert "Type = NoSync\n" in before and "Type = NT5DS\n" in after
    assert "clock = 420.0 s ahead of dc03.contoso.example (its domain controller)\n" in before
    assert "clock = within 300 s of dc03.contoso.example (its domain controller)\n" in after
    assert result["diff"]["after_header"] == "W32Time (after, check mode)"


@pytest.mark.parametrize(
    ("offset", "max_offset", "drift"),
    [(299, 300, False), (300, 300, False), (301, 300, True), (-301, 300, True), (121, 120, True), (0.5, 1, False)],
    ids=["299 at 300", "300 at 300", "301 at 300", "301 behind at 300", "121 at 120", "half a second at 1"],
)
def test_max_offset_is_the_boundary_of_drift(offset: float, max_offset: float, drift: bool) -> None:
    fleet = load_fleet("clean")
    fleet.hosts["ex01"].clock_offset = offset
    result = run(on(fleet, "ex01"), {**CREDENTIALS, "max_offset": max_offset}, check_mode=True)
    assert result["changed"] is drift
    assert result["offset"] == offset and result["time_source"] == "dc01.contoso.example"


def test_a_clock_behind_is_resynced_too() -> None:
    fleet = load_fleet("clean")
    fleet.hosts["ex02"].clock_offset = -301
    result = run(on(fleet, "ex02"), CREDENTIALS)
    assert result["changes"] == [
        "resync the clock of ex02.contoso.example: it is 301.0 s behind dc02.contoso.example (its domain controller)"
    ]
    assert fleet.hosts["ex02"].clock_offset == 0 and result["offset"] == 0
    assert [entry["offset"] for entry in result["offsets_before"]] == [-301, -301]


def test_given_dcs_need_no_directory_and_so_no_second_hop() -> None:
    fleet = load_fleet("contoso")
    args = {"pdc_emulator": "dc01.contoso.example", "domain_controllers": ["dc03.contoso.example"]}
    result = run(on(fleet, "ex03"), args, check_mode=True)
    assert result["changed"] is True and result["domain_controllers"] == ["dc03.contoso.example"]
    assert [entry["peer"] for entry in result["offsets"]] == ["dc01.contoso.example", "dc03.contoso.example"]
    # Without the directory the DC the host uses is unknown: the clock is judged against the PDC emulator.
    assert result["time_source"] == "dc01.contoso.example"


@pytest.mark.parametrize("pdc_emulator", ["dc01", "DC01"])
def test_a_pdc_emulator_given_by_its_short_name_in_any_case_is_the_host_it_names(pdc_emulator: str) -> None:
    fleet = load_fleet("contoso")
    args = {"pdc_emulator": pdc_emulator, "domain_controllers": ["dc03"]}
    # On dc01 itself: it is the forest-root PDC emulator, and so on the domain hierarchy it is drift.
    on_the_pdc = run(on(fleet, "dc01"), args, check_mode=True)
    assert (on_the_pdc["role"], on_the_pdc["unfixable"]) == ("forest-root PDC emulator", [FOREST_ROOT])
    # On a member: the PDC emulator is another host, whose clock this one's is judged against.
    on_a_member = run(on(fleet, "ex03"), args, check_mode=True)
    assert (on_a_member["role"], on_a_member["time_source"], on_a_member["offset"]) == ("member", pdc_emulator, 420.0)
    assert on_a_member["changes"][-1] == (
        f"resync the clock of ex03.contoso.example: it is 420.0 s ahead of {pdc_emulator} (PDC emulator)"
    )


def test_without_credentials_a_member_fails_with_the_second_hop_and_writes_nothing() -> None:
    fleet = load_fleet("contoso")
    emulated = on(fleet, "ex03")
    result = run(emulated, {})
    assert result["failed"] is True and result["script"] == "w32time_sync"
    assert result["msg"].startswith(
        "mailflow.remediation.w32time could not authenticate from ex03 to Active Directory "
        "(System.DirectoryServices.DirectoryServicesCOMException: An operations error occurred.); this is the "
        "second hop"
    )
    assert emulated.changes == [] and len(emulated.calls) == 1


def test_wrong_credentials_are_named_as_refused() -> None:
    result = run(on(load_fleet("contoso"), "ex01"), {"domain_username": "CONTOSO\\ansible", "domain_password": "no"})
    assert result["msg"] == (
        "mailflow.remediation.w32time: Active Directory refused domain_username 'CONTOSO\\\\ansible' from ex01: "
        "System.DirectoryServices.DirectoryServicesCOMException: The user name or password is incorrect."
    )


def test_a_dc_that_cannot_be_reached_for_the_directory_is_a_clear_failure() -> None:
    fleet = load_fleet("contoso")
    emulated = on(fleet, "ex01")
    result = run(emulated, {**CREDENTIALS, "domain_server": "dc09.contoso.example"})
    assert result["failed"] is True
    assert result["msg"] == (
        "host script w32time_sync failed on the host: System.Runtime.InteropServices.COMException: "
        "The server is not operational."
    )
    assert emulated.changes == []


def test_a_dc_whose_firewall_drops_ntp_is_reported_by_name_not_a_failure() -> None:
    fleet = load_fleet("clean")
    firewall = fleet.hosts["dc02"].firewall
    assert firewall is not None
    rule = firewall.rule("ADDS-W32Time-NTP-UDP-In")
    assert rule is not None
    rule.enabled = False
    result = run(on(fleet, "ex01"), CREDENTIALS)
    assert (result.get("failed", False), result["changed"]) == (False, False)
    assert result["unfixable"] == [
        "dc02.contoso.example does not answer NTP (UDP 123) from ex01.contoso.example: TimedOut"
    ]
    assert result["warnings"] == [f"cannot be fixed by this module: {result['unfixable'][0]}"]


def test_a_member_whose_dc_is_silent_is_judged_against_the_pdc_emulator() -> None:
    fleet = load_fleet("contoso")
    fleet.hosts["ex02"].clock_offset = 400  # ex02 authenticates against dc02, whose W32Time is stopped
    result = run(on(fleet, "ex02"), CREDENTIALS, check_mode=True)
    assert result["time_source"] == "dc01.contoso.example"
    assert "it is 400.0 s ahead of dc01.contoso.example (PDC emulator)" in result["changes"][0]


def test_another_dcs_clock_is_named_for_a_run_on_that_dc() -> None:
    fleet = load_fleet("clean")
    fleet.hosts["dc02"].clock_offset = -500
    result = run(on(fleet, "ex01"), CREDENTIALS)
    assert result["changed"] is False
    assert result["unfixable"] == [
        "the clock of dc02.contoso.example is 500.0 s behind dc01.contoso.example (max_offset 300); run this module "
        "on dc02.contoso.example"
    ]


def policy(fleet: Fleet, host: str, key: str, name: str, kind: str, value: t.Any) -> None:
    fleet.hosts[host].registry.setdefault(f"{W32TIME_POLICY_ROOT}\\{key}".upper(), {})[name] = (kind, value)


def test_group_policy_is_reported_and_never_fought() -> None:
    fleet = load_fleet("clean")
    policy(fleet, "ex01", "Parameters", "Type", "String", "NoSync")
    fleet.hosts["ex01"].clock_offset = 600
    emulated = on(fleet, "ex01")
    result = run(emulated, CREDENTIALS)
    assert (result["changed"], result["changes"]) == (False, [])
    assert result["unfixable"] == [
        "W32Time Type is NoSync on ex01.contoso.example, set by Group Policy "
        r"(HKLM\SOFTWARE\Policies\Microsoft\W32Time\Parameters\Type); change the policy, the service key would not "
        "take effect",
        "the clock of ex01.contoso.example is 600.0 s ahead of dc01.contoso.example (its domain controller), and "
        "Group Policy decides how it syncs",
    ]
    assert emulated.changes == [] and len(emulated.calls) == 1
    assert "Type = NoSync (Group Policy)\n" in result["diff"]["before"]


def test_a_policy_that_sets_what_the_role_wants_is_no_drift() -> None:
    fleet = load_fleet("clean")
    policy(fleet, "ex01", "Parameters", "Type", "String", "NT5DS")
    fleet.hosts["ex01"].registry[W32TIME_PARAMETERS.upper()]["Type"] = ("String", "NoSync")
    result = run(on(fleet, "ex01"), CREDENTIALS)
    assert (result["changed"], result["unfixable"], result["w32time"]["set_by_policy"]) == (False, [], ["type"])


@pytest.mark.parametrize(
    ("host", "offset", "silence", "message"),
    [
        pytest.param(
            "dc02",
            200000,
            None,
            "mailflow.remediation.w32time: the clock of dc02.contoso.example is still 200000.0 s ahead of "
            "dc01.contoso.example (PDC emulator) after the fix (w32tm /resync exit code 0x800705B4)",
            id="beyond MaxPosPhaseCorrection",
        ),
        pytest.param(
            "ex02",
            420,
            "dc02",
            "mailflow.remediation.w32time: the clock of ex02.contoso.example is still 420.0 s ahead of "
            "dc01.contoso.example (PDC emulator) after the fix (w32tm /resync exit code 0x800705B4)",
            id="its own DC serves no time",
        ),
    ],
)
def test_an_offset_still_too_large_after_the_fix_fails_the_task_with_the_numbers(
    host: str, offset: float, silence: str | None, message: str
) -> None:
    fleet = load_fleet("clean")
    fleet.hosts["ex02"].logon_server = "dc02"
    fleet.hosts[host].clock_offset = offset
    if silence is not None:
        fleet.hosts[silence].stop_service("W32Time")
    with pytest.raises(AnsibleActionFail) as raised:
        run(on(fleet, host), CREDENTIALS)
    assert raised.value.message == message
    assert raised.value.result["resync_exit_code"] == 0x800705B4 - 2**32


def test_access_denied_to_the_w32time_key_fails_and_writes_nothing() -> None:
    fleet = load_fleet("contoso")
    fleet.hosts["ex03"].registry_write_denied = {W32TIME_PARAMETERS.upper()}
    emulated = on(fleet, "ex03")
    result = run(emulated, CREDENTIALS)
    assert result["failed"] is True and result["error_type"] == "System.UnauthorizedAccessException"
    assert emulated.changes == [] and fleet.hosts["ex03"].clock_offset == 420


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"max_offset": 0}, "max_offset: must be a number of seconds greater than 0, not 0"),
        ({"max_offset": -5}, "max_offset: must be a number of seconds greater than 0, not -5"),
        ({"max_offset": "five minutes"}, "max_offset: must be a number of seconds greater than 0, not 'five minutes'"),
        ({"max_offset": True}, "max_offset: must be a number of seconds greater than 0, not True"),
        ({"max_offset": "nan"}, "max_offset: must be a number of seconds greater than 0, not 'nan'"),
        ({"ntp_timeout": 0}, "ntp_timeout: must be from 1 to 30 seconds, not 0"),
        ({"ntp_timeout": 31}, "ntp_timeout: must be from 1 to 30 seconds, not 31"),
        ({"ntp_servers": []}, "ntp_servers: give at least one peer, or leave the option out"),
        (
            {"ntp_servers": ["time.example.com 0x8"]},
            "ntp_servers: 'time.example.com 0x8' is not a host name or address, optionally with flags (name,0x8)",
        ),
        (
            {"ntp_servers": ["time.example.com,8"]},
            "ntp_servers: 'time.example.com,8' is not a host name or address, optionally with flags (name,0x8)",
        ),
        ({"pdc_emulator": "dc01 contoso"}, "pdc_emulator: 'dc01 contoso' is not a host name"),
        ({"domain_controllers": ["dc01", "-dc02"]}, "domain_controllers: '-dc02' is not a host name"),
        (
            {"domain_username": "CONTOSO\\ansible"},
            "parameters are required together: domain_username, domain_password",
        ),
        (
            {"maxoffset": 300},
            "Unsupported parameters for (mailflow.remediation.w32time) module: maxoffset. Supported parameters "
            "include: domain_controllers, domain_password, domain_server, domain_username, max_offset, ntp_servers, "
            "ntp_timeout, pdc_emulator.",
        ),
    ],
)
def test_bad_input_names_the_option_and_never_reaches_the_host(args: dict[str, t.Any], message: str) -> None:
    emulated = on(load_fleet("contoso"), "ex01")
    with pytest.raises(AnsibleActionFail) as raised:
        run(emulated, args)
    assert raised.value.message == message
    assert emulated.calls == [] and emulated.stdins == []
