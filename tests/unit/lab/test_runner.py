"""The lab's cmd shell, as cmd.exe and powershell.exe treat a command: its length, its stdin's code page, the
bootstrap's reading of its input, and the command lines older ansible-core sends."""

from __future__ import annotations

import json
import typing as t

import pytest
from ansible.plugins.loader import shell_loader

from ansible_collections.mailflow.remediation.plugins.plugin_utils._host_script import (
    build_invocation,
    load_host_script,
    wire_params,
)
from tests.lab.fleet import load_fleet
from tests.lab.runner import CommandRun, run_bootstrap, run_command_line
from tests.lab.scripts import COMMAND_LINE_TOO_LONG, decode_command_line
from tests.lab.twins import Session

SHELL = shell_loader.get("powershell")
SCRIPT = load_host_script("kerberos_log_level")
SESSION = Session(auth="ntlm", user="LAB\\ansible")


def run(words: list[str], stdin: bytes, *, locale: str = "en-US") -> CommandRun:
    fleet = load_fleet("single")
    host = fleet.hosts["ex01"]
    host.locale = locale
    return run_command_line(words[0], words[1:], stdin, host=host, fleet=fleet, session=SESSION)


def seam_invocation(params: dict[str, t.Any]) -> tuple[list[str], bytes]:
    command, stdin = build_invocation(SHELL, SCRIPT, wire_params(SCRIPT, params))
    return command.split(" "), stdin


def test_a_command_line_one_character_over_the_limit_never_starts_powershell() -> None:
    words, stdin = seam_invocation({"action": "read"})
    # One more argument, after a space, brings the line to exactly 8,191 characters, then to one more.
    fill = 8191 - len(" ".join(words)) - 1
    at_limit, over = run([*words, "x" * fill], stdin), run([*words, "x" * (fill + 1)], stdin)
    assert at_limit.rc == 0 and at_limit.run is not None
    assert (over.rc, over.stdout, over.stderr, over.run) == (1, b"", COMMAND_LINE_TOO_LONG.encode(), None)


@pytest.mark.parametrize("locale", ["en-US", "sv-SE", "de-DE"])
def test_non_ascii_stdin_is_garbled_by_the_console_code_page_as_on_windows(locale: str) -> None:
    words, stdin = seam_invocation({"action": "read"})
    loader, request, _params = stdin.decode("ascii").splitlines()
    # What a seam that sent UTF-8 instead of escaping would send.
    raw = f"{loader}\n{request}\n{json.dumps({'params': [{'action': 'läs'}]}, ensure_ascii=False)}\n".encode()

    result = run(words, raw, locale=locale)

    assert result.run is not None
    received = result.run.params["action"]
    assert received != "läs" and received == "läs".encode().decode({"en-US": "cp437"}.get(locale, "cp850"))


def test_escaped_stdin_arrives_intact_on_any_code_page() -> None:
    words, stdin = seam_invocation({"action": "read"})
    loader, request, _params = stdin.decode("ascii").splitlines()
    escaped = f"{loader}\n{request}\n{json.dumps({'params': [{'action': 'läs'}]})}\n".encode("ascii")
    result = run(words, escaped, locale="sv-SE")
    assert result.run is not None and result.run.params["action"] == "läs"


def test_pipeline_input_over_psrp_has_no_code_page() -> None:
    words, stdin = seam_invocation({"action": "read"})
    lines = stdin.decode("ascii").splitlines()
    lines[2] = json.dumps({"params": [{"action": "läs"}]}, ensure_ascii=False)
    fleet = load_fleet("single")
    text = decode_command_line(words[0], words[1:])
    outcome = run_bootstrap(text, lines, host=fleet.hosts["ex01"], fleet=fleet, session=SESSION)
    assert outcome.params["action"] == "läs"


def test_the_command_older_ansible_core_wraps_twice_runs_the_same_script() -> None:
    words, stdin = seam_invocation({"action": "read"})
    # ansible-core before 2.19: the winrm plugin encoded the already encoded command once more.
    wrapped = str(SHELL._encode_script(" ".join(words), strict_mode=False, preserve_rc=False)).split(" ")
    direct, twice = run(words, stdin), run(wrapped, stdin)
    assert len(" ".join(wrapped)) <= 8191
    assert twice.rc == direct.rc == 0 and twice.stdout == direct.stdout


@pytest.mark.parametrize(
    ("stdin", "error"),
    [
        (b"", "System.IndexOutOfRangeException: Index was outside the bounds of the array."),
        (b"not json\n{}\n{}\n", "System.ArgumentException: Invalid JSON primitive"),
    ],
    ids=["no input", "input that is not JSON"],
)
def test_input_the_bootstrap_cannot_read_is_a_terminating_error_on_stderr(stdin: bytes, error: str) -> None:
    words, _stdin = seam_invocation({"action": "read"})
    result = run(words, stdin)
    assert result.rc == 1 and result.stdout == b"" and result.run is not None and result.run.script is None
    assert result.stderr.startswith(b"#< CLIXML\r\n") and f'<S S="Error">{error}'.encode() in result.stderr


def test_over_psrp_stdin_as_one_object_holding_both_lines_is_read_the_same() -> None:
    # ansible-core before 2.19 hands pypsrp stdin as one string, which arrives as a single input object.
    words, stdin = seam_invocation({"action": "read"})
    fleet = load_fleet("single")
    text = decode_command_line(words[0], words[1:])
    as_lines = run_bootstrap(
        text, stdin.decode("ascii").splitlines(), host=fleet.hosts["ex01"], fleet=fleet, session=SESSION
    )
    as_one = run_bootstrap(text, [stdin.decode("ascii")], host=fleet.hosts["ex01"], fleet=fleet, session=SESSION)
    assert as_one.outcome == as_lines.outcome and as_one.outcome.rc == 0


def test_a_command_line_that_is_not_powershell_encodedcommand_is_refused_before_anything_runs() -> None:
    result = run(["cmd.exe", "/c", "dir"], b"")
    assert (result.rc, result.stdout, result.run) == (1, b"", None)
    assert result.stderr.startswith(b"lab: refused: the lab runs only PowerShell -EncodedCommand")


def _without_libraries(payload: dict[str, t.Any]) -> None:
    del payload["libraries"]


def _request_without_script(payload: dict[str, t.Any]) -> None:
    del payload["scripts"][0]["script"]


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (_without_libraries, "no libraries on line 2"),
        (_request_without_script, "no script in the request"),
    ],
    ids=["no libraries", "a request without its script"],
)
def test_a_payload_without_a_property_the_loader_reads_fails_with_property_not_found(
    change: t.Callable[[dict[str, t.Any]], None], error: str
) -> None:
    words, stdin = seam_invocation({"action": "read"})
    loader, payload, params = stdin.decode("ascii").splitlines()
    document = json.loads(payload)
    change(document)
    result = run(words, f"{loader}\n{json.dumps(document)}\n{params}\n".encode("ascii"))
    assert result.rc == 1 and result.stdout == b"" and result.run is not None and result.run.script is None
    expected = f'<S S="Error">System.Management.Automation.PropertyNotFoundException: {error}'
    assert expected.encode() in result.stderr


def test_a_localized_error_record_travels_with_its_hresult_and_non_ascii_escaped() -> None:
    script = load_host_script("kerberos_firewall")
    command, stdin = build_invocation(SHELL, script, wire_params(script, {"enable": [], "create": []}))
    fleet = load_fleet("contoso")
    host = fleet.hosts["dc01"]
    host.locale = "sv-SE"
    assert host.firewall is not None
    host.firewall.write_denied = True
    words = command.split(" ")

    result = run_command_line(words[0], words[1:], stdin, host=host, fleet=fleet, session=SESSION)

    assert result.rc == 1 and result.stdout.isascii() and "\\u00c5tkomst nekad." in result.stdout.decode("ascii")
    document = json.loads(result.stdout)
    assert document["error"] == {
        "type": "Microsoft.Management.Infrastructure.CimException",
        "message": "Åtkomst nekad.",
        "hresult": -2147024891,  # 0x80070005 E_ACCESSDENIED
    }
