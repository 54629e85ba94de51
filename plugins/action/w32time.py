# Copyright: mailflow.remediation contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of mailflow.remediation.w32time (KB 979174 step 1)."""

from __future__ import annotations

import math
import re
import typing as t

from ansible.errors import AnsibleActionFail

from ansible_collections.mailflow.remediation.plugins.plugin_utils._action_base import (
    ArgumentError,
    ArgumentSpec,
    MailflowAction,
    Plan,
    domain_params,
    with_domain_options,
)

SCRIPT = "w32time_sync"
SERVICE_KEY = r"HKLM\SYSTEM\CurrentControlSet\Services\W32Time"
POLICY_KEY = r"HKLM\SOFTWARE\Policies\Microsoft\W32Time"
# The values step 1 decides, by the names the host script reports them under: (registry path, what admins call it).
SETTINGS = {
    "type": (r"Parameters\Type", "Type"),
    "ntp_server": (r"Parameters\NtpServer", "NtpServer"),
    "announce_flags": (r"Config\AnnounceFlags", "AnnounceFlags"),
}
NT5DS = "NT5DS"  # the domain hierarchy
NTP = "NTP"  # the peers in NtpServer
# AnnounceFlags: 5 = always a time server (0x1) and always a reliable one (0x4), what the forest-root PDC emulator
# announces; 10 = a time server and a reliable one when Windows decides so (0x2 | 0x8), every other DC's default.
ANNOUNCE_RELIABLE = 5
ANNOUNCE_AUTOMATIC = 10
# How W32Time polls a peer named without flags: 0x8, client mode (w32tm /config /manualpeerlist writes it so).
CLIENT_MODE = "0x8"
AUTOMATIC = "Automatic"
RUNNING = "Running"
# A host name or an IP address, optionally with W32Time's flags (time.example,0x9), as NtpServer holds an entry.
PEER_PATTERN = re.compile(r"^[A-Za-z0-9_.:\[\]-]+(,0x[0-9A-Fa-f]{1,8})?$")
HOST_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]*$")
# The host's role for time (one name per line: ansible-core's doc scanner reads module-level assignments).
MEMBER = "member"
DC = "domain controller"
FOREST_ROOT_PDC = "forest-root PDC emulator"


class ActionModule(MailflowAction):
    ARTICLE = "KB 979174"
    STEP = "1"
    SUBJECT = "W32Time"
    REACHES = "Active Directory"
    ARGUMENTS: t.ClassVar[ArgumentSpec] = with_domain_options(
        ArgumentSpec(
            argument_spec=dict(
                # raw: ansible-core's float conversion names the type, not the value; check_arguments says more.
                max_offset=dict(type="raw", default=300),
                ntp_servers=dict(type="list", elements="str"),
                pdc_emulator=dict(type="str"),
                domain_controllers=dict(type="list", elements="str"),
                ntp_timeout=dict(type="int", default=2),
            )
        )
    )

    def check_arguments(self, params: dict[str, t.Any]) -> None:
        given = params["max_offset"]
        params["max_offset"] = seconds(given)
        if params["max_offset"] is None or params["max_offset"] <= 0:
            raise ArgumentError("max_offset", f"must be a number of seconds greater than 0, not {given!r}")
        if not 1 <= params["ntp_timeout"] <= 30:
            raise ArgumentError("ntp_timeout", f"must be from 1 to 30 seconds, not {params['ntp_timeout']}")
        if params["ntp_servers"] is not None:
            if not params["ntp_servers"]:
                raise ArgumentError("ntp_servers", "give at least one peer, or leave the option out")
            for peer in params["ntp_servers"]:
                if not PEER_PATTERN.match(peer):
                    raise ArgumentError(
                        "ntp_servers", f"{peer!r} is not a host name or address, optionally with flags (name,0x8)"
                    )
        for option in ("pdc_emulator", "domain_controllers"):
            names = params[option] if isinstance(params[option], list) else [params[option]]
            for name in names:
                if name is not None and not HOST_PATTERN.match(name):
                    raise ArgumentError(option, f"{name!r} is not a host name")

    def read_state(self, params: dict[str, t.Any]) -> dict[str, t.Any]:
        state = self.run_script(SCRIPT, {**self._script_params(params), "action": "read"})
        return with_clock(state, params)

    def plan(self, params: dict[str, t.Any], before: dict[str, t.Any]) -> Plan:
        host = before["identity"]["fqdn"]
        if not before["identity"]["part_of_domain"]:
            raise AnsibleActionFail(
                f"{self._fqcn}: {host} is not joined to a domain; KB 979174 step 1 synchronizes domain time"
            )
        role = role_of(before)
        changes: list[str] = []
        unfixable: list[str] = []
        settings: dict[str, t.Any] = {}
        policy_blocks_sync = False
        desired = desired_settings(role, params)
        for setting in (name for name in SETTINGS if name in desired):
            wanted = desired[setting]
            found = effective(before, setting)
            if matches(setting, found, wanted):
                continue
            path, name = SETTINGS[setting]
            if before["policy"][setting] is not None:
                unfixable.append(
                    f"W32Time {name} is {show(setting, found)} on {host}, set by Group Policy "
                    f"({POLICY_KEY}\\{path}); change the policy, the service key would not take effect"
                )
                policy_blocks_sync = policy_blocks_sync or setting == "type"
                continue
            if role == FOREST_ROOT_PDC and not params["ntp_servers"]:
                continue  # said once, below
            changes.append(f"set {SERVICE_KEY}\\{path}: {show(setting, found)} -> {show(setting, wanted)}")
            settings[setting] = wanted
        if role == FOREST_ROOT_PDC and not params["ntp_servers"] and not root_configured(before):
            unfixable.append(
                f"{host} is the forest-root PDC emulator: it should take its time from reliable peers (Type NTP, "
                f"AnnounceFlags 5), not from the domain hierarchy, which has nothing above it; give ntp_servers"
            )

        service = before["service"]
        automatic = service["start_type"] != AUTOMATIC
        if automatic:
            changes.append(f"make the W32Time service start automatically ({service['start_type']})")
        if service["status"] != RUNNING:
            changes.append(f"start the W32Time service ({service['status']})")

        clock = before["clock"]
        resync = False
        if clock["within"] is False:
            if policy_blocks_sync:
                unfixable.append(f"the clock of {host} is {clock['text']}, and Group Policy decides how it syncs")
            else:
                changes.append(f"resync the clock of {host}: it is {clock['text']}")
                resync = True
        unfixable += peer_findings(before, params)

        if not changes:
            return Plan(expected=before, unfixable=unfixable)
        expected = {
            **before,
            "configured": {**before["configured"], **settings},
            "service": {"start_type": AUTOMATIC, "status": RUNNING},
        }
        if resync:
            expected["clock"] = {**clock, "within": True, "text": within_text(clock, params)}
        change_params = {
            **self._script_params(params, before, root=role == FOREST_ROOT_PDC),
            "action": "configure",
            **settings,
            "automatic": automatic,
        }
        return Plan(changes=changes, expected=expected, change_params=change_params, unfixable=unfixable)

    def apply(self, params: dict[str, t.Any], plan: Plan) -> dict[str, t.Any]:
        after = with_clock(self.run_script(SCRIPT, plan.change_params or {}), params)
        clock = after["clock"]
        host = after["identity"]["fqdn"]
        code = after["resync_exit_code"]
        resync = f"w32tm /resync exit code {hresult(code)}" if code is not None else "no resync"
        if clock["within"] is False:
            raise AnsibleActionFail(
                f"{self._fqcn}: the clock of {host} is still {clock['text']} after the fix ({resync})",
                result={"offsets": after["offsets"], "resync_exit_code": code},
            )
        if clock["within"] is None and plan.expected["clock"]["within"] is True:
            raise AnsibleActionFail(
                f"{self._fqcn}: could not measure the clock of {host} after the fix: {clock['text']} ({resync})",
                result={"offsets": after["offsets"], "resync_exit_code": code},
            )
        return after

    def render(self, state: dict[str, t.Any]) -> str:
        lines = []
        for setting, (_path, name) in SETTINGS.items():
            value = show(setting, effective(state, setting))
            lines.append(f"{name} = {value}{' (Group Policy)' if state['policy'][setting] is not None else ''}")
        lines.append(f"W32Time service = {state['service']['start_type']}, {state['service']['status']}")
        lines.append(f"clock = {state['clock']['text']}")
        return "\n".join(lines) + "\n"

    def report(self, params: dict[str, t.Any], before: dict[str, t.Any], after: dict[str, t.Any]) -> dict[str, t.Any]:
        return {
            "role": role_of(before),
            "pdc_emulator": before["pdc_emulator"],
            "domain_controllers": before["domain_controllers"],
            "time_source": after["clock"]["reference"],
            "offset": after["clock"]["offset"],
            "offsets": after["offsets"],
            "offsets_before": before["offsets"],
            "w32time": {
                **{setting: effective(after, setting) for setting in SETTINGS},
                "set_by_policy": [setting for setting in SETTINGS if after["policy"][setting] is not None],
                "service": after["service"],
            },
            "resync_exit_code": after.get("resync_exit_code"),
        }

    @property
    def _fqcn(self) -> str:
        return str(self._task.resolved_action or self._task.action)

    def _script_params(
        self, params: dict[str, t.Any], found: dict[str, t.Any] | None = None, *, root: bool = True
    ) -> dict[str, t.Any]:
        """The read's parameters; for the change, the PDC emulator, the DCs and the DC in use the read found, so that
        the change script measures the same peers without asking the directory again."""
        peers = [peer.split(",", 1)[0] for peer in params["ntp_servers"] or []] if root else []
        sent: dict[str, t.Any] = {
            **domain_params(params),
            "pdc_emulator": params["pdc_emulator"],
            "domain_controllers": params["domain_controllers"],
            "ntp_peers": peers,
            "dc_in_use": None,
            "timeout_ms": params["ntp_timeout"] * 1000,
        }
        if found is not None:
            sent.update(
                pdc_emulator=found["pdc_emulator"],
                domain_controllers=found["domain_controllers"],
                dc_in_use=found["dc_in_use"],
            )
        return sent


def seconds(value: t.Any) -> float | None:
    """A number of seconds as given (300, 299.5, "300"), or None when it is not one."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def role_of(state: dict[str, t.Any]) -> str:
    identity = state["identity"]
    if not identity["is_dc"]:
        return MEMBER
    # forest_root is null when the DCs were given as options and the directory was not asked: a single-domain forest.
    if is_host(identity, state["pdc_emulator"]) and state["forest_root"] is not False:
        return FOREST_ROOT_PDC
    return DC


def is_host(identity: dict[str, t.Any], name: str | None) -> bool:
    if not name:
        return False
    name = name.lower()
    return name == identity["fqdn"] or ("." not in name and name == identity["name"].lower())


def desired_settings(role: str, params: dict[str, t.Any]) -> dict[str, t.Any]:
    """What KB 979174 step 1 wants by role: the domain hierarchy everywhere but at its top, reliable peers there."""
    if role == MEMBER:
        return {"type": NT5DS}
    if role == DC:
        return {"type": NT5DS, "announce_flags": ANNOUNCE_AUTOMATIC}
    wanted: dict[str, t.Any] = {"type": NTP, "announce_flags": ANNOUNCE_RELIABLE}
    if params["ntp_servers"]:
        wanted["ntp_server"] = " ".join(ntp_entry(peer) for peer in params["ntp_servers"])
    return wanted


def ntp_entry(peer: str) -> str:
    return peer if "," in peer else f"{peer},{CLIENT_MODE}"


def root_configured(state: dict[str, t.Any]) -> bool:
    """The forest root already syncs from peers of its own (Type NTP, AnnounceFlags 5): nothing to say."""
    found_type = effective(state, "type")
    return str(found_type or "").upper() == NTP and effective(state, "announce_flags") == ANNOUNCE_RELIABLE


def effective(state: dict[str, t.Any], setting: str) -> t.Any:
    """What W32Time takes: the Group Policy value when there is one, else the service key's."""
    policy = state["policy"][setting]
    return policy if policy is not None else state["configured"][setting]


def matches(setting: str, found: t.Any, wanted: t.Any) -> bool:
    if found is None:
        return False
    if setting == "type":
        return str(found).upper() == str(wanted).upper()
    if setting == "ntp_server":
        return {entry.lower() for entry in str(found).split()} == {entry.lower() for entry in str(wanted).split()}
    return bool(int(found) == int(wanted))


def show(setting: str, value: t.Any) -> str:
    if value is None:
        return "(not set)"
    if setting == "announce_flags":
        return f"{int(value) & 0xFFFFFFFF}"
    return str(value) if str(value) else "(empty)"


def hresult(code: int) -> str:
    return f"0x{code & 0xFFFFFFFF:08X}" if code else "0"


# --- the clock ----------------------------------------------------------------------------------------------------


def reference_candidates(state: dict[str, t.Any], params: dict[str, t.Any]) -> list[tuple[str, str]]:
    """The clocks this host's is judged against, in order, with their role: where it should take its time from."""
    role = role_of(state)
    if role == FOREST_ROOT_PDC:
        return [(peer.split(",", 1)[0], "NTP server") for peer in params["ntp_servers"] or []]
    candidates = [] if role == DC else [(state["dc_in_use"], "its domain controller")]
    candidates.append((state["pdc_emulator"], "PDC emulator"))
    return [(name, what) for name, what in candidates if name and not is_host(state["identity"], name)]


def with_clock(state: dict[str, t.Any], params: dict[str, t.Any]) -> dict[str, t.Any]:
    """The state with its clock judged: against the first reference that answered NTP, and ``max_offset``."""
    measured = {entry["peer"].lower(): entry for entry in state["offsets"]}
    limit = params["max_offset"]
    for name, what in reference_candidates(state, params):
        entry = measured.get(name.lower())
        if entry is None or not entry["answered"]:
            continue
        offset = float(entry["offset"])
        clock = {"reference": entry["peer"], "role": what, "offset": offset, "within": abs(offset) <= limit}
        text = within_text(clock, params) if clock["within"] else f"{describe(offset, entry['peer'])} ({what})"
        return {**state, "clock": {**clock, "text": text}}
    return {
        **state,
        "clock": {
            "reference": None,
            "role": None,
            "offset": None,
            "within": None,
            "text": "not judged: no time source answered NTP",
        },
    }


def within_text(clock: dict[str, t.Any], params: dict[str, t.Any]) -> str:
    return f"within {params['max_offset']:g} s of {clock['reference']} ({clock['role']})"


def describe(offset: float, peer: str) -> str:
    return f"{abs(offset):.1f} s {'ahead of' if offset > 0 else 'behind'} {peer}"


def peer_findings(state: dict[str, t.Any], params: dict[str, t.Any]) -> list[str]:
    """What the measurement shows about other clocks: DCs that do not answer NTP, and DCs whose clocks are more than
    ``max_offset`` from this host's time source (which only a run on that DC can fix)."""
    host = state["identity"]["fqdn"]
    clock = state["clock"]
    limit = params["max_offset"]
    found = []
    for entry in state["offsets"]:
        peer = entry["peer"]
        if not entry["answered"]:
            found.append(f"{peer} does not answer NTP (UDP 123) from {host}: {entry['error']}")
            continue
        if clock["reference"] is not None and peer.lower() == clock["reference"].lower():
            continue
        if clock["reference"] is not None:
            # The peer's clock against the reference's: (host - reference) - (host - peer).
            apart = clock["offset"] - float(entry["offset"])
            if abs(apart) > limit:
                found.append(
                    f"the clock of {peer} is {describe(apart, clock['reference'])} (max_offset {limit:g}); "
                    f"run this module on {peer}"
                )
        elif abs(float(entry["offset"])) > limit:
            found.append(
                f"the clock of {host} is {describe(float(entry['offset']), peer)} (max_offset {limit:g}), and no "
                "time source answered NTP to tell which of the two is wrong"
            )
    return found
