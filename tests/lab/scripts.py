"""Recognise the collection's host scripts in what a WinRM client asks the lab to run.

Ansible's PowerShell shell plugin sends a script as ``PowerShell ... -EncodedCommand <base64 UTF-16-LE>``, after
stripping every line and dropping blank ones, with ``Set-StrictMode -Version Latest`` before it and an exit-code
line after it. The lab accepts exactly that wrapping around a known script and nothing else.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

HEADER_PATTERN = re.compile(r"^# mailflow-host-script: (?P<name>[a-z][a-z0-9_]*) v(?P<version>[1-9][0-9]*)$")
ANSIBLE_PREFIX = "Set-StrictMode -Version Latest"
ANSIBLE_SUFFIX = (
    "If (-not $?) { If (Get-Variable LASTEXITCODE -ErrorAction SilentlyContinue) "
    "{ exit $LASTEXITCODE } Else { exit 1 } }"
)


class ScriptRefused(Exception):
    """What the lab answers to anything that is not a known, unchanged host script."""


@dataclass(frozen=True)
class ReceivedScript:
    name: str
    version: int
    sha256: str


def normalized(text: str) -> str:
    """The script as Ansible sends it: every line stripped, blank lines dropped."""
    return "\n".join(line.strip() for line in text.splitlines() if line.strip())


def script_sha256(text: str) -> str:
    return hashlib.sha256(normalized(text).encode("utf-8")).hexdigest()


def decode_command_line(command: str, arguments: list[str]) -> str:
    """The PowerShell text of ``PowerShell ... -EncodedCommand X``; refuses any other command line."""
    if command.lower() not in ("powershell", "powershell.exe"):
        raise ScriptRefused(f"the lab runs only PowerShell -EncodedCommand, not {command!r}")
    lowered = [argument.lower() for argument in arguments]
    if "-encodedcommand" not in lowered or lowered.index("-encodedcommand") + 1 >= len(arguments):
        raise ScriptRefused("the lab runs only PowerShell -EncodedCommand scripts")
    encoded = arguments[lowered.index("-encodedcommand") + 1]
    try:
        return base64.b64decode(encoded, validate=True).decode("utf-16-le")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ScriptRefused(f"the encoded command is not base64 UTF-16-LE: {exc}") from exc


def identify(script_text: str) -> ReceivedScript:
    """Name, version and hash of the host script inside Ansible's wrapping."""
    lines = normalized(script_text).splitlines()
    if lines and lines[0] == ANSIBLE_PREFIX:
        lines = lines[1:]
    if lines and lines[-1] == ANSIBLE_SUFFIX:
        lines = lines[:-1]
    header = HEADER_PATTERN.match(lines[0]) if lines else None
    if header is None:
        first = lines[0][:80] if lines else "(empty)"
        raise ScriptRefused(f"not a mailflow host script (first line: {first!r})")
    return ReceivedScript(
        name=header.group("name"),
        version=int(header.group("version")),
        sha256=hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest(),
    )
