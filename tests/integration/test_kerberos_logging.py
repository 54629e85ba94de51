"""kerberos_logging end to end: ansible-playbook -> winrm (NTLM, message encryption) -> the lab (or real hosts).

The rhythm of every module's integration test: check mode -> apply -> apply again -> read back -> assert, with the
lab's journal proving that check mode wrote nothing and its counters proving that bad input cost no round trip.
Against real hosts (MAILFLOW_INTEGRATION_INVENTORY) the rhythm runs from whatever value a host has, and puts it back.
"""

from __future__ import annotations

import typing as t

import pytest

from tests.integration.conftest import PlaybookRunner, requires_lab
from tests.lab.journal import MISSING, registry_value_changes
from tests.playbook import PlaybookRun

pytestmark = pytest.mark.integration

MODULE = "mailflow.remediation.kerberos_logging"
KEY = r"HKLM\SYSTEM\CURRENTCONTROLSET\CONTROL\LSA\KERBEROS\PARAMETERS"


def task(name: str, args: dict[str, t.Any] | None = None, **keywords: t.Any) -> dict[str, t.Any]:
    return {"name": name, MODULE: args or {}, "register": name.replace(" ", "_"), **keywords}


def log_level(playbook: PlaybookRunner) -> t.Any:
    return playbook.lab.host("ex01")["registry"][KEY].get("LogLevel")


def test_check_apply_idempotent_readback_absent_restored(playbook: PlaybookRunner) -> None:
    run = playbook.run(
        [
            task("audit", check_mode=True, diff=True),
            task("enable"),
            task("enable again"),
            task("read back", check_mode=True),
            task("remove", {"state": "absent"}),
            task("restore enabled", {"state": "restored", "previous": "{{ read_back.previous }}"}),
            task("restore original", {"state": "restored", "previous": "{{ audit.previous }}"}),
        ]
    )
    assert run.rc == 0, run.stdout + run.stderr
    for host in sorted({item["host"] for item in run.results}):
        assert_rhythm(run, host)

    if playbook.on_lab:
        assert run.task("audit", "ex01")["result"]["previous"]["exists"] is False and log_level(playbook) is None
        operations = registry_value_changes(playbook.lab.journal(), "ex01")
        # check mode (audit, read back) and the idempotent run wrote nothing: the four real changes are journaled.
        set_1 = ["DWord", 1]
        assert operations == [
            ("LogLevel", MISSING, set_1),
            ("LogLevel", set_1, MISSING),
            ("LogLevel", MISSING, set_1),
            ("LogLevel", set_1, MISSING),
        ]
        trips = playbook.lab.counters()["ex01"]["round_trips"]
        assert trips == 7 + 4  # one read per task, one change per task that changed


def assert_rhythm(run: PlaybookRun, host: str) -> None:
    audit, enable, again, read_back, remove, restore_enabled, restore_original = (
        run.task(name, host)["result"]
        for name in ("audit", "enable", "enable again", "read back", "remove", "restore enabled", "restore original")
    )
    original = audit["previous"]
    was_enabled = original["exists"] and original["kind"] == "DWord" and original["value"] == 1
    set_1 = {"key_exists": True, "exists": True, "kind": "DWord", "value": 1}
    assert audit["changed"] is not was_enabled
    assert "LogLevel = 1 (REG_DWORD)" in audit["diff"]["after"]
    assert enable["changed"] is not was_enabled and enable["log_level"] == set_1
    assert enable["previous"] == original, "check mode changed the value"
    assert again["changed"] is False and again["changes"] == []
    assert read_back["changed"] is False and read_back["previous"] == set_1
    assert remove["changed"] is True and remove["log_level"]["exists"] is False
    assert restore_enabled["changed"] is True and restore_enabled["log_level"] == set_1
    assert restore_original["changed"] is not was_enabled
    assert {k: restore_original["log_level"][k] for k in ("exists", "kind", "value")} == {
        k: original[k] for k in ("exists", "kind", "value")
    }


@requires_lab
def test_check_mode_alone_writes_nothing(playbook: PlaybookRunner) -> None:
    run = playbook.run([task("audit", {"level": 1})], extra_args=["--check", "--diff"])
    assert run.rc == 0
    assert run.task("audit")["result"]["changed"] is True
    assert (
        "+HKLM\\SYSTEM\\CurrentControlSet\\Control\\Lsa\\Kerberos\\Parameters\\LogLevel = 1 (REG_DWORD)" in run.stdout
    )
    assert playbook.lab.journal() == []
    assert log_level(playbook) is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"state": "on"}, "value of state must be one of: present, absent, restored, got: on"),
        ({"level": 2}, "value of level must be one of: 0, 1, got: 2"),
        ({"level": "verbose"}, "level"),
        ({"state": "restored"}, "state is restored but all of the following are missing: previous"),
        ({"loglevel": 1}, "Unsupported parameters for (mailflow.remediation.kerberos_logging) module: loglevel"),
        ({"state": "absent", "level": 0}, "level: only applies to state=present"),
    ],
)
@requires_lab
def test_bad_input_fails_naming_the_option_without_any_round_trip(
    playbook: PlaybookRunner, args: dict[str, t.Any], message: str
) -> None:
    run = playbook.run([task("bad", args)])
    result = run.task("bad")
    assert result["status"] == "failed"
    assert message in result["result"]["msg"]
    counters = playbook.lab.counters()["ex01"]
    assert counters["requests"] == 0 and counters["round_trips"] == 0


@requires_lab
def test_access_denied_names_the_script_and_error_and_writes_nothing(playbook: PlaybookRunner) -> None:
    playbook.lab.set_faults("ex01", registry_write_denied=[KEY])
    try:
        run = playbook.run([task("denied")])
    finally:
        playbook.lab.set_faults("ex01", registry_write_denied=[])
    result = run.task("denied")
    assert result["status"] == "failed"
    assert result["result"]["script"] == "kerberos_log_level"
    assert "System.UnauthorizedAccessException" in result["result"]["msg"]
    assert playbook.lab.journal() == []
    assert log_level(playbook) is None
