"""What the host printed, read by the seam: the document among other lines, documents the loader should never write,
and how much of unexpected output a failure quotes."""

from __future__ import annotations

import json
import typing as t

import pytest

from ansible_collections.mailflow.remediation.plugins.plugin_utils._host_script import (
    HostScriptBadOutput,
    HostScriptRaised,
    parse_batch_output,
    parse_script_output,
)
from tests.unit.plugins.plugin_utils.test_host_script import OK, RESULT, SCRIPT

NAME, VERSION = "kerberos_log_level", SCRIPT.version


def line(**document: t.Any) -> str:
    return json.dumps({"script": NAME, "version": VERSION, **document})


def test_a_line_that_opens_like_json_but_is_not_does_not_hide_the_document_after_it() -> None:
    stdout = f"{{ profile loaded }}\r\n{OK}\r\n"
    assert parse_script_output(SCRIPT, rc=0, stdout=stdout, stderr="") == RESULT


@pytest.mark.parametrize(
    ("stdout", "error", "message"),
    [
        pytest.param(
            line(ok=False, error="Access is denied."),
            HostScriptBadOutput,
            "host script kerberos_log_level returned an inconsistent document (rc=1); stdout: "
            + line(ok=False, error="Access is denied."),
            id="ok false with an error that is not an object",
        ),
        pytest.param(
            line(ok=False, error={"message": "Access is denied."}),
            HostScriptRaised,
            "host script kerberos_log_level failed on the host: unknown: Access is denied.",
            id="an error without its type",
        ),
        pytest.param(
            line(ok=False, error={"type": "System.UnauthorizedAccessException"}),
            HostScriptRaised,
            "host script kerberos_log_level failed on the host: System.UnauthorizedAccessException: ",
            id="an error without its message",
        ),
    ],
)
def test_a_document_the_loader_should_never_write_is_one_clear_failure(
    stdout: str, error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as raised:
        parse_script_output(SCRIPT, rc=1, stdout=stdout, stderr="")
    assert str(raised.value) == message


def test_in_a_batch_a_script_with_an_inconsistent_document_is_reported_with_the_exit_code_it_alone_would_have() -> None:
    stdout = f"{OK}\r\n{line(ok='partly', result=RESULT)}\r\n"
    outcomes = parse_batch_output([SCRIPT, SCRIPT], rc=1, stdout=stdout, stderr="")
    assert outcomes[0] == RESULT
    assert (
        str(outcomes[1])
        == f"host script kerberos_log_level returned an inconsistent document (rc=1); stdout: {stdout.strip()}"
    )


@pytest.mark.parametrize(
    ("length", "quoted"),
    [(600, "x" * 600), (601, "x" * 600 + "... (1 more characters)")],
    ids=["600 characters, whole", "601 characters, cut"],
)
def test_unexpected_output_is_quoted_whole_up_to_600_characters(length: int, quoted: str) -> None:
    with pytest.raises(HostScriptBadOutput) as raised:
        parse_script_output(SCRIPT, rc=0, stdout="x" * length, stderr="")
    assert str(raised.value) == (
        f"host script kerberos_log_level returned output that is not its JSON document (rc=0); stdout: {quoted}"
    )
