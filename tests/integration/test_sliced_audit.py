"""Past one controller: the audit of a generated lab fleet cut into three slices, run in parallel by ansible-runner
(the engine of AWX / Automation Platform, as its job slicing runs them), each slice writing its own drift report;
playbooks/merge_reports.yml joins them into the report one unsliced run writes, with the fleet-level checks computed
across the slices, not per slice."""

from __future__ import annotations

import concurrent.futures
import json
import os
import time
import typing as t
from pathlib import Path

import ansible_runner
import pytest
import yaml

from tests.integration.conftest import requires_lab, running_lab
from tests.lab.control import LabClient
from tests.lab.generate import generate_fleet
from tests.playbook import ANSIBLE_PLAYBOOK, COLLECTIONS_PATH, REPO_ROOT, run_playbook

pytestmark = [pytest.mark.integration, requires_lab]

SLICES = 3
DOMAIN = "contoso.example"
DRIFT_REPORT = "mailflow.remediation.drift_report"


def sliced_fleet(path: Path) -> Path:
    """15 hosts (dc01, dc02, ex01..ex13). ex02 and ex03 fall in different slices, and their clocks are 200 s either
    side of the DCs': within the limit for each of them, 400 s apart from each other, which only the whole fleet
    shows. ex07's SPN is on a second account too, and ex10's receive connector lacks the Exchange servers group."""
    document = generate_fleet(15, seed=3)
    hosts = {entry["name"]: entry for entry in document["hosts"]}
    hosts["ex02"]["clock_offset"] = 200
    hosts["ex03"]["clock_offset"] = -200
    document["accounts"].append({"name": "svc-ex07", "kind": "user", "spns": [f"SMTPSVC/ex07.{DOMAIN}"]})
    hosts["ex10"]["exchange"]["receive_connectors"] = [{"name": "Default EX10", "permission_groups": ["ExchangeUsers"]}]
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def cut(inventory: dict[str, t.Any], index: int) -> dict[str, t.Any]:
    """Slice ``index`` of the inventory: its hosts, sorted by name, dealt out evenly over the slices as AWX does,
    each in the groups it had."""
    groups = inventory["all"]["children"]
    names = sorted(name for group in groups.values() for name in group["hosts"])
    mine = set(names[index::SLICES])
    children = {
        group: {"hosts": {name: entry for name, entry in members["hosts"].items() if name in mine}}
        for group, members in groups.items()
    }
    return {"all": {"vars": inventory["all"]["vars"], "children": children}}


def audit_vars(lab: LabClient) -> dict[str, t.Any]:
    return {
        "mailflow_domain_username": "CONTOSO\\ansible",
        "mailflow_domain_password": "Lab-Passw0rd!",
        "mailflow_audit_options": {
            "intermediate_ca": {"src": [str(lab.pki_dir / "public-tls.pem")]},
            "smtp_tls_chain": {"ca_file": str(lab.pki_dir / "public-root.pem")},
        },
    }


def run_with_runner(name: str, inventory: dict[str, t.Any], variables: Path, work: Path) -> dict[str, t.Any]:
    """One job as AWX would run it: ansible-runner, its own private data directory, the report callback on."""
    private = work / name
    (private / "inventory").mkdir(parents=True)
    (private / "inventory" / "hosts.yml").write_text(yaml.safe_dump(inventory), encoding="utf-8")
    report = private / "report"
    started = time.monotonic()
    runner = ansible_runner.run(
        private_data_dir=str(private),
        playbook=str(REPO_ROOT / "playbooks" / "audit.yml"),
        cmdline=f"--check -e @{variables}",
        envvars={
            # ansible-runner runs the ansible-playbook it finds on PATH: this environment's.
            "PATH": f"{Path(ANSIBLE_PLAYBOOK).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS_PATH),
            "ANSIBLE_CALLBACKS_ENABLED": DRIFT_REPORT,
            "ANSIBLE_LOCAL_TEMP": str(private / "ansible-local"),
            "MAILFLOW_REPORT_DIR": str(report),
        },
        quiet=True,
        timeout=300,
    )
    finished = time.monotonic()
    path = report / "mailflow-drift.json"
    assert runner.rc == 0 and path.is_file(), (name, runner.status, runner.rc, runner.stdout.read())
    return {"path": path, "document": json.loads(path.read_text(encoding="utf-8")), "span": (started, finished)}


def verdicts(document: dict[str, t.Any]) -> dict[str, t.Any]:
    """What a report says about the fleet; not when it was written, nor the words of what each module found (a
    replication partner's last success is "86401 s ago" in one run and "86402 s ago" in the next)."""
    return {
        "hosts": document["hosts"],
        "checks": document["checks"],
        "cells": [
            (item["host"], item["check"], item["status"], item["changes"], item["unfixable"])
            for item in document["cells"]
        ],
        "summary": document["summary"],
        "fleet": document["fleet"],
        "gate": document["gate"],
    }


def test_three_slices_in_parallel_merge_into_the_unsliced_report(tmp_path: Path) -> None:
    with running_lab(str(sliced_fleet(tmp_path / "fleet.yml")), tmp_path / "lab") as lab:
        inventory = yaml.safe_load(lab.write_inventory(tmp_path / "inventory.yml").read_text(encoding="utf-8"))
        variables = tmp_path / "audit-vars.yml"
        variables.write_text(yaml.safe_dump(audit_vars(lab)), encoding="utf-8")

        whole = run_with_runner("unsliced", inventory, variables, tmp_path)
        with concurrent.futures.ThreadPoolExecutor(max_workers=SLICES) as pool:
            jobs = [
                pool.submit(run_with_runner, f"slice{index + 1}", cut(inventory, index), variables, tmp_path)
                for index in range(SLICES)
            ]
            slices = [job.result(timeout=600) for job in jobs]
        journal = lab.journal()

    assert journal == []
    # The slices ran at the same time, and each audited a third of the fleet, no host twice.
    assert max(item["span"][0] for item in slices) < min(item["span"][1] for item in slices)
    audited = [host for item in slices for host in item["document"]["hosts"]]
    assert sorted(audited) == whole["document"]["hosts"] and len(whole["document"]["hosts"]) == 15
    assert [len(item["document"]["hosts"]) for item in slices] == [5, 5, 5]
    # No slice sees the clock spread: each of ex02 and ex03 is within 300 s of the DCs it measured.
    assert [item["document"]["fleet"]["clock_spread"]["status"] for item in slices] == ["ok", "ok", "ok"]

    merged_dir = tmp_path / "fleet"
    merge = run_playbook(
        REPO_ROOT / "playbooks" / "merge_reports.yml",
        "localhost,",
        tmp_path,
        env={
            **os.environ,
            "MAILFLOW_REPORT_MERGE": ",".join(str(item["path"]) for item in slices),
            "MAILFLOW_REPORT_DIR": str(merged_dir),
        },
        callbacks=[DRIFT_REPORT],
    )
    assert merge.rc == 0, merge.stdout + merge.stderr
    merged = json.loads((merged_dir / "mailflow-drift.json").read_text(encoding="utf-8"))

    assert verdicts(merged) == verdicts(whole["document"])
    assert len(merged["sources"]) == SLICES
    spread = merged["fleet"]["clock_spread"]
    assert (spread["status"], spread["spread"], spread["ahead"], spread["behind"]) == ("drift", 400.0, "ex02", "ex03")
    assert merged["fleet"]["duplicate_spns"]["duplicates"] == {f"SMTPSVC/ex07.{DOMAIN}": ["EX07$", "svc-ex07"]}
    assert [(item["host"], item["check"]) for item in merged["cells"] if item["status"] == "drift"] == [
        ("ex10", "receive_connector_auth")
    ]
    assert (merged_dir / "mailflow-drift.xml").is_file() and (merged_dir / "mailflow-drift.html").is_file()
