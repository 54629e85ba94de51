"""Check mode is an audit: for every module of the collection, and for the audit playbook, across the contoso
fleet (every cause of both articles present somewhere), the lab's journal shows that nothing was written."""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest

from tests.integration.conftest import PlaybookRunner, requires_lab, running_lab
from tests.lab.control import LabClient
from tests.playbook import REPO_ROOT, run_playbook

pytestmark = [pytest.mark.integration, requires_lab]

# Arguments that make each module want a change somewhere in contoso, so that check mode has something to withhold.
CHECK_MODE_TASKS: dict[str, list[dict[str, t.Any]]] = {
    "kerberos_logging": [{}, {"level": 0}, {"state": "restored", "previous": {"exists": True, "value": 0}}],
}


@pytest.fixture(scope="module")
def contoso(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[LabClient]:
    with running_lab("contoso", tmp_path_factory.mktemp("contoso")) as client:
        yield client


def test_every_module_is_covered() -> None:
    modules = {path.stem for path in (REPO_ROOT / "plugins" / "modules").glob("*.py")}
    assert set(CHECK_MODE_TASKS) == modules


@pytest.mark.parametrize("module", sorted(CHECK_MODE_TASKS))
def test_module_in_check_mode_writes_nothing(contoso: LabClient, tmp_path: Path, module: str) -> None:
    contoso.reset()
    tasks = [
        {"name": f"{module} {index}", f"mailflow.remediation.{module}": args, "check_mode": True}
        for index, args in enumerate(CHECK_MODE_TASKS[module])
    ]
    run = PlaybookRunner(contoso, tmp_path).run(tasks, hosts="exchange_servers")
    assert run.rc == 0, run.stdout + run.stderr
    assert any(item["result"].get("changed") for item in run.results), "check mode found nothing to change"
    assert contoso.journal() == []


def test_audit_playbook_in_check_mode_writes_nothing(contoso: LabClient, tmp_path: Path) -> None:
    contoso.reset()
    inventory = contoso.write_inventory(tmp_path / "inventory.yml", connection="psrp", auth="negotiate")
    run = run_playbook(REPO_ROOT / "playbooks" / "audit.yml", inventory, tmp_path, extra_args=["--check"])
    assert run.rc == 0, run.stdout + run.stderr
    assert [item["result"]["changed"] for item in run.results if "article" in item["result"]] == [True] * 3
    assert contoso.journal() == []
    assert all(numbers["round_trips"] == 1 for name, numbers in contoso.counters().items() if name.startswith("ex"))
