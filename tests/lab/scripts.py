"""Recognise the collection's host scripts in what a WinRM client asks the lab to run.

Every run is the collection's fixed bootstrap (plugins/plugin_utils/bootstrap.ps1), sent the way Ansible's
PowerShell shell plugin sends a script: ``PowerShell ... -EncodedCommand <base64 UTF-16-LE>``, every line stripped
and blank ones dropped, with ``Set-StrictMode -Version Latest`` before it and an exit-code line after it. Over psrp
the plugin decodes that text and runs it as the pipeline's script. The rest comes on stdin (pipeline input over
psrp): line 1 ``{"loader"}`` (plugins/plugin_utils/loader.ps1, which the bootstrap runs), line 2 ``{"scripts":
[{"name", "version", "script", "libraries"}, ...]}``, line 3 ``{"params": [...]}``: one script for a module's run,
several for a whole host's audit in one round trip.

The lab plays the bootstrap's and the loader's part (it cannot run PowerShell), so it accepts exactly the bootstrap
and loader texts it was reviewed against, and exactly the host scripts whose twins were: anything else is refused,
loudly.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import json
import re
import typing as t
from dataclasses import dataclass

HEADER_PATTERN = re.compile(r"^# mailflow-host-script: (?P<name>[a-z][a-z0-9_]*) v(?P<version>[1-9][0-9]*)$")
LIBRARY_HEADER_PATTERN = re.compile(r"^# mailflow-host-library: (?P<name>[a-z][a-z0-9_]*) v(?P<version>[1-9][0-9]*)$")
BOOTSTRAP_HEADER = "# mailflow-bootstrap v2"
LOADER_HEADER = "# mailflow-loader v3"
# The bootstrap's and the loader's texts as the lab was reviewed against them (their wire forms, see normalized());
# the lab's emulation of both is run_bootstrap in runner.py. tests/unit/lab/test_twin_discipline.py fails when the
# texts and these hashes part ways.
BOOTSTRAP_SHA256 = "d04b8bc3062399720ca56a21ae0f4db6f7a6eb5384fd36ebf7fa3aece642947b"
LOADER_SHA256 = "a514222158a77560c4357dfb9c87c8af90f382ada9b401d81922a98f0b4763e7"
ANSIBLE_PREFIX = "Set-StrictMode -Version Latest"
ANSIBLE_SUFFIX = (
    "If (-not $?) { If (Get-Variable LASTEXITCODE -ErrorAction SilentlyContinue) "
    "{ exit $LASTEXITCODE } Else { exit 1 } }"
)
POWERSHELL = ("powershell", "powershell.exe")
# cmd.exe stops a command line at 8,191 characters; WinRM's cmd shell runs every command through it.
COMMAND_LINE_LIMIT = 8191
COMMAND_LINE_TOO_LONG = "The command line is too long.\r\n"


class ScriptRefused(Exception):
    """What the lab answers to anything that is not the bootstrap running a known, unchanged host script."""


@dataclass(frozen=True)
class ReceivedScript:
    name: str
    version: int
    sha256: str  # of the script and, in order, the libraries it came with: what its twin was reviewed against
    libraries: tuple[str, ...] = ()  # names of the libraries, as their headers give them


@dataclass(frozen=True)
class Request:
    """What the bootstrap read from stdin: the host script, identified, and its parameters."""

    script: ReceivedScript
    params: dict[str, t.Any]


def normalized(text: str) -> str:
    """A script's wire form: every line stripped, blank and comment lines dropped, the header line kept."""
    lines = [line.strip() for line in text.splitlines()]
    kept = lines[:1] + [line for line in lines[1:] if line and not line.startswith("#")]
    return "\n".join(kept)


def script_sha256(text: str, libraries: t.Sequence[str] = ()) -> str:
    """The hash a twin records: of the script's wire form and, after it, each library's, in the order sent."""
    return hashlib.sha256("\n".join(normalized(part) for part in (text, *libraries)).encode("utf-8")).hexdigest()


def command_line_length(command: str, arguments: t.Sequence[str]) -> int:
    return len(" ".join([command, *arguments]))


def decode_command_line(command: str, arguments: t.Sequence[str]) -> str:
    """The PowerShell text of ``PowerShell ... -EncodedCommand X``; refuses any other command line.

    ansible-core before 2.19 encoded an already encoded command once more (its winrm plugin wrapped whatever it was
    given); the outer PowerShell then only starts the inner one, so the inner text is what runs.
    """
    if command.lower() not in POWERSHELL:
        raise ScriptRefused(f"the lab runs only PowerShell -EncodedCommand, not {command!r}")
    lowered = [argument.lower() for argument in arguments]
    if "-encodedcommand" not in lowered or lowered.index("-encodedcommand") + 1 >= len(arguments):
        raise ScriptRefused("the lab runs only PowerShell -EncodedCommand scripts")
    encoded = arguments[lowered.index("-encodedcommand") + 1]
    try:
        text = base64.b64decode(encoded, validate=True).decode("utf-16-le")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ScriptRefused(f"the encoded command is not base64 UTF-16-LE: {exc}") from exc
    inner = text.strip().split(" ")
    if len(text.strip().splitlines()) == 1 and inner[0].lower() in POWERSHELL and "-encodedcommand" in text.lower():
        return decode_command_line(inner[0], inner[1:])
    return text


def _strip_ansible_wrapping(text: str) -> list[str]:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if lines and lines[0] == ANSIBLE_PREFIX:
        lines = lines[1:]
    if lines and lines[-1] == ANSIBLE_SUFFIX:
        lines = lines[:-1]
    return lines


def check_bootstrap(text: str) -> None:
    """Accept the command's text only if it is the reviewed bootstrap, inside Ansible's wrapping."""
    lines = _strip_ansible_wrapping(text)
    if not lines or lines[0] != BOOTSTRAP_HEADER:
        first = lines[0][:80] if lines else "(empty)"
        if lines and HEADER_PATTERN.match(lines[0]):
            raise ScriptRefused(f"a host script on the command line, not through the bootstrap (first line: {first!r})")
        raise ScriptRefused(f"not the mailflow bootstrap (first line: {first!r})")
    digest = hashlib.sha256(normalized("\n".join(lines)).encode("utf-8")).hexdigest()
    if digest != BOOTSTRAP_SHA256:
        raise ScriptRefused(
            f"the bootstrap (sha256 {digest[:16]}) is not the one the lab emulates (sha256 {BOOTSTRAP_SHA256[:16]}): "
            "revisit run_bootstrap in tests/lab/runner.py and record BOOTSTRAP_SHA256 in tests/lab/scripts.py"
        )


def check_loader(text: str) -> None:
    """Accept the loader the bootstrap received on stdin only if it is the one the lab was reviewed against."""
    normal = normalized(text)
    if normal.split("\n", 1)[0] != LOADER_HEADER:
        raise ScriptRefused(f"not the mailflow loader (first line: {normal.split(chr(10), 1)[0][:80]!r})")
    digest = hashlib.sha256(normal.encode("utf-8")).hexdigest()
    if digest != LOADER_SHA256:
        raise ScriptRefused(
            f"the loader (sha256 {digest[:16]}) is not the one the lab emulates (sha256 {LOADER_SHA256[:16]}): "
            "revisit run_bootstrap in tests/lab/runner.py and record LOADER_SHA256 in tests/lab/scripts.py"
        )


def identify(script_text: str, libraries: t.Sequence[str] = ()) -> ReceivedScript:
    """Name, version and hash of a host script and its libraries, as they came in the bootstrap's request."""
    lines = normalized(script_text).splitlines()
    header = HEADER_PATTERN.match(lines[0]) if lines else None
    if header is None:
        first = lines[0][:80] if lines else "(empty)"
        raise ScriptRefused(f"not a mailflow host script (first line: {first!r})")
    names = []
    for library in libraries:
        first_line = normalized(library).split("\n", 1)[0]
        library_header = LIBRARY_HEADER_PATTERN.match(first_line)
        if library_header is None:
            raise ScriptRefused(f"not a mailflow host library (first line: {first_line[:80]!r})")
        names.append(library_header.group("name"))
    return ReceivedScript(
        name=header.group("name"),
        version=int(header.group("version")),
        sha256=script_sha256(script_text, libraries),
        libraries=tuple(names),
    )


class BootstrapFailed(Exception):
    """What would make the bootstrap itself throw on Windows (ConvertFrom-Json of a line that is not JSON)."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


def read_requests(lines: t.Sequence[str]) -> list[Request]:
    """The bootstrap's and the loader's reading of their input: the loader on line 1, the scripts and the libraries
    they require on line 2 (``{"libraries": {NAME: TEXT}, "scripts": [...]}``, each TEXT gzip in base64), their
    parameters in the same order on line 3 (``{"params": [...]}``)."""
    if len(lines) < 3:
        raise BootstrapFailed("System.IndexOutOfRangeException", "Index was outside the bounds of the array.")
    try:
        loader, payload, params = (json.loads(line) for line in lines[:3])
    except ValueError as exc:
        raise BootstrapFailed("System.ArgumentException", f"Invalid JSON primitive: {exc}") from exc
    if not isinstance(loader, dict) or not isinstance(loader.get("loader"), str):
        raise BootstrapFailed("System.Management.Automation.PropertyNotFoundException", "no loader on line 1")
    check_loader(loader["loader"])
    # Under Set-StrictMode, reading a property the input lacks is an error of its own.
    if not isinstance(payload, dict) or not isinstance(payload.get("scripts"), list):
        raise BootstrapFailed("System.Management.Automation.PropertyNotFoundException", "no scripts on line 2")
    libraries = payload.get("libraries")
    if not isinstance(libraries, dict) or not all(isinstance(text, str) for text in libraries.values()):
        raise BootstrapFailed("System.Management.Automation.PropertyNotFoundException", "no libraries on line 2")
    if not isinstance(params, dict) or not isinstance(params.get("params"), list):
        raise BootstrapFailed("System.Management.Automation.PropertyNotFoundException", "no params on line 3")
    if len(params["params"]) != len(payload["scripts"]):
        raise ScriptRefused(f"{len(payload['scripts'])} scripts but {len(params['params'])} sets of parameters")
    return [
        _request(request, values, libraries)
        for request, values in zip(payload["scripts"], params["params"], strict=True)
    ]


def unpack(packed: str) -> str:
    """What the loader's Expand-MailflowText makes of a text: base64, then gzip, then UTF-8."""
    try:
        return gzip.decompress(base64.b64decode(packed, validate=True)).decode("utf-8")
    except (binascii.Error, OSError, EOFError, UnicodeDecodeError) as exc:
        raise BootstrapFailed(
            "System.IO.InvalidDataException",
            f"The archive entry was compressed using an unsupported compression method. ({exc})",
        ) from exc


def read_request(lines: t.Sequence[str]) -> Request:
    """The one request of a run of one script."""
    requests = read_requests(lines)
    if len(requests) != 1:
        raise ValueError(f"{len(requests)} scripts in a run, not one")
    return requests[0]


def _request(request: t.Any, params: t.Any, libraries: dict[str, str]) -> Request:
    if not isinstance(request, dict) or not isinstance(request.get("script"), str):
        raise BootstrapFailed("System.Management.Automation.PropertyNotFoundException", "no script in the request")
    names = request.get("libraries")
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise BootstrapFailed("System.Management.Automation.PropertyNotFoundException", "no libraries in the request")
    if any(name not in libraries for name in names):
        # The loader reads $payload.libraries.<name>: a name that is not there is null, and [scriptblock]::Create
        # of an expanded null fails.
        raise BootstrapFailed("System.ArgumentNullException", "Value cannot be null.")
    received = identify(unpack(request["script"]), [unpack(libraries[name]) for name in names])
    if received.libraries != tuple(names):
        raise ScriptRefused(f"the request names the libraries {names} but carries {list(received.libraries)}")
    if (request.get("name"), request.get("version")) != (received.name, received.version):
        raise ScriptRefused(
            f"the request names {request.get('name')!r} v{request.get('version')!r} but carries "
            f"{received.name} v{received.version}"
        )
    if not isinstance(params, dict):
        raise ScriptRefused(f"the parameters of {received.name} are not a JSON object")
    return Request(received, params)


@dataclass(frozen=True)
class Outcome:
    """What a run printed and returned, before a transport renders it.

    ``error`` is an error that ended the run before the bootstrap could write its document (a refused script, input
    that is not JSON): powershell.exe writes it to stderr as CLIXML, and over psrp the pipeline fails with it.
    """

    stdout: str = ""
    rc: int = 0
    error: str | None = None


CLIXML_HEADER = "#< CLIXML\r\n"
# What powershell.exe 5.1 writes to stderr when its output is redirected and it loads modules: a progress record.
# Ansible's winrm plugin strips it; a client that does not sees it on every run, as on Windows.
PROGRESS_CLIXML = (
    CLIXML_HEADER + '<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'
    '<Obj S="progress" RefId="0"><TN RefId="0"><T>System.Management.Automation.PSCustomObject</T>'
    '<T>System.Object</T></TN><MS><I64 N="SourceId">1</I64><PR N="Record"><AV>Preparing modules for first use.</AV>'
    "<AI>0</AI><Nil /><PI>-1</PI><PC>-1</PC><T>Completed</T><SR>-1</SR><SD> </SD></PR></MS></Obj></Objs>"
)


def clixml_error(message: str) -> str:
    """A terminating error as powershell.exe writes it to a redirected stderr: CLIXML error lines."""
    escaped = (
        message.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "").replace("\n", " ")
    )
    return (
        '<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'
        f'<S S="Error">{escaped}_x000D__x000A_</S></Objs>'
    )
