"""The drift_report callback: options read once, results taken as the run reports them, failures as warnings."""

from __future__ import annotations

import json
import typing as t
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from ansible import constants
from ansible.inventory.host import Host

from ansible_collections.mailflow.remediation.plugins.callback import drift_report
from ansible_collections.mailflow.remediation.plugins.callback.drift_report import CallbackModule

NAME = "mailflow.remediation.drift_report"


def load_callback() -> CallbackModule:
    """The callback as ansible-core's plugin loader gives it: its documented options known to the configuration."""
    options = yaml.safe_load(drift_report.DOCUMENTATION)["options"]
    constants.config.initialize_plugin_configuration_definitions("callback", NAME, options)
    plugin = CallbackModule()
    plugin._load_name = NAME
    plugin.set_options()
    plugin._display = Display()
    return plugin


class Display:
    def __init__(self) -> None:
        self.warnings: list[str] = []
        self.lines: list[str] = []

    def warning(self, message: str) -> None:
        self.warnings.append(message)

    def display(self, message: str) -> None:
        self.lines.append(message)


class RanTask:
    """The task of a result, as far as the callback looks at it."""

    def __init__(self, action: str) -> None:
        self.action = self.resolved_action = action
        self.args: dict[str, t.Any] = {}
        self.delegate_to: str | None = None

    def get_name(self) -> str:
        return f"run {self.action}"


class Result:
    """What ansible-core hands a callback: the host, the task, the result, the task's fields as it ran."""

    def __init__(self, host: str, action: str, result: dict[str, t.Any], *, check_mode: bool) -> None:
        self._host = Host(host)
        self._task = RanTask(action)
        self._result = result
        self._task_fields = {"check_mode": check_mode}


@pytest.fixture
def callback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CallbackModule:
    monkeypatch.setenv("MAILFLOW_REPORT_DIR", str(tmp_path / "report"))
    monkeypatch.setenv("MAILFLOW_REPORT_FORMATS", "json,junit")
    monkeypatch.setenv("MAILFLOW_REPORT_MAX_CLOCK_SPREAD", "120")
    return load_callback()


def test_options_come_from_the_environment_once(callback: CallbackModule, tmp_path: Path) -> None:
    assert (callback.directory, callback.basename, callback.formats) == (
        str(tmp_path / "report"),
        "mailflow-drift",
        ["json", "junit"],
    )
    assert callback.report.max_clock_spread == 120.0


def test_a_remediation_run_is_fixed_and_other_tasks_are_left_out(callback: CallbackModule, tmp_path: Path) -> None:
    changed = {"changed": True, "changes": ["add ExchangeServer"], "article": "KB 979174", "step": "6"}
    callback.v2_runner_on_ok(Result("ex01", "mailflow.remediation.receive_connector_auth", changed, check_mode=False))
    callback.v2_runner_on_ok(Result("ex01", "ansible.builtin.debug", {"msg": "hello"}, check_mode=False))
    callback.v2_runner_on_unreachable(
        Result("ex02", "mailflow.remediation.spn", {"unreachable": True, "msg": "refused"}, check_mode=False)
    )
    callback.v2_playbook_on_stats(None)
    document = json.loads((tmp_path / "report" / "mailflow-drift.json").read_text(encoding="utf-8"))
    assert [(item["host"], item["check"], item["status"]) for item in document["cells"]] == [
        ("ex01", "receive_connector_auth", "fixed"),
        ("ex02", "spn", "unreachable"),
    ]
    assert callback._display.lines == [
        f"mailflow drift report: {tmp_path / 'report' / 'mailflow-drift.json'}",
        f"mailflow drift report: {tmp_path / 'report' / 'mailflow-drift.xml'}",
    ]
    assert not (tmp_path / "report" / "mailflow-drift.html").exists()


def test_a_delegated_task_is_the_state_of_the_host_it_was_delegated_to(
    callback: CallbackModule, tmp_path: Path
) -> None:
    # fix_550_5_7_64 reads the reference server (ex02) with run_once and delegate_to from the play's first host.
    exported = Result("ex01", "mailflow.remediation.intermediate_ca", {"changed": False}, check_mode=True)
    exported._task.delegate_to = "ex02"
    callback.v2_runner_on_ok(exported)
    callback.v2_playbook_on_stats(None)
    document = json.loads((tmp_path / "report" / "mailflow-drift.json").read_text(encoding="utf-8"))
    assert [(item["host"], item["check"], item["status"]) for item in document["cells"]] == [
        ("ex02", "intermediate_ca", "ok")
    ]


def test_a_report_that_cannot_be_written_is_a_warning(callback: CallbackModule, tmp_path: Path) -> None:
    (tmp_path / "report").write_text("a file where the directory should be", encoding="utf-8")
    callback.v2_runner_on_ok(Result("ex01", "mailflow.remediation.spn", {"changed": False}, check_mode=True))
    callback.v2_playbook_on_stats(None)
    [warning] = callback._display.warnings
    assert warning.startswith("mailflow.remediation.drift_report: could not write the report: ")


def test_a_run_without_the_collections_checks_writes_nothing_and_says_so(
    callback: CallbackModule, tmp_path: Path
) -> None:
    callback.v2_playbook_on_stats(None)
    assert callback._display.warnings == [
        "mailflow.remediation.drift_report: no result of the collection's checks in this run; no report"
    ]
    assert not (tmp_path / "report").exists()


def test_a_report_to_merge_that_is_not_one_is_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "slice.json").write_text("{}", encoding="utf-8")
    monkeypatch.setenv("MAILFLOW_REPORT_DIR", str(tmp_path / "report"))
    monkeypatch.setenv("MAILFLOW_REPORT_MERGE", str(tmp_path / "slice.json"))
    plugin = load_callback()
    plugin.v2_runner_on_ok(Result("ex01", "mailflow.remediation.spn", {"changed": False}, check_mode=True))
    plugin.v2_playbook_on_stats(None)
    assert plugin._display.warnings == [
        f"mailflow.remediation.drift_report: not merged: {tmp_path / 'slice.json'} is not a mailflow.remediation "
        "drift report (JSON)"
    ]
    assert (tmp_path / "report" / "mailflow-drift.json").is_file()


def written(callback: CallbackModule, tmp_path: Path) -> dict[str, t.Any]:
    """The JSON report the callback writes when the run ends."""
    callback.v2_playbook_on_stats(None)
    return t.cast(dict, json.loads((tmp_path / "report" / "mailflow-drift.json").read_text(encoding="utf-8")))


def test_a_change_found_by_a_task_run_in_check_mode_is_drift_not_a_fix(
    callback: CallbackModule, tmp_path: Path
) -> None:
    # The executed task's fields say check mode (--check, or the play's); the task object itself does not.
    changed = {"changed": True, "changes": ["add ExchangeServer"], "article": "KB 979174", "step": "6"}
    callback.v2_runner_on_ok(Result("ex01", "mailflow.remediation.receive_connector_auth", changed, check_mode=True))
    document = written(callback, tmp_path)
    assert [(item["host"], item["check"], item["status"]) for item in document["cells"]] == [
        ("ex01", "receive_connector_auth", "drift")
    ]
    assert document["gate"] == ["ex01 receive_connector_auth: drift: add ExchangeServer"]


def test_a_check_that_failed_is_a_failed_cell_with_its_message(callback: CallbackModule, tmp_path: Path) -> None:
    failed = {"failed": True, "msg": "access denied", "article": "KB 979174", "step": "3"}
    callback.v2_runner_on_failed(Result("ex01", "mailflow.remediation.spn", failed, check_mode=True))
    callback.v2_runner_on_ok(Result("ex02", "mailflow.remediation.spn", {"changed": False}, check_mode=True))
    document = written(callback, tmp_path)
    assert [(item["host"], item["check"], item["status"], item["msg"]) for item in document["cells"]] == [
        ("ex01", "spn", "failed", "access denied"),
        ("ex02", "spn", "ok", ""),
    ]
    assert document["gate"] == ["ex01 spn: could not run: access denied"]


def test_an_unreachable_hosts_cell_carries_the_connections_message(callback: CallbackModule, tmp_path: Path) -> None:
    lost = {"unreachable": True, "msg": "connect to ex02 port 5986: connection refused"}
    callback.v2_runner_on_unreachable(Result("ex02", "mailflow.remediation.spn", lost, check_mode=True))
    document = written(callback, tmp_path)
    assert [(item["host"], item["check"], item["status"], item["msg"]) for item in document["cells"]] == [
        ("ex02", "spn", "unreachable", "connect to ex02 port 5986: connection refused")
    ]
    assert document["gate"] == [
        "ex02: unreachable, its checks did not run: connect to ex02 port 5986: connection refused"
    ]


def test_the_report_names_the_playbooks_run_by_file_and_only_those_with_a_file(
    callback: CallbackModule, tmp_path: Path
) -> None:
    callback.v2_playbook_on_start(object())
    callback.v2_playbook_on_start(SimpleNamespace(_file_name=None))
    callback.v2_playbook_on_start(SimpleNamespace(_file_name="playbooks/audit.yml"))
    callback.v2_runner_on_ok(Result("ex01", "mailflow.remediation.spn", {"changed": False}, check_mode=True))
    assert written(callback, tmp_path)["playbooks"] == ["audit.yml"]


def test_an_unreachable_audit_is_unreachable_in_the_checks_its_task_named_only(
    callback: CallbackModule, tmp_path: Path
) -> None:
    lost = Result("ex02", "mailflow.remediation.audit", {"unreachable": True, "msg": "refused"}, check_mode=True)
    lost._task.args = {"checks": ["spn", "w32time"]}
    callback.v2_runner_on_unreachable(lost)
    assert [(item["host"], item["check"], item["status"]) for item in written(callback, tmp_path)["cells"]] == [
        ("ex02", "w32time", "unreachable"),
        ("ex02", "spn", "unreachable"),
    ]


def test_an_audit_that_lost_its_host_midway_keeps_the_verdicts_it_read(
    callback: CallbackModule, tmp_path: Path
) -> None:
    partial = {
        "unreachable": True,
        "msg": "connection reset",
        "checks": {"w32time": {"changed": False, "article": "KB 979174", "step": "1"}},
    }
    lost = Result("ex02", "mailflow.remediation.audit", partial, check_mode=True)
    lost._task.args = {"checks": ["w32time", "spn"]}
    callback.v2_runner_on_unreachable(lost)
    cells = written(callback, tmp_path)["cells"]
    assert [(item["check"], item["status"], item["msg"]) for item in cells] == [
        ("w32time", "ok", ""),
        ("spn", "unreachable", "connection reset"),
    ]
