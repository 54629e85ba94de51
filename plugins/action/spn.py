# Copyright: mailflow.remediation contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of mailflow.remediation.spn (KB 979174 step 3)."""

from __future__ import annotations

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
from ansible_collections.mailflow.remediation.plugins.plugin_utils._win32 import hresult, win32_error

SCRIPT = "spn_owners"
# KB 979174 step 3: SMTP/ and SMTPSVC/, each for the short name and the FQDN of the Exchange server.
SERVICE_CLASSES = ["SMTP", "SMTPSVC"]
# serviceclass/host[:port][/servicename], no spaces (what setspn and the DC accept for servicePrincipalName).
SPN_PATTERN = re.compile(r"^[^/\s]+/[^/\s:]+(:[0-9]{1,5})?(/[^/\s]+)?$")
# sAMAccountName: at most 20 characters, none of "/\[]:;|=,+*?<> or @.
SAM_PATTERN = re.compile(r'^[^"/\\\[\]:;|=,+*?<>@]{1,20}$')
E_ACCESSDENIED = -2147024891


class ActionModule(MailflowAction):
    ARTICLE = "KB 979174"
    STEP = "3"
    SUBJECT = "service principal names"
    REACHES = "Active Directory"
    ARGUMENTS: t.ClassVar[ArgumentSpec] = with_domain_options(
        ArgumentSpec(
            argument_spec=dict(
                account=dict(type="str"),
                spns=dict(type="list", elements="str"),
                state=dict(type="str", default="present", choices=["present", "absent"]),
                remove_duplicates=dict(type="bool", default=False),
            )
        )
    )

    def check_arguments(self, params: dict[str, t.Any]) -> None:
        if params["account"] is not None and not SAM_PATTERN.match(params["account"]):
            raise ArgumentError(
                "account",
                f"{params['account']!r} is not a sAMAccountName (EX01$, svc-mail): at most 20 characters, without a "
                'domain and without any of " / \\ [ ] : ; | = , + * ? < > @',
            )
        if params["spns"] is not None:
            if not params["spns"]:
                raise ArgumentError("spns", "give at least one SPN, or leave the option out for SMTP/ and SMTPSVC/")
            for spn in params["spns"]:
                if not SPN_PATTERN.match(spn):
                    raise ArgumentError("spns", f"{spn!r} is not a service principal name (serviceclass/host[:port])")
        if params["remove_duplicates"] and params["state"] == "absent":
            raise ArgumentError("remove_duplicates", "only applies to state=present, not state=absent")

    def read_state(self, params: dict[str, t.Any]) -> dict[str, t.Any]:
        return t.cast(dict, self.run_script(SCRIPT, {**self._script_params(params), "action": "read"}))

    def plan(self, params: dict[str, t.Any], before: dict[str, t.Any]) -> Plan:
        account = before["account"]
        if not account["found"]:
            raise AnsibleActionFail(
                f"{self._fqcn}: account: there is no account {account['sam']} in the forest as {before['dc']} sees it"
            )
        sam = account["sam"]
        add: list[str] = []
        remove: dict[str, list[str]] = {}  # account -> SPNs as it holds them (a removal names the stored value)
        removals: list[str] = []  # listed in the order the writes make them: other accounts first
        additions: list[str] = []
        unfixable: list[str] = []
        for spn in before["spns"]:
            holders = holders_of(before, spn)
            others = {owner: held for owner, held in holders.items() if owner.lower() != sam.lower()}
            own = next((held for owner, held in holders.items() if owner.lower() == sam.lower()), None)
            if params["state"] == "absent":
                if own is not None:
                    remove.setdefault(sam, []).append(own)
                    removals.append(f"remove {own} from {sam}")
                if len(others) > 1:
                    unfixable.append(f"{spn} is registered on {' and '.join(sorted(others))} (duplicate)")
                continue
            if others and not params["remove_duplicates"]:
                if own is not None:
                    unfixable.append(
                        f"{spn} is registered on {sam} and on {' and '.join(sorted(others))} (duplicate: Kerberos "
                        f"cannot tell which account the ticket is for); remove_duplicates: true removes it from "
                        f"{' and '.join(sorted(others))}"
                    )
                else:
                    unfixable.append(
                        f"{spn} is held by {' and '.join(sorted(others))}, not by {sam}: a DC refuses to add it to "
                        f"{sam} while another account holds it ({win32_error(8647)}); remove_duplicates: true "
                        "moves it"
                    )
                continue
            for owner, held in sorted(others.items()):
                remove.setdefault(owner, []).append(held)
                removals.append(
                    f"remove {held} from {owner} ({'duplicate of ' + sam if own else 'it belongs on ' + sam})"
                )
            if own is None:
                add.append(spn)
                additions.append(f"add {spn} to {sam}")
        changes = removals + additions
        if not changes:
            return Plan(expected=before, unfixable=unfixable)

        # Removals from other accounts first: the DC refuses an SPN that another account still holds.
        writes = [
            {"dn": owner_dn(before, owner), "add": [], "remove": spns}
            for owner, spns in remove.items()
            if owner.lower() != sam.lower()
        ]
        writes.append({"dn": account["dn"], "add": add, "remove": remove.get(sam, [])})
        expected = {**before, "owners": owners_after(before, sam, account, add, remove)}
        change_params = {
            **self._script_params(params),
            "action": "write",
            "domain_server": before["dc"],  # the same DC the read saw, so the change shows there at once
            "writes": [write for write in writes if write["add"] or write["remove"]],
        }
        return Plan(changes=changes, expected=expected, change_params=change_params, unfixable=unfixable)

    def apply(self, params: dict[str, t.Any], plan: Plan) -> dict[str, t.Any]:
        after = t.cast(dict, self.run_script(SCRIPT, plan.change_params or {}))
        refused = after["refused"]
        if refused is not None:
            names = {item["dn"].lower(): item["sam"] for item in [*after["owners"], after["account"]] if item["dn"]}
            owner = names.get(str(refused["dn"]).lower(), refused["dn"])
            if refused["hresult"] == E_ACCESSDENIED:
                why = "access denied: the account this task uses may not write its servicePrincipalName"
            elif refused["extended_error"]:
                why = f"error {win32_error(refused['extended_error'])}, {hresult(refused['hresult'])}"
            else:
                why = f"{refused['type']} {hresult(refused['hresult'])}"
            raise AnsibleActionFail(
                f"{self._fqcn}: {after['dc']} refused to change the SPNs of {owner} ({why}); the changes before it "
                "were made, the ones after it were not",
                result={"owners": owners_by_spn(after), "refused": refused},
            )
        return after

    def render(self, state: dict[str, t.Any]) -> str:
        sam = state["account"]["sam"]
        lines = [f"as {state['dc']} sees them:"]
        by_owner = {owner["sam"]: owner["spns"] for owner in state["owners"]}
        by_owner.setdefault(sam, [])
        for owner in sorted(by_owner, key=lambda name: (name.lower() != sam.lower(), name.lower())):
            lines.append(f"{owner}:")
            lines += [f"  {spn}" for spn in sorted(by_owner[owner], key=str.lower)] or ["  (none of them)"]
        return "\n".join(lines) + "\n"

    def report(self, params: dict[str, t.Any], before: dict[str, t.Any], after: dict[str, t.Any]) -> dict[str, t.Any]:
        before_by_owner = {o["sam"]: {spn.lower() for spn in o["spns"]} for o in before["owners"]}
        after_by_owner = {o["sam"]: {spn.lower() for spn in o["spns"]} for o in after["owners"]}
        spelled = {spn.lower(): spn for o in before["owners"] + after["owners"] for spn in o["spns"]}
        owners = sorted(set(before_by_owner) | set(after_by_owner))
        added = {
            o: sorted(spelled[s] for s in after_by_owner.get(o, set()) - before_by_owner.get(o, set())) for o in owners
        }
        removed = {
            o: sorted(spelled[s] for s in before_by_owner.get(o, set()) - after_by_owner.get(o, set())) for o in owners
        }
        return {
            "dc": before["dc"],
            "account": before["account"],
            "spns": before["spns"],
            "owners": owners_by_spn(after),
            "duplicates": {spn: holders for spn, holders in owners_by_spn(before).items() if len(holders) > 1},
            "added": {owner: spns for owner, spns in added.items() if spns},
            "removed": {owner: spns for owner, spns in removed.items() if spns},
        }

    @property
    def _fqcn(self) -> str:
        return str(self._task.resolved_action or self._task.action)

    def _script_params(self, params: dict[str, t.Any]) -> dict[str, t.Any]:
        return {
            **domain_params(params),
            "account": params["account"],
            "spns": params["spns"],
            "host_services": SERVICE_CLASSES if params["spns"] is None else None,
        }


def holders_of(state: dict[str, t.Any], spn: str) -> dict[str, str]:
    """Account -> the SPN as that account holds it (SPNs compare case-insensitively)."""
    return {owner["sam"]: held for owner in state["owners"] for held in owner["spns"] if held.lower() == spn.lower()}


def owner_dn(state: dict[str, t.Any], sam: str) -> str:
    return str(next(owner["dn"] for owner in state["owners"] if owner["sam"] == sam))


def owners_after(
    state: dict[str, t.Any], sam: str, account: dict[str, t.Any], add: list[str], remove: dict[str, list[str]]
) -> list[dict[str, t.Any]]:
    """The owners once the writes are made: what the change script must read back."""
    owners = {owner["sam"]: dict(owner) for owner in state["owners"]}
    if add and sam not in owners:
        owners[sam] = {"sam": sam, "dn": account["dn"], "kind": account["kind"], "spns": []}
    for owner, spns in remove.items():
        gone = {spn.lower() for spn in spns}
        owners[owner]["spns"] = [spn for spn in owners[owner]["spns"] if spn.lower() not in gone]
    if add:
        owners[sam]["spns"] = [*owners[sam]["spns"], *add]
    return [owner for owner in owners.values() if owner["spns"]]


def owners_by_spn(state: dict[str, t.Any]) -> dict[str, list[str]]:
    """Each SPN asked for -> the accounts that hold it (none, one, or a duplicate)."""
    return {spn: sorted(holders_of(state, spn)) for spn in state["spns"]}
