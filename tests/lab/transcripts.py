"""Transcripts of host-script runs on real Windows, replayed against the lab's twins.

The twins are the lab's only executor of the host scripts, and they are written from what we believe Windows does. A
transcript is what Windows did: one run of one host script as the seam records it when MAILFLOW_TRANSCRIPT_DIR is
set (``write_transcript`` in plugins/plugin_utils/_host_script.py), or as tools/windows_transcripts.py records it on a
hosted Windows runner. Committed under tests/transcripts/SOURCE/, they are replayed here: a host's runs, in the
order of their sequence numbers, go through the lab's own path (the seam's command line and stdin, the lab's
emulation of cmd.exe, powershell.exe and the bootstrap, the twin) on an emulated host that each script's twin seeds
from that script's first run on the host (``seed_from_transcript`` of the twin's module). Each twin's answer must be
Windows' answer: the same result, or for an exception the same .NET type and HResult (its message is localized).
"""

from __future__ import annotations

import json
import typing as t
from dataclasses import dataclass
from pathlib import Path

from ansible.plugins.loader import shell_loader

from ansible_collections.mailflow.remediation.plugins.plugin_utils._host_script import (
    TRANSCRIPT_FORMAT,
    _find_document,
    build_invocation,
    excerpt_of,
    load_host_script,
)
from tests.lab import twins as twin_package
from tests.lab.fleet import Credentials, Fleet, HostState
from tests.lab.runner import run_command_line
from tests.lab.scripts import BOOTSTRAP_SHA256, LOADER_SHA256
from tests.lab.twins import TWINS, Session

TRANSCRIPTS_DIR = Path(__file__).resolve().parents[1] / "transcripts"
FIELDS = frozenset(
    {
        "format",
        "script",
        "version",
        "sha256",
        "bootstrap_sha256",
        "loader_sha256",
        "host",
        "sequence",
        "recorded_at",
        "connection",
        "params",
        "rc",
        "stdout",
        "stderr",
    }
)
SEED_FUNCTION = "seed_from_transcript"
HOW_TO_RECORD = "tests/transcripts/README.md"


class TranscriptUnusable(Exception):
    """A transcript that cannot be replayed: not a transcript, stale, or of a twin that cannot seed a host from it."""


class TwinDisagrees(Exception):
    """A twin answered a recorded run otherwise than Windows did."""


@dataclass(frozen=True)
class Transcript:
    path: Path
    source: str  # the directory under tests/transcripts/: who recorded it, on what
    document: dict[str, t.Any]

    @property
    def label(self) -> str:
        return f"{self.source}/{self.path.name}"

    @property
    def host(self) -> str:
        return str(self.document["host"])

    @property
    def script(self) -> str:
        return str(self.document["script"])

    @property
    def params(self) -> dict[str, t.Any]:
        return dict(self.document["params"])


def load_transcripts(root: Path, *, allow_synthetic: bool = False) -> list[Transcript]:
    """Every transcript in ``root/SOURCE/*.json``, checked to be one.

    A hand-written transcript carries a ``synthetic`` note saying so; only the replay machinery's own tests may use
    one (``allow_synthetic``), so that nothing hand-written passes for Windows' behaviour.
    """
    transcripts = []
    for path in sorted(root.glob("*/*.json")):
        label = f"{path.parent.name}/{path.name}"
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise TranscriptUnusable(f"{label}: not JSON ({exc})") from exc
        missing = sorted(FIELDS - set(document)) if isinstance(document, dict) else sorted(FIELDS)
        if missing:
            raise TranscriptUnusable(f"{label}: not a transcript (missing {', '.join(missing)})")
        if document["format"] != TRANSCRIPT_FORMAT:
            raise TranscriptUnusable(
                f"{label}: transcript format {document['format']!r}, the replay reads format {TRANSCRIPT_FORMAT}"
            )
        if "synthetic" in document and not allow_synthetic:
            raise TranscriptUnusable(
                f"{label}: hand-written, not recorded on Windows ({document['synthetic']}); only recorded "
                "transcripts belong here"
            )
        transcripts.append(Transcript(path, path.parent.name, document))
    return transcripts


def host_runs(transcripts: t.Iterable[Transcript]) -> dict[str, list[Transcript]]:
    """Each host's runs (keyed ``SOURCE/HOST``) in the order of their sequence numbers."""
    hosts: dict[str, list[Transcript]] = {}
    for transcript in transcripts:
        hosts.setdefault(f"{transcript.source}/{transcript.host}", []).append(transcript)
    for key, runs in hosts.items():
        runs.sort(key=lambda run: int(run.document["sequence"]))
        sequences = [int(run.document["sequence"]) for run in runs]
        if len(set(sequences)) != len(sequences):
            raise TranscriptUnusable(f"{key}: two runs share a sequence number ({sequences})")
    return hosts


def check_current(transcript: Transcript) -> None:
    """Refuse a transcript of a script text or bootstrap that the lab no longer emulates: it proves nothing now."""
    document = transcript.document
    twin = TWINS.get(transcript.script)
    if twin is None:
        raise TranscriptUnusable(
            f"{transcript.label}: host script {transcript.script!r} has no twin in the lab (renamed or removed?): "
            "delete the transcript"
        )
    if (document["version"], document["sha256"]) != (twin.version, twin.sha256):
        raise TranscriptUnusable(
            f"{transcript.label}: stale: recorded {twin.name} v{document['version']} (sha256 "
            f"{str(document['sha256'])[:16]}), the twin is written against v{twin.version} (sha256 "
            f"{twin.sha256[:16]}); re-record it against the current script ({HOW_TO_RECORD})"
        )
    for part, emulated in (("bootstrap", BOOTSTRAP_SHA256), ("loader", LOADER_SHA256)):
        if document[f"{part}_sha256"] != emulated:
            raise TranscriptUnusable(
                f"{transcript.label}: stale: recorded through {part} sha256 {str(document[f'{part}_sha256'])[:16]}, "
                f"the lab emulates {emulated[:16]}; re-record it against the current {part} ({HOW_TO_RECORD})"
            )


def seeded_host(runs: t.Sequence[Transcript]) -> HostState:
    """An emulated host in the state that each script's first run implies, by that script's twin."""
    host = HostState(name=runs[0].host, fqdn=runs[0].host, roles=[])
    seeded: set[str] = set()
    for run in runs:
        if run.script in seeded:
            continue
        seeded.add(run.script)
        seed = getattr(getattr(twin_package, run.script), SEED_FUNCTION, None)
        if seed is None:
            raise TranscriptUnusable(
                f"{run.label}: the twin of {run.script} (tests/lab/twins/{run.script}.py) has no "
                f"{SEED_FUNCTION}(host, first_result, params), so no host can be seeded to replay its transcripts: "
                "add one"
            )
        document = _find_document(str(run.document["stdout"]))
        if document is None or document.get("ok") is not True:
            raise TranscriptUnusable(
                f"{run.label}: the first run of {run.script} on {run.host} did not return a result, so it cannot seed "
                f"the emulated host; record a sequence that starts with a read ({HOW_TO_RECORD})"
            )
        try:
            seed(host, document["result"], run.params)
        except ValueError as exc:
            raise TranscriptUnusable(f"{run.label}: cannot seed the emulated host: {exc}") from exc
    return host


def canonical(value: t.Any) -> str:
    # JSON text tells true from 1 and 1.0 from 1, which Python's == does not.
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def answer(rc: int, stdout: str, stderr: str) -> tuple[tuple[t.Any, ...], str]:
    """What a run answered, as the key a twin must match and as words for a failure message.

    A result must be equal; an exception only in its .NET type and HResult, since its message depends on the
    language of Windows.
    """
    document = _find_document(stdout)
    if document is None:
        shown = f"stdout {excerpt_of(stdout) or '(empty)'}" + (f", stderr {excerpt_of(stderr)}" if stderr else "")
        return ("no document", rc), f"no document (rc={rc}; {shown})"
    if document.get("ok") is True:
        result = canonical(document.get("result"))
        return ("result", rc, result), f"rc={rc} and the result {result}"
    error = document.get("error")
    error_type, hresult = (error.get("type"), error.get("hresult")) if isinstance(error, dict) else (None, None)
    return ("error", rc, error_type, hresult), f"rc={rc} and the exception {error_type} (HResult {hresult})"


def replay(runs: t.Sequence[Transcript]) -> None:
    """Replay one host's runs, in order, through the lab; raise at the first run the twin answers differently."""
    for run in runs:
        check_current(run)
    host = seeded_host(runs)
    fleet = Fleet(name="transcripts", credentials=Credentials("LAB", "ansible", "x"), hosts={host.name: host})
    session = Session(auth="ntlm", user="LAB\\ansible")
    shell = shell_loader.get("powershell")
    for run in runs:
        command, stdin = build_invocation(shell, load_host_script(run.script), run.params)
        words = command.split(" ")
        outcome = run_command_line(words[0], words[1:], stdin, host=host, fleet=fleet, session=session)
        twin_key, twin_words = answer(
            outcome.rc,
            outcome.stdout.decode("ascii", errors="replace"),
            outcome.stderr.decode("ascii", errors="replace"),
        )
        windows_key, windows_words = answer(
            int(run.document["rc"]), str(run.document["stdout"]), str(run.document["stderr"])
        )
        if twin_key != windows_key:
            raise TwinDisagrees(
                f"{run.label}: {run.script} {canonical(run.params)} on {run.host}: Windows answered {windows_words}; "
                f"the twin (tests/lab/twins/{run.script}.py) answered {twin_words}"
            )
