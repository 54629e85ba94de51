"""make demo, as a newcomer runs it: the story it prints from start to end, and the report it leaves."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import requires_lab
from tests.playbook import REPO_ROOT

pytestmark = [pytest.mark.integration, requires_lab]


def test_the_demo_audits_remediates_and_audits_again_until_only_the_network_block_is_left(tmp_path: Path) -> None:
    work = tmp_path / "demo"
    demo = subprocess.run(
        [sys.executable, "-m", "tests.lab.demo", "--work", str(work)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=900,
        check=False,
    )
    output = demo.stdout
    assert demo.returncode == 0, output + demo.stderr
    lines = output.splitlines()
    before, after = output.split("5. The symptoms again", 1)

    # Before: Exchange-to-Exchange mail held in 454 4.7.0, EOP refusing ex01's and ex03's relays, drift found.
    assert "ex01  queue to ex02.contoso.example    12 messages held: 454 4.7.0" in before
    assert "ex03  relay to Exchange Online (EOP stand-in) answered: 550 5.7.64 TenantAttribution" in before
    assert "  11 checks drift, 0 failed, 0 unreachable." in before
    # After: queues drained, relays accepted, no drift, and only what no host can fix, named as such.
    assert " messages held" not in after
    for host in ("ex01", "ex02", "ex03"):
        assert f"{host}  queues: every message delivered, none held" in after
    for host in ("ex01", "ex03"):
        assert f"{host}  relay to Exchange Online (EOP stand-in) answered: 250 2.6.0 Queued mail for delivery" in after
    assert "  0 checks drift, 0 failed, 0 unreachable." in after
    left = after.split("What no module can fix (for the network's owner, not for Ansible):", 1)[1]
    findings = [line.strip() for line in left.splitlines() if line.startswith("    - ")]
    assert len(findings) == 1 and findings[0].startswith(
        "- ex01 kerberos_ports: ex01 -> dc03 TCP/88: no answer although dc03's firewall allows it"
    ), findings

    # The report and the log it names exist; the report's cells say what the remediation fixed.
    report = work / "report" / "mailflow-drift.json"
    assert (
        f"Report (before, remediation and after, with the clock chart): {work / 'report' / 'mailflow-drift.html'}"
        in lines
    )
    assert f"Full Ansible output: {work / 'ansible.log'}" in lines
    assert (work / "ansible.log").stat().st_size > 10_000
    document = json.loads(report.read_text(encoding="utf-8"))
    fixed = {(item["host"], item["check"]) for item in document["cells"] if item["status"] == "fixed"}
    assert {("ex01", "receive_connector_auth"), ("ex03", "intermediate_ca"), ("dc03", "ad_replication")} <= fixed
    assert {item["status"] for item in document["cells"]} == {"ok", "fixed"}
    [gate] = document["gate"]
    assert gate.startswith("ex01 kerberos_ports: cannot be fixed by a module: ex01 -> dc03 TCP/88: no answer"), gate
    # Compact: the story, not pages of task output; and the lab is gone.
    assert lines[-2] == "The lab has stopped."
    assert len(lines) < 110
