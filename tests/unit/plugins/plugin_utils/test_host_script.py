"""The transport seam: what reaches the host, and how every kind of answer is mapped once."""

from __future__ import annotations

import base64
import json
import re
import typing as t
from pathlib import Path
from unittest.mock import MagicMock

import pytest
import requests
from ansible.errors import AnsibleConnectionFailure
from ansible.plugins.loader import shell_loader

from ansible_collections.mailflow.remediation.plugins.plugin_utils._host_script import (
    COMMAND_LINE_LIMIT,
    SCRIPT_DIR,
    ContractViolation,
    HostScriptBadOutput,
    HostScriptRaised,
    HostUnreachable,
    build_invocation,
    load_host_script,
    parse_batch_output,
    parse_contract,
    parse_script_output,
    run_host_script,
    run_host_scripts,
    wire_params,
)
from tests.lab.scripts import check_bootstrap, decode_command_line, read_request, script_sha256
from tests.unit.conftest import EmulatedHost

SCRIPT = load_host_script("kerberos_log_level")
SCRIPTS = sorted(SCRIPT_DIR.glob("*.ps1"))
RESULT = {"key_exists": True, "exists": False, "kind": None, "value": None}
OK = json.dumps({"script": "kerberos_log_level", "version": SCRIPT.version, "ok": True, "result": RESULT})
RAISED = json.dumps(
    {
        "script": "kerberos_log_level",
        "version": SCRIPT.version,
        "ok": False,
        "error": {"type": "System.UnauthorizedAccessException", "message": "Åtkomst nekad.", "hresult": -2147024891},
    }
)
SHELL = shell_loader.get("powershell")
WITHOUT_KEY_EXISTS = OK.replace('"key_exists": true, ', "")
EXISTS_AS_TEXT = OK.replace('"exists": false', '"exists": "False"')


def fake_action(outcome: dict[str, t.Any] | Exception) -> tuple[MagicMock, list[tuple[str, bytes]]]:
    sent: list[tuple[str, bytes]] = []
    action = MagicMock()
    action._connection._shell = SHELL

    def execute(cmd: str, sudoable: bool = True, in_data: bytes | None = None, **options: t.Any) -> dict[str, t.Any]:
        sent.append((cmd, in_data or b""))
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    action._low_level_execute_command = execute
    return action, sent


def test_the_command_line_is_the_bootstrap_and_the_script_and_its_parameters_are_stdin_data() -> None:
    params = {"action": "set", "value": 1}
    action, sent = fake_action({"rc": 0, "stdout": OK, "stderr": ""})
    assert run_host_script(action, "kerberos_log_level", params) == RESULT
    command, stdin = sent[0]
    words = command.split(" ")
    check_bootstrap(decode_command_line(words[0], words[1:]))
    request = read_request(stdin.decode("ascii").splitlines())
    assert (request.script.name, request.script.version) == ("kerberos_log_level", SCRIPT.version)
    assert request.script.sha256 == script_sha256(SCRIPT.text)
    assert request.params == params


def test_a_hostile_string_parameter_stays_data_in_the_json_line() -> None:
    script = load_host_script("kerberos_log_level")
    hostile = "'; Remove-Item C:\\ -Recurse #"
    command, stdin = build_invocation(SHELL, script, {"action": "read", "value": None, "extra": hostile})
    lines = stdin.decode("ascii").splitlines()
    assert hostile not in base64.b64decode(command.rsplit(" ", maxsplit=1)[-1]).decode("utf-16-le")
    assert json.loads(lines[2])["params"][0]["extra"] == hostile and hostile not in lines[0] + lines[1]


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda path: path.name)
def test_every_invocation_fits_cmd_exe_even_wrapped_twice(path: Path) -> None:
    script = load_host_script(path.stem)
    params = {key: None for key in script.contract.inputs}
    command = build_invocation(SHELL, script, params)[0]
    # ansible-core before 2.19 encoded an encoded command again over winrm; the line must fit then too.
    wrapped = SHELL._encode_script(command, strict_mode=False, preserve_rc=False)
    assert len(command) < COMMAND_LINE_LIMIT and len(wrapped) < COMMAND_LINE_LIMIT, (len(command), len(wrapped))


def test_the_command_line_does_not_grow_with_the_script() -> None:
    script = load_host_script("kerberos_log_level")
    bigger = type(script)(script.name, script.version, script.text + "\n$x = 1" * 5000, script.contract)
    assert build_invocation(SHELL, bigger, {})[0] == build_invocation(SHELL, script, {})[0]


@pytest.mark.parametrize(
    "params",
    [
        {"action": "set", "value": 1},
        {"action": "read", "value": None, "note": "Åtkomst nekad, Zugriff verweigert ✓"},
    ],
    ids=["ascii", "swedish and german text"],
)
def test_stdin_is_pure_ascii_whatever_the_parameters(params: dict[str, t.Any]) -> None:
    stdin = build_invocation(SHELL, SCRIPT, params)[1]
    assert stdin.decode("ascii") == stdin.decode("cp850")  # no byte above 0x7F
    assert json.loads(stdin.decode("ascii").splitlines()[2]) == {"params": [params]}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"action": "read", "level": 1}, "host script kerberos_log_level declares no input level"),
        ({"action": "enable"}, "host script kerberos_log_level takes action as str read|set|remove, not 'enable'"),
        ({"action": "set", "value": "1"}, "host script kerberos_log_level takes value as int?, not '1'"),
        ({"action": "set", "value": True}, "host script kerberos_log_level takes value as int?, not True"),
        ({}, "host script kerberos_log_level takes action as str read|set|remove, not None"),
    ],
)
def test_parameters_outside_the_contract_never_leave_the_controller(params: dict[str, t.Any], message: str) -> None:
    action, sent = fake_action({"rc": 0, "stdout": OK, "stderr": ""})
    with pytest.raises(ContractViolation) as raised:
        run_host_script(action, "kerberos_log_level", params)
    assert str(raised.value) == message
    assert sent == []


def test_an_optional_input_left_out_travels_as_null() -> None:
    assert wire_params(SCRIPT, {"action": "read"}) == {"action": "read", "value": None}


@pytest.mark.parametrize(
    ("rc", "stdout", "stderr", "error", "message"),
    [
        pytest.param(
            1,
            RAISED,
            "",
            HostScriptRaised,
            "host script kerberos_log_level failed on the host: System.UnauthorizedAccessException: Åtkomst nekad.",
            id="host exception",
        ),
        pytest.param(
            0,
            "",
            "",
            HostScriptBadOutput,
            "host script kerberos_log_level returned output that is not its JSON document (rc=0); stdout: (empty)",
            id="no output",
        ),
        pytest.param(
            1,
            "",
            "At line:1 char:5\r\n+ parse error",
            HostScriptBadOutput,
            "host script kerberos_log_level returned output that is not its JSON document (rc=1); stdout: (empty); "
            "stderr: At line:1 char:5\r\n+ parse error",
            id="powershell error on stderr",
        ),
        pytest.param(
            0,
            "x" * 5000,
            "",
            HostScriptBadOutput,
            "host script kerberos_log_level returned output that is not its JSON document (rc=0); stdout: "
            + "x" * 600
            + "... (4400 more characters)",
            id="long garbage is cut",
        ),
        pytest.param(
            0,
            OK.replace('"kerberos_log_level"', '"other_script"'),
            "",
            HostScriptBadOutput,
            "host script kerberos_log_level returned a document of another script ('other_script' v2) (rc=0); "
            f"stdout: {OK.replace('kerberos_log_level', 'other_script')}",
            id="wrong script",
        ),
        pytest.param(
            1,
            OK,
            "",
            HostScriptBadOutput,
            f"host script kerberos_log_level returned an inconsistent document (rc=1); stdout: {OK}",
            id="ok document but rc 1",
        ),
        pytest.param(
            0,
            WITHOUT_KEY_EXISTS,
            "",
            HostScriptBadOutput,
            "host script kerberos_log_level returned a result that breaks its contract (missing ['key_exists'], "
            f"undeclared []) (rc=0); stdout: {WITHOUT_KEY_EXISTS}",
            id="a key missing from the result",
        ),
        pytest.param(
            0,
            EXISTS_AS_TEXT,
            "",
            HostScriptBadOutput,
            "host script kerberos_log_level returned a result that breaks its contract (exists='False' is not bool) "
            f"(rc=0); stdout: {EXISTS_AS_TEXT}",
            id="a value of the wrong type",
        ),
    ],
)
def test_failures_name_the_script_and_what_went_wrong(
    rc: int, stdout: str, stderr: str, error: type, message: str
) -> None:
    with pytest.raises(error) as raised:
        parse_script_output(SCRIPT, rc=rc, stdout=stdout, stderr=stderr)
    assert str(raised.value) == message


def test_a_host_exception_keeps_its_hresult_for_decisions_that_must_not_read_its_localized_message() -> None:
    with pytest.raises(HostScriptRaised) as raised:
        parse_script_output(SCRIPT, rc=1, stdout=RAISED, stderr="")
    assert (raised.value.error_type, raised.value.hresult) == ("System.UnauthorizedAccessException", -2147024891)


@pytest.mark.parametrize("hresult", ["0x80070005", True, None, 1.5])
def test_a_host_exception_whose_hresult_is_not_a_number_has_none(hresult: t.Any) -> None:
    # Decisions compare the HRESULT with numbers: a string or a JSON boolean is not one, whatever the host sent.
    stdout = RAISED.replace("-2147024891", json.dumps(hresult))
    with pytest.raises(HostScriptRaised) as raised:
        parse_script_output(SCRIPT, rc=1, stdout=stdout, stderr="")
    assert (str(raised.value), raised.value.hresult) == (
        "host script kerberos_log_level failed on the host: System.UnauthorizedAccessException: Åtkomst nekad.",
        None,
    )


@pytest.mark.parametrize(
    "stdout",
    [
        f"Welcome banner\r\n{OK}\r\n",
        f'{{"script": "kerberos_log_level", "version": 1, "note": "a profile printed JSON"}}\r\n{OK}\r\n',
        f"\ufeff{OK}\r\n",
        f"{OK}\r\n\r\n",
    ],
    ids=["profile noise", "two JSON lines: the last is the document", "a byte order mark", "trailing blank lines"],
)
def test_the_document_is_found_in_what_a_real_host_prints(stdout: str) -> None:
    assert parse_script_output(SCRIPT, rc=0, stdout=stdout, stderr="") == RESULT


@pytest.mark.parametrize(
    ("failure", "message"),
    [
        (
            AnsibleConnectionFailure("connection refused"),
            "host script kerberos_log_level could not reach the host: connection refused",
        ),
        (
            requests.exceptions.ConnectionError("Connection aborted."),
            "the connection to the host was lost while host script kerberos_log_level ran; it may have made its "
            "change: Connection aborted.",
        ),
    ],
)
def test_connection_failure_becomes_unreachable_naming_the_script(failure: Exception, message: str) -> None:
    action = fake_action(failure)[0]
    with pytest.raises(HostUnreachable, match=f"^{re.escape(message)}$"):
        run_host_script(action, "kerberos_log_level", {"action": "read"})


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda path: path.name)
def test_every_script_names_itself_and_declares_its_contract(path: Path) -> None:
    script = load_host_script(path.stem)
    assert script.name == path.stem and script.version >= 1
    assert script.contract.outputs, f"{path.name} declares no output"


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("# input action: string", "x.ps1: cannot read the contract line '# input action: string'"),
        ("# input n: int 1|2", "x.ps1: cannot read the contract line '# input n: int 1|2'"),
        ("# output a: bool\n# output a: int", "x.ps1: output a is declared twice"),
        ("# input a: str", "x.ps1: the contract declares no output"),
    ],
)
def test_a_malformed_contract_is_refused(header: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        parse_contract("x", f"# mailflow-host-script: x v1\n{header}\n$x = 1\n")


# --- several scripts in one round trip (the audit of a whole host) ----------------------------------------------------
def test_a_batch_runs_in_one_round_trip_and_a_failing_script_fails_only_its_own_entry(
    emulated_host: EmulatedHost,
) -> None:
    key = r"HKLM\SYSTEM\CurrentControlSet\Control\Lsa\Kerberos\Parameters"
    action = MagicMock()
    action._connection._shell = SHELL
    action._low_level_execute_command = emulated_host.execute
    emulated_host.state.registry_write_denied.add(key.upper())

    outcomes = run_host_scripts(
        action,
        [
            ("kerberos_log_level", {"action": "read"}),
            ("kerberos_log_level", {"action": "set", "value": 1}),
            ("kerberos_log_level", {"action": "read"}),
        ],
    )

    assert len(emulated_host.command_lines) == 1
    assert outcomes[0] == outcomes[2] == {"key_exists": True, "exists": False, "kind": None, "value": None}
    assert isinstance(outcomes[1], HostScriptRaised)
    assert outcomes[1].error_type == "System.UnauthorizedAccessException"


def test_a_batch_with_documents_missing_fails_every_entry() -> None:
    scripts = [SCRIPT, SCRIPT]
    outcomes = parse_batch_output(scripts, rc=1, stdout=OK, stderr="")
    assert [str(outcome) for outcome in outcomes] == [
        f"host script kerberos_log_level returned 1 JSON documents for 2 scripts (rc=1); stdout: {OK}"
    ] * 2


def test_in_a_batch_the_exit_code_of_another_scripts_failure_does_not_spoil_a_good_result() -> None:
    outcomes = parse_batch_output([SCRIPT, SCRIPT], rc=1, stdout=f"{OK}\r\n{RAISED}\r\n", stderr="")
    assert outcomes[0] == RESULT and isinstance(outcomes[1], HostScriptRaised)
