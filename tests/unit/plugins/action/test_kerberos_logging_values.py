"""kerberos_logging and every LogLevel a registry can hold: how each is shown, replaced and restored, at the edges of
a REG_DWORD, and what check mode promises compared with a real run."""

from __future__ import annotations

import typing as t

import pytest
from ansible.errors import AnsibleActionFail

from ansible_collections.mailflow.remediation.plugins.action.kerberos_logging import ActionModule
from tests.unit.conftest import EmulatedHost, make_action

KEY = r"HKLM\SYSTEM\CURRENTCONTROLSET\CONTROL\LSA\KERBEROS\PARAMETERS"
VALUE = r"HKLM\SYSTEM\CurrentControlSet\Control\Lsa\Kerberos\Parameters\LogLevel"


@pytest.mark.parametrize(
    ("stored", "shown"),
    [
        (("DWord", 0xFFFFFFFF), "4294967295 (REG_DWORD)"),
        (("DWord", 0x80000000), "2147483648 (REG_DWORD)"),
        (("QWord", 1), "1 (REG_QWORD)"),
        (("String", "1"), "'1' (REG_SZ)"),
        (("ExpandString", "1"), "'1' (REG_EXPAND_SZ)"),
        (("MultiString", ["1"]), "['1'] (REG_MULTI_SZ)"),
        (("Binary", [1, 0]), "[1, 0] (REG_BINARY)"),
    ],
    ids=lambda value: value[0] if isinstance(value, tuple) else None,
)
def test_a_loglevel_of_any_kind_is_shown_as_regedit_shows_it_and_replaced_by_a_dword_1(
    emulated_host: EmulatedHost, stored: tuple[str, t.Any], shown: str
) -> None:
    emulated_host.state.registry[KEY]["LogLevel"] = stored

    result = make_action(ActionModule, {}, emulated_host).run(task_vars={})

    assert result["found"] == f"{VALUE} = {shown}"
    assert result["changes"] == [f"replace {VALUE}: {shown} -> 1 (REG_DWORD)"]
    assert emulated_host.state.registry[KEY]["LogLevel"] == ("DWord", 1)


@pytest.mark.parametrize(
    ("value", "sent", "shown"),
    [
        (2**31 - 1, 2**31 - 1, "2147483647"),
        (-(2**31), -(2**31), "2147483648"),
        (1000, 1000, "1000"),
        (0, 0, "0"),
    ],
    ids=["0x7FFFFFFF", "0x80000000 as read", "a number of four digits", "0"],
)
def test_a_dword_at_either_end_of_the_int32_range_is_restored_unchanged(
    emulated_host: EmulatedHost, value: int, sent: int, shown: str
) -> None:
    args = {"state": "restored", "previous": {"exists": True, "value": value, "kind": "DWord"}}

    result = make_action(ActionModule, args, emulated_host).run(task_vars={})

    assert "failed" not in result, result.get("msg")
    assert emulated_host.calls[-1] == ("kerberos_log_level", {"action": "set", "value": sent})
    assert result["changes"] == [f"create {VALUE}: (not set) -> {shown} (REG_DWORD)"]
    assert emulated_host.state.registry[KEY]["LogLevel"] == ("DWord", sent & 0xFFFFFFFF)


@pytest.mark.parametrize(
    ("previous", "message"),
    [
        pytest.param({"value": 1}, "missing required arguments: exists found in previous", id="exists left out"),
        pytest.param({}, "missing required arguments: exists found in previous", id="an empty previous"),
        pytest.param(
            {"exists": True, "value": 1, "kind": "Unknown"},
            "previous: only a REG_DWORD LogLevel can be restored; an earlier run found Unknown",
            id="a kind .NET names but regedit does not",
        ),
    ],
)
def test_a_previous_that_does_not_say_what_to_restore_is_refused_before_the_host_is_contacted(
    emulated_host: EmulatedHost, previous: dict[str, t.Any], message: str
) -> None:
    emulated_host.state.registry[KEY]["LogLevel"] = ("DWord", 1)
    args = {"state": "restored", "previous": previous}

    with pytest.raises(AnsibleActionFail) as raised:
        make_action(ActionModule, args, emulated_host).run(task_vars={})

    assert raised.value.message == message
    assert emulated_host.calls == []
    assert emulated_host.state.registry[KEY]["LogLevel"] == ("DWord", 1)


@pytest.mark.parametrize(
    ("registry", "args"),
    [
        pytest.param({}, {}, id="present, no Kerberos\\Parameters key"),
        pytest.param({KEY: {}}, {}, id="present, no LogLevel"),
        pytest.param({KEY: {"LogLevel": ("String", "1")}}, {"level": 0}, id="present, a REG_SZ"),
        pytest.param({KEY: {"LogLevel": ("DWord", 1)}}, {"state": "absent"}, id="absent"),
        pytest.param(
            {KEY: {"LogLevel": ("DWord", 1)}},
            {"state": "restored", "previous": {"exists": True, "value": 4294967295}},
            id="restored",
        ),
    ],
)
def test_check_mode_reports_the_log_level_a_real_run_leaves(
    emulated_host: EmulatedHost, registry: dict[str, t.Any], args: dict[str, t.Any]
) -> None:
    emulated_host.state.registry = {key: dict(values) for key, values in registry.items()}
    predicted = make_action(ActionModule, args, emulated_host, check_mode=True).run(task_vars={})

    applied = make_action(ActionModule, args, emulated_host).run(task_vars={})

    assert predicted["changed"] is applied["changed"] is True
    assert predicted["log_level"] == applied["log_level"]
