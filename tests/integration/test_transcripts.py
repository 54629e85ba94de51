"""Recording transcripts end to end: ansible-playbook forks, winrm, the seam's hook, and the replay reading them.

Transcripts of the lab prove nothing about Windows; here they prove that what the seam records in a real playbook run
(per-host sequence across tasks and forks, the inventory name, the parameters as sent) is what the replay of
tests/transcripts/ reads.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import PlaybookRunner, requires_lab
from tests.lab.transcripts import host_runs, load_transcripts, replay

pytestmark = [pytest.mark.integration, requires_lab]

MODULE = "mailflow.remediation.kerberos_logging"


def test_a_play_records_each_run_in_order_and_the_replay_reads_it(playbook: PlaybookRunner, tmp_path: Path) -> None:
    run = playbook.run(
        [
            {"name": "enable", MODULE: {}},
            {"name": "0xFFFFFFFF", MODULE: {"state": "restored", "previous": {"exists": True, "value": 4294967295}}},
            {"name": "remove", MODULE: {"state": "absent"}},
        ],
        transcript_dir=tmp_path / "transcripts" / "lab",
    )
    assert run.rc == 0, run.stdout + run.stderr

    [(host, runs)] = list(host_runs(load_transcripts(tmp_path / "transcripts")).items())
    assert host == "lab/ex01"
    assert [(item.document["sequence"], item.params, item.document["connection"]) for item in runs] == [
        (1, {"action": "read", "value": None}, "winrm"),
        (2, {"action": "set", "value": 1}, "winrm"),
        (3, {"action": "read", "value": None}, "winrm"),
        (4, {"action": "set", "value": -1}, "winrm"),
        (5, {"action": "read", "value": None}, "winrm"),
        (6, {"action": "remove", "value": None}, "winrm"),
    ]
    replay(runs)


def test_a_run_against_the_lab_records_nothing_even_with_the_variable_set(
    playbook: PlaybookRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAILFLOW_TRANSCRIPT_DIR", str(tmp_path / "transcripts"))
    run = playbook.run([{"name": "audit", MODULE: {}, "check_mode": True}])
    assert run.rc == 0, run.stdout + run.stderr
    assert not (tmp_path / "transcripts").exists()
