"""Every .ps1 of the collection parses, has nothing Windows PowerShell 5.1 lacks, and keeps the rules the seam and the
lab rely on; every host script keeps its declared contract.

The lab cannot run PowerShell, so this is where a script's own text is checked (tests/powershell.py does the
parsing). A script whose twin was re-recorded after a careless edit passes every lab test; it does not pass these.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ansible_collections.mailflow.remediation.plugins.plugin_utils._host_script import (
    BOOTSTRAP_PATH,
    HEADER_PATTERN,
    LIBRARY_DIR,
    LIBRARY_HEADER_PATTERN,
    SCRIPT_DIR,
    load_host_library,
    load_host_script,
    wire_text,
)
from tests.powershell import contract_problems, parse, powershell_7_only, script_facts, syntax_error, walk

SCRIPTS = sorted(SCRIPT_DIR.glob("*.ps1"))
LIBRARIES = sorted(LIBRARY_DIR.glob("*.ps1"))
EVERY_PS1 = sorted(Path(SCRIPT_DIR).parents[1].rglob("*.ps1"))
# Tools whose output is text for people, localized: a script may run them for their effect, never read what they print.
LOCALIZED_TOOLS = re.compile(r"\b(w32tm|setspn|repadmin|netsh|nltest|dcdiag|certutil)(\.exe)?\b", re.IGNORECASE)
PARAM_LINE = "param([Parameter(Mandatory = $true)] [object] $params)"


def code_lines(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if not line.lstrip().startswith("#")]


def test_there_are_scripts_and_the_bootstrap_is_among_the_ps1_files() -> None:
    assert SCRIPTS, f"no host scripts found in {SCRIPT_DIR}"
    assert BOOTSTRAP_PATH in EVERY_PS1 and set(SCRIPTS) < set(EVERY_PS1)


@pytest.mark.parametrize("path", EVERY_PS1, ids=lambda path: path.name)
def test_every_ps1_parses(path: Path) -> None:
    assert syntax_error(path.read_text(encoding="utf-8")) is None, path.name


@pytest.mark.parametrize("path", EVERY_PS1, ids=lambda path: path.name)
def test_every_ps1_runs_on_windows_powershell_5_1(path: Path) -> None:
    assert powershell_7_only(path.read_text(encoding="utf-8")) == [], path.name


@pytest.mark.parametrize(
    ("snippet", "finding"),
    [
        ("Get-Item x && Remove-Item x", "line 1: the pipeline chain operators && and || (PowerShell 7.0)"),
        ("Get-Item x || Remove-Item x", "line 1: the pipeline chain operators && and || (PowerShell 7.0)"),
        ("$a = $b ?? 1", "line 1: the null-coalescing operator ?? (PowerShell 7.0)"),
        ("$a ??= 1", "line 1: the null-coalescing operator ?? (PowerShell 7.0)"),
        ("$a = $b ? 1 : 2", "line 1: the ternary operator ? : (PowerShell 7.0)"),
        ("$a = $b?.Name", "line 1: the null-conditional operators ?. and ?[] (PowerShell 7.1)"),
        ("1..3 | ForEach-Object -Parallel { $_ }", "line 1: foreach-object -parallel (PowerShell 7.0)"),
        ("1..3 | % -Parallel { $_ }", "line 1: foreach-object -parallel (PowerShell 7.0)"),
        ("$o = ConvertFrom-Json -AsHashtable $j", "line 1: convertfrom-json -ashashtable (PowerShell 6.0)"),
        ("$o = ConvertFrom-Json $j -Depth 5", "line 1: convertfrom-json -depth (PowerShell 6.2)"),
        ("$ok = Test-Json $j", "line 1: test-json (PowerShell 6.1)"),
        ("Get-Error", "line 1: get-error (PowerShell 7.0)"),
        ("if ($IsWindows) { }", "line 1: $iswindows (PowerShell 6.0)"),
        ("Set-Content x -Encoding utf8NoBOM -Value 1", "line 1: -Encoding utf8NoBOM (PowerShell 6.0)"),
        ("$b = Get-Content x -AsByteStream", "line 1: get-content -asbytestream (PowerShell 6.0)"),
        ("function f {\n begin { }\n clean { }\n}", "line 3: the clean block (PowerShell 7.3)"),
    ],
)
def test_the_5_1_gate_refuses_what_came_with_powershell_6_and_7(snippet: str, finding: str) -> None:
    assert powershell_7_only(snippet) == [finding]


@pytest.mark.parametrize(
    "snippet",
    ["$a = 'x ?? y'", "# $a ?? 1", "$a = $b -eq $c", "Get-Content x -Raw", "$o = ConvertTo-Json $x -Depth 5"],
)
def test_the_5_1_gate_leaves_windows_powershell_alone(snippet: str) -> None:
    assert powershell_7_only(snippet) == []


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda path: path.name)
def test_host_script_rules(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    header = HEADER_PATTERN.match(text.splitlines()[0])
    assert header and header.group("name") == path.stem, "first line: # mailflow-host-script: <file name> vN"
    assert text.isascii(), "a host script is ASCII: it travels on stdin through a console code page"
    code = "\n".join(code_lines(path))
    # Parameters arrive as one object from the bootstrap, never as code, script text or stdin of the script's own.
    assert code.lstrip().startswith(PARAM_LINE + "\n"), f"the first line of code is {PARAM_LINE}"
    assert not re.search(r"\$input\b", code, re.IGNORECASE), "only the bootstrap reads stdin"
    assert not re.search(r"\b(Invoke-Expression|iex)\b|\[scriptblock\]::Create", code, re.IGNORECASE)
    assert "$ErrorActionPreference = 'Stop'" in code
    # The bootstrap writes the one document and sets the exit code; the script returns its result.
    assert not re.search(r"\b(Write-Host|Write-Output|Out-Host|Write-Information)\b", code, re.IGNORECASE)
    assert not any(node.type == "exit" for node in walk(parse(text).root_node)), "only the bootstrap exits"
    assert script_facts(text).output_leaks == []
    for line in code_lines(path):
        if LOCALIZED_TOOLS.search(line):
            assert re.match(r"\s*\$null\s*=", line) or line.rstrip().endswith("| Out-Null"), (
                f"{path.name}: a localized tool's output must be discarded: {line.strip()}"
            )


@pytest.mark.parametrize("path", LIBRARIES, ids=lambda path: path.name)
def test_host_library_rules(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    header = LIBRARY_HEADER_PATTERN.match(text.splitlines()[0])
    assert header and header.group("name") == path.stem, "first line: # mailflow-host-library: <file name> vN"
    assert text.isascii()
    tree = parse(text)
    # A library only defines functions: the bootstrap dot-sources it, and anything else would run, or write to the
    # output, before the script starts.
    statements = [
        node for node in walk(tree.root_node) if node.parent is not None and node.parent.type == "statement_list"
    ]
    top = [node for node in statements if node.parent is not None and node.parent.parent == tree.root_node]
    assert all(node.type == "function_statement" for node in top), [node.type for node in top]
    # It takes what it needs as arguments: a script's contract is checked from the script's own reads and writes.
    assert not re.search(r"\$params\b|\$input\b", text, re.IGNORECASE)
    facts = script_facts(text)
    assert facts.write_apis == {}, f"a library writes nothing: {facts.write_apis}"
    assert not any(node.type == "exit" for node in walk(tree.root_node))
    assert load_host_library(path.stem).version >= 1


@pytest.mark.parametrize("path", EVERY_PS1, ids=lambda path: path.name)
def test_nothing_that_stripping_lines_for_the_wire_would_corrupt(path: Path) -> None:
    # On the wire every line is stripped and comment lines are dropped (wire_text), and Ansible strips lines again.
    tree = parse(path.read_text(encoding="utf-8"))
    for node in walk(tree.root_node):
        assert "here_string" not in node.type, f"line {node.start_point[0] + 1}: a here-string"
        if node.type == "string_literal":
            assert node.start_point[0] == node.end_point[0], f"line {node.start_point[0] + 1}: a string over lines"
        if node.type == "comment":
            assert (node.text or b"").startswith(b"#"), f"line {node.start_point[0] + 1}: a <# block comment #>"
    assert syntax_error(wire_text(path.read_text(encoding="utf-8"))) is None


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda path: path.name)
def test_host_script_keeps_its_contract(path: Path) -> None:
    script = load_host_script(path.stem)
    assert contract_problems(script.text, script.contract) == []


@pytest.mark.parametrize(
    ("old", "new", "problems"),
    [
        pytest.param(
            "[int]$params.value",
            "[int]$params.level",
            [
                "reads $params.level, which the contract does not declare as input",
                "declares input value but never reads $params.value",
            ],
            id="reads level instead of value",
        ),
        pytest.param(
            "[int]$params.value, [Microsoft.Win32.RegistryValueKind]::DWord)",
            "[string]$params.value, [Microsoft.Win32.RegistryValueKind]::String)",
            ["line 25: writes a registry value of kind String; the contract declares ['DWord']"],
            id="writes REG_SZ instead of REG_DWORD",
        ),
        pytest.param(
            "$state.kind = ",
            "$state.type = ",
            ["returns type, which the contract does not declare as output"],
            id="returns a key the contract does not know",
        ),
        pytest.param(
            "\n$state\n",
            "\n$state\n'done'\n",
            ["the last statement must be the result variable (or return it)"],
            id="the result is not the last statement",
        ),
    ],
)
def test_the_contract_check_catches_script_edits_that_the_twin_cannot(old: str, new: str, problems: list[str]) -> None:
    script = load_host_script("kerberos_log_level")
    assert old in script.text
    mutated = script.text.replace(old, new)
    assert contract_problems(mutated, script.contract) == problems
