"""Run ansible-playbook as a user would, against this checkout's collection, and collect every task result.

Shared by the integration tests, the lab's transport tests and the demo: the results come from the test-side
callback tests/integration/callback_plugins/record_results.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import typing as t
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
COLLECTIONS_PATH = REPO_ROOT / ".collections"
CALLBACKS = REPO_ROOT / "tests" / "integration" / "callback_plugins"
ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")
TRANSCRIPT_DIR = "MAILFLOW_TRANSCRIPT_DIR"


@dataclass
class PlaybookRun:
    rc: int
    stdout: str
    stderr: str
    results: list[dict[str, t.Any]]

    def results_by_host(self, name: str) -> dict[str, dict[str, t.Any]]:
        """The results of task ``name``, by host."""
        return {item["host"]: item["result"] for item in self.results if item["task"] == name}

    @property
    def warnings(self) -> list[str]:
        """Every ``[WARNING]:`` Ansible printed, each on one line.

        ansible-core before 2.19 wraps a warning at the terminal width; a test that looks for a sentence must not
        depend on where that version broke it.
        """
        found: list[str] = []
        current: list[str] | None = None
        for line in (self.stdout + "\n" + self.stderr).splitlines():
            if line.startswith("[WARNING]:"):
                current = [line.removeprefix("[WARNING]:").strip()]
                found.append("")
            elif current is not None and line.strip() and not line.startswith(("[", "PLAY", "TASK", "ok:", "changed:")):
                current.append(line.strip())
            else:
                current = None
            if current is not None:
                found[-1] = " ".join(current)
        return found

    def task(self, name: str, host: str = "ex01") -> dict[str, t.Any]:
        """The last result of task ``name`` on ``host``."""
        matches = [item for item in self.results if item["task"] == name and item["host"] == host]
        assert matches, f"no result for task {name!r} on {host}; output:\n{self.stdout}\n{self.stderr}"
        return matches[-1]


def run_playbook(
    playbook: str | Path,
    inventory: str | Path,
    workdir: Path,
    *,
    extra_args: t.Sequence[str] = (),
    env: t.Mapping[str, str] | None = None,
    cwd: Path | None = None,
    capture: bool = True,
    timeout: float = 300,
    transcript_dir: Path | None = None,
    callbacks: t.Sequence[str] = (),
) -> PlaybookRun:
    """ansible-playbook with the collection from this checkout; ``env`` replaces os.environ when given.

    ``callbacks``: more callbacks to enable beside the one that records the results (for example
    ``mailflow.remediation.drift_report``).

    ``transcript_dir``: where the collection records its host-script runs (MAILFLOW_TRANSCRIPT_DIR). Without it
    nothing is recorded, whatever the environment says: a transcript of the lab must never pass for one of Windows.
    """
    results = workdir / f"results-{Path(playbook).stem}-{len(list(workdir.glob('results-*.json')))}.json"
    inherited = {key: value for key, value in (os.environ if env is None else env).items() if key != TRANSCRIPT_DIR}
    environment = {
        **inherited,
        "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS_PATH),
        "ANSIBLE_CALLBACK_PLUGINS": str(CALLBACKS),
        "ANSIBLE_CALLBACKS_ENABLED": ",".join(["record_results", *callbacks]),
        "ANSIBLE_LOCAL_TEMP": str(workdir / "ansible-local"),
        "RECORD_RESULTS_FILE": str(results),
    }
    if capture:
        environment["ANSIBLE_NOCOLOR"] = "1"
    if transcript_dir is not None:
        environment[TRANSCRIPT_DIR] = str(transcript_dir)
    process = subprocess.run(
        [ANSIBLE_PLAYBOOK, "-i", str(inventory), str(playbook), *extra_args],
        capture_output=capture,
        text=True,
        env=environment,
        cwd=cwd or workdir,
        timeout=timeout,
        check=False,
    )
    recorded = json.loads(results.read_text(encoding="utf-8")) if results.exists() else []
    return PlaybookRun(process.returncode, process.stdout or "", process.stderr or "", recorded)
