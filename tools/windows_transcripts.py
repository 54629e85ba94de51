"""Record transcripts of the host scripts that need no domain, on this Windows machine, exactly as the seam sends them.

Made for GitHub's hosted windows-2022 runner (.github/workflows/windows-host-scripts.yml), and usable on any Windows
machine you may change (it needs administrator rights: the scripts write under HKLM). Each script of SEQUENCES runs
through a fixed sequence of parameter sets; every run starts Windows PowerShell 5.1 (``PowerShell``, as the seam's
command line names it: powershell.exe, never pwsh) with the seam's own command line and stdin
(``build_invocation``), and is written as a transcript in the seam's format (``write_transcript``) under
OUTPUT/windows-2022-runner/. A sequence leaves the machine as it found it. See tests/transcripts/README.md.

The collection must be importable: run it from a checkout at ansible_collections/mailflow/remediation with
PYTHONPATH set to the directory above ansible_collections (as the workflow does), or from a development checkout
after ``make setup`` with PYTHONPATH=.collections::

    python tools/windows_transcripts.py --output transcripts
"""

from __future__ import annotations

import argparse
import base64
import os
import socket
import subprocess
import sys
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

from ansible_collections.mailflow.remediation.plugins.plugin_utils._host_script import (
    HostScriptError,
    build_invocation,
    load_host_script,
    parse_script_output,
    wire_params,
    write_transcript,
)

SOURCE = "windows-2022-runner"
# A run of one script should take seconds; a hung powershell.exe must not hold the runner for its whole timeout.
RUN_TIMEOUT_SECONDS = 300

# Runs a command line with its stdin on this machine and returns (rc, stdout, stderr) as text.
Execute = t.Callable[[str, bytes], tuple[int, str, str]]


class PowerShellCommandLine:
    """The command line ansible-core's PowerShell shell plugin makes of a script (``_encode_script``).

    That plugin cannot be imported on Windows (ansible-core's display module imports fcntl and termios at module
    level), so this reproduces what it sends: the script with Set-StrictMode before it and the exit-code line after
    it, every line stripped and blank ones dropped, as base64 UTF-16-LE behind PowerShell's fixed arguments.
    tests/unit/tools/test_windows_transcripts.py proves it byte for byte equal to the plugin's, for the pinned
    ansible-core.
    """

    ARGUMENTS = ("PowerShell", "-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Unrestricted", "-EncodedCommand")
    BEFORE = "Set-StrictMode -Version Latest"
    AFTER = (
        "If (-not $?) { If (Get-Variable LASTEXITCODE -ErrorAction SilentlyContinue) { exit $LASTEXITCODE } "
        "Else { exit 1 } }"
    )

    def _encode_script(self, script: str) -> str:
        lines = [self.BEFORE, *script.splitlines(), self.AFTER]
        text = "\n".join(line.strip() for line in lines if line.strip())
        return " ".join((*self.ARGUMENTS, base64.b64encode(text.encode("utf-16-le")).decode("ascii")))


class SequenceRefused(Exception):
    """The machine is in a state that a sequence could not put back afterwards, so it does not start."""


@dataclass
class Recorder:
    """Runs host scripts the way the seam does, writing a transcript of each run."""

    execute: Execute
    output: Path
    host: str
    written: list[Path] = field(default_factory=list)

    def run(self, name: str, params: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
        script = load_host_script(name)
        sent = wire_params(script, params)
        command, stdin = build_invocation(PowerShellCommandLine(), script, sent)
        rc, stdout, stderr = self.execute(command, stdin)
        path = write_transcript(
            self.output,
            script=script,
            params=sent,
            host=self.host,
            connection="local",
            rc=rc,
            stdout=stdout,
            stderr=stderr,
        )
        self.written.append(path)
        print(f"{path.name}: {name} {sent} -> rc {rc}", flush=True)
        return parse_script_output(script, rc=rc, stdout=stdout, stderr=stderr)


def kerberos_log_level(recorder: Recorder) -> None:
    """Read, set 1, set -1 (0xFFFFFFFF), remove, read; then put back a REG_DWORD LogLevel that was there."""
    name = "kerberos_log_level"
    before = recorder.run(name, {"action": "read"})
    if before["exists"] and before["kind"] != "DWord":
        # The script writes only REG_DWORD: a value of another kind could not be put back.
        raise SequenceRefused(
            f"{name}: LogLevel is a {before['kind']} value ({before['value']!r}); the script can put back only a "
            "REG_DWORD, so nothing was changed"
        )
    changed = False
    try:
        recorder.run(name, {"action": "set", "value": 1})
        changed = True
        recorder.run(name, {"action": "set", "value": -1})
        recorder.run(name, {"action": "remove"})
        recorder.run(name, {"action": "read"})
        changed = before["exists"]
    finally:
        if changed:
            recorder.run(
                name, {"action": "set", "value": before["value"]} if before["exists"] else {"action": "remove"}
            )


# The host scripts that need no domain, and the sequence each runs through.
SEQUENCES: dict[str, t.Callable[[Recorder], None]] = {"kerberos_log_level": kerberos_log_level}


def run_powershell(command: str, stdin: bytes) -> tuple[int, str, str]:
    """Start the seam's command line as WinRM's cmd shell would, with its stdin, and wait for it."""
    # A string, not a list: Windows hands the command line to the process as it is, as WinRM does.
    completed = subprocess.run(command, input=stdin, capture_output=True, check=False, timeout=RUN_TIMEOUT_SECONDS)
    # powershell.exe writes a redirected stdout and stderr in the console's (OEM) code page; Python names it "oem".
    return (
        completed.returncode,
        completed.stdout.decode("oem", errors="replace"),
        completed.stderr.decode("oem", errors="replace"),
    )


def record(execute: Execute, output: Path, host: str) -> list[Path]:
    """Run every sequence; the transcripts go to ``output``/SOURCE/."""
    recorder = Recorder(execute, output / SOURCE, host)
    for sequence in SEQUENCES.values():
        sequence(recorder)
    return recorder.written


def main(argv: t.Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Record transcripts of the domain-free host scripts on this Windows machine."
    )
    parser.add_argument(
        "--output", type=Path, default=Path("transcripts"), help="the transcripts go to OUTPUT/" + SOURCE
    )
    parser.add_argument("--host", default=socket.gethostname(), help="the host name the transcripts record")
    arguments = parser.parse_args(argv)
    if os.name != "nt":
        print("windows_transcripts: runs Windows PowerShell 5.1, so it runs on Windows only", file=sys.stderr)
        return 2
    try:
        written = record(run_powershell, arguments.output, arguments.host)
    except (HostScriptError, SequenceRefused) as exc:
        print(f"windows_transcripts: {exc}", file=sys.stderr)
        return 1
    print(f"{len(written)} transcripts in {arguments.output / SOURCE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
