"""Swedish and German hosts through ansible-playbook and real winrm: the same results as English ones, and a
non-ASCII exception message that reaches the controller intact (the bootstrap escapes it to \\uXXXX, whatever the
console code page; the lab's runner does the same)."""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import PlaybookRunner, requires_lab, running_lab
from tests.lab.control import LabClient
from tests.lab.fleet import FLEETS_DIR

pytestmark = [pytest.mark.integration, requires_lab]

CREDENTIALS = {"domain_username": "CONTOSO\\ansible", "domain_password": "Lab-Passw0rd!"}
TASKS = [
    {"name": "ports", "mailflow.remediation.kerberos_ports": CREDENTIALS, "check_mode": True},
    {"name": "connectors", "mailflow.remediation.receive_connector_auth": CREDENTIALS, "check_mode": True},
    {"name": "evidence", "mailflow.remediation.mailflow_evidence": CREDENTIALS, "check_mode": True},
]
# What must not depend on the language: the decision, what cannot be fixed, what was probed and counted.
COMPARED = {
    "ports": ("changed", "changes", "unfixable", "probes", "found"),
    "connectors": ("changed", "changes", "unfixable", "connectors", "found"),
}


def localized_contoso(tmp: Path, locale: str, **firewall: t.Any) -> Path:
    document = yaml.safe_load((FLEETS_DIR / "contoso.yml").read_text(encoding="utf-8"))
    for entry in document["hosts"]:
        entry["locale"] = locale
        if entry["name"] == "dc02" and firewall:
            entry["firewall"] = {**entry["firewall"], **firewall}
    path = tmp / f"contoso-{locale}.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def results(lab: LabClient, tmp: Path) -> dict[tuple[str, str], dict[str, t.Any]]:
    run = PlaybookRunner(lab, tmp).run(TASKS, hosts="all")
    return {(item["task"], item["host"]): {**item["result"], "status": item["status"]} for item in run.results}


@pytest.fixture(scope="module")
def english(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], dict[str, t.Any]]:
    with running_lab("contoso", tmp_path_factory.mktemp("en")) as lab:
        return results(lab, tmp_path_factory.mktemp("en-run"))


@pytest.mark.parametrize("locale", ["sv-SE", "de-DE"])
def test_every_module_gives_the_same_results_on_a_localized_fleet(
    english: dict[tuple[str, str], dict[str, t.Any]], tmp_path: Path, locale: str
) -> None:
    with running_lab(str(localized_contoso(tmp_path, locale)), tmp_path / "lab") as lab:
        localized = results(lab, tmp_path)
        assert lab.journal() == []
    assert set(localized) == set(english)
    for (task, host), result in english.items():
        other = localized[(task, host)]
        assert other["status"] == result["status"], (task, host)
        if task == "evidence" and result["status"] == "ok":
            assert other["evidence"]["counts"].keys() == result["evidence"]["counts"].keys()
            # The queues are the same; their LastError is in the host's language, the codes are what count.
            assert other["evidence"]["counts"]["queues_454"] == result["evidence"]["counts"]["queues_454"]
        for key in COMPARED.get(task, ()):
            if key in result:
                assert other[key] == result[key], (task, host, key)


def test_a_swedish_exception_message_reaches_the_controller_intact(tmp_path: Path) -> None:
    with running_lab(str(localized_contoso(tmp_path, "sv-SE", write_denied=True)), tmp_path / "lab") as lab:
        run = PlaybookRunner(lab, tmp_path).run(
            [{"name": "ports", "mailflow.remediation.kerberos_ports": {}}], hosts="dc02"
        )
        assert lab.journal() == []
    outcome = run.task("ports", "dc02")
    result = outcome["result"]
    assert outcome["status"] == "failed" and result["script"] == "kerberos_firewall"
    assert result["msg"] == (
        "host script kerberos_firewall failed on the host: Microsoft.Management.Infrastructure.CimException: "
        "Åtkomst nekad."
    )
