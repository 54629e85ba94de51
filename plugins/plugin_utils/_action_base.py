# Copyright: mailflow.remediation contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The orchestration every module shares: validate, read, decide, change at most once, report.

Private to the mailflow.remediation collection; not a public API and may change without notice.

A module's action plugin subclasses :class:`MailflowAction`, declares its argument spec and the article step it
serves, and fills in the hooks ``read_state``, ``plan``, ``apply`` and ``render``. The base guarantees that:

- arguments are validated before the host is touched (a bad argument never costs a round trip);
- check mode takes the same decision as a real run and writes nothing;
- the result has one shape: ``changed``, ``article``, ``step``, ``found``, ``changes`` and ``unfixable`` (what the
  module found wrong but cannot fix here, in an administrator's words: a network firewall between two hosts, a
  setting that Group Policy enforces), plus ``diff`` in diff mode;
- a change is verified against the state the change script returns, without a third round trip;
- a module that reaches Active Directory or Exchange from the host (``REACHES``) takes the ``domain_*`` options
  (``with_domain_options``) and fails with a message that names the second hop when the host cannot authenticate
  onward.

An unfixable finding never fails a task by itself: the host's other checks still run, the finding is returned in
``unfixable`` and shown as a warning, and a CI gate counts it. A task fails when a change it made did not take.
"""

from __future__ import annotations

import abc
import typing as t
from dataclasses import dataclass, field

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.validation import check_type_dict
from ansible.plugins.action import ActionBase

from ansible_collections.mailflow.remediation.plugins.plugin_utils._host_script import (
    HostScriptError,
    HostScriptRaised,
    HostUnreachable,
    run_host_script,
)

# The connection plugins that carry the collection's host scripts (ansible.builtin.winrm and ansible.builtin.psrp).
SUPPORTED_CONNECTIONS = ("winrm", "psrp")

# The options of every module that reaches Active Directory or Exchange from the host, as microsoft.ad names them;
# set once for all with module_defaults and the action group mailflow.remediation.mailflow.
DOMAIN_OPTIONS: dict[str, dict[str, t.Any]] = {
    "domain_server": {"type": "str"},
    "domain_username": {"type": "str"},
    "domain_password": {"type": "str", "no_log": True},
}
# How Windows reports that a host could not authenticate onward, by exception type and HResult (never by message,
# which is localized). None: any HResult of that type.
ONWARD_FAILURES: dict[str, tuple[int, ...] | None] = {
    # ADSI from a logon without network credentials: "An operations error occurred." (0x80072020).
    "System.DirectoryServices.DirectoryServicesCOMException": (-2147016672,),
    # System.DirectoryServices.ActiveDirectory: "Current security context is not associated with an AD domain".
    "System.DirectoryServices.ActiveDirectory.ActiveDirectoryOperationException": None,
    # New-PSSession to the Exchange endpoint: Kerberos without a ticket or a password (0x8009030E and others).
    "System.Management.Automation.Remoting.PSRemotingTransportException": None,
}
LOGON_FAILURE = -2147023570  # 0x8007052E: explicit credentials that the DC refused
SECOND_HOP_WAYS_OUT = (
    "this is the second hop: a WinRM logon by NTLM holds no credentials the host can pass on. Give "
    "domain_username and domain_password (once for every module: module_defaults for the group "
    "mailflow.remediation.mailflow), or connect with Kerberos delegation (ansible_winrm_kerberos_delegation: true) "
    "or CredSSP (ansible_winrm_transport: credssp, ansible_psrp_auth: credssp)"
)


def with_domain_options(spec: ArgumentSpec) -> ArgumentSpec:
    """A module's argument spec with the domain_* options added."""
    together = [*spec.get("required_together", []), ("domain_username", "domain_password")]
    return ArgumentSpec(
        **{**spec, "argument_spec": {**spec["argument_spec"], **DOMAIN_OPTIONS}}, required_together=together
    )


def domain_params(params: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    """The domain_* options as a host script's parameters (its contract declares them as inputs)."""
    return {name: params.get(name) for name in DOMAIN_OPTIONS}


def check_connection(action: ActionBase) -> None:
    """Host scripts are Windows PowerShell, sent through the winrm or psrp connection; refuse anything else."""
    fqcn = action._task.resolved_action or action._task.action
    connection = str(getattr(action._connection, "transport", "") or "").rsplit(".", 1)[-1]
    if connection not in SUPPORTED_CONNECTIONS:
        raise AnsibleActionFail(
            f"{fqcn} needs a winrm or psrp connection to a Windows host (ansible_connection: winrm or psrp); "
            f"this task's connection is {connection or 'unknown'}"
        )
    if action._play_context.become:
        raise AnsibleActionFail(
            f"{fqcn} does not support become: its host scripts run as the connection's user, who needs local "
            "administrator rights; remove become from the task"
        )


class ArgumentSpec(t.TypedDict, total=False):
    argument_spec: dict[str, t.Any]
    mutually_exclusive: list[t.Sequence[str]]
    required_together: list[t.Sequence[str]]
    required_one_of: list[t.Sequence[str]]
    required_if: list[t.Sequence[t.Any]]
    required_by: dict[str, t.Sequence[str]]


@dataclass(frozen=True)
class Plan:
    """What a run decided: the changes in an administrator's words and the state they lead to, and what is wrong
    but cannot be fixed here (in an administrator's words too)."""

    changes: list[str] = field(default_factory=list)
    expected: t.Any = None
    change_params: dict[str, t.Any] | None = None
    unfixable: list[str] = field(default_factory=list)


class ArgumentError(Exception):
    """A combination of arguments that the argument spec cannot express; names the option at fault."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"{option}: {message}")


class MailflowAction(ActionBase):
    """Base of the collection's action plugins."""

    TRANSFERS_FILES = False
    _requires_connection = True
    _supports_check_mode = True
    _supports_async = False

    ARGUMENTS: t.ClassVar[ArgumentSpec]
    ARTICLE: t.ClassVar[str]
    STEP: t.ClassVar[str]
    SUBJECT: t.ClassVar[str]
    # What the module's scripts reach beyond the host ("Active Directory", "Exchange"), or None: the host alone.
    REACHES: t.ClassVar[str | None] = None

    # The host as the inventory names it (set by run), for the transcripts the seam may record.
    _inventory_hostname: str | None = None

    # --- hooks -------------------------------------------------------------------------------------------------
    def check_arguments(self, params: dict[str, t.Any]) -> None:
        """Raise :class:`ArgumentError` for combinations the spec cannot express. Runs before host contact."""

    @abc.abstractmethod
    def read_state(self, params: dict[str, t.Any]) -> t.Any:
        """Read the host's state: one round trip."""

    @abc.abstractmethod
    def plan(self, params: dict[str, t.Any], before: t.Any) -> Plan:
        """Decide, without host contact, what to change; the same decision in check mode and for real."""

    @abc.abstractmethod
    def apply(self, params: dict[str, t.Any], plan: Plan) -> t.Any:
        """Make the change: one round trip, returning the state after it."""

    @abc.abstractmethod
    def render(self, state: t.Any) -> str:
        """The state as the text lines that ``--diff`` shows."""

    def report(self, params: dict[str, t.Any], before: t.Any, after: t.Any) -> dict[str, t.Any]:
        """Module-specific return values."""
        return {}

    # --- shared ------------------------------------------------------------------------------------------------
    def run_script(self, name: str, params: t.Mapping[str, t.Any]) -> t.Any:
        return run_host_script(self, name, params, host=self._inventory_hostname)

    def run(self, tmp: t.Any = None, task_vars: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        result = super().run(tmp, task_vars)
        del tmp
        self._inventory_hostname = (task_vars or {}).get("inventory_hostname")

        params = self._validated_arguments()
        self._check_connection()
        result.update(self.judge(params))
        return result

    def judge(self, params: dict[str, t.Any]) -> dict[str, t.Any]:
        """The module's run once its arguments are valid: read, decide, change (outside check mode), as one result.

        The audit of a whole host (the audit module) calls it for each check, in check mode, after reading every
        check in one round trip.
        """
        result: dict[str, t.Any] = {"article": self.ARTICLE, "step": self.STEP}
        try:
            before = self.read_state(params)
            plan = self.plan(params, before)
            after = plan.expected if plan.changes else before
            if plan.changes and not self._task.check_mode:
                after = self.apply(params, plan)
                if self.render(after) != self.render(plan.expected):
                    raise AnsibleActionFail(
                        f"the host reported '{self.render(after).strip()}' after the change, "
                        f"expected '{self.render(plan.expected).strip()}'"
                    )
        except HostUnreachable as exc:
            result.update(unreachable=True, msg=str(exc), script=exc.script)
            return result
        except HostScriptRaised as exc:
            host = str(self._inventory_hostname or "the host")
            result.update(
                failed=True, msg=self._explain(exc, params, host), script=exc.script, error_type=exc.error_type
            )
            return result
        except HostScriptError as exc:
            result.update(failed=True, msg=str(exc), script=exc.script)
            return result

        result.update(
            changed=bool(plan.changes),
            found=self.render(before).strip(),
            changes=plan.changes,
            unfixable=plan.unfixable,
        )
        if plan.unfixable:
            result["warnings"] = [f"cannot be fixed by this module: {item}" for item in plan.unfixable]
        if self._task.diff:
            result["diff"] = dict(
                before=self.render(before),
                after=self.render(after),
                before_header=f"{self.SUBJECT} (before)",
                after_header=f"{self.SUBJECT} ({'after, check mode' if self._task.check_mode else 'after'})",
            )
        result.update(self.report(params, before, after))
        return result

    def _explain(self, exc: HostScriptRaised, params: dict[str, t.Any], host: str) -> str:
        """The failure in an administrator's words; onward authentication failures say what to do about them."""
        if self.REACHES is None:
            return str(exc)
        fqcn = self._task.resolved_action or self._task.action
        if params.get("domain_username") and exc.hresult == LOGON_FAILURE:
            return (
                f"{fqcn}: {self.REACHES} refused domain_username {params['domain_username']!r} from {host}: "
                f"{exc.error_type}: {exc.error_message}"
            )
        hresults = ONWARD_FAILURES.get(exc.error_type, ())
        if not params.get("domain_username") and (hresults is None or exc.hresult in hresults):
            return (
                f"{fqcn} could not authenticate from {host} to {self.REACHES} "
                f"({exc.error_type}: {exc.error_message}); {SECOND_HOP_WAYS_OUT}"
            )
        return str(exc)

    def _validated_arguments(self) -> dict[str, t.Any]:
        """The task's arguments, validated and normalized; a bad one fails the task before any host contact."""
        fqcn = self._task.resolved_action or self._task.action
        try:
            self._check_dict_options()
            params = self.validate_argument_spec(**self.ARGUMENTS)[1]
            self.check_arguments(params)
        except AnsibleActionFail as exc:
            # ansible-core names an action plugin by its Python path; administrators know the module by its FQCN.
            # 'from None': ansible-core 2.19 would print the chained cause, the same message a second time.
            raise AnsibleActionFail(str(exc.message).replace(f"({self._load_name})", f"({fqcn})")) from None
        except ArgumentError as exc:
            raise AnsibleActionFail(str(exc)) from None
        return params

    def _check_dict_options(self) -> None:
        # ansible-core's validator fails with a TypeError on a list where a dict with suboptions belongs, and does
        # not name the option when a string is neither JSON nor key=value: say which option needs what.
        for name, option in self.ARGUMENTS["argument_spec"].items():
            value = self._task.args.get(name)
            if option.get("type") != "dict" or value is None or isinstance(value, t.Mapping):
                continue
            if not isinstance(value, str):
                raise ArgumentError(name, f"must be a dictionary, not a {type(value).__name__}")
            try:
                check_type_dict(value)
            except TypeError:
                raise ArgumentError(name, f"must be a dictionary; {value!r} is neither JSON nor key=value") from None

    def _check_connection(self) -> None:
        check_connection(self)
