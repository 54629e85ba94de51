# Copyright: mailflow.remediation contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet drift report: one cell per host and check, the fleet-level checks, and the report's three formats.

Private to the mailflow.remediation collection; not a public API and may change without notice.

A cell comes from a check of the audit module (its ``checks``, one cell each) or from a task of one of the
collection's modules (a remediation run). Its ``status`` is one of:

- ``ok``: nothing to change;
- ``drift``: check mode found something a real run would change;
- ``fixed``: a real run changed something during this run (and, when it ran again, found nothing more);
- ``failed``: the check could not run, or a change did not take (``msg`` says why);
- ``unreachable``: the host could not be reached, so the check did not run.

What a module finds wrong but cannot fix (``unfixable``) stays in the cell beside its status. The drift_report
callback builds a :class:`Report` during a run; :func:`merge` joins the JSON documents of several runs (the slices
of one audit) into one report, with the fleet-level checks computed again over all of them.
"""

from __future__ import annotations

import datetime
import json
import typing as t
from pathlib import Path
from xml.etree import ElementTree

from ansible_collections.mailflow.remediation.plugins.plugin_utils._checks import (
    CHECKS,
    DIAGNOSTICS,
    checks_for,
)
from ansible_collections.mailflow.remediation.plugins.plugin_utils._fleet_checks import (
    MAX_CLOCK_SPREAD,
    fleet_checks,
)

FORMAT = "mailflow.remediation drift report"
VERSION = 1
STATUSES = ("ok", "drift", "fixed", "failed", "unreachable")
AUDIT = "audit"
COLLECTION = "mailflow.remediation"
ARTICLES = {
    "KB 979174": "https://learn.microsoft.com/troubleshoot/exchange/mail-flow/454-4-7-0-temporary-authentication-failure",
    "KB 3212877": "https://learn.microsoft.com/troubleshoot/exchange/email-delivery/550-5-7-64-tenantattribution-error",
}
# What each check is about, for people reading the page.
TITLES = {
    "w32time": "Time synchronization",
    "ad_replication": "AD replication",
    "spn": "SMTP SPNs",
    "kerberos_ports": "Kerberos ports",
    "kerberos_logging": "Kerberos logging",
    "receive_connector_auth": "Receive connector auth",
    "intermediate_ca": "Intermediate CAs",
    "smtp_tls_chain": "SMTP TLS chain",
    "mailflow_evidence": "Mail-flow evidence",
}
# The result keys every module has; the rest of a result is the module's own evidence.
COMMON = ("changed", "failed", "unreachable", "msg", "article", "step", "found", "changes", "unfixable")
# Not evidence: what ansible-playbook shows already (diff, warnings) or only repeats the run's arguments.
DROPPED = frozenset({"diff", "warnings", "invocation", "_ansible_no_log", "deprecations"})


class ReportError(Exception):
    """A report document that cannot be read or merged, in a sentence that names it."""


def check_name(action: str | None) -> str | None:
    """The check a task's action is, by its module's name: ``mailflow.remediation.w32time`` -> ``w32time``; the
    audit is ``audit``; anything else None."""
    if not action:
        return None
    name = action.rsplit(".", 1)[-1]
    if action not in (f"{COLLECTION}.{name}", name) or (name not in CHECKS and name != AUDIT):
        return None
    return name


def expected_checks(args: t.Mapping[str, t.Any], groups: t.Iterable[str]) -> list[str]:
    """The checks an audit task runs on a host, as the audit module picks them (its ``checks`` or ``role``)."""
    given = args.get("checks")
    if isinstance(given, list) and all(isinstance(name, str) for name in given):
        return [name for name in given if name in CHECKS]
    role = args.get("role")
    return checks_for(role if isinstance(role, str) else "auto", set(groups))


def cell(host: str, check: str, result: t.Mapping[str, t.Any], *, check_mode: bool, task: str = "") -> dict[str, t.Any]:
    """One host x check from a module's result (or an audit's entry for that check)."""
    changed = bool(result.get("changed"))
    diagnostic = check in DIAGNOSTICS
    if result.get("unreachable"):
        status = "unreachable"
    elif result.get("failed"):
        status = "failed"
    elif changed and not diagnostic:
        status = "drift" if check_mode else "fixed"
    else:
        status = "ok"
    evidence = {key: value for key, value in result.items() if key not in COMMON and key not in DROPPED}
    if diagnostic:
        evidence.setdefault("diagnostic", True)
        if check_mode:
            evidence.setdefault("would_change", changed)
    return {
        "host": host,
        "check": check,
        "status": status,
        "check_mode": check_mode,
        "article": str(result.get("article") or ""),
        "step": str(result.get("step") or ""),
        "changes": [str(item) for item in result.get("changes") or []],
        "unfixable": [str(item) for item in result.get("unfixable") or []],
        "found": str(result.get("found") or ""),
        "msg": str(result.get("msg") or ""),
        "evidence": evidence,
        "tasks": [task] if task else [],
    }


def unreachable_cell(host: str, check: str, msg: str, *, task: str = "") -> dict[str, t.Any]:
    return cell(host, check, {"unreachable": True, "msg": msg}, check_mode=True, task=task)


def combined(earlier: dict[str, t.Any], later: dict[str, t.Any]) -> dict[str, t.Any]:
    """One cell for a host x check that several tasks of a run reported: the later result is what the host has now;
    something fixed earlier in the run stays ``fixed`` while the later result finds nothing to change."""
    status = later["status"]
    if earlier["status"] == "fixed" and status == "ok":
        status = "fixed"
    changes = later["changes"]
    if status == "fixed" and earlier["status"] == "fixed":
        changes = earlier["changes"] + [item for item in later["changes"] if item not in earlier["changes"]]
    return {
        **later,
        "status": status,
        "changes": changes,
        "tasks": earlier["tasks"] + [task for task in later["tasks"] if task not in earlier["tasks"]],
    }


def check_order(checks: t.Iterable[str]) -> list[str]:
    """The checks in the articles' order; any the collection does not know (a newer report's) after them."""
    present = set(checks)
    return [name for name in CHECKS if name in present] + sorted(present - set(CHECKS))


class Report:
    """The cells of a run (or of several merged), by host and check."""

    def __init__(self, *, title: str = "Mail-flow drift report", max_clock_spread: float = MAX_CLOCK_SPREAD) -> None:
        self.title = title
        self.max_clock_spread = max_clock_spread
        self.cells: dict[tuple[str, str], dict[str, t.Any]] = {}
        self.playbooks: list[str] = []
        self.sources: list[dict[str, t.Any]] = []

    def add(self, new: dict[str, t.Any]) -> None:
        key = (new["host"], new["check"])
        self.cells[key] = combined(self.cells[key], new) if key in self.cells else new

    def add_result(
        self,
        host: str,
        action: str | None,
        result: t.Mapping[str, t.Any],
        *,
        check_mode: bool,
        task: str = "",
        args: t.Mapping[str, t.Any] | None = None,
        groups: t.Iterable[str] = (),
    ) -> bool:
        """Take a task result; False when it is not a task of the collection's checks."""
        name = check_name(action)
        if name is None:
            return False
        if name != AUDIT:
            self.add(cell(host, name, result, check_mode=check_mode, task=task))
            return True
        checks = result.get("checks")
        if not isinstance(checks, t.Mapping):
            checks = {}
        for check, entry in checks.items():
            if isinstance(entry, t.Mapping):
                # The audit never writes: each entry is its module's check-mode verdict.
                self.add(cell(host, check, entry, check_mode=True, task=task))
        if result.get("unreachable") or (result.get("failed") and not checks):
            # The audit could not read the host at all: every check it would have run says so.
            msg = str(result.get("msg") or ("unreachable" if result.get("unreachable") else "failed"))
            for check in expected_checks(args or {}, groups):
                # Only the checks this audit read keep their verdict; an earlier task's cell must not pass for it.
                if check in checks:
                    continue
                if result.get("unreachable"):
                    self.add(unreachable_cell(host, check, msg, task=task))
                else:
                    self.add(cell(host, check, {"failed": True, "msg": msg}, check_mode=True, task=task))
        return True

    def add_unreachable(
        self,
        host: str,
        action: str | None,
        msg: str,
        *,
        task: str = "",
        args: t.Mapping[str, t.Any] | None = None,
        groups: t.Iterable[str] = (),
    ) -> bool:
        name = check_name(action)
        if name is None:
            return False
        checks = expected_checks(args or {}, groups) if name == AUDIT else [name]
        for check in checks:
            self.add(unreachable_cell(host, check, msg, task=task))
        return True

    # --- the document -------------------------------------------------------------------------------------------
    def document(self, *, generated: str | None = None) -> dict[str, t.Any]:
        hosts = sorted({host for host, _check in self.cells}, key=str.lower)
        checks = check_order({check for _host, check in self.cells})
        ordered = [self.cells[(host, check)] for host in hosts for check in checks if (host, check) in self.cells]
        summary = {status: sum(1 for item in ordered if item["status"] == status) for status in STATUSES}
        summary["unfixable"] = sum(len(item["unfixable"]) for item in ordered)
        unreachable = sorted({item["host"] for item in ordered if item["status"] == "unreachable"}, key=str.lower)
        document = {
            "format": FORMAT,
            "version": VERSION,
            "title": self.title,
            "generated": generated or datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "playbooks": list(self.playbooks),
            "sources": list(self.sources),
            "max_clock_spread": self.max_clock_spread,
            "hosts": hosts,
            "checks": checks,
            "unreachable_hosts": unreachable,
            "summary": summary,
            "fleet": fleet_checks(ordered, max_clock_spread=self.max_clock_spread),
            "cells": ordered,
        }
        # What the CI gate fails on, so that a pipeline can gate on a report (a merged one, above all).
        document["gate"] = gate_findings(document)
        return document


def load(path: str | Path) -> dict[str, t.Any]:
    """A report's JSON document, checked to be one."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReportError(f"cannot read the drift report {path}: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ReportError(f"{path} is not a mailflow.remediation drift report (JSON)")
    if document.get("version") != VERSION:
        raise ReportError(f"{path} is a drift report of version {document.get('version')}, this reads {VERSION}")
    return document


def merge(documents: t.Sequence[t.Mapping[str, t.Any]], report: Report | None = None) -> Report:
    """The cells of several reports (the slices of one audit) as one report, in the order given; ``report`` (the
    current run's, when there is one) comes last."""
    merged = Report(
        title=str(documents[0].get("title")) if documents and report is None else (report or Report()).title,
        max_clock_spread=report.max_clock_spread
        if report
        else float(documents[0].get("max_clock_spread", MAX_CLOCK_SPREAD)),
    )
    for document in documents:
        merged.playbooks += [item for item in document.get("playbooks", []) if item not in merged.playbooks]
        merged.sources.append(
            {"title": document.get("title"), "generated": document.get("generated"), "hosts": len(document["hosts"])}
        )
        for item in document.get("cells", []):
            merged.add(dict(item))
    if report is not None:
        merged.playbooks += [item for item in report.playbooks if item not in merged.playbooks]
        for item in report.cells.values():
            merged.add(item)
    return merged


# --- the formats --------------------------------------------------------------------------------------------------


def render_json(document: t.Mapping[str, t.Any]) -> str:
    return json.dumps(document, indent=1, sort_keys=False, default=str) + "\n"


def _failure(item: t.Mapping[str, t.Any]) -> tuple[str, str, str] | None:
    """What a JUnit test case reports for a cell: (element, type, message), or None when it passes."""
    if item["status"] == "unreachable":
        return "error", "unreachable", f"{item['host']} was unreachable: {item['msg']}"
    if item["status"] == "failed":
        return "error", "failed", f"{item['check']} could not run on {item['host']}: {item['msg']}"
    if item["status"] == "drift":
        return "failure", "drift", "drift: " + "; ".join(item["changes"])
    if item["unfixable"]:
        return "failure", "unfixable", "cannot be fixed by a module: " + "; ".join(item["unfixable"])
    return None


def render_junit(document: t.Mapping[str, t.Any]) -> str:
    """JUnit XML: a test suite per host, a test case per check; drift and what no module can fix are failures,
    a check that could not run and an unreachable host are errors. The fleet-level checks are the suite ``fleet``."""
    suites = ElementTree.Element("testsuites", name=str(document["title"]))
    totals = {"tests": 0, "failures": 0, "errors": 0}
    by_host: dict[str, list[t.Mapping[str, t.Any]]] = {}
    for item in document["cells"]:
        by_host.setdefault(item["host"], []).append(item)
    for host in document["hosts"]:
        suite = ElementTree.SubElement(suites, "testsuite", name=host)
        counts = {"tests": 0, "failures": 0, "errors": 0}
        for item in by_host.get(host, []):
            case = ElementTree.SubElement(suite, "testcase", classname=host, name=item["check"])
            counts["tests"] += 1
            outcome = _failure(item)
            if outcome is not None:
                element, kind, message = outcome
                node = ElementTree.SubElement(case, element, type=kind, message=message[:1000])
                node.text = "\n".join([message, *item["unfixable"], item["found"]]).strip()
                counts["failures" if element == "failure" else "errors"] += 1
            elif item["found"]:
                output = ElementTree.SubElement(case, "system-out")
                output.text = "\n".join([f"status: {item['status']}", *item["changes"], item["found"]])
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
    fleet = ElementTree.SubElement(suites, "testsuite", name="fleet")
    counts = {"tests": 0, "failures": 0, "errors": 0}
    for name, check in document["fleet"].items():
        case = ElementTree.SubElement(fleet, "testcase", classname="fleet", name=name)
        counts["tests"] += 1
        if check["status"] == "drift":
            node = ElementTree.SubElement(case, "failure", type="drift", message=str(check["summary"])[:1000])
            node.text = "\n".join(check["findings"])
            counts["failures"] += 1
        else:
            output = ElementTree.SubElement(case, "system-out")
            output.text = f"{check['status']}: {check['summary']}"
    for key, value in counts.items():
        fleet.set(key, str(value))
        totals[key] += value
    for key, value in totals.items():
        suites.set(key, str(value))
    ElementTree.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(suites, encoding="unicode") + "\n"


def clock_chart(fleet: t.Mapping[str, t.Any], *, width: int = 760) -> dict[str, t.Any] | None:
    """The geometry of the clock-offset chart: one row per clock, its offset from the reference clock as a dot on a
    common axis, and the band of the article's limit around the middle of the spread."""
    spread = fleet["clock_spread"]
    clocks: dict[str, float] = spread.get("clocks") or {}
    if not clocks:
        return None
    limit = float(spread["limit"])
    low, high = min(clocks.values()), max(clocks.values())
    middle = (low + high) / 2
    half = max(limit / 2, (high - low) / 2) * 1.15 + 1
    left, right, row = 170, width - 90, 22
    scale = (right - left) / (2 * half)

    def x(seconds: float) -> float:
        return round(left + (seconds - (middle - half)) * scale, 1)

    rows = [
        {"name": name, "seconds": seconds, "x": x(seconds), "y": 30 + index * row}
        for index, (name, seconds) in enumerate(sorted(clocks.items(), key=lambda item: (item[1], item[0].lower())))
    ]
    ticks = []
    step = next(size for size in (1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 36000) if half * 2 / size <= 8)
    first = int((middle - half) // step + 1) * step
    value = first
    while value <= middle + half:
        ticks.append({"x": x(value), "label": f"{value:+g} s" if value else "0 s"})
        value += step
    height = 30 + len(rows) * row + 30
    return {
        "width": width,
        "height": height,
        "left": left,
        "right": right,
        "rows": rows,
        "ticks": ticks,
        "band": {"x1": x(middle - limit / 2), "x2": x(middle + limit / 2)},
        "axis_y": height - 24,
        "too_far": spread["status"] == "drift",
        "spread": spread,
    }


def article_link(article: str) -> str | None:
    """The Microsoft article a cell's ``article`` names (the first one, for ``KB 979174, KB 3212877``)."""
    for name, url in ARTICLES.items():
        if name in article:
            return url
    return None


def render_html(document: t.Mapping[str, t.Any]) -> str:
    """The page for people, self-contained: no script, no external asset."""
    # Jinja2 is ansible-core's own dependency; imported here so that a JSON-only report never needs it.
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    by_key = {(item["host"], item["check"]): item for item in document["cells"]}
    template = environment.get_template("drift_report.html.j2")
    return template.render(
        report=document,
        cells=by_key,
        statuses=STATUSES,
        titles=TITLES,
        chart=clock_chart(document["fleet"]),
        article_link=article_link,
        anchor=lambda host, check: f"cell-{host}-{check}".replace(".", "-"),
        evidence_json=lambda value: json.dumps(value, indent=1, sort_keys=True, default=str),
    )


RENDERERS: dict[str, tuple[str, t.Callable[[t.Mapping[str, t.Any]], str]]] = {
    "json": (".json", render_json),
    "junit": (".xml", render_junit),
    "html": (".html", render_html),
}


def write(
    document: t.Mapping[str, t.Any], directory: str | Path, *, basename: str, formats: t.Iterable[str]
) -> list[Path]:
    """Write the report in each format as ``directory/basename.EXT``; returns the paths written."""
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name in formats:
        suffix, render = RENDERERS[name]
        path = target / f"{basename}{suffix}"
        # Written next to the target, then renamed: a CI job never reads a half-written report.
        partial = path.with_name(path.name + ".partial")
        partial.write_text(render(document), encoding="utf-8")
        partial.replace(path)
        written.append(path)
    return written


# --- the CI gate --------------------------------------------------------------------------------------------------


def gate_findings(document: t.Mapping[str, t.Any], *, unfixable: bool = True) -> list[str]:
    """What fails a CI gate, one sentence each: an unreachable host, a check that could not run, drift, (with
    ``unfixable``) what no module can fix, and each fleet-level finding. Empty: the gate passes."""
    found = []
    reported_unreachable: set[str] = set()
    for item in document["cells"]:
        where = f"{item['host']} {item['check']}"
        if item["status"] == "unreachable":
            if item["host"] not in reported_unreachable:
                reported_unreachable.add(item["host"])
                found.append(f"{item['host']}: unreachable, its checks did not run: {item['msg']}")
            continue
        if item["status"] == "failed":
            found.append(f"{where}: could not run: {item['msg']}")
        elif item["status"] == "drift":
            found.append(f"{where}: drift: {'; '.join(item['changes'])}")
        if unfixable:
            found += [f"{where}: cannot be fixed by a module: {finding}" for finding in item["unfixable"]]
    for name, check in document["fleet"].items():
        found += [f"fleet {name}: {finding}" for finding in check["findings"]]
    return found
