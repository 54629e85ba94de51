"""The drift report's model and formats, from results shaped as the modules return them."""

from __future__ import annotations

import json
import re
import typing as t
from pathlib import Path
from xml.etree import ElementTree

import pytest

from ansible_collections.mailflow.remediation.plugins.plugin_utils._drift_report import (
    Report,
    ReportError,
    cell,
    check_name,
    expected_checks,
    gate_findings,
    load,
    merge,
    render_html,
    render_json,
    render_junit,
    write,
)

AUDIT = "mailflow.remediation.audit"


def result(**values: t.Any) -> dict[str, t.Any]:
    return {
        "article": "KB 979174",
        "step": "6",
        "changed": False,
        "changes": [],
        "unfixable": [],
        "found": "",
        **values,
    }


@pytest.mark.parametrize(
    ("check", "values", "check_mode", "status"),
    [
        ("receive_connector_auth", {}, True, "ok"),
        ("receive_connector_auth", {"changed": True, "changes": ["add ExchangeServer"]}, True, "drift"),
        ("receive_connector_auth", {"changed": True, "changes": ["add ExchangeServer"]}, False, "fixed"),
        ("receive_connector_auth", {"failed": True, "msg": "access denied"}, True, "failed"),
        ("receive_connector_auth", {"unreachable": True, "msg": "refused"}, False, "unreachable"),
        # What no module can fix is never drift by itself: it stays beside the status.
        ("kerberos_ports", {"unfixable": ["ex01 -> dc03 TCP/88 ..."]}, True, "ok"),
        # Kerberos logging is a diagnostic: turning it on and back is neither drift nor a fix.
        ("kerberos_logging", {"changed": True}, True, "ok"),
        ("kerberos_logging", {"changed": True}, False, "ok"),
    ],
)
def test_a_cells_status(check: str, values: dict[str, t.Any], check_mode: bool, status: str) -> None:
    assert cell("ex01", check, result(**values), check_mode=check_mode)["status"] == status


def test_a_cell_keeps_the_modules_own_values_as_evidence_but_not_what_the_run_shows_already() -> None:
    made = cell(
        "ex01", "w32time", result(offsets=[{"peer": "dc01"}], diff={"before": "x"}, warnings=["w"]), check_mode=True
    )
    assert made["evidence"] == {"offsets": [{"peer": "dc01"}]}
    assert (made["article"], made["step"]) == ("KB 979174", "6")


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ("mailflow.remediation.w32time", "w32time"),
        ("w32time", "w32time"),
        ("mailflow.remediation.audit", "audit"),
        ("ansible.builtin.assert", None),
        ("other.collection.w32time", None),
        ("mailflow.remediation.nothing", None),
        (None, None),
    ],
)
def test_only_the_collections_checks_are_cells(action: str | None, expected: str | None) -> None:
    assert check_name(action) == expected


@pytest.mark.parametrize(
    ("args", "groups", "expected"),
    [
        ({}, ["exchange_servers"], ["w32time", "spn", "kerberos_ports", "kerberos_logging"]),
        ({}, ["domain_controllers"], ["w32time", "ad_replication", "kerberos_ports", "mailflow_evidence"]),
        ({"role": "domain_controller"}, ["exchange_servers"], ["w32time", "ad_replication"]),
        ({"checks": ["spn", "w32time"]}, ["domain_controllers"], ["spn", "w32time"]),
    ],
)
def test_an_unreachable_audit_names_the_checks_it_would_have_run(
    args: dict[str, t.Any], groups: list[str], expected: list[str]
) -> None:
    assert expected_checks(args, groups)[: len(expected)] == expected


def audit(**checks: dict[str, t.Any]) -> dict[str, t.Any]:
    return {"changed": any(entry.get("changed") for entry in checks.values()), "checks": checks}


def contoso_like() -> Report:
    report = Report()
    report.playbooks.append("audit.yml")
    report.add_result(
        "ex01",
        AUDIT,
        audit(
            w32time=result(step="1", offsets=[{"peer": "dc01.c.example", "answered": True, "offset": 400.0}]),
            receive_connector_auth=result(
                changed=True, changes=["EX01\\Default EX01: AuthMechanism add ExchangeServer"]
            ),
            kerberos_ports=result(step="4", unfixable=["ex01 -> dc03 TCP/88: a network firewall between them"]),
        ),
        check_mode=True,
        task="audit",
    )
    report.add_result(
        "dc01",
        AUDIT,
        audit(
            w32time=result(step="1", offsets=[]),
            ad_replication={"article": "KB 979174", "step": "2", "failed": True, "msg": "access denied (8453)"},
        ),
        check_mode=True,
    )
    report.add_unreachable("dc02", AUDIT, "connection refused", groups=["domain_controllers"])
    return report


def test_the_document_lists_every_host_and_check_run_and_counts_them() -> None:
    document = contoso_like().document(generated="2024-05-01T00:00:00+00:00")
    assert document["hosts"] == ["dc01", "dc02", "ex01"]
    assert document["checks"] == [
        "w32time",
        "ad_replication",
        "kerberos_ports",
        "receive_connector_auth",
        "mailflow_evidence",
    ]
    assert [(item["host"], item["check"], item["status"]) for item in document["cells"]] == [
        ("dc01", "w32time", "ok"),
        ("dc01", "ad_replication", "failed"),
        ("dc02", "w32time", "unreachable"),
        ("dc02", "ad_replication", "unreachable"),
        ("dc02", "kerberos_ports", "unreachable"),
        ("dc02", "mailflow_evidence", "unreachable"),
        ("ex01", "w32time", "ok"),
        ("ex01", "kerberos_ports", "ok"),
        ("ex01", "receive_connector_auth", "drift"),
    ]
    assert document["summary"] == {"ok": 3, "drift": 1, "fixed": 0, "failed": 1, "unreachable": 4, "unfixable": 1}
    assert document["unreachable_hosts"] == ["dc02"]
    assert document["fleet"]["clock_spread"]["spread"] == 400.0
    assert json.loads(render_json(document)) == document


def test_a_remediation_run_is_fixed_and_stays_fixed_when_a_later_task_finds_nothing() -> None:
    report = Report()
    changed = result(changed=True, changes=["add ExchangeServer"])
    report.add_result("ex01", "mailflow.remediation.receive_connector_auth", changed, check_mode=False, task="fix")
    report.add_result("ex01", "mailflow.remediation.receive_connector_auth", result(), check_mode=False, task="again")
    report.add_result("ex01", "ansible.builtin.debug", {"msg": "hello"}, check_mode=False)
    [only] = report.document()["cells"]
    assert (only["status"], only["changes"], only["tasks"]) == ("fixed", ["add ExchangeServer"], ["fix", "again"])
    # ... and a later failure is what the host has now.
    report.add_result("ex01", "receive_connector_auth", result(failed=True, msg="denied"), check_mode=False)
    assert report.document()["cells"][0]["status"] == "failed"


def test_an_audit_that_fails_after_a_fix_shows_failed_not_the_fix() -> None:
    # audit, remediate, audit again: the second audit could not read the host, so nothing is known to be fixed.
    report = Report()
    report.add_result("ex01", AUDIT, audit(spn=result(changed=True, changes=["add SMTP/ex01"])), check_mode=True)
    report.add_result("ex01", "mailflow.remediation.spn", result(changed=True), check_mode=False, task="fix")
    report.add_result(
        "ex01", AUDIT, {"failed": True, "msg": "access denied"}, check_mode=True, groups=["exchange_servers"]
    )
    assert report.cells[("ex01", "spn")]["status"] == "failed"
    assert report.cells[("ex01", "w32time")]["status"] == "failed"


def test_junit_has_a_case_per_host_and_check_and_a_fleet_suite() -> None:
    document = contoso_like().document()
    root = ElementTree.fromstring(render_junit(document))  # noqa: S314 - the report this test just wrote
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("12", "3", "5")
    cases = {
        (case.get("classname"), case.get("name")): [child.tag + ":" + str(child.get("type")) for child in case]
        for case in root.iter("testcase")
    }
    assert cases[("ex01", "receive_connector_auth")] == ["failure:drift"]
    assert cases[("ex01", "kerberos_ports")] == ["failure:unfixable"]
    assert cases[("dc01", "ad_replication")] == ["error:failed"]
    assert cases[("dc02", "w32time")] == ["error:unreachable"]
    assert cases[("fleet", "clock_spread")] == ["failure:drift"]
    assert cases[("fleet", "duplicate_spns")] == ["system-out:None"]
    assert [suite.get("name") for suite in root] == ["dc01", "dc02", "ex01", "fleet"]


def test_html_is_one_page_with_the_matrix_linking_each_cell_to_its_evidence_and_article() -> None:
    report = contoso_like()
    report.add_result("ex01", "mailflow.remediation.spn", result(found="<script>alert(1)</script>"), check_mode=True)
    page = render_html(report.document())
    assert page.count('<tr data-host="') == 3
    assert '<td class="s-drift" data-status="drift"' in page
    assert 'href="#cell-ex01-receive_connector_auth"' in page and 'id="cell-ex01-receive_connector_auth"' in page
    assert (
        "https://learn.microsoft.com/troubleshoot/exchange/mail-flow/454-4-7-0-temporary-authentication-failure" in page
    )
    assert '<svg id="clock-chart"' in page
    # Self-contained and safe: no script, nothing loaded from elsewhere, found text escaped.
    assert "<script" not in page and "src=" not in page and "&lt;script&gt;" in page


def test_reports_of_slices_merge_into_the_report_of_the_whole_fleet(tmp_path: Path) -> None:
    whole = contoso_like()
    slices = [Report(), Report(), Report()]
    for index, (_key, item) in enumerate(sorted(whole.cells.items())):
        slices[index % 3].add(item)
    paths = write_all(slices, tmp_path)
    merged = merge([load(path) for path in paths]).document(generated="-")
    expected = whole.document(generated="-")
    assert (merged["cells"], merged["fleet"], merged["summary"]) == (
        expected["cells"],
        expected["fleet"],
        expected["summary"],
    )
    assert len(merged["sources"]) == 3


def write_all(reports: list[Report], directory: Path) -> list[Path]:
    paths = []
    for index, report in enumerate(reports):
        [path] = write(report.document(), directory / str(index), basename="slice", formats=["json"])
        paths.append(path)
    return paths


def test_the_fleet_checks_of_a_merge_span_the_slices(tmp_path: Path) -> None:
    # Each slice's Exchange server is 200 s from the DC: within the limit per slice, 400 s apart across them.
    slices = [Report(), Report()]
    for report, (host, offset) in zip(slices, (("ex01", 200.0), ("ex02", -200.0)), strict=True):
        measured = [{"peer": "dc01.c.example", "answered": True, "offset": offset}]
        answer = result(offsets=measured, domain_controllers=["dc01.c.example"])
        report.add_result(host, "mailflow.remediation.w32time", answer, check_mode=True)
    assert [report.document()["fleet"]["clock_spread"]["status"] for report in slices] == ["ok", "ok"]
    merged = merge([load(path) for path in write_all(slices, tmp_path)]).document()
    assert (merged["fleet"]["clock_spread"]["status"], merged["fleet"]["clock_spread"]["spread"]) == ("drift", 400.0)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "cannot read the drift report {path}: Expecting value: line 1 column 1 (char 0)"),
        ('{"format": "something else"}', "{path} is not a mailflow.remediation drift report (JSON)"),
        (
            '{"format": "mailflow.remediation drift report", "version": 99}',
            "{path} is a drift report of version 99, this reads 1",
        ),
    ],
)
def test_a_report_that_is_not_one_is_named(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "report.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ReportError) as caught:
        load(path)
    assert str(caught.value) == message.format(path=path)


def test_the_gate_names_each_finding_once_per_unreachable_host() -> None:
    found = gate_findings(contoso_like().document())
    assert found == [
        "dc01 ad_replication: could not run: access denied (8453)",
        "dc02: unreachable, its checks did not run: connection refused",
        "ex01 kerberos_ports: cannot be fixed by a module: ex01 -> dc03 TCP/88: a network firewall between them",
        "ex01 receive_connector_auth: drift: EX01\\Default EX01: AuthMechanism add ExchangeServer",
        "fleet clock_spread: the clocks of ex01 and dc01 are 400 s apart, more than 300 s: Kerberos fails "
        "between them (KB 979174 step 1: all clocks within 5 minutes of each other)",
    ]
    assert len(gate_findings(contoso_like().document(), unfixable=False)) == len(found) - 1
    assert gate_findings(Report().document()) == []


def test_an_audit_unreachable_without_a_message_says_unreachable_in_each_check_it_would_have_run() -> None:
    report = Report()
    report.add_result("dc02", AUDIT, {"unreachable": True}, check_mode=True, groups=["domain_controllers"])
    cells = report.document()["cells"]
    assert {(item["check"], item["status"], item["msg"]) for item in cells} == {
        (check, "unreachable", "unreachable")
        for check in ("w32time", "ad_replication", "kerberos_ports", "mailflow_evidence")
    }


def test_a_merge_names_each_report_it_took_with_its_title_time_and_number_of_hosts(tmp_path: Path) -> None:
    whole = contoso_like()
    slices = [Report(), Report()]
    for report, host in zip(slices, ("dc01", "ex01"), strict=True):
        for (cell_host, _check), item in whole.cells.items():
            if cell_host == host:
                report.add(item)
    paths = []
    for index, report in enumerate(slices):
        document = report.document(generated=f"2024-05-0{index + 1}T00:00:00+00:00")
        [path] = write(document, tmp_path / str(index), basename="slice", formats=["json"])
        paths.append(path)
    sources = merge([load(path) for path in paths]).document()["sources"]
    title = Report().title
    assert sources == [
        {"title": title, "generated": "2024-05-01T00:00:00+00:00", "hosts": 1},
        {"title": title, "generated": "2024-05-02T00:00:00+00:00", "hosts": 1},
    ]


def test_the_clock_chart_is_one_row_per_clock_high_with_its_axis_below_the_last_row() -> None:
    page = render_html(contoso_like().document())
    svg = re.search(r'<svg id="clock-chart"[^>]* height="([^"]+)"', page)
    assert svg is not None
    chart = page[svg.start() : page.index("</svg>", svg.start())]
    # Two clocks (dc01, ex01), 22 px apart from y 30: 30 px above the first row, 30 below the last for the axis.
    assert re.findall(r'<circle cx="[^"]+" cy="([^"]+)"', chart) == ["30", "52"]
    assert svg.group(1) == "104"
    assert '<line x1="170" y1="80" x2="670" y2="80" stroke="#888"/>' in chart
