"""The action base: what every module shares, shown through a module made for the test (no host script of its own
is needed: the hooks return what a script would)."""

from __future__ import annotations

import typing as t

import pytest

from ansible_collections.mailflow.remediation.plugins.plugin_utils._action_base import (
    ArgumentSpec,
    MailflowAction,
    Plan,
    domain_params,
    with_domain_options,
)
from ansible_collections.mailflow.remediation.plugins.plugin_utils._host_script import HostScriptRaised
from tests.unit.conftest import EmulatedHost, make_action

SECOND_HOP = (
    "this is the second hop: a WinRM logon by NTLM holds no credentials the host can pass on. Give domain_username "
    "and domain_password (once for every module: module_defaults for the group mailflow.remediation.mailflow), or "
    "connect with Kerberos delegation (ansible_winrm_kerberos_delegation: true) or CredSSP "
    "(ansible_winrm_transport: credssp, ansible_psrp_auth: credssp)"
)


class DirectoryModule(MailflowAction):
    """A module that reaches Active Directory; its read raises what the test gives it, or plans what it is told."""

    ARTICLE = "KB 979174"
    STEP = "3"
    SUBJECT = "test"
    REACHES = "Active Directory"
    ARGUMENTS = with_domain_options(ArgumentSpec(argument_spec={"name": {"type": "str"}}))
    raised: HostScriptRaised | None = None
    planned = Plan()

    def read_state(self, params: dict[str, t.Any]) -> t.Any:
        if self.raised is not None:
            raise self.raised
        return {"sent": domain_params(params)}

    def plan(self, params: dict[str, t.Any], before: t.Any) -> Plan:
        return self.planned

    def apply(self, params: dict[str, t.Any], plan: Plan) -> t.Any:
        return plan.expected

    def render(self, state: t.Any) -> str:
        return "state\n"


FQCN = "mailflow.remediation.directory_test"


def run(
    host: EmulatedHost, args: dict[str, t.Any], *, raised: HostScriptRaised | None = None, plan: Plan | None = None
) -> dict[str, t.Any]:
    action = make_action(DirectoryModule, args, host, check_mode=True, fqcn=FQCN)
    action.raised, action.planned = raised, plan or Plan()
    return t.cast(dict, action.run(task_vars={"inventory_hostname": "ex02"}))


@pytest.mark.parametrize(
    ("error_type", "hresult", "args", "message"),
    [
        pytest.param(
            "System.DirectoryServices.DirectoryServicesCOMException",
            -2147016672,
            {},
            "mailflow.remediation.directory_test could not authenticate from ex02 to Active Directory "
            f"(System.DirectoryServices.DirectoryServicesCOMException: An operations error occurred.); {SECOND_HOP}",
            id="ADSI without credentials",
        ),
        pytest.param(
            "System.Management.Automation.Remoting.PSRemotingTransportException",
            -2146233087,
            {},
            "mailflow.remediation.directory_test could not authenticate from ex02 to Active Directory "
            "(System.Management.Automation.Remoting.PSRemotingTransportException: An operations error occurred.); "
            f"{SECOND_HOP}",
            id="a remote session without credentials",
        ),
        pytest.param(
            "System.DirectoryServices.DirectoryServicesCOMException",
            -2147023570,
            {"domain_username": "CONTOSO\\svc", "domain_password": "wrong"},
            "mailflow.remediation.directory_test: Active Directory refused domain_username 'CONTOSO\\\\svc' from "
            "ex02: System.DirectoryServices.DirectoryServicesCOMException: An operations error occurred.",
            id="explicit credentials refused",
        ),
        pytest.param(
            "System.UnauthorizedAccessException",
            -2147024891,
            {},
            "host script test failed on the host: System.UnauthorizedAccessException: An operations error occurred.",
            id="access denied is not a second hop",
        ),
    ],
)
def test_an_onward_authentication_failure_names_the_second_hop_and_the_ways_out(
    emulated_host: EmulatedHost, error_type: str, hresult: int, args: dict[str, t.Any], message: str
) -> None:
    raised = HostScriptRaised("test", error_type, "An operations error occurred.", hresult)
    result = run(emulated_host, args, raised=raised)
    assert result["failed"] is True and result["msg"] == message


def test_the_domain_options_are_validated_and_reach_the_script(emulated_host: EmulatedHost) -> None:
    args = {"domain_server": "dc01.contoso.example", "domain_username": "CONTOSO\\svc", "domain_password": "pw"}
    result = run(emulated_host, args)
    assert result["found"] == "state"
    action = make_action(DirectoryModule, {"domain_username": "CONTOSO\\svc"}, emulated_host)
    with pytest.raises(Exception, match="parameters are required together: domain_username, domain_password"):
        action.run(task_vars={})


def test_an_unfixable_finding_is_reported_and_warned_about_without_failing_or_changing(
    emulated_host: EmulatedHost,
) -> None:
    plan = Plan(unfixable=["ex01 -> dc03 TCP/88 is blocked in the network between them"])
    result = run(emulated_host, {}, plan=plan)
    assert (result["changed"], result.get("failed", False)) == (False, False)
    assert result["unfixable"] == ["ex01 -> dc03 TCP/88 is blocked in the network between them"]
    assert result["warnings"] == [
        "cannot be fixed by this module: ex01 -> dc03 TCP/88 is blocked in the network between them"
    ]
