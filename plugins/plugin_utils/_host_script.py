# Copyright: mailflow.remediation contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one transport seam: run a static host script over the task's own connection.

Private to the mailflow.remediation collection; not a public API and may change without notice.

A host script is a static ``.ps1`` file in ``host_scripts/``. Its first line names it and its version
(``# mailflow-host-script: NAME vN``). Parameters travel as JSON on stdin; the script writes one JSON document
to stdout: ``{"script": NAME, "version": N, "ok": true, "result": ...}`` or, when it caught an exception,
``{"script": NAME, "version": N, "ok": false, "error": {"type": ..., "message": ...}}``.
"""

from __future__ import annotations

import functools
import json
import re
import typing as t
from dataclasses import dataclass
from pathlib import Path

from ansible.errors import AnsibleConnectionFailure

if t.TYPE_CHECKING:
    from ansible.plugins.action import ActionBase

SCRIPT_DIR = Path(__file__).resolve().parent / "host_scripts"
HEADER_PATTERN = re.compile(r"^# mailflow-host-script: (?P<name>[a-z][a-z0-9_]*) v(?P<version>[1-9][0-9]*)$")

# What a failure message quotes of unexpected output: enough to recognise it, never a whole dump.
EXCERPT_LIMIT = 600


class HostScriptError(Exception):
    """Base of the failures the seam reports; the action base turns each into a task result once."""

    def __init__(self, script: str, message: str) -> None:
        super().__init__(message)
        self.script = script


class HostScriptRaised(HostScriptError):
    """The script caught an exception on the host (access denied, missing cmdlet, ...)."""

    def __init__(self, script: str, error_type: str, error_message: str) -> None:
        super().__init__(script, f"host script {script} failed on the host: {error_type}: {error_message}")
        self.error_type = error_type
        self.error_message = error_message


class HostScriptBadOutput(HostScriptError):
    """The host answered, but not with the script's JSON document."""

    def __init__(self, script: str, reason: str, *, rc: int, stdout: str, stderr: str) -> None:
        excerpt = excerpt_of(stdout) or "(empty)"
        message = f"host script {script} returned {reason} (rc={rc}); stdout: {excerpt}"
        if stderr.strip():
            message += f"; stderr: {excerpt_of(stderr)}"
        super().__init__(script, message)
        self.rc = rc


class HostUnreachable(HostScriptError):
    """The connection itself failed: Ansible reports the host as unreachable."""


@dataclass(frozen=True)
class HostScript:
    name: str
    version: int
    text: str


def excerpt_of(text: str, limit: int = EXCERPT_LIMIT) -> str:
    text = text.strip()
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


@functools.cache
def load_host_script(name: str) -> HostScript:
    """Read ``host_scripts/NAME.ps1`` and check that its header names it."""
    path = SCRIPT_DIR / f"{name}.ps1"
    text = path.read_text(encoding="utf-8")
    header = HEADER_PATTERN.match(text.splitlines()[0] if text else "")
    if header is None or header.group("name") != name:
        raise ValueError(f"{path.name}: the first line must be '# mailflow-host-script: {name} vN'")
    return HostScript(name=name, version=int(header.group("version")), text=text)


def parse_script_output(script: HostScript, *, rc: int, stdout: str, stderr: str) -> t.Any:
    """Turn what the host printed into the script's result, or raise the one matching failure."""
    document = _find_document(stdout)
    if document is None:
        raise HostScriptBadOutput(
            script.name, "output that is not its JSON document", rc=rc, stdout=stdout, stderr=stderr
        )
    if document.get("script") != script.name or document.get("version") != script.version:
        raise HostScriptBadOutput(
            script.name,
            f"a document of another script ({document.get('script')!r} v{document.get('version')!r})",
            rc=rc,
            stdout=stdout,
            stderr=stderr,
        )
    if document.get("ok") is True and rc == 0 and "result" in document:
        return document["result"]
    error = document.get("error")
    if document.get("ok") is False and isinstance(error, dict):
        raise HostScriptRaised(script.name, str(error.get("type", "unknown")), str(error.get("message", "")))
    raise HostScriptBadOutput(script.name, "an inconsistent document", rc=rc, stdout=stdout, stderr=stderr)


def _find_document(stdout: str) -> dict[str, t.Any] | None:
    # The script prints exactly one compressed JSON line; a profile or a module load may print before it, so the
    # last line that parses as an object is the document.
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            candidate = json.loads(line)
        except ValueError:
            continue
        if isinstance(candidate, dict):
            return candidate
    return None


def run_host_script(action: ActionBase, name: str, params: t.Mapping[str, t.Any]) -> t.Any:
    """Run one static host script over the task's connection (winrm or psrp) and return its result."""
    script = load_host_script(name)
    # The shell plugin encodes the script the way ansible-core sends its own PowerShell, so it reaches the host
    # unchanged over winrm and psrp; the parameters are data on stdin, never part of the script text.
    command = action._connection._shell._encode_script(script.text)
    try:
        outcome = action._low_level_execute_command(command, in_data=json.dumps(dict(params)), sudoable=False)
    except AnsibleConnectionFailure as exc:
        raise HostUnreachable(name, f"host script {name} could not reach the host: {exc}") from exc
    except OSError as exc:
        # winrm and psrp let a connection that drops mid-command escape as a requests ConnectionError (an OSError).
        # The host may have run the script, so say so; every module is idempotent, and a rerun settles it.
        raise HostUnreachable(
            name,
            f"the connection to the host was lost while host script {name} ran; it may have made its change: {exc}",
        ) from exc
    return parse_script_output(
        script,
        rc=int(outcome.get("rc", 1)),
        stdout=str(outcome.get("stdout", "")),
        stderr=str(outcome.get("stderr", "")),
    )
