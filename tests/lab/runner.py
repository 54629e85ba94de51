"""The lab's emulation of the collection's bootstrap and loader (plugins/plugin_utils/bootstrap.ps1, loader.ps1):
one run of a host script.

Shared by the lab's transports and the unit tests' emulated host, so that both answer exactly as the lab does.
BOOTSTRAP_SHA256 and LOADER_SHA256 in tests/lab/scripts.py record the texts this emulation was reviewed against:
split the input into lines, run the loader from line 1, read the request and the parameters, run the host script
(its twin), write the document, exit 1 when the script raised.
"""

from __future__ import annotations

import json
import re
import typing as t
from dataclasses import dataclass, field

from ansible_collections.mailflow.remediation.plugins.plugin_utils._host_script import load_host_script
from tests.lab import journal
from tests.lab.fleet import HostException
from tests.lab.scripts import (
    COMMAND_LINE_LIMIT,
    COMMAND_LINE_TOO_LONG,
    PROGRESS_CLIXML,
    BootstrapFailed,
    Outcome,
    Request,
    ScriptRefused,
    check_bootstrap,
    clixml_error,
    command_line_length,
    decode_command_line,
    read_requests,
)
from tests.lab.twins import TWINS, Params, Session, Twin, TwinContext

if t.TYPE_CHECKING:
    from tests.lab.fleet import Fleet, HostState


@dataclass(frozen=True)
class ScriptRun:
    script: str
    params: dict[str, t.Any]
    ok: bool
    changes: list[dict[str, t.Any]] = field(default_factory=list)  # what the lab found changed, see journal.py


@dataclass(frozen=True)
class Run:
    outcome: Outcome
    scripts: list[ScriptRun] = field(default_factory=list)  # none when the run was refused before any script

    @property
    def script(self) -> str | None:
        """The first (for a module's run, the only) host script that ran."""
        return self.scripts[0].script if self.scripts else None

    @property
    def params(self) -> dict[str, t.Any]:
        return self.scripts[0].params if self.scripts else {}

    @property
    def changes(self) -> list[dict[str, t.Any]]:
        return [change for run in self.scripts for change in run.changes]


def run_bootstrap(text: str, lines: list[str], *, host: HostState, fleet: Fleet, session: Session) -> Run:
    try:
        check_bootstrap(text)
        # The bootstrap joins its input and splits it into lines again: over psrp, ansible-core before 2.19 sends
        # stdin as one object with every line in it.
        requests = read_requests([line for line in re.split(r"\r?\n", "\n".join(lines)) if line])
        twins = [_twin(request) for request in requests]
    except ScriptRefused as exc:
        return Run(Outcome(rc=1, error=f"lab: refused: {exc}"))
    except BootstrapFailed as exc:
        return Run(Outcome(rc=1, error=f"{exc.error_type}: {exc.message}"))

    # The loader runs the scripts one after the other, each with its own document; one that fails fails alone.
    lines_out, runs = [], []
    for request, twin in zip(requests, twins, strict=True):
        document: dict[str, t.Any] = {"script": twin.name, "version": twin.version, "ok": True}
        params = Params(twin.name, request.params, load_host_script(twin.name).contract.inputs)
        with fleet.lock:
            before = journal.state_of(host, fleet)
            try:
                document["result"] = twin.run(TwinContext(host, fleet, session), params)
            except HostException as exc:
                document.update(
                    ok=False, error={"type": exc.error_type, "message": exc.message, "hresult": exc.hresult}
                )
            changes = journal.changes(before, journal.state_of(host, fleet))
        # The loader escapes non-ASCII characters, so the output does not depend on the console code page.
        lines_out.append(json.dumps(document, ensure_ascii=True, separators=(",", ":")) + "\r\n")
        runs.append(ScriptRun(twin.name, request.params, bool(document["ok"]), changes))
    rc = 0 if all(run.ok for run in runs) else 1
    return Run(Outcome(stdout="".join(lines_out), rc=rc), runs)


def _twin(request: Request) -> Twin:
    twin = TWINS.get(request.script.name)
    if twin is None:
        raise ScriptRefused(f"unknown host script {request.script.name!r}: the lab has no twin for it")
    if (request.script.version, request.script.sha256) != (twin.version, twin.sha256):
        raise ScriptRefused(
            f"host script {twin.name} v{request.script.version} (sha256 {request.script.sha256[:16]}) is not "
            f"the one its twin was written against (v{twin.version}, sha256 {twin.sha256[:16]}): revisit the twin"
        )
    return twin


@dataclass(frozen=True)
class CommandRun:
    """A cmd shell's command as the client sees it: the bytes of stdout and stderr, and the exit code."""

    stdout: bytes
    stderr: bytes
    rc: int
    run: Run | None = None  # None when cmd.exe or the lab refused the command line before PowerShell started


def run_command_line(
    command: str, arguments: t.Sequence[str], stdin: bytes, *, host: HostState, fleet: Fleet, session: Session
) -> CommandRun:
    """``PowerShell ... -EncodedCommand X`` with its stdin, as cmd.exe and powershell.exe treat them."""
    if command_line_length(command, arguments) > COMMAND_LINE_LIMIT:
        # cmd.exe refuses the line before PowerShell starts: nothing ran.
        return CommandRun(b"", COMMAND_LINE_TOO_LONG.encode("ascii"), 1)
    try:
        text = decode_command_line(command, arguments)
    except ScriptRefused as exc:
        return CommandRun(b"", f"lab: refused: {exc}\r\n".encode(), 1)
    # powershell.exe reads stdin through the console's code page: only ASCII survives it unchanged.
    lines = stdin.decode(host.oem_code_page, errors="replace").splitlines()
    run = run_bootstrap(text, lines, host=host, fleet=fleet, session=session)
    stderr = PROGRESS_CLIXML + (clixml_error(run.outcome.error) if run.outcome.error is not None else "")
    stdout = run.outcome.stdout.encode(host.oem_code_page, errors="replace")
    return CommandRun(stdout, stderr.encode("ascii", errors="replace"), run.outcome.rc, run)
