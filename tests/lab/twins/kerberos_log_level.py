"""Twin of plugins/plugin_utils/host_scripts/kerberos_log_level.ps1 (reviewed against v2)."""

from __future__ import annotations

import typing as t

from tests.lab.fleet import REGISTRY_KINDS, HostException, registry_path, registry_value_name

if t.TYPE_CHECKING:
    from tests.lab.fleet import HostState
    from tests.lab.twins import Params, TwinContext

VERSION = 2
SHA256 = "e9992d17aae9f9758b3e7f304a8fc3f054519808f054cdebec9302e814e8ea53"

KEY = r"HKLM\SYSTEM\CurrentControlSet\Control\Lsa\Kerberos\Parameters"
VALUE = "LogLevel"
INT32 = range(-(2**31), 2**31)


def powershell_int(value: t.Any) -> int:
    """[int]$value as PowerShell casts it: null and "" are 0, $true 1, a number or a numeric string rounded half
    to even; anything else, or a number outside Int32, is a PSInvalidCastException."""
    if value is None or value == "":
        return 0
    if isinstance(value, bool):
        return int(value)
    try:
        number = round(float(value)) if isinstance(value, (int, float, str)) else None
    except (ValueError, OverflowError):
        number = None
    if number is None or number not in INT32:
        raise HostException(
            "System.Management.Automation.PSInvalidCastException",
            f'Cannot convert value "{value}" to type "System.Int32". '
            'Error: "Input string was not in a correct format."',
        )
    return number


def run(context: TwinContext, params: Params) -> dict[str, t.Any]:
    host = context.host
    action = params["action"]
    if action == "set":
        # SetValue(..., DWord) of [int]$params.value, converted as PowerShell converts to Int32.
        host.set_registry_value(KEY, VALUE, powershell_int(params["value"]), "DWord")
    elif action == "remove":
        host.delete_registry_value(KEY, VALUE)
    elif action != "read":
        raise HostException("System.ArgumentException", "action must be read, set or remove")

    state: dict[str, t.Any] = {"key_exists": host.registry_key(KEY) is not None, "exists": False}
    found = host.registry_value(KEY, VALUE)
    state.update(kind=found[0] if found else None, value=found[1] if found else None, exists=found is not None)
    return {key: state[key] for key in ("key_exists", "exists", "kind", "value")}


def seed_from_transcript(host: HostState, first_result: t.Mapping[str, t.Any], params: t.Mapping[str, t.Any]) -> None:
    """Give ``host`` the LogLevel that makes the script return ``first_result`` on it, for a replayed transcript.

    Every action returns the state after it, and a set or a remove run again on that state changes nothing, so the
    state the result describes is the seed whichever action ran (``params``). ``first_result`` is what Windows
    returned, as .NET reads the value: a REG_DWORD is a signed Int32 (0xFFFFFFFF reads -1), which the lab stores
    unsigned, as the registry holds it. Raises ValueError for a value the lab cannot hold.
    """
    del params
    key = registry_path(KEY)
    if not first_result["key_exists"]:
        host.registry.pop(key, None)
        return
    values = host.registry.setdefault(key, {})
    stored = registry_value_name(values, VALUE)
    if stored is not None:
        del values[stored]
    if not first_result["exists"]:
        return
    kind, value = first_result["kind"], first_result["value"]
    bits = {"DWord": 32, "QWord": 64}.get(kind)
    if bits is not None and isinstance(value, int) and not isinstance(value, bool):
        # Only what .NET's signed Int32/Int64 can hold; anything else was not read from a registry.
        value = value % 2**bits if -(2 ** (bits - 1)) <= value < 2 ** (bits - 1) else None
    if kind not in REGISTRY_KINDS or not REGISTRY_KINDS[kind](value):
        raise ValueError(
            f"a LogLevel of kind {kind!r} with the value {first_result['value']!r} is not one the lab can hold"
        )
    values[VALUE] = (kind, value)


# Runs that exercise the script (tests/unit/lab/test_twin_discipline.py): (fleet, host, parameters).
EXAMPLES = [
    ("single", "ex01", {"action": "read"}),
    ("single", "ex01", {"action": "set", "value": 1}),
    ("single", "ex01", {"action": "set", "value": -1}),
    ("single", "ex01", {"action": "set", "value": None}),
    ("single", "ex01", {"action": "remove"}),
    ("contoso", "ex01", {"action": "set", "value": 0}),
]
