"""The action base's failures as an administrator reads them: the module named by its FQCN however the task spells it,
a host that answers with something else than the script's document, async, and which directory errors are the
second hop."""

from __future__ import annotations

import typing as t

import pytest
from ansible.errors import AnsibleActionFail

from ansible_collections.mailflow.remediation.plugins.action.kerberos_logging import ActionModule
from ansible_collections.mailflow.remediation.plugins.plugin_utils._host_script import HostScriptRaised
from tests.unit.conftest import EmulatedHost, make_action
from tests.unit.plugins.plugin_utils.test_action_base import FQCN, SECOND_HOP, DirectoryModule

KERBEROS_LOGGING = "mailflow.remediation.kerberos_logging"


@pytest.mark.parametrize(
    ("error_type", "hresult", "args", "message"),
    [
        pytest.param(
            "System.DirectoryServices.ActiveDirectory.ActiveDirectoryOperationException",
            -2146233087,
            {},
            f"{FQCN} could not authenticate from ex02 to Active Directory "
            "(System.DirectoryServices.ActiveDirectory.ActiveDirectoryOperationException: Current security context is "
            f"not associated with an Active Directory domain or forest.); {SECOND_HOP}",
            id="no domain context without credentials",
        ),
        pytest.param(
            "System.DirectoryServices.DirectoryServicesCOMException",
            -2147016672,
            {"domain_username": "CONTOSO\\svc", "domain_password": "pw"},
            "host script test failed on the host: System.DirectoryServices.DirectoryServicesCOMException: Current "
            "security context is not associated with an Active Directory domain or forest.",
            id="with credentials an operations error is not the second hop",
        ),
    ],
)
def test_only_a_logon_without_credentials_is_explained_as_the_second_hop(
    emulated_host: EmulatedHost, error_type: str, hresult: int, args: dict[str, t.Any], message: str
) -> None:
    raised = HostScriptRaised(
        "test",
        error_type,
        "Current security context is not associated with an Active Directory domain or forest.",
        hresult,
    )
    action = make_action(DirectoryModule, args, emulated_host, check_mode=True, fqcn=FQCN)
    action.raised = raised

    result = action.run(task_vars={"inventory_hostname": "ex02"})

    assert result["failed"] is True and result["msg"] == message


def test_a_host_that_answers_without_the_document_fails_the_task_naming_the_script(
    emulated_host: EmulatedHost,
) -> None:
    action = make_action(ActionModule, {}, emulated_host)
    action._low_level_execute_command = lambda cmd, **options: {"rc": 0, "stdout": "Welcome to ex01", "stderr": ""}

    result = action.run(task_vars={})

    assert result == {
        "article": "KB 979174",
        "step": "5",
        "failed": True,
        "msg": "host script kerberos_log_level returned output that is not its JSON document (rc=0); stdout: "
        "Welcome to ex01",
        "script": "kerberos_log_level",
    }


def test_async_is_refused_before_the_host_is_contacted(emulated_host: EmulatedHost) -> None:
    action = make_action(ActionModule, {}, emulated_host)
    action._task.async_val = 60

    with pytest.raises(AnsibleActionFail) as raised:
        action.run(task_vars={})

    assert raised.value.message == f"This action ({KERBEROS_LOGGING}) does not support async."
    assert emulated_host.calls == []


def refuse_ssh(action: t.Any) -> None:
    action._connection.transport = "ssh"


def refuse_become(action: t.Any) -> None:
    action._play_context.become = True


@pytest.mark.parametrize(
    ("args", "change", "message"),
    [
        pytest.param(
            {"loglevel": 1},
            None,
            f"Unsupported parameters for ({KERBEROS_LOGGING}) module: loglevel. Supported parameters include: "
            "domain_password, domain_server, domain_username, level, previous, state.",
            id="an unknown option",
        ),
        pytest.param(
            {},
            refuse_ssh,
            f"{KERBEROS_LOGGING} needs a winrm or psrp connection to a Windows host (ansible_connection: winrm or "
            "psrp); this task's connection is ssh",
            id="a connection that is not Windows",
        ),
        pytest.param(
            {},
            refuse_become,
            f"{KERBEROS_LOGGING} does not support become: its host scripts run as the connection's user, who needs "
            "local administrator rights; remove become from the task",
            id="become",
        ),
    ],
)
def test_a_task_that_calls_the_module_by_its_short_name_is_told_its_fqcn(
    emulated_host: EmulatedHost,
    args: dict[str, t.Any],
    change: t.Callable[[t.Any], None] | None,
    message: str,
) -> None:
    # A play with `collections: [mailflow.remediation]` writes `kerberos_logging:`; ansible-core resolves the FQCN.
    action = make_action(ActionModule, args, emulated_host)
    action._task.action = "kerberos_logging"
    if change is not None:
        change(action)

    with pytest.raises(AnsibleActionFail) as raised:
        action.run(task_vars={})

    assert raised.value.message == message
    assert emulated_host.calls == []


def test_the_second_hop_names_the_fqcn_when_the_task_uses_the_short_name(emulated_host: EmulatedHost) -> None:
    action = make_action(DirectoryModule, {}, emulated_host, check_mode=True, fqcn=FQCN)
    action._task.action = "directory_test"
    action.raised = HostScriptRaised(
        "test", "System.DirectoryServices.DirectoryServicesCOMException", "An operations error occurred.", -2147016672
    )

    result = action.run(task_vars={"inventory_hostname": "ex02"})

    assert result["msg"] == (
        f"{FQCN} could not authenticate from ex02 to Active Directory "
        f"(System.DirectoryServices.DirectoryServicesCOMException: An operations error occurred.); {SECOND_HOP}"
    )
