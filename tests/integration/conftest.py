"""Integration fixtures: a lab on 127.0.0.1 and a runner for real ansible-playbook against it.

Set MAILFLOW_INTEGRATION_INVENTORY to an inventory of your own (groups exchange_servers, domain_controllers) to run
the same tests against real Windows hosts instead: the lab is not started, and the assertions that need its journal,
counters or fault injection are skipped. Every test leaves a host as it found it. Such a run records every host-script
run as a transcript (tests/transcripts/README.md), into MAILFLOW_TRANSCRIPT_DIR if set, else into
.cache/transcripts/<UTC timestamp>/, and says where at the end.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import typing as t
from pathlib import Path

import pytest
import yaml

from tests.lab.control import LabClient, start_lab
from tests.playbook import REPO_ROOT, TRANSCRIPT_DIR, PlaybookRun, run_playbook
from tests.unit.lab.conftest import fleet_document

REAL_INVENTORY = os.environ.get("MAILFLOW_INTEGRATION_INVENTORY")
requires_lab = pytest.mark.skipif(REAL_INVENTORY is not None, reason="needs the lab's journal, counters or faults")

# The checks the audit runs by default on an Exchange server and on a domain controller, as a user reads them in
# the audit module's documentation: what the audit and the drift report must show for each host.
EXCHANGE_CHECKS = [
    "w32time",
    "spn",
    "kerberos_ports",
    "kerberos_logging",
    "receive_connector_auth",
    "intermediate_ca",
    "smtp_tls_chain",
    "mailflow_evidence",
]
DC_CHECKS = ["w32time", "ad_replication", "kerberos_ports", "mailflow_evidence"]


def real_transcript_dir() -> Path | None:
    """Where a run against real hosts records its transcripts; None against the lab, whose runs prove nothing."""
    if REAL_INVENTORY is None:
        return None
    chosen = os.environ.get(TRANSCRIPT_DIR)
    if chosen:
        # Absolute: ansible-playbook runs in each test's own temporary directory.
        return Path(chosen).expanduser().resolve()
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    return REPO_ROOT / ".cache" / "transcripts" / stamp


REAL_TRANSCRIPT_DIR = real_transcript_dir()


def pytest_terminal_summary(terminalreporter: t.Any) -> None:
    if REAL_TRANSCRIPT_DIR is None:
        return
    count = len(list(REAL_TRANSCRIPT_DIR.glob("*.json"))) if REAL_TRANSCRIPT_DIR.is_dir() else 0
    terminalreporter.write_sep("-", "host-script transcripts")
    terminalreporter.write_line(
        f"{count} host-script transcripts of this run are in {REAL_TRANSCRIPT_DIR}; to contribute them, review them "
        "for anything sensitive first (tests/transcripts/README.md)"
    )


@contextlib.contextmanager
def running_lab(fleet: str, state_dir: Path) -> t.Iterator[LabClient]:
    client = start_lab(fleet, state_dir, ttl_seconds=900)
    try:
        yield client
    finally:
        client.stop()


class PlaybookRunner:
    """Runs a list of tasks as a play with ansible-playbook, the way a user would, and returns every result."""

    def __init__(self, lab: LabClient | None, tmp: Path, *, connection: str = "winrm", auth: str = "ntlm") -> None:
        self.tmp = tmp
        self.count = 0
        self._lab = lab
        if lab is None:
            self.inventory = Path(str(REAL_INVENTORY))
        else:
            inventory = tmp / f"inventory-{connection}-{auth}.yml"
            self.inventory = lab.write_inventory(inventory, connection=connection, auth=auth)

    @property
    def lab(self) -> LabClient:
        assert self._lab is not None, "this assertion needs the lab; mark the test requires_lab"
        return self._lab

    @property
    def on_lab(self) -> bool:
        return self._lab is not None

    def run(
        self,
        tasks: list[dict[str, t.Any]],
        *,
        hosts: str = "exchange_servers",
        extra_args: t.Sequence[str] = (),
        transcript_dir: Path | None = None,
    ) -> PlaybookRun:
        """Run ``tasks``; against real hosts their host-script runs are recorded, against the lab only into
        ``transcript_dir`` when a test asks for it."""
        self.count += 1
        playbook = self.tmp / f"play{self.count}.yml"
        play = [{"name": "integration", "hosts": hosts, "gather_facts": False, "tasks": tasks}]
        playbook.write_text(yaml.safe_dump(play, sort_keys=False), encoding="utf-8")
        transcript_dir = transcript_dir or (None if self.on_lab else REAL_TRANSCRIPT_DIR)
        return run_playbook(playbook, self.inventory, self.tmp, extra_args=extra_args, transcript_dir=transcript_dir)


# The action group: one module_defaults entry for it gives every module of the collection its options.
GROUP = "group/mailflow.remediation.mailflow"


def domain_credentials(lab: LabClient) -> dict[str, str]:
    """The lab's domain account as the modules' domain_* options: what gives a member server the second hop."""
    account = lab.status["credentials"]
    return {"domain_username": f"{account['domain']}\\{account['username']}", "domain_password": lab.password}


def with_domain_credentials(lab: LabClient, *tasks: dict[str, t.Any]) -> list[dict[str, t.Any]]:
    """The tasks in a block that gives every module the lab's domain account, as one module_defaults entry would."""
    return [
        {"name": "with domain credentials", "module_defaults": {GROUP: domain_credentials(lab)}, "block": list(tasks)}
    ]


def changed_fleet(tmp: Path, base: str, change: t.Callable[[dict[str, t.Any]], None]) -> str:
    """A shipped fleet file after ``change`` to its document, written under ``tmp``; its path, for running_lab."""
    document = fleet_document(base)
    change(document)
    path = tmp / f"{base}-changed.yml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[LabClient | None]:
    if REAL_INVENTORY is not None:
        yield None
        return
    with running_lab("single", tmp_path_factory.mktemp("lab")) as client:
        yield client


@pytest.fixture
def playbook(lab: LabClient | None, tmp_path: Path) -> PlaybookRunner:
    if lab is not None:
        lab.reset()
    return PlaybookRunner(lab, tmp_path)
