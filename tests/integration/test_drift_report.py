"""playbooks/audit.yml --check with the drift_report callback and the CI gate, through ansible-playbook against the lab:
every planted cause of contoso in the report and the gate failing, clean all green and the gate passing, a host made
unreachable mid-audit in all three formats, and the HTML page as headless Chromium renders it."""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import subprocess
import time
import typing as t
from pathlib import Path
from xml.etree import ElementTree

import pytest
import yaml

from tests.integration.conftest import DC_CHECKS, EXCHANGE_CHECKS, requires_lab, running_lab
from tests.lab.control import LabClient
from tests.playbook import REPO_ROOT, PlaybookRun, run_playbook
from tests.png import colours, size

pytestmark = [pytest.mark.integration, requires_lab]

DRIFT_REPORT = "mailflow.remediation.drift_report"
# The intermediates each lab fleet's PKI has: what an administrator gives intermediate_ca.
INTERMEDIATES = {"contoso": ["public-tls", "public-policy"], "clean": ["public-tls"]}
# contoso's plants (tests/lab/fleets/contoso.yml), as the audit must show them: drift where a module fixes it,
# "unfixable" where it is wrong but no module may change it from that host.
CONTOSO_DRIFT = {
    ("dc02", "w32time"),  # W32Time stopped and manual
    ("dc02", "kerberos_ports"),  # the KDC's UDP rule disabled
    ("dc03", "ad_replication"),  # the Branch site link failed for a day
    ("dc03", "kerberos_ports"),  # the Kerberos password-change UDP rule disabled
    ("ex01", "receive_connector_auth"),  # ExchangeServer authentication removed
    ("ex01", "intermediate_ca"),  # the issuing intermediate missing from LocalMachine\CA
    ("ex02", "receive_connector_auth"),  # the ExchangeServers permission group missing
    ("ex03", "w32time"),  # NoSync, seven minutes ahead
    ("ex03", "spn"),  # SMTP/EX03 never registered
    ("ex03", "intermediate_ca"),  # neither intermediate in LocalMachine\CA
}
CONTOSO_UNFIXABLE = {
    ("dc01", "w32time"): "is the forest-root PDC emulator",
    ("ex01", "spn"): "SMTPSVC/ex01.contoso.example is registered on EX01$ and on svc-mailrelay",
    ("ex01", "kerberos_ports"): "ex01 -> dc03 TCP/88: no answer although dc03's firewall allows it",
    ("ex03", "spn"): "SMTPSVC/ex03.contoso.example is held by svc-ex03-relay",
}
# What Chromium paints for each status (the page's own stylesheet), to find the matrix in a screenshot.
STATUS_COLOURS = {
    "ok": (0xC8, 0xEF, 0xD1),
    "drift": (0xFF, 0xD5, 0x80),
    "fixed": (0xB9, 0xD3, 0xFF),
    "failed": (0xFF, 0x9E, 0x98),
    "unreachable": (0xC9, 0xBF, 0xE3),
}


def audit_vars(lab: LabClient, fleet: str, **more: t.Any) -> dict[str, t.Any]:
    return {
        "mailflow_domain_username": "CONTOSO\\ansible",
        "mailflow_domain_password": "Lab-Passw0rd!",
        "mailflow_audit_options": {
            "intermediate_ca": {"src": [str(lab.pki_dir / f"{name}.pem") for name in INTERMEDIATES[fleet]]},
            "smtp_tls_chain": {"ca_file": str(lab.pki_dir / "public-root.pem")},
        },
        **more,
    }


def run_audit(lab: LabClient, tmp_path: Path, fleet: str, **more: t.Any) -> tuple[PlaybookRun, Path]:
    """playbooks/audit.yml --check with the report callback; returns the run and the report's directory."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    variables = tmp_path / "audit-vars.yml"
    variables.write_text(yaml.safe_dump(audit_vars(lab, fleet, **more)), encoding="utf-8")
    inventory = lab.write_inventory(tmp_path / "inventory.yml")
    report = tmp_path / "report"
    environment = {**os.environ, "MAILFLOW_REPORT_DIR": str(report)}
    run = run_playbook(
        REPO_ROOT / "playbooks" / "audit.yml",
        inventory,
        tmp_path,
        extra_args=["--check", "-e", f"@{variables}"],
        env=environment,
        callbacks=[DRIFT_REPORT],
    )
    return run, report


def read_report(directory: Path) -> tuple[dict[str, t.Any], ElementTree.Element, str]:
    document = json.loads((directory / "mailflow-drift.json").read_text(encoding="utf-8"))
    junit = ElementTree.fromstring((directory / "mailflow-drift.xml").read_text(encoding="utf-8"))  # noqa: S314
    return document, junit, (directory / "mailflow-drift.html").read_text(encoding="utf-8")


def statuses(document: dict[str, t.Any]) -> dict[tuple[str, str], str]:
    return {(item["host"], item["check"]): item["status"] for item in document["cells"]}


def every_host_and_check(document: dict[str, t.Any]) -> set[tuple[str, str]]:
    hosts = document["hosts"]
    return {(host, check) for host in hosts for check in (DC_CHECKS if host.startswith("dc") else EXCHANGE_CHECKS)}


def junit_outcomes(junit: ElementTree.Element) -> dict[tuple[str, str], str]:
    outcomes = {}
    for case in junit.iter("testcase"):
        problem = [child for child in case if child.tag in ("failure", "error")]
        outcomes[(str(case.get("classname")), str(case.get("name")))] = (
            f"{problem[0].tag}:{problem[0].get('type')}" if problem else "pass"
        )
    return outcomes


def chromium() -> str:
    # Debian's chromium, which make setup installs (tools/setup.sh): the page must render in a real browser.
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "chromium is missing: run make setup (tools/setup.sh installs Debian's chromium)"
    return found


def render_in_chromium(page: Path, screenshot: Path) -> str:
    """The DOM as headless Chromium built it, after taking a screenshot of the page."""
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-extensions",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={screenshot.parent / 'chromium-profile'}",
    ]
    url = page.resolve().as_uri()
    shot = subprocess.run(
        [chromium(), *flags, "--window-size=1400,700", f"--screenshot={screenshot}", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert shot.returncode == 0 and screenshot.is_file(), shot.stderr
    dom = subprocess.run(
        [chromium(), *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=False
    )
    assert dom.returncode == 0, dom.stderr
    return dom.stdout


def test_contoso_every_planted_cause_in_every_format_and_the_gate_fails(tmp_path: Path) -> None:
    with running_lab("contoso", tmp_path / "lab") as lab:
        run, directory = run_audit(lab, tmp_path, "contoso", mailflow_fail_on_drift=True)
        journal = lab.journal()

    assert journal == []  # an audit, even with the gate: nothing written
    # The gate: every audit task succeeded, and the final play failed on what they found.
    assert run.rc == 2, run.stdout + run.stderr
    assert [item["host"] for item in run.results if item["status"] != "ok"] == ["localhost"]
    findings = run.task(
        "Fail when a check drifts or could not run, a host was not audited, or a fleet-level check finds something",
        host="localhost",
    )["result"]["msg"]
    assert (
        "ex01 receive_connector_auth: drift: EX01\\Default EX01: AuthMechanism add ExchangeServer; "
        "EX01\\Default EX01: PermissionGroups add ExchangeServers"
    ) in findings
    assert any(item.startswith("fleet clock_spread: the clocks of ex03 and dc02 are 460 s apart") for item in findings)
    for path in ("mailflow-drift.json", "mailflow-drift.xml", "mailflow-drift.html"):
        assert f"mailflow drift report: {directory / path}" in run.stdout

    document, junit, _page = read_report(directory)
    found = statuses(document)
    # Every host x check, none missing and none invented.
    assert set(found) == every_host_and_check(document)
    assert document["hosts"] == ["dc01", "dc02", "dc03", "ex01", "ex02", "ex03"]
    assert {key for key, status in found.items() if status == "drift"} == CONTOSO_DRIFT
    assert set(found.values()) == {"ok", "drift"}
    cells = {(item["host"], item["check"]): item for item in document["cells"]}
    for key, words in CONTOSO_UNFIXABLE.items():
        assert any(words in finding for finding in cells[key]["unfixable"]), (key, cells[key]["unfixable"])
    fleet = document["fleet"]
    assert (fleet["clock_spread"]["status"], fleet["clock_spread"]["spread"]) == ("drift", 460.0)
    assert fleet["duplicate_spns"]["duplicates"] == {"SMTPSVC/ex01.contoso.example": ["EX01$", "svc-mailrelay"]}
    assert [(pair["dc"], pair["partner"]) for pair in fleet["failing_partners"]["pairs"]] == [
        ("dc01", "dc03"),
        ("dc02", "dc03"),
        ("dc03", "dc01"),
        ("dc03", "dc02"),
    ]

    outcomes = junit_outcomes(junit)
    assert {key for key, outcome in outcomes.items() if outcome == "failure:drift"} == CONTOSO_DRIFT | {
        ("fleet", "clock_spread"),
        ("fleet", "duplicate_spns"),
        ("fleet", "failing_partners"),
    }
    assert {key for key in CONTOSO_UNFIXABLE if outcomes[key] == "failure:unfixable"} == set(CONTOSO_UNFIXABLE) - (
        CONTOSO_DRIFT
    )
    assert len(outcomes) == len(found) + 3


def test_the_page_renders_in_headless_chromium_with_the_matrix(tmp_path: Path) -> None:
    with running_lab("contoso", tmp_path / "lab") as lab:
        run, directory = run_audit(lab, tmp_path, "contoso")
    assert run.rc == 0, run.stdout + run.stderr  # without the gate, drift alone does not fail the run
    document, _junit, _page = read_report(directory)

    screenshot = tmp_path / "report.png"
    dom = render_in_chromium(directory / "mailflow-drift.html", screenshot)
    # The matrix as the browser built it: a row per host, a cell per check, each linking to its evidence.
    rows = dom.count('<tr data-host="')
    links = dom.count('<td class="s-')
    assert (rows, links) == (len(document["hosts"]), len(document["cells"]))
    for item in document["cells"]:
        anchor = f"cell-{item['host']}-{item['check']}"
        assert f'href="#{anchor}"' in dom and f'id="{anchor}"' in dom
    assert '<svg id="clock-chart"' in dom
    # ... and as it painted it: 1400 x 700, the drift and ok colours there, no status colour that has no cell.
    assert size(screenshot) == (1400, 700)
    painted = colours(screenshot)
    assert {status for status, colour in STATUS_COLOURS.items() if painted[colour] > 500} == {"ok", "drift"}


def test_clean_reports_zero_changed_zero_failed_and_the_gate_passes(tmp_path: Path) -> None:
    with running_lab("clean", tmp_path / "lab") as lab:
        run, directory = run_audit(lab, tmp_path, "clean", mailflow_fail_on_drift=True)
    assert run.rc == 0, run.stdout + run.stderr
    audits = [item for item in run.results if item["host"] != "localhost"]
    assert [(item["status"], item["result"]["changed"]) for item in audits] == [("ok", False)] * 4
    assert "changed=0    unreachable=0    failed=0" in run.stdout
    gate = run.task(
        "Fail when a check drifts or could not run, a host was not audited, or a fleet-level check finds something",
        host="localhost",
    )
    assert (gate["status"], gate["result"]["msg"]) == ("ok", "4 hosts audited: no drift, nothing failed")

    document, junit, _page = read_report(directory)
    assert set(statuses(document).values()) == {"ok"}
    assert set(statuses(document)) == every_host_and_check(document)
    assert document["summary"]["unfixable"] == 0
    assert {name: check["status"] for name, check in document["fleet"].items()} == {
        "clock_spread": "ok",
        "duplicate_spns": "ok",
        "failing_partners": "ok",
    }
    assert (junit.get("failures"), junit.get("errors")) == ("0", "0")


def test_mailflow_domain_server_sends_every_hosts_directory_reads_to_that_dc(tmp_path: Path) -> None:
    # clean has a DC per site; each Exchange server reads the directory from its own site's DC unless told otherwise.
    def dcs_read(run: PlaybookRun) -> dict[str, str]:
        return {
            host: run.task("Audit every check of an Exchange server in one round trip", host)["result"]["checks"][
                "spn"
            ]["dc"]
            for host in ("ex01", "ex02")
        }

    with running_lab("clean", tmp_path / "lab") as lab:
        own, _directory = run_audit(lab, tmp_path / "own", "clean")
        chosen, _directory = run_audit(lab, tmp_path / "chosen", "clean", mailflow_domain_server="dc02.contoso.example")
    assert (own.rc, chosen.rc) == (0, 0), own.stdout + chosen.stdout
    assert dcs_read(own) == {"ex01": "dc01.contoso.example", "ex02": "dc02.contoso.example"}
    assert dcs_read(chosen) == {"ex01": "dc02.contoso.example", "ex02": "dc02.contoso.example"}


def test_a_delegated_read_is_filed_under_the_host_it_read(tmp_path: Path) -> None:
    # As fix_550_5_7_64 exports from its reference server: run_once, delegate_to a templated host name.
    playbook = tmp_path / "delegated.yml"
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "Read a reference server",
                    "hosts": "exchange_servers",
                    "gather_facts": False,
                    "vars": {"reference": "ex02"},
                    "tasks": [
                        {
                            "name": "Kerberos logging on the reference server",
                            "mailflow.remediation.kerberos_logging": {},
                            "check_mode": True,
                            "delegate_to": "{{ reference }}",
                            "run_once": True,
                        }
                    ],
                }
            ]
        ),
        encoding="utf-8",
    )
    with running_lab("clean", tmp_path / "lab") as lab:
        inventory = lab.write_inventory(tmp_path / "inventory.yml")
        environment = {**os.environ, "MAILFLOW_REPORT_DIR": str(tmp_path / "report")}
        run = run_playbook(playbook, inventory, tmp_path, env=environment, callbacks=[DRIFT_REPORT])
    assert run.rc == 0, run.stdout + run.stderr
    document = json.loads((tmp_path / "report" / "mailflow-drift.json").read_text(encoding="utf-8"))
    assert [(item["host"], item["check"]) for item in document["cells"]] == [("ex02", "kerberos_logging")]


def test_a_host_made_unreachable_mid_audit_shows_in_all_three_formats(tmp_path: Path) -> None:
    with running_lab("clean", tmp_path / "lab") as lab:
        # ex01 answers slowly, so the Exchange play lasts a few seconds; once ex02 has been audited, dc02 stops
        # listening: the audit has begun, and the domain controllers' play finds dc02 gone.
        lab.set_faults("ex01", delay_seconds=0.4)
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            running = pool.submit(run_audit, lab, tmp_path, "clean", mailflow_fail_on_drift=True)
            deadline = time.monotonic() + 120
            while lab.counters().get("ex02", {}).get("round_trips", 0) == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            lab.set_faults("dc02", refused=True)
            ex01_done = lab.counters()["ex01"]["round_trips"]
            run, directory = running.result(timeout=300)
    assert ex01_done == 0, "dc02 went away before the audit reached ex01's result: not mid-audit"
    # ansible-playbook's own code for an unreachable host, which the gate's failure does not change.
    assert run.rc == 4, run.stdout + run.stderr
    assert [item["status"] for item in run.results if item["host"] == "dc02"] == ["unreachable"]
    gate = run.task(
        "Fail when a check drifts or could not run, a host was not audited, or a fleet-level check finds something",
        host="localhost",
    )
    refused = run.task("Audit every check of a domain controller in one round trip", host="dc02")["result"]["msg"]
    assert [item for item in gate["result"]["msg"] if item.startswith("dc02")] == [
        f"dc02: unreachable, its checks did not run: {refused}"
    ]

    document, junit, page = read_report(directory)
    found = statuses(document)
    assert {check: status for (host, check), status in found.items() if host == "dc02"} == dict.fromkeys(
        DC_CHECKS, "unreachable"
    )
    assert {status for (host, _check), status in found.items() if host != "dc02"} == {"ok"}
    assert document["unreachable_hosts"] == ["dc02"]
    outcomes = junit_outcomes(junit)
    assert {key for key, outcome in outcomes.items() if outcome != "pass"} == {("dc02", check) for check in DC_CHECKS}
    assert set(outcomes.values()) == {"pass", "error:unreachable"}
    assert "<strong>Unreachable:</strong> dc02" in page
    assert page.count('<td class="s-unreachable"') == len(DC_CHECKS)
