"""The audit of a whole host through ansible-playbook: one round trip, and each check's verdict exactly what that
check's module says in check mode, on contoso (every cause planted) and on clean (nothing to fix)."""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest

from tests.integration.conftest import DC_CHECKS, EXCHANGE_CHECKS, PlaybookRunner, requires_lab, running_lab
from tests.lab.control import LabClient

pytestmark = [pytest.mark.integration, requires_lab]

DEFAULTS = {
    "group/mailflow.remediation.mailflow": {"domain_username": "CONTOSO\\ansible", "domain_password": "Lab-Passw0rd!"}
}
# The options a playbook would give the checks against each lab fleet: the fleet's intermediates, its root.
INTERMEDIATES = {"contoso": ["public-tls", "public-policy"], "clean": ["public-tls"]}


def options(fleet: str) -> dict[str, dict[str, t.Any]]:
    return {
        "intermediate_ca": {"src": [f"{{{{ lab_pki_dir }}}}/{name}.pem" for name in INTERMEDIATES[fleet]]},
        "smtp_tls_chain": {"ca_file": "{{ lab_pki_dir }}/public-root.pem"},
    }


def audit_and_modules(
    lab: LabClient, tmp_path: Path, fleet: str
) -> tuple[dict[str, t.Any], dict[tuple[str, str], t.Any]]:
    playbook = PlaybookRunner(lab, tmp_path)
    audited = playbook.run(
        [
            {
                "name": "audit",
                "module_defaults": DEFAULTS,
                "block": [{"name": "audit", "mailflow.remediation.audit": {"options": options(fleet)}}],
            }
        ],
        hosts="all",
    )
    assert audited.rc == 0, audited.stdout + audited.stderr
    counters = lab.counters()
    audits = {item["host"]: item["result"] for item in audited.results}
    singles: dict[tuple[str, str], t.Any] = {}
    for hosts, checks in (("exchange_servers", EXCHANGE_CHECKS), ("domain_controllers", DC_CHECKS)):
        tasks = [
            {"name": check, f"mailflow.remediation.{check}": options(fleet).get(check, {}), "check_mode": True}
            for check in checks
        ]
        run = playbook.run([{"name": "modules", "module_defaults": DEFAULTS, "block": tasks}], hosts=hosts)
        singles.update({(item["host"], item["task"]): item["result"] for item in run.results})
    return {"audits": audits, "counters": counters}, singles


def verdict(check: str, result: dict[str, t.Any]) -> dict[str, t.Any]:
    # What a check decided: drift, the changes a real run would make, and what no module can fix. (Its words of
    # what it found carry times, a replication partner's last success "86401 s ago", that move between two runs.)
    found = {key: result.get(key) for key in ("changed", "changes", "unfixable", "failed")}
    if check == "kerberos_logging":
        found["changed"] = False  # a diagnostic, never drift in the audit
    return found


@pytest.mark.parametrize("fleet", ["contoso", "clean"])
def test_the_audit_is_each_modules_check_mode_verdict_in_one_round_trip(tmp_path: Path, fleet: str) -> None:
    with running_lab(fleet, tmp_path / "lab") as lab:
        observed, singles = audit_and_modules(lab, tmp_path, fleet)
        journal = lab.journal()

    audits = observed["audits"]
    for host, result in audits.items():
        checks = EXCHANGE_CHECKS if host.startswith("ex") else DC_CHECKS
        assert list(result["checks"]) == checks, host
        for check in checks:
            assert verdict(check, result["checks"][check]) == verdict(check, singles[(host, check)]), (host, check)
        numbers = observed["counters"][host]
        # The whole host in one invocation, within what the issue set: 12 HTTP requests, 48 KiB up.
        assert (numbers["round_trips"], numbers["requests"] <= 12, numbers["bytes_in"] < 48 * 1024) == (1, True, True)
    assert journal == []
    if fleet == "clean":
        assert {host: (result["changed"], result["failed_checks"]) for host, result in audits.items()} == {
            host: (False, []) for host in audits
        }
    else:
        assert {host: result["drift"] for host, result in audits.items()} == {
            "dc01": [],
            "dc02": ["w32time", "kerberos_ports"],
            "dc03": ["ad_replication", "kerberos_ports"],
            "ex01": ["receive_connector_auth", "intermediate_ca"],
            "ex02": ["receive_connector_auth"],
            "ex03": ["w32time", "spn", "intermediate_ca"],
        }
