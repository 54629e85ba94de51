"""Transcripts: with MAILFLOW_TRANSCRIPT_DIR set, every host-script run is written down as Windows answered it."""

from __future__ import annotations

import json
import typing as t
from pathlib import Path

import pytest
from ansible.utils.display import Display

from ansible_collections.mailflow.remediation.plugins.action.kerberos_logging import ActionModule
from ansible_collections.mailflow.remediation.plugins.plugin_utils._host_script import (
    SCRIPT_DIR,
    TRANSCRIPT_DIR_VARIABLE,
    HostScriptBadOutput,
    load_host_script,
    run_host_script,
    write_transcript,
)
from tests.lab.scripts import BOOTSTRAP_SHA256, LOADER_SHA256, script_sha256
from tests.unit.conftest import EmulatedHost, make_action
from tests.unit.plugins.plugin_utils.test_host_script import fake_action

SCRIPT = load_host_script("kerberos_log_level")
NOT_SET = {"key_exists": True, "exists": False, "kind": None, "value": None}
SET_1 = {"key_exists": True, "exists": True, "kind": "DWord", "value": 1}


def transcripts(directory: Path) -> list[dict[str, t.Any]]:
    return [json.loads(path.read_text(encoding="utf-8")) for path in sorted(directory.glob("*.json"))]


def stdout_of(result: dict[str, t.Any]) -> str:
    document = {"script": "kerberos_log_level", "version": SCRIPT.version, "ok": True, "result": result}
    return json.dumps(document, separators=(",", ":")) + "\r\n"


@pytest.mark.parametrize("path", sorted(SCRIPT_DIR.glob("*.ps1")), ids=lambda path: path.name)
def test_a_transcript_names_the_script_by_the_hash_the_lab_identifies_it_by(path: Path) -> None:
    assert load_host_script(path.stem).sha256 == script_sha256(path.read_text(encoding="utf-8"))


def test_a_task_records_each_run_in_order_under_the_hosts_inventory_name(
    emulated_host: EmulatedHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TRANSCRIPT_DIR_VARIABLE, str(tmp_path / "transcripts"))
    action = make_action(ActionModule, {"state": "present"}, emulated_host)

    result = action.run(task_vars={"inventory_hostname": "exchange-01"})

    assert result["changed"] is True
    recorded = transcripts(tmp_path / "transcripts")
    assert sorted(path.name for path in (tmp_path / "transcripts").iterdir()) == [
        "exchange-01-000001-kerberos_log_level.json",
        "exchange-01-000002-kerberos_log_level.json",
    ]
    for document in recorded:
        assert document.pop("recorded_at").endswith("Z")
    assert recorded == [
        {
            "format": 1,
            "script": "kerberos_log_level",
            "version": SCRIPT.version,
            "sha256": script_sha256(SCRIPT.text),
            "bootstrap_sha256": BOOTSTRAP_SHA256,
            "loader_sha256": LOADER_SHA256,
            "host": "exchange-01",
            "sequence": sequence,
            "connection": "winrm",
            "params": params,
            "rc": 0,
            "stdout": stdout_of(state),
            "stderr": "",
        }
        for sequence, params, state in (
            (1, {"action": "read", "value": None}, NOT_SET),
            (2, {"action": "set", "value": 1}, SET_1),
        )
    ]


def test_nothing_is_recorded_without_the_variable(
    emulated_host: EmulatedHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TRANSCRIPT_DIR_VARIABLE, raising=False)
    monkeypatch.chdir(tmp_path)
    make_action(ActionModule, {"state": "present"}, emulated_host).run(task_vars={"inventory_hostname": "ex01"})
    assert list(tmp_path.iterdir()) == []


def test_an_answer_that_is_not_the_document_is_recorded_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # What Windows printed when the seam could not read it is the most useful transcript of all.
    monkeypatch.setenv(TRANSCRIPT_DIR_VARIABLE, str(tmp_path))
    action = fake_action({"rc": 1, "stdout": "", "stderr": "At line:1 char:5\r\n+ parse error"})[0]
    with pytest.raises(HostScriptBadOutput):
        run_host_script(action, "kerberos_log_level", {"action": "read"}, host="ex01")
    [document] = transcripts(tmp_path)
    assert (document["rc"], document["stdout"], document["stderr"]) == (1, "", "At line:1 char:5\r\n+ parse error")


def test_secrets_are_masked_wherever_they_are_in_the_parameters(tmp_path: Path) -> None:
    params = {
        "action": "read",
        "domain_password": "Secret#1",
        "credentials": {"Client_Secret": "s3cr3t", "user": "CONTOSO\\ansible"},
        "certificates": [{"pfx_base64": "MIIK...", "private_key_pem": "-----BEGIN", "thumbprint": "AB12"}],
    }
    path = write_transcript(
        tmp_path, script=SCRIPT, params=params, host="ex01", connection="psrp", rc=0, stdout="", stderr=""
    )
    assert json.loads(path.read_text(encoding="utf-8"))["params"] == {
        "action": "read",
        "domain_password": "********",
        "credentials": {"Client_Secret": "********", "user": "CONTOSO\\ansible"},
        "certificates": [{"pfx_base64": "********", "private_key_pem": "********", "thumbprint": "AB12"}],
    }


def test_sequence_numbers_count_per_host_and_go_on_after_what_the_directory_holds(tmp_path: Path) -> None:
    # An earlier ansible-playbook run left ex01's runs 1 to 7 here; the next one is 8.
    (tmp_path / "ex01-000007-kerberos_log_level.json").write_text("{}", encoding="utf-8")
    (tmp_path / "ex01-b-000042-kerberos_log_level.json").write_text("{}", encoding="utf-8")

    def record(host: str) -> str:
        return write_transcript(
            tmp_path, script=SCRIPT, params={}, host=host, connection="winrm", rc=0, stdout="", stderr=""
        ).name

    assert [record("ex01"), record("ex02"), record("ex01"), record("dc01.contoso.example"), record("[::1]")] == [
        "ex01-000008-kerberos_log_level.json",
        "ex02-000001-kerberos_log_level.json",
        "ex01-000009-kerberos_log_level.json",
        "dc01.contoso.example-000001-kerberos_log_level.json",
        "___1_-000001-kerberos_log_level.json",
    ]


def test_a_transcript_that_cannot_be_written_is_a_warning_and_the_task_goes_on(
    emulated_host: EmulatedHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("", encoding="utf-8")
    monkeypatch.setenv(TRANSCRIPT_DIR_VARIABLE, str(not_a_directory))
    warnings: list[str] = []
    monkeypatch.setattr(Display, "warning", lambda self, message, *args, **kwargs: warnings.append(message))

    action = make_action(ActionModule, {"state": "present"}, emulated_host)

    result = action.run(task_vars={"inventory_hostname": "ex01"})

    assert result["changed"] is True and "failed" not in result
    assert result["log_level"] == SET_1
    error = f"[Errno 17] File exists: '{not_a_directory}'"
    warning = f"could not write a transcript of host script kerberos_log_level to {not_a_directory}: {error}"
    assert warnings == [warning, warning]  # the read and the change
