# Copyright: mailflow.remediation contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of mailflow.remediation.receive_connector_auth (KB 979174 step 6)."""

from __future__ import annotations

import copy
import typing as t

from ansible.errors import AnsibleActionFail

from ansible_collections.mailflow.remediation.plugins.plugin_utils._action_base import (
    ArgumentError,
    ArgumentSpec,
    MailflowAction,
    Plan,
    with_domain_options,
)

SCRIPT = "receive_connectors"
SETUP_KEY = r"HKLM\SOFTWARE\Microsoft\ExchangeServer\v15\Setup"
# The [Flags] enums' names in value order, the order in which Exchange lists them.
AUTH_MECHANISMS = (
    "None",
    "Tls",
    "Integrated",
    "BasicAuth",
    "BasicAuthRequireTLS",
    "ExchangeServer",
    "ExternalAuthoritative",
)
PERMISSION_GROUPS = (
    "None",
    "AnonymousUsers",
    "ExchangeUsers",
    "ExchangeServers",
    "ExchangeLegacyServers",
    "Partners",
    "Custom",
)
# The Transport service's connector for mail from other Exchange servers listens on 2525 (HubTransport role).
INTERNAL_PORT = "2525"
INTERNAL_ROLE = "HubTransport"


class ActionModule(MailflowAction):
    ARTICLE = "KB 979174"
    STEP = "6"
    SUBJECT = "receive connectors (AuthMechanism, PermissionGroups)"
    REACHES = "Exchange"
    ARGUMENTS: t.ClassVar[ArgumentSpec] = with_domain_options(
        ArgumentSpec(argument_spec=dict(connectors=dict(type="list", elements="str")))
    )

    def check_arguments(self, params: dict[str, t.Any]) -> None:
        connectors = params["connectors"]
        if connectors is not None:
            if not connectors:
                raise ArgumentError("connectors", "give at least one connector name or identity, or leave it out")
            blank = [name for name in connectors if not name.strip()]
            if blank:
                raise ArgumentError("connectors", "a connector name or identity cannot be empty")

    def read_state(self, params: dict[str, t.Any]) -> dict[str, t.Any]:
        return t.cast(dict, self.run_script(SCRIPT, {"action": "read", "changes": [], **credentials(params)}))

    def plan(self, params: dict[str, t.Any], before: dict[str, t.Any]) -> Plan:
        fqcn = self._task.resolved_action or self._task.action
        if before["exchange"] is None:
            raise AnsibleActionFail(
                f"{fqcn}: Exchange Server 2013 or later is not installed on this host (no {SETUP_KEY}); run it on "
                "Mailbox servers (the inventory group exchange_servers)"
            )
        server = before["server"]
        chosen = self._chosen(params, before)
        unfixable: list[str] = []
        if not chosen:
            unfixable.append(
                f"{server}: no receive connector of the Transport service ({INTERNAL_ROLE}) listens on port "
                f"{INTERNAL_PORT}: other Exchange servers cannot deliver to {server}; restore the Default {server} "
                "connector, or name the connector that takes their mail in 'connectors'"
            )
        expected = copy.deepcopy(before)
        changes: list[str] = []
        requests: list[dict[str, t.Any]] = []
        for connector in (item for item in expected["connectors"] if item["identity"] in chosen):
            identity = connector["identity"]
            if not connector["enabled"]:
                unfixable.append(
                    f"{identity} is disabled: other Exchange servers cannot deliver through it; enable it "
                    "(Set-ReceiveConnector -Enabled $true) if that is not on purpose"
                )
            auth = canonical(connector["auth_mechanism"], AUTH_MECHANISMS)
            groups = canonical(connector["permission_groups"], PERMISSION_GROUPS)
            request: dict[str, t.Any] = {"identity": identity, "auth_mechanism": None, "permission_groups": None}
            if "ExchangeServer" not in auth:
                if "ExternalAuthoritative" in auth:
                    # Exchange combines ExternalAuthoritative with Tls alone; changing that is not adding.
                    unfixable.append(
                        f"{identity} is externally secured (AuthMechanism ExternalAuthoritative), which Exchange does "
                        "not combine with ExchangeServer; decide whether it should take mail from other Exchange "
                        "servers at all"
                    )
                    continue
                added = [name for name in ("Tls", "ExchangeServer") if name not in auth]
                auth = canonical([*auth, *added], AUTH_MECHANISMS)
                request["auth_mechanism"] = ",".join(auth)
                reason = " (Exchange requires Tls with ExchangeServer)" if "Tls" in added else ""
                changes.append(f"{identity}: AuthMechanism add {', '.join(added)}{reason}")
            if "ExchangeServers" not in groups:
                groups = canonical([*groups, "ExchangeServers"], PERMISSION_GROUPS)
                request["permission_groups"] = ",".join(groups)
                changes.append(f"{identity}: PermissionGroups add ExchangeServers")
            connector["auth_mechanism"], connector["permission_groups"] = auth, groups
            if request["auth_mechanism"] or request["permission_groups"]:
                requests.append(request)
        return Plan(
            changes=changes,
            expected=expected,
            change_params={"action": "set", "changes": requests, **credentials(params)} if requests else None,
            unfixable=unfixable,
        )

    def apply(self, params: dict[str, t.Any], plan: Plan) -> dict[str, t.Any]:
        after = t.cast(dict, self.run_script(SCRIPT, plan.change_params or {}))
        if after["failures"]:
            refused = "; ".join(
                f"{failure['identity']}: {failure['type']}: {failure['message']}" for failure in after["failures"]
            )
            failed = {failure["identity"] for failure in after["failures"]}
            done = [
                change["identity"]
                for change in (plan.change_params or {}).get("changes", [])
                if change["identity"] not in failed
            ]
            raise AnsibleActionFail(
                f"Exchange refused Set-ReceiveConnector for {refused}"
                + (f" (changed before that: {', '.join(done)})" if done else "; nothing was changed")
            )
        return after

    def render(self, state: dict[str, t.Any]) -> str:
        return "".join(
            f"{connector['identity']} ({connector['transport_role']}, {' '.join(connector['bindings'])}"
            f"{'' if connector['enabled'] else ', disabled'}): "
            f"AuthMechanism {', '.join(canonical(connector['auth_mechanism'], AUTH_MECHANISMS))}; "
            f"PermissionGroups {', '.join(canonical(connector['permission_groups'], PERMISSION_GROUPS))}\n"
            for connector in state["connectors"]
        )

    def report(self, params: dict[str, t.Any], before: dict[str, t.Any], after: dict[str, t.Any]) -> dict[str, t.Any]:
        chosen = self._chosen(params, before)
        return {"connectors": [connector for connector in after["connectors"] if connector["identity"] in chosen]}

    def _chosen(self, params: dict[str, t.Any], state: dict[str, t.Any]) -> list[str]:
        """Identities of the connectors to manage: the given ones, else those that take mail from other Exchange
        servers (the Transport service's, on port 2525)."""
        connectors = state["connectors"]
        given = params["connectors"]
        if given is None:
            return [
                connector["identity"]
                for connector in connectors
                if connector["transport_role"] == INTERNAL_ROLE
                and any(binding.rpartition(":")[2] == INTERNAL_PORT for binding in connector["bindings"])
            ]
        chosen = []
        for name in given:
            wanted = name.strip().lower()
            match = next(
                (item for item in connectors if wanted in (item["identity"].lower(), item["name"].lower())), None
            )
            if match is None:
                known = ", ".join(item["identity"] for item in connectors) or "none"
                raise AnsibleActionFail(
                    f"connectors: {state['server']} has no receive connector {name!r} (it has: {known})"
                )
            chosen.append(match["identity"])
        return list(dict.fromkeys(chosen))


def credentials(params: dict[str, t.Any]) -> dict[str, t.Any]:
    # The session goes to the host's own Exchange endpoint: domain_server plays no part.
    return {"domain_username": params.get("domain_username"), "domain_password": params.get("domain_password")}


def canonical(names: t.Iterable[str], order: tuple[str, ...]) -> list[str]:
    """Flag names as Exchange lists them: known names in value order, None dropped beside others."""
    by_lower = {name.lower(): name for name in order}
    wanted = {by_lower.get(name.lower(), name) for name in names}
    known = [name for name in order[1:] if name in wanted]
    unknown = sorted(name for name in wanted if name not in order)
    return known + unknown or (["None"] if "None" in wanted or not wanted else [])
