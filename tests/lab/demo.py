"""The demo (make demo): audit the contoso lab fleet in check mode, remediate it, audit again, and tell the story.

Runs the collection's own playbooks with ansible-playbook over winrm (NTLM, message encryption) against a lab on
127.0.0.1 that has every cause of both articles planted (tests/lab/fleets/contoso.yml), and prints what an
administrator needs to follow it: the symptoms (queues held in 454 4.7.0, relays refused with 550 5.7.64), a drift
table per audit (host x check), what each remediation changed, and what no host can fix. The whole Ansible output
goes to a log file; the fleet report (JSON, JUnit XML, HTML) is written by the collection's drift_report callback.
The lab stops at the end (and after --ttl seconds in any case).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import textwrap
import time
import typing as t
from pathlib import Path

import yaml

from tests.lab.control import LabClient, start_lab
from tests.playbook import REPO_ROOT, PlaybookRun, run_playbook

DRIFT_REPORT = "mailflow.remediation.drift_report"
# The SMTP codes in a queue's LastError: "451 4.4.0 ... 454 4.7.0 ..." -> the innermost reply, 454 4.7.0.
SMTP_REPLY = re.compile(r"\b([45]\d\d) ([45]\.\d{1,3}\.\d{1,3})\b")
# The table's columns: each check by a short name, in the articles' order.
COLUMNS = {
    "w32time": "time",
    "ad_replication": "repl",
    "spn": "spn",
    "kerberos_ports": "krb-port",
    "kerberos_logging": "krb-log",
    "receive_connector_auth": "connector",
    "intermediate_ca": "int-ca",
    "smtp_tls_chain": "tls-chain",
    "mailflow_evidence": "evidence",
}
CELL = {"ok": "ok", "drift": "DRIFT", "fixed": "fixed", "failed": "FAILED", "unreachable": "UNREACH"}
WIDTH = 110
# What the lab's fleets hold, as an administrator would give it to the playbooks: the intermediates to import
# (KB 3212877 step 2), the roots to verify against, and time sources for the forest-root PDC emulator.
INTERMEDIATES = ("public-tls", "public-policy")
NTP_SERVERS = ["time.lab.example"]


class Terminal:
    """What the demo prints, counted: a newcomer reads this, not Ansible's output."""

    def __init__(self) -> None:
        self.lines = 0

    def say(self, text: str = "") -> None:
        for line in text.splitlines() or [""]:
            print(line, flush=True)
            self.lines += 1

    def wrapped(self, text: str, indent: str = "  ", more: str = "    ") -> None:
        self.say(textwrap.fill(text, WIDTH, initial_indent=indent, subsequent_indent=more))


def playbook_vars(lab: LabClient, state: Path) -> dict[str, t.Any]:
    pki = lab.pki_dir
    return {
        "mailflow_domain_username": "CONTOSO\\ansible",
        "mailflow_domain_password": lab.password,
        "mailflow_audit_options": {
            "w32time": {"ntp_servers": NTP_SERVERS},
            "intermediate_ca": {"src": [str(pki / f"{name}.pem") for name in INTERMEDIATES]},
            "smtp_tls_chain": {"ca_file": str(pki / "public-root.pem")},
        },
        "fix_454_4_7_0_ntp_servers": NTP_SERVERS,
        "fix_454_4_7_0_kerberos_logging_saved_dir": str(state / "kerberos_logging"),
        # KB 3212877 step 2: export the intermediates from a server that has them (ex02 holds the whole chain).
        "fix_550_5_7_64_reference_host": "ex02",
        "fix_550_5_7_64_ca_file": str(pki / "public-root.pem"),
        "fix_550_5_7_64_eop_ca_file": str(pki / "public-root.pem"),
    }


class Demo:
    def __init__(self, lab: LabClient, work: Path, terminal: Terminal) -> None:
        self.lab = lab
        self.work = work
        self.out = terminal
        self.log = work / "ansible.log"
        self.inventory = lab.write_inventory(work / "inventory.yml", connection="winrm", auth="ntlm")
        self.variables = work / "vars.yml"
        self.variables.write_text(yaml.safe_dump(playbook_vars(lab, work)), encoding="utf-8")
        self.reports: list[Path] = []

    def playbook(self, playbook: str, *, check: bool, report: str, merge: bool = False) -> dict[str, t.Any]:
        """Run a playbook of the collection; its full output goes to the log, its drift report to work/report."""
        extra = ["--diff", *(["--check"] if check else []), "-e", f"@{self.variables}"]
        self.out.say(f"$ ansible-playbook {playbook} {'--check ' if check else ''}--diff   (output: {self.log.name})")
        environment = {
            **os.environ,
            "MAILFLOW_REPORT_DIR": str(self.work / "report"),
            "MAILFLOW_REPORT_BASENAME": report,
            "MAILFLOW_REPORT_TITLE": "Mail-flow drift report: contoso lab, before and after remediation",
            "MAILFLOW_REPORT_MERGE": ",".join(str(path) for path in self.reports) if merge else "",
        }
        started = time.monotonic()
        run = run_playbook(
            REPO_ROOT / playbook,
            self.inventory,
            self.work,
            extra_args=extra,
            env=environment,
            cwd=REPO_ROOT,
            callbacks=[DRIFT_REPORT],
            timeout=600,
        )
        self._log(playbook, extra, run)
        if run.rc != 0:
            self.out.say(f"  ansible-playbook failed (rc {run.rc}); see {self.log}")
            raise SystemExit(run.rc)
        path = self.work / "report" / f"{report}.json"
        self.reports.append(path)
        self.out.say(f"  ok in {time.monotonic() - started:.0f} s")
        return t.cast(dict, json.loads(path.read_text(encoding="utf-8")))

    def _log(self, playbook: str, extra: list[str], run: PlaybookRun) -> None:
        with self.log.open("a", encoding="utf-8") as log:
            log.write(f"\n$ ansible-playbook -i {self.inventory} {playbook} {' '.join(extra)}\n")
            log.write(run.stdout)
            log.write(run.stderr)
            log.write(f"(rc {run.rc})\n")

    # --- what the terminal shows ------------------------------------------------------------------------------
    def drift_table(self, document: dict[str, t.Any]) -> None:
        cells = {(item["host"], item["check"]): item for item in document["cells"]}
        # The report's own order of its checks: a check the demo has no short name for still gets its column.
        checks = document["checks"]
        self.out.say("  " + "host".ljust(6) + "".join(COLUMNS.get(check, check[:9]).ljust(10) for check in checks))
        for host in document["hosts"]:
            row = []
            for check in checks:
                item = cells.get((host, check))
                text = "-" if item is None else CELL[item["status"]] + ("!" if item["unfixable"] else "")
                row.append(text.ljust(10))
            self.out.say("  " + host.ljust(6) + "".join(row))
        summary = document["summary"]
        self.out.say(
            f"  {summary['drift']} checks drift, {summary['failed']} failed, {summary['unreachable']} unreachable. "
            "DRIFT: a remediation would change it; fixed: it did, and"
        )
        self.out.say("  the audit now finds it right; !: also found something no module can fix from that host")
        fleet = [check for check in document["fleet"].values() if check["status"] != "ok"]
        if fleet:
            self.out.say("  Across the fleet (no single host sees these; details in the report):")
            for check in fleet:
                self.out.wrapped(f"- {check['title']}: {check['summary']}", "    ", "      ")
        else:
            self.out.say(
                f"  Across the fleet: clocks within {document['max_clock_spread']:g} s of each other, no SPN on two "
                "accounts, replication ok"
            )

    def unfixable(self, document: dict[str, t.Any]) -> list[str]:
        return [
            f"{item['host']} {item['check']}: {finding}" for item in document["cells"] for finding in item["unfixable"]
        ]

    def changes(self, document: dict[str, t.Any]) -> None:
        """One line per host and check that the run fixed: its first change, and how many more there were."""
        fixed = [item for item in document["cells"] if item["status"] == "fixed"]
        for item in fixed:
            first, more = item["changes"][0], len(item["changes"]) - 1
            line = f"  {item['host']:<5} {COLUMNS.get(item['check'], item['check']):<10} {first}"
            suffix = f" (+{more} more)" if more else ""
            if len(line) + len(suffix) > WIDTH:
                line = line[: WIDTH - len(suffix) - 3] + "..."
            self.out.say(line + suffix)
        failed = [item for item in document["cells"] if item["status"] in ("failed", "unreachable")]
        for item in failed:
            self.out.wrapped(f"{item['host']:<5} {item['check']} {item['status'].upper()}: {item['msg']}")
        if not fixed and not failed:
            self.out.say("  nothing changed")

    def symptoms(self) -> None:
        """What the articles' administrators see: queues held by an SMTP error, and EOP's answer to the relay."""
        for name, exchange in sorted(self.exchange_states().items()):
            held = 0
            for queue in exchange.get("queues", []):
                replies = SMTP_REPLY.findall(queue.get("last_error") or "")
                if queue["message_count"]:
                    held += 1
                    code, status = replies[-1] if replies else ("", "retrying")
                    self.out.say(
                        f"  {name:<5} queue to {queue['next_hop_domain']:<22} {queue['message_count']:>3} messages "
                        f"held: {code} {status}".rstrip()
                    )
            if not held:
                self.out.say(f"  {name:<5} queues: every message delivered, none held")
            reply = last_eop_reply(exchange.get("send_protocol_log", []))
            if reply:
                self.out.say(f"  {name:<5} relay to Exchange Online (EOP stand-in) answered: {reply}")

    def exchange_states(self) -> dict[str, dict[str, t.Any]]:
        """Each Exchange server's emulated Exchange state, read from the lab once."""
        return {
            name: self.lab.host(name).get("exchange", {})
            for name, host in self.lab.status["hosts"].items()
            if "exchange" in host["roles"]
        }

    @staticmethod
    def relay_marks(states: dict[str, dict[str, t.Any]]) -> dict[str, t.Any]:
        """Each Exchange server's last send protocol log line: a later one is a relay attempt made after now."""
        marks = {}
        for name, exchange in states.items():
            log = exchange.get("send_protocol_log", [])
            marks[name] = (log[-1]["session"], log[-1]["sequence"]) if log else None
        return marks

    def wait_for_queues(self, marks: dict[str, t.Any], timeout: float = 60.0) -> float:
        """Wait for the queues' next retry after the fixes: every server has relayed to EOP again since ``marks``
        were taken, and no queue holds mail any more (or the timeout passed: then the symptoms show what is left)."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            states = self.exchange_states()
            now = self.relay_marks(states)
            relayed = all(mark is None or mark != now[name] for name, mark in marks.items())
            held = [
                queue for exchange in states.values() for queue in exchange.get("queues", []) if queue["message_count"]
            ]
            if relayed and not held:
                break
            time.sleep(0.5)
        return time.monotonic() - started


def last_eop_reply(log: list[dict[str, t.Any]]) -> str | None:
    """The last answer the host got from EOP to a relay, from its send protocol log (machine-written fields)."""
    replies = [
        line["data"] for line in log if line["event"] == "<" and line["data"].startswith(("550 5.7.64", "250 2.6.0"))
    ]
    if not replies:
        return None
    if replies[-1].startswith("250"):
        return "250 2.6.0 Queued mail for delivery (accepted)"
    return replies[-1].split(" [", 1)[0]


def main(argv: t.Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.lab.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--fleet", default="contoso", help="a fleet file, or a name in tests/lab/fleets")
    parser.add_argument("--ttl", type=float, default=900.0, help="seconds until the lab stops by itself")
    parser.add_argument("--work", default=str(REPO_ROOT / "build" / "demo"), help="where the log and report go")
    args = parser.parse_args(argv)

    started = time.monotonic()
    out = Terminal()
    work = Path(args.work).resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)

    out.say(f"Starting the lab: fleet {args.fleet} on 127.0.0.1, a WinRM server that emulates Windows hosts")
    lab = start_lab(args.fleet, work / "lab", ttl_seconds=args.ttl)
    try:
        demo = Demo(lab, work, out)
        hosts = sorted(lab.status["hosts"])
        out.say(f"  hosts: {', '.join(hosts)}; every cause of KB 979174 and KB 3212877 is planted somewhere")
        out.say(f"  full Ansible output of every step: {demo.log}")
        out.say()
        out.say("1. The symptoms, as an administrator finds them in the queues and the send protocol log:")
        out.say("   454 4.7.0: Exchange servers fail Kerberos authentication to each other (KB 979174);")
        out.say("   550 5.7.64: Exchange Online refuses the relay, the TLS chain lacks an intermediate CA (KB 3212877)")
        time.sleep(2.5)  # one queue retry, so that every queue shows its error
        demo.symptoms()
        out.say()
        out.say("2. Audit in check mode: every check of both articles, one round trip per host, nothing written")
        before = demo.playbook("playbooks/audit.yml", check=True, report="1-audit-before")
        demo.drift_table(before)
        out.say(f"  and {len(demo.unfixable(before))} findings that no module can fix from the host it audits")
        out.say()
        out.say("3. Remediate KB 979174 (454 4.7.0): DCs first, then Exchange servers, in the article's order")
        fixed_454 = demo.playbook("playbooks/remediate_454_4_7_0.yml", check=False, report="2-remediate-454")
        demo.changes(fixed_454)
        out.say()
        out.say("4. Remediate KB 3212877 (550 5.7.64): import the missing intermediate CAs, probe the chain again")
        fixed_550 = demo.playbook("playbooks/remediate_550_5_7_64.yml", check=False, report="3-remediate-550")
        demo.changes(fixed_550)
        out.say()
        waited = demo.wait_for_queues(demo.relay_marks(demo.exchange_states()))
        out.say(f"5. The symptoms again, after the queues' next retry (every 2 s in the lab; waited {waited:.0f} s):")
        demo.symptoms()
        out.say()
        out.say("6. Audit again in check mode")
        after = demo.playbook("playbooks/audit.yml", check=True, report="mailflow-drift", merge=True)
        demo.drift_table(after)
        left = demo.unfixable(after)
        if left:
            out.say("  What no module can fix (for the network's owner, not for Ansible):")
            for finding in left:
                out.wrapped(f"- {finding}", "    ", "      ")
        journal = len(lab.journal())
    finally:
        lab.stop()

    out.say()
    out.say(f"Report (before, remediation and after, with the clock chart): {work / 'report' / 'mailflow-drift.html'}")
    out.say(f"  also {work / 'report' / 'mailflow-drift.json'} and .xml; lab journal: {journal} writes")
    out.say(f"Full Ansible output: {demo.log}")
    out.say("The lab has stopped.")
    elapsed = time.monotonic() - started
    out.say(f"Demo took {elapsed:.0f} s and printed {out.lines + 1} lines.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
