"""Twin of plugins/plugin_utils/host_scripts/kerberos_log_level.ps1 (reviewed against v1)."""

from __future__ import annotations

import typing as t

from tests.lab.fleet import HostException, HostState, registry_value_name

VERSION = 1
SHA256 = "319411e2a0bb2372e130d76f8ceb417b4fa6ba99664182c403bf701a46675cd3"

KEY = r"HKLM\SYSTEM\CurrentControlSet\Control\Lsa\Kerberos\Parameters"
VALUE = "LogLevel"
INT32 = range(-(2**31), 2**31)


def run(
    host: HostState, params: dict[str, t.Any], record_write: t.Callable[[str, dict[str, t.Any]], None]
) -> dict[str, t.Any]:
    action = params.get("action")
    if action == "set":
        value = params.get("value")
        # [int]$params.value: PowerShell converts numbers and numeric strings, and refuses the rest.
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, str))
            or not str(value).lstrip("-").isdigit()
            or int(value) not in INT32
        ):
            raise HostException(
                "System.Management.Automation.PSInvalidCastException",
                f'Cannot convert value "{value}" to type "System.Int32".',
            )
        values = host.writable_registry_key(KEY, create=True)
        assert values is not None
        existing = registry_value_name(values, VALUE)
        if existing is not None:
            del values[existing]
        values[VALUE] = ("DWord", int(value))
        record_write("set", {"key": KEY, "value_name": VALUE, "kind": "DWord", "value": int(value)})
    elif action == "remove":
        values = host.writable_registry_key(KEY, create=False)
        existing = registry_value_name(values, VALUE) if values is not None else None
        if values is not None and existing is not None:
            del values[existing]
            record_write("remove", {"key": KEY, "value_name": VALUE})
    elif action != "read":
        raise HostException("System.ArgumentException", "action must be read, set or remove")

    values = host.registry_key(KEY)
    state: dict[str, t.Any] = {"key_exists": values is not None, "exists": False, "kind": None, "value": None}
    existing = registry_value_name(values, VALUE) if values is not None else None
    if values is not None and existing is not None:
        kind, value = values[existing]
        state.update(exists=True, kind=kind, value=value)
    return state
