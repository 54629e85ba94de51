"""Every role documents exactly the variables it defaults, under its own name, and ansible-doc shows it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest
import yaml

from tests.playbook import COLLECTIONS_PATH, REPO_ROOT

ROLES_DIR = REPO_ROOT / "roles"
ROLES = sorted(path.name for path in ROLES_DIR.iterdir() if (path / "tasks" / "main.yml").is_file())
ANSIBLE_DOC = str(Path(sys.executable).parent / "ansible-doc")


def load(path: Path) -> t.Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def spec_options(role: str) -> dict[str, dict[str, t.Any]]:
    return t.cast(dict, load(ROLES_DIR / role / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"])


def test_the_roles_of_the_issue_are_all_there() -> None:
    assert ROLES == [
        "ad_replication",
        "fix_454_4_7_0",
        "fix_550_5_7_64",
        "intermediate_ca",
        "kerberos_logging",
        "kerberos_ports",
        "receive_connector_auth",
        "spn_registration",
        "time_sync",
    ]


@pytest.mark.parametrize("role", ROLES)
def test_argument_spec_equals_defaults(role: str) -> None:
    defaults = load(ROLES_DIR / role / "defaults" / "main.yml")
    options = spec_options(role)
    assert sorted(options) == sorted(defaults), "every default documented, every documented option defaulted"
    assert {name: option.get("default") for name, option in options.items()} == defaults


@pytest.mark.parametrize("role", ROLES)
def test_public_variables_carry_the_role_name_and_internal_ones_two_underscores(role: str) -> None:
    assert all(name.startswith(f"{role}_") for name in spec_options(role))
    variables = ROLES_DIR / role / "vars" / "main.yml"
    if variables.is_file():
        assert all(name.startswith(f"__{role}_") for name in load(variables))


def every_task(tasks: list[dict[str, t.Any]]) -> t.Iterator[dict[str, t.Any]]:
    for task in tasks:
        yield task
        for section in ("block", "rescue", "always"):
            yield from every_task(task.get(section, []))


@pytest.mark.parametrize("role", ROLES)
def test_every_task_has_a_name_and_runs_a_fully_qualified_action(role: str) -> None:
    keywords = {"name", "when", "vars", "register", "block", "rescue", "always", "module_defaults", "delegate_to"}
    keywords |= {"run_once", "check_mode", "until", "retries", "delay", "loop", "loop_control", "tags"}
    for path in sorted((ROLES_DIR / role / "tasks").glob("*.yml")):
        for task in every_task(load(path)):
            assert task.get("name"), f"{path.name}: a task without a name: {task}"
            actions = [key for key in task if key not in keywords]
            if "block" not in task:
                assert len(actions) == 1 and actions[0].count(".") >= 2, f"{path.name}: {task['name']}: {actions}"


def ansible_doc(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS_PATH), "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run(
        [ANSIBLE_DOC, *args], capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=120, check=False
    )


def test_ansible_doc_lists_every_role() -> None:
    listed = ansible_doc("-t", "role", "-l", "mailflow.remediation", "--json")
    assert listed.returncode == 0, listed.stderr
    assert sorted(json.loads(listed.stdout)) == [f"mailflow.remediation.{role}" for role in ROLES]


def test_ansible_doc_shows_every_role_with_its_options() -> None:
    shown = ansible_doc("-t", "role", "--json", *(f"mailflow.remediation.{role}" for role in ROLES))
    assert shown.returncode == 0, shown.stderr
    documents = json.loads(shown.stdout)
    for role in ROLES:
        entry = documents[f"mailflow.remediation.{role}"]["entry_points"]["main"]
        assert entry["short_description"], role
        assert sorted(entry["options"]) == sorted(spec_options(role)), role
