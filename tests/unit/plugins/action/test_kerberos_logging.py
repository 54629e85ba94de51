"""kerberos_logging: the decision, check mode, the diff and argument validation, against an emulated host."""

from __future__ import annotations

import typing as t

import pytest
from ansible.errors import AnsibleActionFail, AnsibleConnectionFailure

from ansible_collections.mailflow.remediation.plugins.action.kerberos_logging import ActionModule
from tests.unit.conftest import EmulatedHost, make_action, with_params

KEY = r"HKLM\SYSTEM\CURRENTCONTROLSET\CONTROL\LSA\KERBEROS\PARAMETERS"
VALUE = r"HKLM\SYSTEM\CurrentControlSet\Control\Lsa\Kerberos\Parameters\LogLevel"
NOT_SET = {"key_exists": True, "exists": False, "kind": None, "value": None}


def with_value(host: EmulatedHost, kind: str, value: t.Any) -> None:
    host.state.registry[KEY]["LogLevel"] = (kind, value)


@pytest.mark.parametrize(
    ("existing", "args", "changed", "after"),
    [
        pytest.param(None, {}, True, ("DWord", 1), id="present sets 1 when missing"),
        pytest.param(("DWord", 1), {}, False, ("DWord", 1), id="present is idempotent"),
        pytest.param(("DWord", 0), {"level": 1}, True, ("DWord", 1), id="present raises 0 to 1"),
        pytest.param(("DWord", 1), {"level": 0}, True, ("DWord", 0), id="level 0 turns logging off"),
        pytest.param(("String", "1"), {}, True, ("DWord", 1), id="a REG_SZ is replaced by a REG_DWORD"),
        pytest.param(("DWord", 1), {"state": "absent"}, True, None, id="absent removes"),
        pytest.param(None, {"state": "absent"}, False, None, id="absent is idempotent"),
        pytest.param(
            ("DWord", 1),
            {"state": "restored", "previous": {"exists": False}},
            True,
            None,
            id="restore to did-not-exist",
        ),
        pytest.param(
            None,
            {"state": "restored", "previous": {"exists": True, "value": 0, "kind": "DWord"}},
            True,
            ("DWord", 0),
            id="restore a value",
        ),
        pytest.param(
            ("DWord", 0),
            {"state": "restored", "previous": {"exists": True, "value": 0}},
            False,
            ("DWord", 0),
            id="restore is idempotent",
        ),
    ],
)
@pytest.mark.parametrize("check_mode", [True, False], ids=["check", "apply"])
def test_decision_is_the_same_in_check_mode_and_for_real(
    emulated_host: EmulatedHost, existing: t.Any, args: dict[str, t.Any], changed: bool, after: t.Any, check_mode: bool
) -> None:
    if existing:
        with_value(emulated_host, *existing)
    result = make_action(ActionModule, args, emulated_host, check_mode=check_mode).run(task_vars={})

    assert result["changed"] is changed
    assert (result["article"], result["step"]) == ("KB 979174", "5")
    assert bool(result["changes"]) is changed
    expected_after = {
        "exists": after is not None,
        "kind": after[0] if after else None,
        "value": after[1] if after else None,
    }
    assert {k: result["log_level"][k] for k in ("exists", "kind", "value")} == expected_after
    assert result["previous"]["exists"] is (existing is not None)
    assert (
        result["diff"]["before"] != result["diff"]["after"]
        if changed
        else result["diff"]["before"] == result["diff"]["after"]
    )
    # One round trip to read, one more only when a real run changes something.
    assert len(emulated_host.calls) == (2 if changed and not check_mode else 1)
    if check_mode:
        assert emulated_host.changes == []
        assert emulated_host.state.registry[KEY].get("LogLevel") == existing
    else:
        assert emulated_host.state.registry[KEY].get("LogLevel") == after


def test_previous_round_trips_into_restored(emulated_host: EmulatedHost) -> None:
    with_value(emulated_host, "DWord", 0)
    enabled = make_action(ActionModule, {}, emulated_host).run(task_vars={})
    restored = make_action(ActionModule, {"state": "restored", "previous": enabled["previous"]}, emulated_host).run(
        task_vars={}
    )
    assert restored["changed"] is True
    assert emulated_host.state.registry[KEY]["LogLevel"] == ("DWord", 0)


DWORD_RANGE = "a whole number from -2147483648 to 4294967295"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"state": "enabled"}, "value of state must be one of: present, absent, restored, got: enabled"),
        ({"level": 2}, "value of level must be one of: 0, 1, got: 2"),
        (
            {"level": "high"},
            "argument 'level' is of type str and we were unable to convert to int: \"'high'\" cannot be converted "
            "to an int",
        ),
        ({"state": "restored"}, "state is restored but all of the following are missing: previous"),
        (
            {"loglevel": 1},
            "Unsupported parameters for (mailflow.remediation.kerberos_logging) module: loglevel. "
            "Supported parameters include: domain_password, domain_server, domain_username, level, previous, state.",
        ),
        ({"state": "absent", "level": 1}, "level: only applies to state=present, not state=absent"),
        ({"previous": {"exists": False}}, "previous: only applies to state=restored, not state=present"),
        (
            {"state": "restored", "previous": {"exists": True}},
            "exists is True but all of the following are missing: value found in previous",
        ),
        (
            {"state": "restored", "previous": {"exists": True, "value": None}},
            "previous: exists is true, so value must hold the LogLevel to restore",
        ),
        ({"state": "restored", "previous": [1, 2]}, "previous: must be a dictionary, not a list"),
        (
            {"state": "restored", "previous": "yes"},
            "previous: must be a dictionary; 'yes' is neither JSON nor key=value",
        ),
        (
            {"state": "restored", "previous": {"exists": True, "value": 1, "kind": "String"}},
            "previous: only a REG_DWORD LogLevel can be restored; an earlier run found REG_SZ",
        ),
        (
            {"state": "restored", "previous": {"exists": True, "value": "verbose", "kind": "String"}},
            "previous: only a REG_DWORD LogLevel can be restored; an earlier run found REG_SZ",
        ),
        (
            {"state": "restored", "previous": {"exists": True, "value": ["1"], "kind": "MultiString"}},
            "previous: only a REG_DWORD LogLevel can be restored; an earlier run found REG_MULTI_SZ",
        ),
        (
            {"state": "restored", "previous": {"exists": True, "value": [1, 0], "kind": "Binary"}},
            "previous: only a REG_DWORD LogLevel can be restored; an earlier run found REG_BINARY",
        ),
        (
            {"state": "restored", "previous": {"exists": True, "value": 2**32}},
            f"previous: value 4294967296 is not a REG_DWORD ({DWORD_RANGE})",
        ),
        (
            {"state": "restored", "previous": {"exists": True, "value": -(2**31) - 1}},
            f"previous: value -2147483649 is not a REG_DWORD ({DWORD_RANGE})",
        ),
        (
            {"state": "restored", "previous": {"exists": True, "value": 1.5}},
            f"previous: value 1.5 is not a REG_DWORD ({DWORD_RANGE})",
        ),
        (
            {"state": "restored", "previous": {"exists": True, "value": 1, "color": 1}},
            "Unsupported parameters for (mailflow.remediation.kerberos_logging) module: previous.color. "
            "Supported parameters include: exists, key_exists, kind, value.",
        ),
    ],
)
def test_bad_input_names_the_option_once_and_never_reaches_the_host(
    emulated_host: EmulatedHost, args: dict[str, t.Any], message: str
) -> None:
    with pytest.raises(AnsibleActionFail) as raised:
        make_action(ActionModule, args, emulated_host).run(task_vars={})
    assert raised.value.message == message
    # No chained cause: ansible-core 2.19 would print it as a second copy of the message, with a Python path.
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
    assert emulated_host.calls == []


@pytest.mark.parametrize(
    ("value", "sent", "shown"),
    [(2**31, -(2**31), "2147483648"), (2**32 - 1, -1, "4294967295"), (-1, -1, "4294967295"), ("7", 7, "7")],
    ids=["0x80000000", "0xFFFFFFFF", "-1 as read", "a number as text"],
)
def test_every_dword_can_be_restored_and_travels_as_the_int32_dotnet_takes(
    emulated_host: EmulatedHost, value: t.Any, sent: int, shown: str
) -> None:
    args = {"state": "restored", "previous": {"exists": True, "value": value, "kind": "DWord"}}
    result = make_action(ActionModule, args, emulated_host).run(task_vars={})
    assert emulated_host.calls[-1] == ("kerberos_log_level", {"action": "set", "value": sent})
    assert result["changes"] == [rf"create {VALUE}: (not set) -> {shown} (REG_DWORD)"]
    assert emulated_host.state.registry[KEY]["LogLevel"] == ("DWord", sent & 0xFFFFFFFF)


@pytest.mark.parametrize(
    ("existing", "changed"),
    [
        (("QWord", 1), True),
        (("String", "1"), True),
        (("DWord", 1), False),
    ],
    ids=["REG_QWORD 1 is not a REG_DWORD", "REG_SZ 1 is not either", "REG_DWORD 1"],
)
def test_only_a_dword_1_counts_as_logging_enabled(emulated_host: EmulatedHost, existing: t.Any, changed: bool) -> None:
    with_value(emulated_host, *existing)
    result = make_action(ActionModule, {}, emulated_host, check_mode=True).run(task_vars={})
    assert result["changed"] is changed


def test_value_names_compare_case_insensitively_as_on_windows(emulated_host: EmulatedHost) -> None:
    emulated_host.state.registry[KEY]["loglevel"] = ("DWord", 1)
    result = make_action(ActionModule, {}, emulated_host).run(task_vars={})
    assert result["changed"] is False and result["previous"]["value"] == 1
    removed = make_action(ActionModule, {"state": "absent"}, emulated_host).run(task_vars={})
    assert removed["changed"] is True and emulated_host.state.registry[KEY] == {}


@pytest.mark.parametrize(
    ("transport", "message"),
    [
        (
            "ssh",
            "mailflow.remediation.kerberos_logging needs a winrm or psrp connection to a Windows host "
            "(ansible_connection: winrm or psrp); this task's connection is ssh",
        ),
        (
            "ansible.builtin.local",
            "mailflow.remediation.kerberos_logging needs a winrm or psrp connection to a Windows host "
            "(ansible_connection: winrm or psrp); this task's connection is local",
        ),
    ],
)
def test_a_connection_that_is_not_windows_is_refused_before_any_command(
    emulated_host: EmulatedHost, transport: str, message: str
) -> None:
    action = make_action(ActionModule, {}, emulated_host)
    action._connection.transport = transport
    with pytest.raises(AnsibleActionFail) as raised:
        action.run(task_vars={})
    assert raised.value.message == message and emulated_host.calls == []


def test_become_is_refused_not_ignored(emulated_host: EmulatedHost) -> None:
    action = make_action(ActionModule, {}, emulated_host)
    action._play_context.become = True
    with pytest.raises(AnsibleActionFail) as raised:
        action.run(task_vars={})
    assert raised.value.message == (
        "mailflow.remediation.kerberos_logging does not support become: its host scripts run as the connection's "
        "user, who needs local administrator rights; remove become from the task"
    )
    assert emulated_host.calls == []


@pytest.mark.parametrize("diff", [True, False])
def test_the_diff_is_returned_in_diff_mode_only(emulated_host: EmulatedHost, diff: bool) -> None:
    action = make_action(ActionModule, {}, emulated_host, check_mode=True)
    action._task.diff = diff
    result = action.run(task_vars={})
    assert ("diff" in result) is diff
    if diff:
        assert result["diff"] == {
            "before": f"{VALUE} = (not set)\n",
            "after": f"{VALUE} = 1 (REG_DWORD)\n",
            "before_header": f"{VALUE} (before)",
            "after_header": f"{VALUE} (after, check mode)",
        }


def test_access_denied_fails_with_the_script_and_the_error_and_writes_nothing(emulated_host: EmulatedHost) -> None:
    emulated_host.state.registry_write_denied.add(KEY)
    result = make_action(ActionModule, {}, emulated_host).run(task_vars={})
    assert result["failed"] is True
    assert result["script"] == "kerberos_log_level"
    assert "System.UnauthorizedAccessException" in result["msg"]
    assert emulated_host.changes == []
    assert "changed" not in result or result["changed"] is False


def test_a_lost_connection_reports_the_host_unreachable(emulated_host: EmulatedHost) -> None:
    def refuse(cmd: str, **options: t.Any) -> dict[str, t.Any]:
        raise AnsibleConnectionFailure("winrm connection error: connection refused")

    action = make_action(ActionModule, {}, emulated_host)
    action._low_level_execute_command = refuse
    result = action.run(task_vars={})
    assert result["unreachable"] is True
    assert "kerberos_log_level could not reach the host" in result["msg"]
    assert "connection refused" in result["msg"]


def test_a_change_the_host_did_not_keep_fails_the_task(emulated_host: EmulatedHost) -> None:
    real_execute = emulated_host.execute

    def ignore_writes(
        cmd: str, sudoable: bool = True, in_data: bytes | None = None, **options: t.Any
    ) -> dict[str, t.Any]:
        # A host (or group policy) that silently keeps the old value: the script reports the state after the change.
        return real_execute(
            cmd, sudoable, with_params(in_data, lambda params: params.update(action="read", value=None))
        )

    action = make_action(ActionModule, {}, emulated_host)
    action._low_level_execute_command = ignore_writes
    with pytest.raises(
        AnsibleActionFail, match=r"reported .*\(not set\)' after the change, expected .*= 1 \(REG_DWORD\)"
    ):
        action.run(task_vars={})
