"""Integration fixtures: a lab on 127.0.0.1 and a runner for real ansible-playbook against it.

Set MAILFLOW_INTEGRATION_INVENTORY to an inventory of your own (groups exchange_servers, domain_controllers) to run
the same tests against real Windows hosts instead: the lab is not started, and the assertions that need its journal,
counters or fault injection are skipped. Every test leaves a host as it found it.
"""

from __future__ import annotations

import contextlib
import os
import typing as t
from pathlib import Path

import pytest
import yaml

from tests.lab.control import LabClient, start_lab
from tests.playbook import PlaybookRun, run_playbook

REAL_INVENTORY = os.environ.get("MAILFLOW_INTEGRATION_INVENTORY")
requires_lab = pytest.mark.skipif(REAL_INVENTORY is not None, reason="needs the lab's journal, counters or faults")


@contextlib.contextmanager
def running_lab(fleet: str, state_dir: Path) -> t.Iterator[LabClient]:
    client = start_lab(fleet, state_dir, ttl_seconds=900)
    try:
        yield client
    finally:
        client.stop()


class PlaybookRunner:
    """Runs a list of tasks as a play with ansible-playbook, the way a user would, and returns every result."""

    def __init__(self, lab: LabClient | None, tmp: Path, *, connection: str = "winrm", auth: str = "ntlm") -> None:
        self.tmp = tmp
        self.count = 0
        self._lab = lab
        if lab is None:
            self.inventory = Path(str(REAL_INVENTORY))
        else:
            inventory = tmp / f"inventory-{connection}-{auth}.yml"
            self.inventory = lab.write_inventory(inventory, connection=connection, auth=auth)

    @property
    def lab(self) -> LabClient:
        assert self._lab is not None, "this assertion needs the lab; mark the test requires_lab"
        return self._lab

    @property
    def on_lab(self) -> bool:
        return self._lab is not None

    def run(
        self, tasks: list[dict[str, t.Any]], *, hosts: str = "exchange_servers", extra_args: t.Sequence[str] = ()
    ) -> PlaybookRun:
        self.count += 1
        playbook = self.tmp / f"play{self.count}.yml"
        play = [{"name": "integration", "hosts": hosts, "gather_facts": False, "tasks": tasks}]
        playbook.write_text(yaml.safe_dump(play, sort_keys=False), encoding="utf-8")
        return run_playbook(playbook, self.inventory, self.tmp, extra_args=extra_args)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[LabClient | None]:
    if REAL_INVENTORY is not None:
        yield None
        return
    with running_lab("single", tmp_path_factory.mktemp("lab")) as client:
        yield client


@pytest.fixture
def playbook(lab: LabClient | None, tmp_path: Path) -> PlaybookRunner:
    if lab is not None:
        lab.reset()
    return PlaybookRunner(lab, tmp_path)
