# Copyright: mailflow.remediation contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of mailflow.remediation.kerberos_ports (KB 979174 step 4)."""

from __future__ import annotations

import copy
import typing as t

from ansible_collections.mailflow.remediation.plugins.plugin_utils._action_base import (
    ArgumentError,
    ArgumentSpec,
    MailflowAction,
    Plan,
    domain_params,
    with_domain_options,
)

READ_SCRIPT = "kerberos_ports"
CHANGE_SCRIPT = "kerberos_firewall"
# What a DC must let in for Kerberos (KDC) and Kerberos password changes (kpasswd).
INBOUND = (("TCP", 88), ("UDP", 88), ("TCP", 464), ("UDP", 464))
# The rules Windows adds when a server is promoted; preferred when several disabled rules could open a port.
WINDOWS_RULES = {
    ("TCP", 88): "KerberosKeyDistributionCenter-TCP-In",
    ("UDP", 88): "KerberosKeyDistributionCenter-UDP-In",
    ("TCP", 464): "KerberosKeyDistributionCenterPCR-TCP-In",
    ("UDP", 464): "KerberosKeyDistributionCenterPCR-UDP-In",
}
OWN_RULE = "mailflow.remediation-Kerberos-{protocol}-{port}-In"
OWN_DISPLAY_NAME = "Kerberos ({protocol} {port} in), added by mailflow.remediation"
MAX_TIMEOUT = 60


class ActionModule(MailflowAction):
    ARTICLE = "KB 979174"
    STEP = "4"
    SUBJECT = "Kerberos ports (TCP/UDP 88 and 464)"
    REACHES = "Active Directory"
    ARGUMENTS: t.ClassVar[ArgumentSpec] = with_domain_options(
        ArgumentSpec(
            argument_spec=dict(
                domain_controllers=dict(type="list", elements="str"),
                timeout=dict(type="int", default=3),
            )
        )
    )

    def check_arguments(self, params: dict[str, t.Any]) -> None:
        if not 1 <= params["timeout"] <= MAX_TIMEOUT:
            raise ArgumentError("timeout", f"must be from 1 to {MAX_TIMEOUT} seconds, not {params['timeout']}")
        names = params["domain_controllers"]
        if names is not None:
            for name in names:
                if not name.strip() or any(char.isspace() for char in name.strip()):
                    raise ArgumentError("domain_controllers", f"{name!r} is not a host name")
            if not names:
                raise ArgumentError("domain_controllers", "give at least one domain controller, or leave it out")

    def read_state(self, params: dict[str, t.Any]) -> dict[str, t.Any]:
        names = params["domain_controllers"]
        return t.cast(
            dict,
            self.run_script(
                READ_SCRIPT,
                {
                    "domain_controllers": list(dict.fromkeys(name.strip() for name in names)) if names else None,
                    "timeout_ms": params["timeout"] * 1000,
                    **domain_params(params),
                },
            ),
        )

    def plan(self, params: dict[str, t.Any], before: dict[str, t.Any]) -> Plan:
        source = short_name(before["host"]["fqdn"])
        changes: list[str] = []
        unfixable: list[str] = []
        expected = copy.deepcopy(before)
        enable: list[str] = []
        create: list[dict[str, t.Any]] = []
        firewall = expected["firewall"]
        if before["host"]["is_dc"] and firewall is not None:
            for protocol, port in INBOUND:
                verdict = inbound_verdict(firewall, protocol, port)
                if verdict.allowed:
                    continue
                if verdict.blocked_by:
                    unfixable.append(
                        f"{source}: inbound {protocol}/{port} is blocked by the rule {verdict.blocked_by} (action "
                        "Block), which this module does not override; disable or remove it if it is not on purpose"
                    )
                elif verdict.to_enable:
                    rule = verdict.to_enable
                    enable.append(rule["name"])
                    rule["enabled"] = True
                    changes.append(f"{source}: enable inbound rule {rule['name']} ({protocol}/{port})")
                elif verdict.policy_rules:
                    unfixable.append(
                        f"{source}: inbound {protocol}/{port} is only opened by {', '.join(verdict.policy_rules)}, "
                        "which is disabled by Group Policy; enable it in the GPO"
                    )
                else:
                    name = OWN_RULE.format(protocol=protocol, port=port)
                    display = OWN_DISPLAY_NAME.format(protocol=protocol, port=port)
                    create.append({"name": name, "display_name": display, "protocol": protocol, "port": port})
                    firewall["rules"].append(
                        {
                            "name": name,
                            "display_name": display,
                            "protocol": protocol,
                            "local_ports": [str(port)],
                            "enabled": True,
                            "action": "Allow",
                            "source": "Local",
                        }
                    )
                    changes.append(f"{source}: add inbound rule {name} ({protocol}/{port}): no rule opens it")
        unfixable += probe_findings(before)
        return Plan(
            changes=changes,
            expected=expected,
            change_params={"enable": enable, "create": create} if changes else None,
            unfixable=unfixable,
        )

    def apply(self, params: dict[str, t.Any], plan: Plan) -> dict[str, t.Any]:
        after = t.cast(dict, self.run_script(CHANGE_SCRIPT, plan.change_params or {}))
        # The change script returns the firewall after the change; the probes are those of the read.
        return {**plan.expected, "firewall": after["firewall"]}

    def render(self, state: dict[str, t.Any]) -> str:
        lines = []
        firewall = state["firewall"]
        if state["host"]["is_dc"] and firewall is not None:
            host = short_name(state["host"]["fqdn"])
            lines.append(f"{host} inbound (firewall {'on' if firewall['enabled'] else 'off'}):")
            for protocol, port in INBOUND:
                lines.append(f"  {protocol}/{port}: {inbound_verdict(firewall, protocol, port).describe()}")
        by_dc: dict[str, list[str]] = {}
        for probe in state["probes"]:
            by_dc.setdefault(probe["dc"], []).append(f"{probe['protocol']}/{probe['port']} {describe_probe(probe)}")
        source = short_name(state["host"]["fqdn"])
        lines += [f"{source} -> {dc}: {', '.join(results)}" for dc, results in by_dc.items()]
        return "".join(f"{line}\n" for line in lines)

    def report(self, params: dict[str, t.Any], before: dict[str, t.Any], after: dict[str, t.Any]) -> dict[str, t.Any]:
        source = short_name(before["host"]["fqdn"])
        return {
            "probes": [
                {
                    "source": source,
                    "destination": probe["dc"],
                    "protocol": probe["protocol"],
                    "port": probe["port"],
                    "result": probe["result"],
                }
                for probe in before["probes"]
            ],
            "firewall": after["firewall"],
        }


class Verdict:
    """Whether a firewall lets inbound protocol/port in, and what would change that."""

    def __init__(self, firewall: dict[str, t.Any], protocol: str, port: int) -> None:
        rules = sorted(
            (rule for rule in firewall["rules"] if opens(rule, protocol, port)), key=lambda rule: rule["name"].lower()
        )
        self.firewall_off = not firewall["enabled"]
        blocking = [rule for rule in rules if rule["enabled"] and rule["action"] == "Block"]
        allowing = [rule for rule in rules if rule["enabled"] and rule["action"] != "Block"]
        # Windows Firewall applies block rules before allow rules.
        self.blocked_by = blocking[0]["name"] if blocking and not self.firewall_off else None
        self.allowed_by = allowing[0]["name"] if allowing else None
        self.allowed = self.firewall_off or (self.blocked_by is None and self.allowed_by is not None)
        disabled = [rule for rule in rules if not rule["enabled"] and rule["action"] != "Block"]
        local = [rule for rule in disabled if rule["source"] == "Local"]
        preferred = [rule for rule in local if rule["name"] == WINDOWS_RULES.get((protocol, port))]
        self.to_enable: dict[str, t.Any] | None = (preferred or local or [None])[0]
        self.policy_rules = [rule["name"] for rule in disabled if rule["source"] != "Local"]
        self.disabled = [rule["name"] for rule in disabled]

    def describe(self) -> str:
        if self.firewall_off:
            return "open (the firewall's domain profile is off)"
        if self.blocked_by:
            return f"blocked by rule {self.blocked_by}"
        if self.allowed_by:
            return f"allowed by rule {self.allowed_by}"
        if self.disabled:
            return f"closed: rule {', '.join(self.disabled)} disabled"
        return "closed: no inbound rule opens it"


def inbound_verdict(firewall: dict[str, t.Any], protocol: str, port: int) -> Verdict:
    return Verdict(firewall, protocol, port)


def opens(rule: dict[str, t.Any], protocol: str, port: int) -> bool:
    """Whether a rule's port filter covers protocol/port: the port listed, or a range that holds it."""
    if rule["protocol"].upper() != protocol:
        return False
    for entry in rule["local_ports"]:
        low, _dash, high = str(entry).partition("-")
        if low.isdigit() and (high or low).isdigit() and int(low) <= port <= int(high or low):
            return True
    return False


def short_name(name: str) -> str:
    return name.split(".", 1)[0].lower()


def describe_probe(probe: dict[str, t.Any]) -> str:
    return {
        "open": "open",
        "no_answer": "no answer",
        "refused": "refused",
        "unresolved": "name not resolved",
        "not_kerberos": "answered, not by Kerberos",
    }.get(probe["result"], f"failed ({probe.get('error') or 'unknown error'})")


def probe_findings(state: dict[str, t.Any]) -> list[str]:
    """What the probes found wrong, in an administrator's words: nothing here can be changed from this host."""
    source = short_name(state["host"]["fqdn"])
    remote = {entry["dc"]: entry for entry in state["dc_firewalls"]}
    findings = []
    for probe in state["probes"]:
        dc, protocol, port, result = probe["dc"], probe["protocol"], probe["port"], probe["result"]
        path = f"{source} -> {short_name(dc)} {protocol}/{port}"
        if result == "open":
            continue
        if result == "refused":
            findings.append(
                f"{path}: refused, nothing listens there; check that the Kerberos Key Distribution Center service "
                f"runs on {short_name(dc)}"
            )
        elif result == "unresolved":
            findings.append(f"{path}: the name {dc} does not resolve in DNS")
        elif result == "not_kerberos":
            findings.append(f"{path}: something answered that is not a Kerberos KDC")
        elif result != "no_answer":
            findings.append(f"{path}: the probe failed ({probe.get('error') or 'unknown error'})")
        else:
            findings.append(f"{path}: {silent_cause(dc, protocol, port, remote.get(dc))}")
    return findings


def silent_cause(dc: str, protocol: str, port: int, remote: dict[str, t.Any] | None) -> str:
    """Why a DC leaves a port unanswered, from its own rules when they could be read."""
    name = short_name(dc)
    fix_there = f"fix it by running mailflow.remediation.kerberos_ports on {name}"
    if remote is None or remote.get("firewall") is None:
        error = remote.get("error") if remote else None
        return (
            f"no answer, and {name}'s inbound rules could not be read from here"
            + (f" ({error})" if error else "")
            + f"; {fix_there}, and if its rules allow it, a network firewall between them blocks it"
        )
    verdict = inbound_verdict(remote["firewall"], protocol, port)
    if verdict.allowed:
        return (
            f"no answer although {name}'s firewall allows it: a network firewall between them blocks it "
            "(for its owner to open; this module never changes it)"
        )
    return f"no answer: {name}'s own firewall: {verdict.describe()}; {fix_there}"
