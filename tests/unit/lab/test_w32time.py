"""W32Time in the lab behaves as on Windows Server 2016-2022: domain defaults, registry changes that wait for
``w32tm /config /update`` or a restart, and Group Policy values that win over the service's own."""

from __future__ import annotations

import typing as t

import pytest

from tests.lab import model
from tests.lab.fleet import Fleet, HostException, HostState
from tests.lab.windows import (
    PHASE_CORRECTION_UNLIMITED,
    W32TIME_CONFIG,
    W32TIME_NTP_CLIENT,
    W32TIME_PARAMETERS,
    W32TIME_POLICY_ROOT,
    W32TM_SERVICE_NOT_ACTIVE,
    w32time_policy_key,
)
from tests.unit.lab.conftest import host_entry

Document = dict[str, t.Any]
Load = t.Callable[[Document], Fleet]


def write_value(host: HostState, key: str, name: str, kind: str, value: t.Any) -> None:
    """A registry write as the w32time twin makes it (through the host's writable key)."""
    values = host.writable_registry_key(key, create=True)
    assert values is not None
    values[name] = (kind, value)


def plant_policy(document: Document, host: str, key: str, name: str, kind: str, value: t.Any) -> None:
    """A Group Policy value, planted through the fleet file's per-host registry section."""
    registry = host_entry(document, host).setdefault("registry", {})
    registry.setdefault(key, {})[name] = {"kind": kind, "value": value}


@pytest.mark.parametrize(
    ("host", "limit"),
    [("ex01", PHASE_CORRECTION_UNLIMITED), ("dc02", 172800)],
    ids=["member-unlimited", "dc-48-hours"],
)
def test_phase_correction_defaults_are_windows_domain_defaults(
    host: str, limit: int, clean_document: Document, load: Load
) -> None:
    config = load(clean_document).hosts[host].w32time()
    assert config is not None
    assert (config.max_pos_phase_correction, config.max_neg_phase_correction) == (limit, limit)


@pytest.mark.parametrize(
    ("host", "offset", "ok", "reason"),
    [
        ("ex02", 10 * 86400.0, True, ""),  # a member steps any distance
        ("ex02", -10 * 86400.0, True, ""),
        ("dc02", 3 * 86400.0, False, "phase_correction_limit"),  # a DC refuses more than 48 hours
        ("dc02", 86400.0, True, ""),
    ],
)
def test_resync_steps_as_far_as_the_defaults_allow(
    host: str, offset: float, ok: bool, reason: str, clean_document: Document, load: Load
) -> None:
    host_entry(clean_document, host)["clock_offset"] = offset
    fleet = load(clean_document)
    result = model.resync(fleet, fleet.hosts[host])
    assert (result.ok, result.reason, fleet.hosts[host].clock_offset) == (ok, reason, 0.0 if ok else offset)


def test_an_all_ones_dword_is_unlimited(clean_document: Document, load: Load) -> None:
    host_entry(clean_document, "dc02").update(
        clock_offset=30 * 86400.0,
        registry={W32TIME_CONFIG: {"MaxPosPhaseCorrection": {"kind": "DWord", "value": 0xFFFFFFFF}}},
    )
    fleet = load(clean_document)
    config = fleet.hosts["dc02"].w32time()
    assert config is not None and config.max_pos_phase_correction == PHASE_CORRECTION_UNLIMITED
    # The clock is 30 days ahead: the correction is negative, and MaxNeg keeps its 48-hour default.
    assert model.resync(fleet, fleet.hosts["dc02"]).reason == "phase_correction_limit"
    fleet.hosts["dc02"].clock_offset = -30 * 86400.0
    assert model.resync(fleet, fleet.hosts["dc02"]).ok


def _config_update(host: HostState) -> None:
    assert host.w32time_config_update() == 0


def _restart(host: HostState) -> None:
    host.restart_service("W32Time")


def _stop_and_start(host: HostState) -> None:
    host.stop_service("W32Time")
    host.start_service("W32Time")


@pytest.mark.parametrize(
    ("apply", "reason"),
    [
        (None, ""),  # written, not applied: the service still follows the domain hierarchy
        (_config_update, "nosync"),
        (_restart, "nosync"),
        (_stop_and_start, "nosync"),
    ],
    ids=["registry-only", "w32tm-config-update", "restart-service", "stop-and-start"],
)
def test_a_registry_change_takes_effect_only_when_the_service_rereads_it(
    apply: t.Callable[[HostState], None] | None, reason: str, clean_document: Document, load: Load
) -> None:
    fleet = load(clean_document)
    host = fleet.hosts["ex02"]
    write_value(host, W32TIME_PARAMETERS, "Type", "String", "NoSync")
    configured = host.w32time_configured()
    assert configured is not None and configured.type == "NoSync"
    if apply is not None:
        apply(host)
    assert model.time_source(fleet, host).reason == reason


def test_a_stopped_service_has_no_configuration_in_use(clean_document: Document, load: Load) -> None:
    fleet = load(clean_document)
    host = fleet.hosts["ex02"]
    host.stop_service("W32Time")
    write_value(host, W32TIME_PARAMETERS, "Type", "String", "NTP")
    assert host.w32time() is None
    assert host.w32time_config_update() == W32TM_SERVICE_NOT_ACTIVE
    assert (model.time_source(fleet, host).reason, model.resync(fleet, host).ok) == ("service_stopped", False)
    host.start_service("W32Time")
    config = host.w32time()
    assert config is not None and config.type == "NTP"


def test_a_fleet_loads_with_the_registry_in_use_except_where_the_service_is_stopped(
    clean_document: Document, load: Load
) -> None:
    host_entry(clean_document, "dc02")["services"] = {"W32Time": "Stopped"}
    fleet = load(clean_document)
    in_use = {name: host.w32time_in_use == host.w32time_configured() for name, host in fleet.hosts.items()}
    assert in_use == {"dc01": True, "dc02": False, "ex01": True, "ex02": True}
    assert fleet.hosts["dc02"].w32time_in_use is None


@pytest.mark.parametrize(
    ("service", "start_type", "error_type", "message"),
    [
        (
            "W32Time",
            "Disabled",
            "Microsoft.PowerShell.Commands.ServiceCommandException",
            "Service 'Windows Time (W32Time)' cannot be started due to the following error: "
            "Cannot start service W32Time on computer '.'.",
        ),
        (
            "W32Tm",
            "Automatic",
            "Microsoft.PowerShell.Commands.ServiceCommandException",
            "Cannot find any service with service name 'W32Tm'.",
        ),
    ],
    ids=["disabled", "no-such-service"],
)
def test_a_service_that_cannot_start_raises_what_the_cmdlet_raises(
    service: str, start_type: str, error_type: str, message: str, clean_document: Document, load: Load
) -> None:
    host_entry(clean_document, "ex02")["services"] = {"W32Time": {"status": "Stopped", "start_type": start_type}}
    host = load(clean_document).hosts["ex02"]
    with pytest.raises(HostException) as raised:
        host.restart_service(service)
    assert (raised.value.error_type, raised.value.message) == (error_type, message)
    assert host.w32time() is None


@pytest.mark.parametrize(
    ("key", "name", "kind", "value", "setting", "check"),
    [
        (
            W32TIME_PARAMETERS,
            "Type",
            "String",
            "NoSync",
            "type",
            lambda fleet, host: model.time_source(fleet, host).reason == "nosync",
        ),
        (
            W32TIME_NTP_CLIENT,
            "Enabled",
            "DWord",
            0,
            "ntp_client_enabled",
            lambda fleet, host: model.time_source(fleet, host).reason == "not_configured",
        ),
        (
            W32TIME_CONFIG,
            "MaxNegPhaseCorrection",
            "DWord",
            60,
            "max_neg_phase_correction",
            lambda fleet, host: model.resync(fleet, host).reason == "phase_correction_limit",
        ),
    ],
    ids=["parameters-type", "ntpclient-enabled", "config-max-neg-phase-correction"],
)
def test_group_policy_wins_over_the_service_keys(
    key: str,
    name: str,
    kind: str,
    value: t.Any,
    setting: str,
    check: t.Callable[[Fleet, HostState], bool],
    clean_document: Document,
    load: Load,
) -> None:
    host_entry(clean_document, "ex02")["clock_offset"] = 600.0
    plant_policy(clean_document, "ex02", w32time_policy_key(key), name, kind, value)
    fleet = load(clean_document)
    host = fleet.hosts["ex02"]
    config = host.w32time()
    assert config is not None and config.from_policy == frozenset({setting})
    assert check(fleet, host)

    # What a module that ignored the policy would do: write the service key and apply it. Nothing changes.
    default = {"type": "NT5DS", "ntp_client_enabled": 1, "max_neg_phase_correction": PHASE_CORRECTION_UNLIMITED}
    write_value(host, key, name, kind, default[setting])
    assert host.w32time_config_update() == 0
    assert check(fleet, host)

    # Once the policy no longer sets it, the service key applies at the next re-read.
    policy = host.writable_registry_key(w32time_policy_key(key), create=False)
    assert policy is not None
    del policy[name]
    assert host.w32time_config_update() == 0
    config = host.w32time()
    assert config is not None and config.from_policy == frozenset()
    assert not check(fleet, host)


def test_policy_keys_mirror_the_service_keys() -> None:
    assert w32time_policy_key(W32TIME_NTP_CLIENT) == W32TIME_POLICY_ROOT + r"\TimeProviders\NtpClient"
    assert w32time_policy_key(W32TIME_PARAMETERS) == r"HKLM\SOFTWARE\Policies\Microsoft\W32Time\Parameters"
    with pytest.raises(ValueError, match="not a W32Time service key"):
        w32time_policy_key(r"HKLM\SYSTEM\CurrentControlSet\Control\Lsa")
