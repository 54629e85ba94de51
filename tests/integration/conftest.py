"""Integration fixtures: a lab on 127.0.0.1 and a runner for real ansible-playbook against it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import typing as t
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.lab.control import LabClient, start_lab

REPO_ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS_PATH = REPO_ROOT / ".collections"
CALLBACKS = Path(__file__).resolve().parent / "callback_plugins"


@dataclass
class PlaybookRun:
    rc: int
    stdout: str
    stderr: str
    results: list[dict[str, t.Any]]

    def task(self, name: str, host: str = "ex01") -> dict[str, t.Any]:
        matches = [item for item in self.results if item["task"] == name and item["host"] == host]
        assert matches, f"no result for task {name!r} on {host}; output:\n{self.stdout}\n{self.stderr}"
        return matches[-1]


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
        results = self.tmp / f"results{self.count}.json"
        play = [{"name": "integration", "hosts": hosts, "gather_facts": False, "tasks": tasks}]
        playbook.write_text(yaml.safe_dump(play, sort_keys=False), encoding="utf-8")
        env = {
            **os.environ,
            "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS_PATH),
            "ANSIBLE_CALLBACK_PLUGINS": str(CALLBACKS),
            "ANSIBLE_CALLBACKS_ENABLED": "record_results",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_HOST_KEY_CHECKING": "0",
            "ANSIBLE_LOCAL_TEMP": str(self.tmp / "ansible-local"),
            "RECORD_RESULTS_FILE": str(results),
        }
        process = subprocess.run(
            [
                str(Path(sys.executable).parent / "ansible-playbook"),
                "-i",
                str(self.inventory),
                str(playbook),
                *extra_args,
            ],
            capture_output=True,
            text=True,
            env=env,
            cwd=self.tmp,
            timeout=300,
            check=False,
        )
        recorded = json.loads(results.read_text(encoding="utf-8")) if results.exists() else []
        return PlaybookRun(process.returncode, process.stdout, process.stderr, recorded)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[LabClient]:
    client = start_lab("single", tmp_path_factory.mktemp("lab"), ttl_seconds=900)
    try:
        yield client
    finally:
        client.stop()


@pytest.fixture
def playbook(lab: LabClient, tmp_path: Path) -> PlaybookRunner:
    lab.reset()
    return PlaybookRunner(lab, tmp_path)
