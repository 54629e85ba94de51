# Copyright: mailflow.remediation contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of mailflow.remediation.audit: every check of both articles on one host, read in one round trip.

Each check is its module: the audit loads the module's own action plugin, lets it validate its options and build
the read it would make, sends every read in one invocation, and hands each module its answer, so that each check's
verdict is that module's check-mode verdict, by the same code. It never writes.
"""

from __future__ import annotations

import contextlib
import importlib
import typing as t

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.mailflow.remediation.plugins.plugin_utils._action_base import (
    DOMAIN_OPTIONS,
    check_connection,
    domain_params,
)
from ansible_collections.mailflow.remediation.plugins.plugin_utils._checks import (
    CHECKS,
    DIAGNOSTICS,
    ROLES,
    checks_for,
)
from ansible_collections.mailflow.remediation.plugins.plugin_utils._host_script import (
    HostScriptError,
    HostUnreachable,
    run_host_scripts,
)

# Checks made from the controller, which need no host script.
CONTROLLER_CHECKS = frozenset({"smtp_tls_chain"})


class _Recorded(Exception):
    """Ends a check's read once it has said what script it would run."""


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = True
    _supports_check_mode = True
    _supports_async = False

    ARGUMENTS: t.ClassVar[dict[str, t.Any]] = {
        "argument_spec": {
            "checks": {"type": "list", "elements": "str", "choices": list(CHECKS)},
            "role": {"type": "str", "choices": list(ROLES), "default": "auto"},
            "options": {"type": "dict", "default": {}},
            **DOMAIN_OPTIONS,
        },
        "required_together": [("domain_username", "domain_password")],
    }

    def run(self, tmp: t.Any = None, task_vars: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        result = super().run(tmp, task_vars)
        del tmp
        task_vars = task_vars or {}
        fqcn = str(self._task.resolved_action or self._task.action)
        try:
            params = self.validate_argument_spec(**self.ARGUMENTS)[1]
        except AnsibleActionFail as exc:
            raise AnsibleActionFail(str(exc.message).replace(f"({self._load_name})", f"({fqcn})")) from None
        checks = params["checks"] or checks_for(params["role"], task_vars.get("group_names", []))
        unknown = sorted(set(params["options"]) - set(CHECKS))
        if unknown:
            raise AnsibleActionFail(f"options: no check named {', '.join(unknown)}; the checks are {', '.join(CHECKS)}")
        for name, options in params["options"].items():
            if not isinstance(options, dict):
                raise AnsibleActionFail(f"options: {name}: must be a dictionary of that module's options")
        check_connection(self)

        host = str(task_vars.get("inventory_hostname", "the host"))
        actions = {name: self._check_action(name, params, host) for name in checks}
        # Every check's options are validated, and every read planned, before the host is contacted: bad input for
        # one check fails the task with nothing sent.
        reads: dict[str, tuple[dict[str, t.Any], tuple[str, dict[str, t.Any]]]] = {}
        problems = []
        for name, action in actions.items():
            try:
                if name in CONTROLLER_CHECKS:
                    action.validate_argument_spec(**action.ARGUMENTS)
                else:
                    reads[name] = self._planned_read(action)
            except AnsibleActionFail as exc:
                problems.append(f"{name}: {exc.message}")
        if problems:
            raise AnsibleActionFail(f"{fqcn}: " + "; ".join(problems))
        cells: dict[str, dict[str, t.Any]] = {}

        try:
            answers = run_host_scripts(self, [call for _params, call in reads.values()], host=host) if reads else []
        except HostUnreachable as exc:
            result.update(unreachable=True, msg=str(exc), checks=cells)
            return result

        for (name, (check_params, _call)), answer in zip(reads.items(), answers, strict=True):
            cells[name] = self._verdict(name, actions[name], check_params, answer)
        for name in checks:
            if name in CONTROLLER_CHECKS:
                cells[name] = self._controller_check(actions[name], task_vars)
        return self._summary(result, {name: cells[name] for name in checks})

    # --- one check ------------------------------------------------------------------------------------------------
    def _check_action(self, name: str, params: dict[str, t.Any], host: str) -> t.Any:
        """The module's own action plugin, for a task that is the audit's with the check's options, in check mode."""
        task = self._task.copy()
        task.args = {**domain_params(params), **params["options"].get(name, {})}
        task.action = f"mailflow.remediation.{name}"
        # What the check's messages name the module by: a plain attribute before ansible-core 2.19, since then a
        # property over the name the task's action resolved to.
        if isinstance(getattr(type(task), "resolved_action", None), property):
            task._resolved_action = task.action
        else:
            task.resolved_action = task.action
        task.check_mode = True
        # The module's own action plugin, the same code a task of that module runs.
        module = importlib.import_module(f"{__package__}.{name}")
        action = module.ActionModule(
            task=task,
            connection=self._connection,
            play_context=self._play_context,
            loader=self._loader,
            templar=self._templar,
            shared_loader_obj=self._shared_loader_obj,
        )
        action._load_name = module.__name__
        action._inventory_hostname = host
        return action

    @staticmethod
    def _planned_read(action: t.Any) -> tuple[dict[str, t.Any], tuple[str, dict[str, t.Any]]]:
        """The check's validated options and the one host script its read would run, found by letting it read."""
        params = action._validated_arguments()
        calls: list[tuple[str, dict[str, t.Any]]] = []

        def record(name: str, script_params: t.Mapping[str, t.Any]) -> t.Any:
            calls.append((name, dict(script_params)))
            raise _Recorded

        action.run_script = record
        with contextlib.suppress(_Recorded):
            action.read_state(params)
        if len(calls) != 1:
            raise AnsibleActionFail(f"the check's read ran {len(calls)} host scripts, not one")
        return params, calls[0]

    @staticmethod
    def _verdict(
        name: str, action: t.Any, params: dict[str, t.Any], answer: dict[str, t.Any] | HostScriptError
    ) -> dict[str, t.Any]:
        """The module's check-mode verdict on the answer its read got."""

        def replay(_name: str, _params: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
            if isinstance(answer, HostScriptError):
                raise answer
            return answer

        action.run_script = replay
        try:
            cell = action.judge(params)
        except AnsibleActionFail as exc:
            cell = {"article": action.ARTICLE, "step": action.STEP, "failed": True, "msg": str(exc.message)}
        if name in DIAGNOSTICS and "changed" in cell:
            cell.update(changed=False, diagnostic=True, would_change=cell["changed"])
        return t.cast(dict, cell)

    @staticmethod
    def _controller_check(action: t.Any, task_vars: dict[str, t.Any]) -> dict[str, t.Any]:
        try:
            return t.cast(dict, action.run(task_vars=task_vars))
        except AnsibleActionFail as exc:
            return {"failed": True, "msg": str(exc.message)}

    # --- the host ---------------------------------------------------------------------------------------------------
    @staticmethod
    def _summary(result: dict[str, t.Any], cells: dict[str, dict[str, t.Any]]) -> dict[str, t.Any]:
        drift = [name for name, cell in cells.items() if cell.get("changed")]
        failed = [name for name, cell in cells.items() if cell.get("failed") or cell.get("unreachable")]
        unfixable = [f"{name}: {item}" for name, cell in cells.items() for item in cell.get("unfixable", [])]
        result.update(
            changed=bool(drift),
            checks=cells,
            drift=drift,
            failed_checks=failed,
            unfixable=unfixable,
            article="KB 979174, KB 3212877",
            step="audit",
        )
        if unfixable:
            result["warnings"] = [f"cannot be fixed by a module: {item}" for item in unfixable]
        if failed:
            result.update(
                failed=True,
                msg="checks that could not run: "
                + "; ".join(f"{name}: {cells[name].get('msg', 'failed')}" for name in failed),
            )
        return result
