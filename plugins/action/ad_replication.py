# Copyright: mailflow.remediation contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of mailflow.remediation.ad_replication (KB 979174 step 2)."""

from __future__ import annotations

import datetime
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
from ansible_collections.mailflow.remediation.plugins.plugin_utils._win32 import win32_error

SCRIPT = "ad_replication"
# Twice the default replication interval of a site link (180 minutes): a healthy link between sites succeeds at
# least that often, even with nothing to replicate.
DEFAULT_MAX_AGE = 6 * 3600
# A neighbour's status (one name per line: ansible-core's doc scanner reads module-level assignments).
OK = "ok"
FAILING = "failing"
STALE = "stale"


class ActionModule(MailflowAction):
    ARTICLE = "KB 979174"
    STEP = "2"
    SUBJECT = "inbound replication neighbours"
    REACHES = "Active Directory"
    ARGUMENTS: t.ClassVar[ArgumentSpec] = with_domain_options(
        ArgumentSpec(argument_spec=dict(max_age=dict(type="int", default=DEFAULT_MAX_AGE)))
    )

    def check_arguments(self, params: dict[str, t.Any]) -> None:
        if params["max_age"] <= 0:
            raise ArgumentError("max_age", f"must be a number of seconds greater than 0, not {params['max_age']}")

    def read_state(self, params: dict[str, t.Any]) -> dict[str, t.Any]:
        return judged(self.run_script(SCRIPT, {**domain_params(params), "action": "read"}), params)

    def plan(self, params: dict[str, t.Any], before: dict[str, t.Any]) -> Plan:
        if all(neighbor["status"] == OK for neighbor in before["neighbors"]):
            return Plan(expected=before)
        dc = before["dc"]
        changes = []
        for partition in before["partitions"]:
            partners = sorted({n["source"] for n in before["neighbors"] if n["partition"] == partition})
            changes.append(
                f"sync {partition} on {dc} from {', '.join(partners) or 'no partner'} across sites, then push it "
                "outward (repadmin /syncall /AdeP)"
            )
        now = before["now"]
        healthy = [
            {**neighbor, "last_result": 0, "consecutive_failures": 0, "last_success": now, "status": OK, "text": OK}
            for neighbor in before["neighbors"]
        ]
        # The sync must reach the same DC the read did, whatever the DC locator would answer next time.
        change_params = {**domain_params(params), "domain_server": dc, "action": "sync"}
        return Plan(changes=changes, expected={**before, "neighbors": healthy}, change_params=change_params)

    def apply(self, params: dict[str, t.Any], plan: Plan) -> dict[str, t.Any]:
        after = judged(self.run_script(SCRIPT, plan.change_params or {}), params)
        still = [neighbor for neighbor in after["neighbors"] if neighbor["status"] != OK]
        if still:
            fqcn = self._task.resolved_action or self._task.action
            raise AnsibleActionFail(
                f"{fqcn}: {after['dc']} still fails to replicate after the sync: {'; '.join(failures(still))}"
                + sync_error_text(after["sync_errors"]),
                result={"neighbors": after["neighbors"], "sync_errors": after["sync_errors"]},
            )
        return after

    def render(self, state: dict[str, t.Any]) -> str:
        lines = [f"{state['dc']}:"]
        for neighbor in sorted(state["neighbors"], key=lambda n: (n["partition"].lower(), n["source"].lower())):
            lines.append(f"  {neighbor['partition']} <- {neighbor['source']}: {neighbor['text']}")
        if not state["neighbors"]:
            lines.append("  (no inbound replication partners)")
        return "\n".join(lines) + "\n"

    def report(self, params: dict[str, t.Any], before: dict[str, t.Any], after: dict[str, t.Any]) -> dict[str, t.Any]:
        return {
            "dc": before["dc"],
            "partitions": before["partitions"],
            "neighbors": after["neighbors"],
            "neighbors_before": before["neighbors"],
            "sync_errors": after["sync_errors"],
        }


def judged(state: dict[str, t.Any], params: dict[str, t.Any]) -> dict[str, t.Any]:
    """Each neighbour with its status: failing (a last result other than 0), stale (no success for longer than
    ``max_age``, by the clock of the host that ran the script), or ok."""
    now = parse_time(state["now"])
    neighbors = []
    for neighbor in state["neighbors"]:
        age = (now - parse_time(neighbor["last_success"])).total_seconds()
        if neighbor["last_result"] != 0 or neighbor["consecutive_failures"] > 0:
            status = FAILING
            text = (
                f"failing with {win32_error(neighbor['last_result'])}, {neighbor['consecutive_failures']} "
                f"consecutive failures, last success {neighbor['last_success']} ({age:.0f} s ago)"
            )
        elif age > params["max_age"]:
            status, text = STALE, f"no success for {age:.0f} s (max_age {params['max_age']})"
        else:
            status, text = OK, OK
        neighbors.append({**neighbor, "status": status, "text": text})
    return {**state, "neighbors": neighbors}


def failures(neighbors: list[dict[str, t.Any]]) -> list[str]:
    """One line per partner: its error (or staleness) and the naming contexts it concerns."""
    by_partner: dict[tuple[str, str], list[str]] = {}
    for neighbor in neighbors:
        reason = win32_error(neighbor["last_result"]) if neighbor["status"] == FAILING else neighbor["text"]
        by_partner.setdefault((neighbor["source"], reason), []).append(neighbor["partition"])
    return [
        f"from {source}: {'error ' if reason[0].isdigit() else ''}{reason} ({', '.join(partitions)})"
        for (source, reason), partitions in by_partner.items()
    ]


def sync_error_text(errors: list[dict[str, t.Any]]) -> str:
    if not errors:
        return ""
    seen = sorted({(error["target"], error["source"], error["code"]) for error in errors})
    listed = ", ".join(f"{target} from {source}: {win32_error(code)}" for target, source, code in seen)
    return f"; the sync reported {listed}"


def parse_time(value: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
