# Copyright: mailflow.remediation contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Callback plugin mailflow.remediation.drift_report: the fleet drift report of an audit or a remediation run."""

from __future__ import annotations

DOCUMENTATION = r"""
name: drift_report
type: notification
short_description: Write the fleet drift report of an audit or a remediation (JSON, JUnit XML, HTML)
version_added: 0.1.0
description:
  - Collects the results of the collection's checks during a run, one cell per host and check, and when the run ends
    writes one fleet report in up to three formats; JSON for machines (every host and check, with what each module
    found), JUnit XML for CI (a test case per host and check; drift and what no module can fix are failures, a check
    that could not run and an unreachable host are errors) and a self-contained HTML page for people (the host x check
    matrix, coloured by status, a clock-offset chart, each cell linking to its evidence and to its article step).
  - "A cell's status: V(ok); V(drift) (check mode found something a real run would change); V(fixed) (a real run
    changed it); V(failed) (the check could not run, or a change did not take); V(unreachable)."
  - Takes the results of M(mailflow.remediation.audit) (each of its checks is a cell) and of every module of the
    collection run as a task (a remediation run, where a change is V(fixed)). Other tasks are left out.
  - The fleet-level checks are computed from all the cells together; the largest clock offset between any two hosts,
    an SPN registered on two accounts, a DC that replicates from a failing partner.
  - Sliced runs (AWX or Automation Platform job slicing, ansible-runner) write one report each; a run with O(merge)
    set joins them into one report and computes the fleet-level checks across all of them.
  - A report that cannot be written is a warning; it never fails the run.
requirements:
  - enabled in C(callbacks_enabled) (C(ANSIBLE_CALLBACKS_ENABLED=mailflow.remediation.drift_report))
options:
  directory:
    description: The directory the report is written to; created when missing.
    type: path
    default: mailflow-report
    env:
      - name: MAILFLOW_REPORT_DIR
    ini:
      - section: mailflow_drift_report
        key: directory
  basename:
    description: The report's file name without extension; the formats add C(.json), C(.xml) and C(.html).
    type: str
    default: mailflow-drift
    env:
      - name: MAILFLOW_REPORT_BASENAME
    ini:
      - section: mailflow_drift_report
        key: basename
  formats:
    description: The formats to write.
    type: list
    elements: str
    choices: [json, junit, html]
    default: [json, junit, html]
    env:
      - name: MAILFLOW_REPORT_FORMATS
    ini:
      - section: mailflow_drift_report
        key: formats
  title:
    description: The report's title, on the HTML page and as the JUnit test suites' name.
    type: str
    default: Mail-flow drift report
    env:
      - name: MAILFLOW_REPORT_TITLE
    ini:
      - section: mailflow_drift_report
        key: title
  max_clock_spread:
    description: Seconds two clocks of the fleet may be apart (KB 979174 step 1; Kerberos allows 300).
    type: float
    default: 300
    env:
      - name: MAILFLOW_REPORT_MAX_CLOCK_SPREAD
    ini:
      - section: mailflow_drift_report
        key: max_clock_spread
  merge:
    description:
      - JSON reports of earlier runs to join into this run's report, for example those of the slices of one audit.
        Their cells come first, this run's last; the fleet-level checks are computed over all of them.
      - With the playbook C(mailflow.remediation.merge_reports), which runs no task on any host, the report is the
        merge of these alone.
    type: list
    elements: path
    default: []
    env:
      - name: MAILFLOW_REPORT_MERGE
    ini:
      - section: mailflow_drift_report
        key: merge
"""


import typing as t

from ansible.plugins.callback import CallbackBase

from ansible_collections.mailflow.remediation.plugins.plugin_utils._drift_report import (
    Report,
    ReportError,
    check_name,
    load,
    merge,
    write,
)


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "mailflow.remediation.drift_report"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self.report = Report()
        self.directory = "mailflow-report"
        self.basename = "mailflow-drift"
        self.formats: list[str] = []
        self.merge_from: list[str] = []

    def set_options(self, task_keys: t.Any = None, var_options: t.Any = None, direct: t.Any = None) -> None:
        super().set_options(task_keys=task_keys, var_options=var_options, direct=direct)
        self.directory = str(self.get_option("directory"))
        self.basename = str(self.get_option("basename"))
        self.formats = list(self.get_option("formats"))
        self.merge_from = [str(path) for path in self.get_option("merge") or []]
        self.report = Report(
            title=str(self.get_option("title")), max_clock_spread=float(self.get_option("max_clock_spread"))
        )

    # --- what the run reports -------------------------------------------------------------------------------------
    def v2_playbook_on_start(self, playbook: t.Any) -> None:
        name = str(getattr(playbook, "_file_name", "") or "")
        if name:
            self.report.playbooks.append(name.rsplit("/", 1)[-1])

    @staticmethod
    def _action(result: t.Any) -> str | None:
        """The task's action, or None when it is not one of the collection's checks (most tasks of a play)."""
        task = result._task
        action = getattr(task, "resolved_action", None) or task.action
        return action if check_name(action) is not None else None

    @staticmethod
    def _where(result: t.Any) -> dict[str, t.Any]:
        """The task's name and arguments and the host's groups, which say what an audit covers on that host."""
        task = result._task
        return {
            "task": task.get_name(),
            "args": task.args,
            "groups": [group.get_name() for group in result._host.get_groups()],
        }

    @staticmethod
    def _host_name(result: t.Any) -> str:
        """The host the task ran on: the one it was delegated to, if any (delegate_to reports under the play's
        host, but what it read is the other host's state). The task a callback gets has delegate_to templated."""
        delegated = getattr(result._task, "delegate_to", None)
        return delegated if isinstance(delegated, str) and delegated else str(result._host.get_name())

    def _take(self, result: t.Any) -> None:
        action = self._action(result)
        if action is None:
            return
        fields = getattr(result, "_task_fields", None) or {}
        # The task's check mode as it ran (the play's, the task's or --check), from the executed task's fields.
        check_mode = fields.get("check_mode")
        if not isinstance(check_mode, bool):
            check_mode = bool(getattr(result._task, "check_mode", False))
        self.report.add_result(
            self._host_name(result), action, result._result, check_mode=check_mode, **self._where(result)
        )

    def v2_runner_on_ok(self, result: t.Any) -> None:
        self._take(result)

    def v2_runner_on_failed(self, result: t.Any, ignore_errors: bool = False) -> None:
        self._take(result)

    def v2_runner_on_unreachable(self, result: t.Any) -> None:
        if isinstance(result._result.get("checks"), dict) and result._result["checks"]:
            # The audit read part of the host before it went away: its checks keep their verdicts, and the others
            # are unreachable.
            self._take(result)
            return
        action = self._action(result)
        if action is None:
            return
        self.report.add_unreachable(
            self._host_name(result), action, str(result._result.get("msg") or "unreachable"), **self._where(result)
        )

    # --- the report ---------------------------------------------------------------------------------------------
    def v2_playbook_on_stats(self, stats: t.Any) -> None:
        report = self.report
        try:
            if self.merge_from:
                report = merge([load(path) for path in self.merge_from], report)
        except ReportError as exc:
            self._display.warning(f"mailflow.remediation.drift_report: not merged: {exc}")
        if not report.cells:
            self._display.warning(
                "mailflow.remediation.drift_report: no result of the collection's checks in this run; no report"
            )
            return
        try:
            written = write(report.document(), self.directory, basename=self.basename, formats=self.formats)
        except (OSError, ValueError) as exc:
            self._display.warning(f"mailflow.remediation.drift_report: could not write the report: {exc}")
            return
        for path in written:
            self._display.display(f"mailflow drift report: {path}")
