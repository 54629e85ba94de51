# Copyright: mailflow.remediation contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one transport seam: run a static host script over the task's own connection.

Private to the mailflow.remediation collection; not a public API and may change without notice.

A host script is a static ``.ps1`` file in ``host_scripts/``. Its first line names it and its version
(``# mailflow-host-script: NAME vN``); the comment lines after it declare its contract: the parameters it reads
(``# input NAME: TYPE``), the keys of the result it returns (``# output NAME: TYPE``) and what it may change on the
host (``# writes AREA: WHAT``). TYPE is ``str``, ``int``, ``float``, ``bool``, ``list``, ``dict``, ``datetime`` (an
ISO 8601 string) or ``any``; a ``?`` suffix admits null (for an input: it may be left out, and is then sent as
null); a ``str`` input may list its choices, ``str read|set|remove``.

A script may use libraries, ``host_scripts/lib/NAME.ps1`` (``# requires NAME``), which define functions that several
scripts share.

Every run sends the same tiny command line, ``bootstrap.ps1`` as ``PowerShell -EncodedCommand``, and carries the
rest on stdin as three ASCII JSON lines: ``loader.ps1``, the script with its libraries, and its parameters (cmd.exe,
which WinRM's cmd shell goes through, stops a command line at 8,191 characters; a console code page would garble
anything that is not ASCII). The loader runs the script with the parameters as an object and writes one JSON
document to stdout:
``{"script": NAME, "version": N, "ok": true, "result": {...}}`` or, when an exception escaped the script,
``{"script": NAME, "version": N, "ok": false, "error": {"type": ..., "message": ..., "hresult": ...}}``.

When ``MAILFLOW_TRANSCRIPT_DIR`` is set on the controller, every run that reached the host is also written there as a
transcript (see :func:`write_transcript`): what Windows answered, so that the lab's twins can be held to it
(tests/transcripts/README.md).
"""

from __future__ import annotations

import base64
import datetime
import functools
import gzip
import hashlib
import json
import os
import re
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

from ansible.errors import AnsibleConnectionFailure

if t.TYPE_CHECKING:
    from ansible.plugins.action import ActionBase

SCRIPT_DIR = Path(__file__).resolve().parent / "host_scripts"
LIBRARY_DIR = SCRIPT_DIR / "lib"
BOOTSTRAP_PATH = Path(__file__).resolve().parent / "bootstrap.ps1"
LOADER_PATH = Path(__file__).resolve().parent / "loader.ps1"
HEADER_PATTERN = re.compile(r"^# mailflow-host-script: (?P<name>[a-z][a-z0-9_]*) v(?P<version>[1-9][0-9]*)$")
LIBRARY_HEADER_PATTERN = re.compile(r"^# mailflow-host-library: (?P<name>[a-z][a-z0-9_]*) v(?P<version>[1-9][0-9]*)$")
REQUIRES_PATTERN = re.compile(r"^# requires (?P<name>[a-z][a-z0-9_]*)$")
BOOTSTRAP_HEADER = "# mailflow-bootstrap v2"
LOADER_HEADER = "# mailflow-loader v3"
CONTRACT_PATTERN = re.compile(r"^# (?P<section>input|output|writes) (?P<name>[A-Za-z0-9_-]+): (?P<spec>.+)$")
TYPES = ("str", "int", "float", "bool", "list", "dict", "datetime", "any")

# cmd.exe's limit for a command line (WinRM's cmd shell runs every command through it).
COMMAND_LINE_LIMIT = 8191
# What a failure message quotes of unexpected output: enough to recognise it, never a whole dump.
EXCERPT_LIMIT = 600

# Transcripts of host-script runs (write_transcript): where, in which format, and which parameters never go into one.
TRANSCRIPT_DIR_VARIABLE = "MAILFLOW_TRANSCRIPT_DIR"
TRANSCRIPT_FORMAT = 1
SENSITIVE_KEY_PARTS = ("password", "secret", "private_key", "pfx")
MASK = "********"


class HostScriptError(Exception):
    """Base of the failures the seam reports; the action base turns each into a task result once."""

    def __init__(self, script: str, message: str) -> None:
        super().__init__(message)
        self.script = script


class HostScriptRaised(HostScriptError):
    """An exception escaped the script on the host (access denied, missing cmdlet, ...).

    ``error_type`` (the .NET type) and ``hresult`` do not depend on the host's language; ``error_message`` does, and
    is only ever shown to people.
    """

    def __init__(self, script: str, error_type: str, error_message: str, hresult: int | None = None) -> None:
        super().__init__(script, f"host script {script} failed on the host: {error_type}: {error_message}")
        self.error_type = error_type
        self.error_message = error_message
        self.hresult = hresult


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


class ContractViolation(HostScriptError):
    """The controller was about to send parameters the script does not declare: a defect of the collection."""


@dataclass(frozen=True)
class Field:
    """One declared input or output: its type, whether it may be null, and for a ``str`` input its choices."""

    name: str
    type: str
    nullable: bool = False
    choices: tuple[str, ...] = ()

    def admits(self, value: t.Any) -> bool:
        if value is None:
            return self.nullable
        if self.choices and value not in self.choices:
            return False
        return _is_type(value, self.type)

    def describe(self) -> str:
        kind = self.type + ("?" if self.nullable else "")
        return f"{kind} {'|'.join(self.choices)}" if self.choices else kind


@dataclass(frozen=True)
class Contract:
    inputs: dict[str, Field] = field(default_factory=dict)
    outputs: dict[str, Field] = field(default_factory=dict)
    # AREA -> what of it the script may change, e.g. "registry" -> ["HKLM\\...\\LogLevel DWord"].
    writes: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class HostLibrary:
    """Functions that several host scripts share (binding to the directory, a session to Exchange).

    A library defines functions only; the bootstrap dot-sources it before the script runs. It takes what it needs
    as arguments, never from ``$params``, and writes nothing itself, so a script's contract stays checkable from the
    script's own text.
    """

    name: str
    version: int
    text: str

    @property
    def wire_text(self) -> str:
        return wire_text(self.text)


@dataclass(frozen=True)
class HostScript:
    name: str
    version: int
    text: str
    contract: Contract
    libraries: tuple[HostLibrary, ...] = ()

    @property
    def wire_text(self) -> str:
        return wire_text(self.text)

    @property
    def sha256(self) -> str:
        """The hash of the script as it travels: what the lab identifies a script by, and a transcript records."""
        return hashlib.sha256(self.wire_text.encode("utf-8")).hexdigest()


def _is_type(value: t.Any, kind: str) -> bool:
    if kind == "any":
        return True
    if kind == "datetime":
        if not isinstance(value, str):
            return False
        try:
            datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return False
        return True
    expected: dict[str, tuple[type, ...]] = {
        "str": (str,),
        "int": (int,),
        "float": (int, float),
        "bool": (bool,),
        "list": (list,),
        "dict": (dict,),
    }
    # JSON true is not a number, whatever Python's bool-is-int says.
    return isinstance(value, expected[kind]) and (kind == "bool" or not isinstance(value, bool))


def excerpt_of(text: str, limit: int = EXCERPT_LIMIT) -> str:
    text = text.strip()
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def wire_text(text: str) -> str:
    """A script as it travels: every line stripped, blank and comment lines dropped, the header kept.

    Comments are for reviewers; on the wire they would cost bytes on every run. The script rules forbid what this
    would corrupt (here-strings, strings and block comments spanning lines).
    """
    lines = text.splitlines()
    kept = [lines[0].strip()] if lines else []
    kept += [line.strip() for line in lines[1:] if line.strip() and not line.strip().startswith("#")]
    return "\n".join(kept)


def parse_contract(name: str, text: str) -> Contract:
    """The contract a script's header comments declare; a malformed declaration is an error of the collection."""
    contract = Contract()
    for line in _header_comments(text):
        match = CONTRACT_PATTERN.match(line)
        if match is None:
            continue
        section, key, spec = match.group("section"), match.group("name"), match.group("spec").strip()
        if section == "writes":
            contract.writes[key] = (*contract.writes.get(key, ()), spec)
            continue
        kind, _space, choices = spec.partition(" ")
        nullable = kind.endswith("?")
        kind = kind.rstrip("?")
        if kind not in TYPES or (choices and kind != "str"):
            raise ValueError(f"{name}.ps1: cannot read the contract line {line!r}")
        target = contract.inputs if section == "input" else contract.outputs
        if key in target:
            raise ValueError(f"{name}.ps1: {section} {key} is declared twice")
        target[key] = Field(key, kind, nullable, tuple(choices.split("|")) if choices else ())
    if not contract.outputs:
        raise ValueError(f"{name}.ps1: the contract declares no output")
    return contract


@functools.cache
def load_host_script(name: str) -> HostScript:
    """Read ``host_scripts/NAME.ps1``, check that its header names it, and read its contract and libraries."""
    path = SCRIPT_DIR / f"{name}.ps1"
    text = path.read_text(encoding="utf-8")
    header = HEADER_PATTERN.match(text.splitlines()[0] if text else "")
    if header is None or header.group("name") != name:
        raise ValueError(f"{path.name}: the first line must be '# mailflow-host-script: {name} vN'")
    required = [match.group("name") for line in _header_comments(text) if (match := REQUIRES_PATTERN.match(line))]
    return HostScript(
        name=name,
        version=int(header.group("version")),
        text=text,
        contract=parse_contract(name, text),
        libraries=tuple(load_host_library(library) for library in required),
    )


@functools.cache
def load_host_library(name: str) -> HostLibrary:
    """Read ``host_scripts/lib/NAME.ps1`` and check that its header names it."""
    path = LIBRARY_DIR / f"{name}.ps1"
    if not path.is_file():
        raise ValueError(f"no host library {name} (host_scripts/lib/{name}.ps1)")
    text = path.read_text(encoding="utf-8")
    header = LIBRARY_HEADER_PATTERN.match(text.splitlines()[0] if text else "")
    if header is None or header.group("name") != name:
        raise ValueError(f"lib/{path.name}: the first line must be '# mailflow-host-library: {name} vN'")
    return HostLibrary(name=name, version=int(header.group("version")), text=text)


def _header_comments(text: str) -> list[str]:
    """The comment lines that open a script, after its first line: where its contract and requirements are."""
    lines = []
    for line in text.splitlines()[1:]:
        if not line.startswith("#"):
            break
        lines.append(line.rstrip())
    return lines


@functools.cache
def bootstrap_text() -> str:
    return _read_with_header(BOOTSTRAP_PATH, BOOTSTRAP_HEADER)


@functools.cache
def loader_text() -> str:
    return _read_with_header(LOADER_PATH, LOADER_HEADER)


def _read_with_header(path: Path, header: str) -> str:
    text = path.read_text(encoding="utf-8")
    if not text.startswith(header + "\n"):
        raise ValueError(f"{path.name}: the first line must be {header!r}")
    return text


def wire_params(script: HostScript, params: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    """The parameters as sent: checked against the contract, every declared input present (null when left out).

    Under ``Set-StrictMode -Version Latest`` reading a property the JSON lacks is an error, so an optional input
    travels as null rather than not at all.
    """
    undeclared = sorted(set(params) - set(script.contract.inputs))
    if undeclared:
        raise ContractViolation(script.name, f"host script {script.name} declares no input {', '.join(undeclared)}")
    sent = {}
    for key, declared in script.contract.inputs.items():
        value = params.get(key)
        if not declared.admits(value):
            raise ContractViolation(
                script.name, f"host script {script.name} takes {key} as {declared.describe()}, not {value!r}"
            )
        sent[key] = value
    return sent


def pack(text: str) -> str:
    """A script's text as it travels: gzip, in base64. mtime 0 keeps the bytes the same from run to run."""
    return base64.b64encode(gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0)).decode("ascii")


def build_invocation(shell: t.Any, script: HostScript, params: t.Mapping[str, t.Any]) -> tuple[str, bytes]:
    """The command line and the stdin of one run of one script."""
    return build_batch_invocation(shell, [(script, params)])


def build_batch_invocation(
    shell: t.Any, calls: t.Sequence[tuple[HostScript, t.Mapping[str, t.Any]]]
) -> tuple[str, bytes]:
    """The command line and the stdin of one run: the fixed bootstrap; the loader, the scripts with their libraries,
    and their parameters, in the same order."""
    command = str(shell._encode_script(wire_text(bootstrap_text())))
    loader = {"loader": wire_text(loader_text())}
    scripts = {
        # Each library once, however many of the scripts require it.
        "libraries": {
            library.name: pack(library.wire_text) for script, _params in calls for library in script.libraries
        },
        "scripts": [
            {
                "name": script.name,
                "version": script.version,
                "script": pack(script.wire_text),
                "libraries": [library.name for library in script.libraries],
            }
            for script, _params in calls
        ],
    }
    params = {"params": [dict(params) for _script, params in calls]}
    # ensure_ascii: stdin goes through the console's code page, in which only ASCII is safe.
    stdin = "\n".join(json.dumps(line, ensure_ascii=True, separators=(",", ":")) for line in (loader, scripts, params))
    return command, (stdin + "\n").encode("ascii")


def check_result(script: HostScript, result: t.Any, *, rc: int, stdout: str, stderr: str) -> dict[str, t.Any]:
    """The result, if it has exactly the keys and types the contract declares."""
    outputs = script.contract.outputs
    problem = ""
    if not isinstance(result, dict):
        problem = f"a result that is not an object ({type(result).__name__})"
    elif set(result) != set(outputs):
        missing, extra = sorted(set(outputs) - set(result)), sorted(set(result) - set(outputs))
        problem = f"a result that breaks its contract (missing {missing}, undeclared {extra})"
    else:
        wrong = [
            f"{key}={result[key]!r} is not {declared.describe()}"
            for key, declared in outputs.items()
            if not declared.admits(result[key])
        ]
        if wrong:
            problem = f"a result that breaks its contract ({'; '.join(wrong)})"
    if problem:
        raise HostScriptBadOutput(script.name, problem, rc=rc, stdout=stdout, stderr=stderr)
    return t.cast(dict, result)


def parse_script_output(script: HostScript, *, rc: int, stdout: str, stderr: str) -> dict[str, t.Any]:
    """Turn what the host printed for one script into its result, or raise the one matching failure."""
    outcome = parse_batch_output([script], rc=rc, stdout=stdout, stderr=stderr)[0]
    if isinstance(outcome, HostScriptError):
        raise outcome
    return outcome


def parse_batch_output(
    scripts: t.Sequence[HostScript], *, rc: int, stdout: str, stderr: str
) -> list[dict[str, t.Any] | HostScriptError]:
    """Each script's result or failure, from the documents the loader printed, one per script and in order."""
    documents = [json.loads(line) for line in _document_lines(stdout)]
    if len(documents) < len(scripts):
        reason = (
            "output that is not its JSON document"
            if len(scripts) == 1
            else (f"{len(documents)} JSON documents for {len(scripts)} scripts")
        )
        return [HostScriptBadOutput(script.name, reason, rc=rc, stdout=stdout, stderr=stderr) for script in scripts]
    # A profile or a module load may print before the loader: the documents are the last lines that are documents.
    documents = documents[len(documents) - len(scripts) :]
    # The exit code is 1 when any script failed; with one script it must agree with that script's document.
    single = len(scripts) == 1
    return [
        _outcome(
            script,
            document,
            rc=rc if single else (0 if document.get("ok") is True else 1),
            stdout=stdout,
            stderr=stderr,
        )
        for script, document in zip(scripts, documents, strict=True)
    ]


def _outcome(
    script: HostScript, document: dict[str, t.Any], *, rc: int, stdout: str, stderr: str
) -> dict[str, t.Any] | HostScriptError:
    if document.get("script") != script.name or document.get("version") != script.version:
        return HostScriptBadOutput(
            script.name,
            f"a document of another script ({document.get('script')!r} v{document.get('version')!r})",
            rc=rc,
            stdout=stdout,
            stderr=stderr,
        )
    if document.get("ok") is True and rc == 0 and "result" in document:
        try:
            return check_result(script, document["result"], rc=rc, stdout=stdout, stderr=stderr)
        except HostScriptBadOutput as exc:
            return exc
    error = document.get("error")
    if document.get("ok") is False and isinstance(error, dict):
        hresult = error.get("hresult")
        return HostScriptRaised(
            script.name,
            str(error.get("type", "unknown")),
            str(error.get("message", "")),
            hresult if isinstance(hresult, int) and not isinstance(hresult, bool) else None,
        )
    return HostScriptBadOutput(script.name, "an inconsistent document", rc=rc, stdout=stdout, stderr=stderr)


def _find_document(stdout: str) -> dict[str, t.Any] | None:
    """The last document in stdout, or None."""
    lines = _document_lines(stdout)
    return t.cast(dict, json.loads(lines[-1])) if lines else None


def _document_lines(stdout: str) -> list[str]:
    """The lines of stdout that are a loader's documents (a JSON object with script, version and ok), in order; a
    UTF-8 byte order mark may lead a line."""
    lines = []
    for line in stdout.strip().splitlines():
        line = line.strip().lstrip("\ufeff")
        if not line.startswith("{"):
            continue
        try:
            candidate = json.loads(line)
        except ValueError:
            continue
        if isinstance(candidate, dict) and {"script", "version", "ok"} <= set(candidate):
            lines.append(line)
    return lines


def run_host_script(
    action: ActionBase, name: str, params: t.Mapping[str, t.Any], *, host: str | None = None
) -> dict[str, t.Any]:
    """Run one static host script over the task's connection (winrm or psrp) and return its result.

    ``host`` is the inventory name of the host, which a transcript records (see :func:`write_transcript`).
    """
    outcome = run_host_scripts(action, [(name, params)], host=host)[0]
    if isinstance(outcome, HostScriptError):
        raise outcome
    return outcome


def run_host_scripts(
    action: ActionBase, calls: t.Sequence[tuple[str, t.Mapping[str, t.Any]]], *, host: str | None = None
) -> list[dict[str, t.Any] | HostScriptError]:
    """Run several host scripts in one round trip and return, in order, each one's result or its failure.

    A script that fails on the host fails only its own entry. A failure of the round trip itself (the host
    unreachable, the connection lost) is raised: nothing can be said of any script then.
    """
    scripts = [load_host_script(name) for name, _params in calls]
    sent = [wire_params(script, params) for script, (_name, params) in zip(scripts, calls, strict=True)]
    command, stdin = build_batch_invocation(action._connection._shell, list(zip(scripts, sent, strict=True)))
    label = scripts[0].name if len(scripts) == 1 else f"batch of {len(scripts)} ({', '.join(s.name for s in scripts)})"
    try:
        outcome = action._low_level_execute_command(command, in_data=stdin, sudoable=False)
    except AnsibleConnectionFailure as exc:
        raise HostUnreachable(label, f"host script {label} could not reach the host: {exc}") from exc
    except OSError as exc:
        # winrm and psrp let a connection that drops mid-command escape as a requests ConnectionError (an OSError).
        # The host may have run the script, so say so; every module is idempotent, and a rerun settles it.
        raise HostUnreachable(
            label,
            f"the connection to the host was lost while host script {label} ran; it may have made its change: {exc}",
        ) from exc
    rc, stdout, stderr = int(outcome.get("rc", 1)), str(outcome.get("stdout", "")), str(outcome.get("stderr", ""))
    results = parse_batch_output(scripts, rc=rc, stdout=stdout, stderr=stderr)
    directory = os.environ.get(TRANSCRIPT_DIR_VARIABLE)
    if directory:
        _record(action, Path(directory), scripts, sent, results, host=host, rc=rc, stdout=stdout, stderr=stderr)
    return results


def _record(
    action: ActionBase,
    directory: Path,
    scripts: list[HostScript],
    sent: list[dict[str, t.Any]],
    results: list[dict[str, t.Any] | HostScriptError],
    *,
    host: str | None,
    rc: int,
    stdout: str,
    stderr: str,
) -> None:
    """One transcript per script. In a batch, each holds its own document as stdout and the exit code a run of it
    alone would have had; the invocation's stderr goes with every one."""
    connection = str(getattr(action._connection, "transport", "") or "").rsplit(".", 1)[-1]
    documents = _document_lines(stdout)
    for index, script in enumerate(scripts):
        if len(scripts) == 1:
            own_stdout, own_rc = stdout, rc
        else:
            own_stdout = documents[index] if len(documents) == len(scripts) else stdout
            own_rc = 1 if isinstance(results[index], HostScriptError) else 0
        try:
            write_transcript(
                directory,
                script=script,
                params=sent[index],
                host=host or "unknown",
                connection=connection or "unknown",
                rc=own_rc,
                stdout=own_stdout,
                stderr=stderr,
            )
        except Exception as exc:  # pylint: disable=broad-exception-caught
            # A transcript is evidence for the lab's twins, never a reason to fail the administrator's task. Display
            # is imported here: ansible's display module does not import on Windows, where tools/windows_transcripts.py
            # imports this seam.
            from ansible.utils.display import Display  # pylint: disable=import-outside-toplevel

            Display().warning(f"could not write a transcript of host script {script.name} to {directory}: {exc}")


def masked(value: t.Any) -> t.Any:
    """``value`` with every entry whose key names a secret (password, secret, private_key, pfx) replaced by a mask."""
    if isinstance(value, t.Mapping):
        return {
            key: MASK if any(part in str(key).lower() for part in SENSITIVE_KEY_PARTS) else masked(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [masked(item) for item in value]
    return value


def write_transcript(
    directory: Path,
    *,
    script: HostScript,
    params: t.Mapping[str, t.Any],
    host: str,
    connection: str,
    rc: int,
    stdout: str,
    stderr: str,
) -> Path:
    """Write one run of ``script`` on ``host`` to ``directory`` as the next of that host's runs, and return its path.

    The file ``HOST-SEQUENCE-SCRIPT.json`` holds what identifies the script (name, version, the sha256 of its wire
    text, the bootstrap's and the loader's sha256), the parameters as sent with secrets masked, and what the host
    answered (rc, stdout, stderr). The sequence counts up per host across everything recorded into ``directory``
    (forks and several ansible-playbook runs included), so that a host's runs can be replayed in order.
    """
    directory.mkdir(parents=True, exist_ok=True)
    prefix = re.sub(r"[^A-Za-z0-9_.-]", "_", host) + "-"
    taken = re.compile(re.escape(prefix) + r"(?P<sequence>[0-9]{6,})-[a-z0-9_]+\.json$")
    sequence = max(
        (int(match.group("sequence")) for path in directory.iterdir() if (match := taken.match(path.name))),
        default=0,
    )
    document = {
        "format": TRANSCRIPT_FORMAT,
        "script": script.name,
        "version": script.version,
        "sha256": script.sha256,
        "bootstrap_sha256": hashlib.sha256(wire_text(bootstrap_text()).encode("utf-8")).hexdigest(),
        "loader_sha256": hashlib.sha256(wire_text(loader_text()).encode("utf-8")).hexdigest(),
        "host": host,
        "sequence": 0,
        "recorded_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "connection": connection,
        "params": masked(params),
        "rc": rc,
        "stdout": stdout,
        "stderr": stderr,
    }
    # Exclusive creation: two processes recording the same host (forks of one play cannot, two plays may) never
    # share a sequence number. newline: the same bytes on Windows, where tools/windows_transcripts.py writes them.
    for _attempt in range(1000):
        sequence += 1
        path = directory / f"{prefix}{sequence:06d}-{script.name}.json"
        try:
            with path.open("x", encoding="utf-8", newline="\n") as stream:
                json.dump({**document, "sequence": sequence}, stream, indent=2, ensure_ascii=False)
                stream.write("\n")
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"no free sequence number for {host} in {directory}")
