"""Integration fixtures: a lab on 127.0.0.1 and a runner for real ansible-playbook against it."""

from __future__ import annotations

import contextlib
import typing as t
from pathlib import Path

import pytest
import yaml

from tests.lab.control import LabClient, start_lab
from tests.playbook import PlaybookRun, run_playbook


@contextlib.contextmanager
def running_lab(fleet: str, state_dir: Path) -> t.Iterator[LabClient]:
    client = start_lab(fleet, state_dir, ttl_seconds=900)
    try:
        yield client
    finally:
        client.stop()


class PlaybookRunner:
    """Runs a list of tasks as a play with ansible-playbook, the way a user would, and returns every result."""

    def __init__(self, lab: LabClient, tmp: Path, *, connection: str = "winrm", auth: str = "ntlm") -> None:
        self.lab = lab
        self.tmp = tmp
        self.inventory = lab.write_inventory(
            tmp / f"inventory-{connection}-{auth}.yml", connection=connection, auth=auth
        )
        self.count = 0

    def run(
        self, tasks: list[dict[str, t.Any]], *, hosts: str = "exchange_servers", extra_args: t.Sequence[str] = ()
    ) -> PlaybookRun:
        self.count += 1
        playbook = self.tmp / f"play{self.count}.yml"
        play = [{"name": "integration", "hosts": hosts, "gather_facts": False, "tasks": tasks}]
        playbook.write_text(yaml.safe_dump(play, sort_keys=False), encoding="utf-8")
        return run_playbook(playbook, self.inventory, self.tmp, extra_args=extra_args)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[LabClient]:
    with running_lab("single", tmp_path_factory.mktemp("lab")) as client:
        yield client


@pytest.fixture
def playbook(lab: LabClient, tmp_path: Path) -> PlaybookRunner:
    lab.reset()
    return PlaybookRunner(lab, tmp_path)
