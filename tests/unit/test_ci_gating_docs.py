"""docs/ci-gating.md: its GitHub Actions and GitLab CI examples are ready to copy (actionlint for the one, the keys
GitLab needs for the other), and they run what the collection has, by the names it has them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.unit.test_github_workflows import actionlint

REPO_ROOT = Path(__file__).resolve().parents[2]
DOC = REPO_ROOT / "docs" / "ci-gating.md"
# A fenced block right after "<!-- file: PATH -->" is a file to copy as PATH.
EXAMPLE = re.compile(r"<!-- file: (?P<path>\S+) -->\n```yaml\n(?P<body>.*?)\n```", re.S)
AUDIT = "ansible-playbook -i inventory/production.yml mailflow.remediation.audit --check -e mailflow_fail_on_drift=true"
# The job keywords of GitLab CI (docs.gitlab.com/ee/ci/yaml): anything else in a job is a mistake GitLab refuses.
GITLAB_JOB_KEYWORDS = {
    "after_script", "allow_failure", "artifacts", "before_script", "cache", "coverage", "dependencies", "environment",
    "except", "extends", "hooks", "id_tokens", "image", "inherit", "interruptible", "needs", "only", "pages",
    "parallel", "release", "resource_group", "retry", "rules", "script", "secrets", "services", "stage", "tags",
    "timeout", "trigger", "variables", "when",
}  # fmt: skip


def examples() -> dict[str, str]:
    return {match["path"]: match["body"] for match in EXAMPLE.finditer(DOC.read_text(encoding="utf-8"))}


def test_the_page_has_both_examples() -> None:
    assert sorted(examples()) == [".github/workflows/mailflow-drift.yml", ".gitlab-ci.yml"]


def test_the_github_example_passes_actionlint(tmp_path: Path) -> None:
    workflow = tmp_path / ".github" / "workflows" / "mailflow-drift.yml"
    workflow.parent.mkdir(parents=True)
    workflow.write_text(examples()[".github/workflows/mailflow-drift.yml"] + "\n", encoding="utf-8")
    check = actionlint(workflow)
    assert (check.returncode, check.stdout, check.stderr) == (0, "", "")


def test_the_github_example_gates_and_keeps_the_report_when_it_fails() -> None:
    workflow = yaml.safe_load(examples()[".github/workflows/mailflow-drift.yml"])
    job = workflow["jobs"]["audit"]
    assert job["env"]["ANSIBLE_CALLBACKS_ENABLED"] == "mailflow.remediation.drift_report"
    commands = [" ".join(step["run"].split()) for step in job["steps"] if "run" in step]
    assert AUDIT in commands
    [upload] = [step for step in job["steps"] if step.get("uses", "").startswith("actions/upload-artifact")]
    assert (upload["if"], upload["with"]["path"]) == ("always()", "mailflow-report/")
    assert job["env"]["MAILFLOW_REPORT_DIR"].endswith("/mailflow-report")


def test_the_gitlab_example_has_what_gitlab_needs_and_publishes_the_junit_report() -> None:
    document = yaml.safe_load(examples()[".gitlab-ci.yml"])
    jobs = {name: job for name, job in document.items() if name not in ("stages", "variables", "default")}
    assert list(jobs) == ["mailflow-drift"]
    job = jobs["mailflow-drift"]
    assert set(job) <= GITLAB_JOB_KEYWORDS, set(job) - GITLAB_JOB_KEYWORDS
    assert job["stage"] in document["stages"]
    assert all(isinstance(line, str) for line in job["script"]) and AUDIT in job["script"]
    assert job["variables"]["ANSIBLE_CALLBACKS_ENABLED"] == "mailflow.remediation.drift_report"
    directory = job["variables"]["MAILFLOW_REPORT_DIR"].replace("$CI_PROJECT_DIR/", "")
    assert job["artifacts"]["when"] == "always"
    assert job["artifacts"]["reports"]["junit"] == f"{directory}/mailflow-drift.xml"
    assert job["artifacts"]["paths"] == [f"{directory}/"]
    for rule in job["rules"]:
        assert set(rule) <= {"if", "changes", "exists", "when", "allow_failure", "variables", "needs"}


def callback_environment() -> set[str]:
    source = (REPO_ROOT / "plugins" / "callback" / "drift_report.py").read_text(encoding="utf-8")
    documentation = yaml.safe_load(source.split('DOCUMENTATION = r"""', 1)[1].split('"""', 1)[0])
    return {entry["name"] for option in documentation["options"].values() for entry in option.get("env", [])}


@pytest.mark.parametrize(
    "name",
    ["mailflow_fail_on_drift", "mailflow_fail_on_unfixable", "mailflow_max_clock_spread"],
)
def test_the_documented_variables_are_the_playbooks(name: str) -> None:
    assert name in DOC.read_text(encoding="utf-8")
    assert name in (REPO_ROOT / "playbooks" / "audit.yml").read_text(encoding="utf-8")


def test_the_documented_environment_is_the_callbacks() -> None:
    documented = set(re.findall(r"`(MAILFLOW_REPORT_[A-Z_]+)`", DOC.read_text(encoding="utf-8")))
    assert documented == callback_environment()
