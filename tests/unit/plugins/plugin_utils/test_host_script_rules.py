"""Every host script parses as PowerShell and keeps the rules the seam and the lab rely on.

The lab cannot run PowerShell, so this is where a script's syntax is checked: tree-sitter-powershell parses each
file, and a syntax error anywhere fails the test with the line of the first error.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import tree_sitter
import tree_sitter_powershell

from ansible_collections.mailflow.remediation.plugins.plugin_utils._host_script import HEADER_PATTERN, SCRIPT_DIR

SCRIPTS = sorted(SCRIPT_DIR.glob("*.ps1"))
PARSER = tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))
# Tools whose output is text for people, localized: a script may run them for their effect, never read what they print.
LOCALIZED_TOOLS = re.compile(r"\b(w32tm|setspn|repadmin|netsh|nltest|dcdiag|certutil)(\.exe)?\b", re.IGNORECASE)


def first_error(node: tree_sitter.Node) -> tree_sitter.Node | None:
    if node.type == "ERROR" or node.is_missing:
        return node
    for child in node.children:
        found = first_error(child)
        if found is not None:
            return found
    return None


def code_lines(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if not line.lstrip().startswith("#")]


def test_there_are_scripts() -> None:
    assert SCRIPTS, f"no host scripts found in {SCRIPT_DIR}"


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda path: path.name)
def test_script_parses(path: Path) -> None:
    tree = PARSER.parse(path.read_bytes())
    error = first_error(tree.root_node)
    assert error is None, f"{path.name}:{error.start_point[0] + 1}: PowerShell syntax error near {error.text!r}"


def test_the_parser_catches_a_syntax_error() -> None:
    assert first_error(PARSER.parse(b"if ($x -eq { \n try { $a = } ").root_node) is not None


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda path: path.name)
def test_script_rules(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    header = HEADER_PATTERN.match(text.splitlines()[0])
    assert header and header.group("name") == path.stem, "first line: # mailflow-host-script: <file name> vN"
    code = "\n".join(code_lines(path))
    # Parameters arrive as JSON data on stdin ($input), never as code or script arguments.
    assert "$input" in code
    assert not re.search(r"\b(Invoke-Expression|iex)\b|\[scriptblock\]::Create", code, re.IGNORECASE)
    assert not re.match(r"\s*param\s*\(", code), "a host script takes no script parameters, only stdin"
    assert "$ErrorActionPreference = 'Stop'" in code
    # Ansible strips every line before it encodes a script, which would corrupt a here-string's content.
    assert not re.search(r"@[\"']\s*$", code, re.MULTILINE), "here-strings do not survive Ansible's script encoding"
    # One document on stdout, escaped to ASCII so that no console code page can garble it.
    assert "ConvertTo-AsciiJson" in code and "Write-Host" not in code
    for line in code_lines(path):
        if LOCALIZED_TOOLS.search(line):
            assert re.match(r"\s*\$null\s*=", line) or line.rstrip().endswith("| Out-Null"), (
                f"{path.name}: a localized tool's output must be discarded: {line.strip()}"
            )
