# Copyright: mailflow.remediation contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of mailflow.remediation.kerberos_logging (KB 979174 step 5)."""

from __future__ import annotations

import typing as t

from ansible_collections.mailflow.remediation.plugins.plugin_utils._action_base import (
    ArgumentError,
    ArgumentSpec,
    MailflowAction,
    Plan,
    with_domain_options,
)

SCRIPT = "kerberos_log_level"
VALUE_PATH = r"HKLM\SYSTEM\CurrentControlSet\Control\Lsa\Kerberos\Parameters\LogLevel"

# .NET RegistryValueKind names (what the script reports, never localized) and the names administrators use.
REGISTRY_KINDS = {
    "DWord": "REG_DWORD",
    "QWord": "REG_QWORD",
    "String": "REG_SZ",
    "ExpandString": "REG_EXPAND_SZ",
    "MultiString": "REG_MULTI_SZ",
    "Binary": "REG_BINARY",
}
# .NET reads and writes a REG_DWORD as a signed System.Int32 (0xFFFFFFFF is -1): 'previous' holds what an earlier
# run read, and an administrator may write the same value unsigned, as regedit shows it.
DWORD_MIN = -(2**31)
DWORD_UNSIGNED_MAX = 2**32 - 1
INT32_MAX = 2**31 - 1


class ActionModule(MailflowAction):
    ARTICLE = "KB 979174"
    STEP = "5"
    SUBJECT = VALUE_PATH
    # The domain_* options are accepted, unused: one module_defaults entry for the group serves every module.
    ARGUMENTS: t.ClassVar[ArgumentSpec] = with_domain_options(
        ArgumentSpec(
            argument_spec=dict(
                state=dict(type="str", default="present", choices=["present", "absent", "restored"]),
                level=dict(type="int", choices=[0, 1]),
                previous=dict(
                    type="dict",
                    options=dict(
                        exists=dict(type="bool", required=True),
                        # raw: an earlier run's REG_SZ value must reach check_arguments, which names the real problem.
                        value=dict(type="raw"),
                        kind=dict(type="str"),
                        key_exists=dict(type="bool"),
                    ),
                    required_if=[("exists", True, ("value",))],
                ),
            ),
            required_if=[("state", "restored", ("previous",))],
        )
    )

    def check_arguments(self, params: dict[str, t.Any]) -> None:
        state = params["state"]
        if params["level"] is not None and state != "present":
            raise ArgumentError("level", f"only applies to state=present, not state={state}")
        if params["previous"] is not None and state != "restored":
            raise ArgumentError("previous", f"only applies to state=restored, not state={state}")
        previous = params["previous"]
        if previous and previous["exists"]:
            if previous["kind"] not in (None, "DWord"):
                found = describe_kind(previous["kind"])
                raise ArgumentError(
                    "previous", f"only a REG_DWORD LogLevel can be restored; an earlier run found {found}"
                )
            value = previous["value"]
            if value is None:
                raise ArgumentError("previous", "exists is true, so value must hold the LogLevel to restore")
            if dword_of(value) is None:
                raise ArgumentError(
                    "previous",
                    f"value {value!r} is not a REG_DWORD (a whole number from {DWORD_MIN} to {DWORD_UNSIGNED_MAX})",
                )

    def read_state(self, params: dict[str, t.Any]) -> dict[str, t.Any]:
        return t.cast(dict, self.run_script(SCRIPT, {"action": "read"}))

    def plan(self, params: dict[str, t.Any], before: dict[str, t.Any]) -> Plan:
        wanted = desired_value(params)
        if wanted is None:
            if not before["exists"]:
                return Plan(expected=before)
            return Plan(
                changes=[f"remove {VALUE_PATH} ({render_value(before)})"],
                expected={**before, "exists": False, "kind": None, "value": None},
                change_params={"action": "remove"},
            )
        if before["exists"] and before["kind"] == "DWord" and before["value"] == wanted:
            return Plan(expected=before)
        verb = "replace" if before["exists"] else "create"
        return Plan(
            changes=[f"{verb} {VALUE_PATH}: {render_value(before)} -> {wanted & 0xFFFFFFFF} (REG_DWORD)"],
            expected={"key_exists": True, "exists": True, "kind": "DWord", "value": wanted},
            change_params={"action": "set", "value": wanted},
        )

    def apply(self, params: dict[str, t.Any], plan: Plan) -> dict[str, t.Any]:
        return t.cast(dict, self.run_script(SCRIPT, plan.change_params or {}))

    def render(self, state: dict[str, t.Any]) -> str:
        return f"{VALUE_PATH} = {render_value(state)}\n"

    def report(self, params: dict[str, t.Any], before: dict[str, t.Any], after: dict[str, t.Any]) -> dict[str, t.Any]:
        # 'previous' is what a later run with state=restored takes back, so it is returned exactly as read.
        return {"previous": before, "log_level": after}


def desired_value(params: dict[str, t.Any]) -> int | None:
    """The LogLevel the task asks for, or None when the value should not exist."""
    if params["state"] == "present":
        return 1 if params["level"] is None else int(params["level"])
    if params["state"] == "restored" and params["previous"]["exists"]:
        return dword_of(params["previous"]["value"])
    return None


def dword_of(value: t.Any) -> int | None:
    """A REG_DWORD as .NET's Int32 holds it (4294967295 becomes -1), or None when ``value`` is not one."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return None
    try:
        number = int(value)
    except ValueError:
        return None
    if not DWORD_MIN <= number <= DWORD_UNSIGNED_MAX:
        return None
    return number - 2**32 if number > INT32_MAX else number


def describe_kind(kind: str | None) -> str:
    return REGISTRY_KINDS.get(kind or "", kind or "no kind")


def render_value(state: dict[str, t.Any]) -> str:
    if not state["exists"]:
        return "(not set)"
    value = state["value"]
    if state["kind"] == "DWord" and isinstance(value, int) and value < 0:
        value &= 0xFFFFFFFF  # as regedit shows it; .NET reads a REG_DWORD as a signed Int32
    return f"{value!r} ({describe_kind(state['kind'])})"
