"""A host script's contract: each type its header comments may declare, what the seam accepts for it from the host,
and where the contract ends."""

from __future__ import annotations

import json
import typing as t

import pytest

from ansible_collections.mailflow.remediation.plugins.plugin_utils._host_script import (
    HostScript,
    HostScriptBadOutput,
    parse_contract,
    parse_script_output,
)


def script_declaring(output: str) -> HostScript:
    text = f"# mailflow-host-script: probe v1\n# output v: {output}\n$result = @{{}}\n"
    return HostScript(name="probe", version=1, text=text, contract=parse_contract("probe", text))


def document(value: t.Any) -> str:
    return json.dumps({"script": "probe", "version": 1, "ok": True, "result": {"v": value}})


@pytest.mark.parametrize(
    ("declared", "value"),
    [
        ("str", ""),
        ("int", -3),
        ("float", 0.25),
        ("float", 2),
        ("bool", False),
        ("list", []),
        ("dict", {}),
        ("datetime", "2024-05-01T10:00:00Z"),
        ("datetime", "2024-05-01T10:00:00.123+02:00"),
        ("any", [1, "a"]),
        ("int?", None),
        ("str read|set", "set"),
    ],
)
def test_a_result_of_the_declared_type_is_returned_as_the_host_sent_it(declared: str, value: t.Any) -> None:
    script = script_declaring(declared)
    assert parse_script_output(script, rc=0, stdout=document(value), stderr="") == {"v": value}


@pytest.mark.parametrize(
    ("declared", "value", "shown"),
    [
        ("str", 1, "v=1 is not str"),
        ("int", 1.5, "v=1.5 is not int"),
        ("int", True, "v=True is not int"),
        ("float", "0.25", "v='0.25' is not float"),
        ("float", True, "v=True is not float"),
        ("bool", 0, "v=0 is not bool"),
        ("list", {}, "v={} is not list"),
        ("dict", [], "v=[] is not dict"),
        ("datetime", "yesterday", "v='yesterday' is not datetime"),
        ("datetime", 20240501, "v=20240501 is not datetime"),
        ("any", None, "v=None is not any"),
        ("int?", "1", "v='1' is not int?"),
        ("str read|set", "remove", "v='remove' is not str read|set"),
    ],
)
def test_a_result_of_another_type_fails_naming_the_key_the_value_and_the_type(
    declared: str, value: t.Any, shown: str
) -> None:
    script = script_declaring(declared)
    stdout = document(value)
    with pytest.raises(HostScriptBadOutput) as raised:
        parse_script_output(script, rc=0, stdout=stdout, stderr="")
    assert (
        str(raised.value)
        == f"host script probe returned a result that breaks its contract ({shown}) (rc=0); stdout: {stdout}"
    )


def test_the_contract_is_the_comment_block_under_the_header_not_a_comment_further_down() -> None:
    text = (
        "# mailflow-host-script: probe v1\n"
        "# input action: str\n"
        "# output v: int\n"
        "$v = 1\n"
        "# output w: int\n"
        "# input extra: str\n"
    )
    contract = parse_contract("probe", text)
    assert (list(contract.inputs), list(contract.outputs)) == (["action"], ["v"])
