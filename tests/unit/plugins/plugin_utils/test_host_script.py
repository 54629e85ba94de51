"""The transport seam: what reaches the host, and how every kind of answer is mapped once."""

from __future__ import annotations

import json
import re
import typing as t
from unittest.mock import MagicMock

import pytest
import requests
from ansible.errors import AnsibleConnectionFailure
from ansible.plugins.loader import shell_loader

from ansible_collections.mailflow.remediation.plugins.plugin_utils._host_script import (
    SCRIPT_DIR,
    HostScriptBadOutput,
    HostScriptRaised,
    HostUnreachable,
    load_host_script,
    parse_script_output,
    run_host_script,
)
from tests.lab.scripts import decode_command_line, identify, script_sha256

SCRIPT = load_host_script("kerberos_log_level")
OK = json.dumps({"script": "kerberos_log_level", "version": SCRIPT.version, "ok": True, "result": {"exists": False}})
RAISED = json.dumps(
    {
        "script": "kerberos_log_level",
        "version": SCRIPT.version,
        "ok": False,
        "error": {"type": "System.UnauthorizedAccessException", "message": "Åtkomst nekad."},
    }
)


def fake_action(outcome: dict[str, t.Any] | Exception) -> tuple[MagicMock, list[tuple[str, str]]]:
    sent: list[tuple[str, str]] = []
    action = MagicMock()
    action._connection._shell = shell_loader.get("powershell")

    def execute(cmd: str, sudoable: bool = True, in_data: str | None = None, **options: t.Any) -> dict[str, t.Any]:
        sent.append((cmd, in_data or ""))
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    action._low_level_execute_command = execute
    return action, sent


def test_script_reaches_the_host_unchanged_with_parameters_as_stdin_data() -> None:
    params = {"action": "set", "value": 1, "note": "'; Remove-Item C:\\ -Recurse #"}
    action, sent = fake_action({"rc": 0, "stdout": OK, "stderr": ""})
    assert run_host_script(action, "kerberos_log_level", params) == {"exists": False}
    command, stdin = sent[0]
    received = identify(decode_command_line(command.split(" ")[0], command.split(" ")[1:]))
    assert (received.name, received.version) == ("kerberos_log_level", SCRIPT.version)
    assert received.sha256 == script_sha256(SCRIPT.text)
    assert json.loads(stdin) == params
    assert "Remove-Item" not in decode_command_line(command.split(" ")[0], command.split(" ")[1:])


@pytest.mark.parametrize(
    ("rc", "stdout", "stderr", "error", "fragments"),
    [
        pytest.param(
            1,
            RAISED,
            "",
            HostScriptRaised,
            ["kerberos_log_level", "System.UnauthorizedAccessException", "Åtkomst nekad."],
            id="host exception",
        ),
        pytest.param(
            0, "", "", HostScriptBadOutput, ["kerberos_log_level", "not its JSON document", "(empty)"], id="no output"
        ),
        pytest.param(
            1,
            "",
            "At line:1 char:5\r\n+ parse error",
            HostScriptBadOutput,
            ["rc=1", "parse error"],
            id="powershell error on stderr",
        ),
        pytest.param(0, "x" * 5000, "", HostScriptBadOutput, ["4400 more characters"], id="long garbage is cut"),
        pytest.param(
            0,
            OK.replace("kerberos_log_level", "other_script"),
            "",
            HostScriptBadOutput,
            ["another script"],
            id="wrong script",
        ),
        pytest.param(1, OK, "", HostScriptBadOutput, ["inconsistent"], id="ok document but rc 1"),
    ],
)
def test_failures_name_the_script_and_what_went_wrong(
    rc: int, stdout: str, stderr: str, error: type, fragments: list[str]
) -> None:
    with pytest.raises(error) as raised:
        parse_script_output(SCRIPT, rc=rc, stdout=stdout, stderr=stderr)
    message = str(raised.value)
    for fragment in fragments:
        assert fragment in message
    assert len(message) < 1500


def test_document_after_profile_noise_is_found() -> None:
    assert parse_script_output(SCRIPT, rc=0, stdout=f"Welcome banner\r\n{OK}\r\n", stderr="") == {"exists": False}


@pytest.mark.parametrize(
    ("failure", "message"),
    [
        (
            AnsibleConnectionFailure("connection refused"),
            "kerberos_log_level could not reach the host: connection refused",
        ),
        (
            requests.exceptions.ConnectionError("Connection aborted."),
            "lost while host script kerberos_log_level ran; it may have made its change: Connection aborted.",
        ),
    ],
)
def test_connection_failure_becomes_unreachable_naming_the_script(failure: Exception, message: str) -> None:
    action = fake_action(failure)[0]
    with pytest.raises(HostUnreachable, match=re.escape(message)):
        run_host_script(action, "kerberos_log_level", {"action": "read"})


@pytest.mark.parametrize("path", sorted(SCRIPT_DIR.glob("*.ps1")), ids=lambda path: path.name)
def test_every_script_names_itself_in_its_header(path: t.Any) -> None:
    script = load_host_script(path.stem)
    assert script.name == path.stem and script.version >= 1
