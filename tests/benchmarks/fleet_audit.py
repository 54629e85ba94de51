"""Benchmark: auditing a lab fleet three ways, at several sizes. Prints numbers; asserts none.

    .venv/bin/python -m tests.benchmarks.fleet_audit --hosts 50 200 500 --forks 25

For each generated fleet (N hosts, about one DC in ten), over winrm with NTLM and message encryption:

(a) per module: every check of every host as its own check-mode task (what audit.yml did before the audit module):
    ansible-core opens and closes the connection for each task;
(b) one call: playbooks/audit.yml, one task per host that reads every check in one round trip (mailflow.remediation
    .audit);
(c) the ansible.windows way, for comparison, of the one read both can do: Kerberos logging's registry value, read
    with ansible.windows.win_reg_stat (beside our kerberos_logging). The lab cannot run that module (it runs no
    PowerShell and refuses what is not the collection's bootstrap), but it receives and counts every byte and request
    a Windows host would: the exec wrapper, Ansible.Basic's C# source and the module. Its replies are the lab's
    refusal, so bytes down are not comparable and are not shown.

Per phase: wall time, and per host and for the fleet: round trips (host-script runs), HTTP requests, KiB up and
down, from the lab's counters. Run it on an otherwise idle machine; the numbers are for comparison over time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import typing as t
import zipfile
from pathlib import Path

import yaml

from tests.lab.control import REPO_ROOT, LabClient, start_lab

# The ansible package that bundles ansible.windows 3.3.0, which declares ansible-core 2.16 and newer, as we do.
ANSIBLE_PACKAGE = "ansible==12.3.0"
ANSIBLE_WINDOWS = REPO_ROOT / ".cache" / "ansible-windows"
EXCHANGE_CHECKS = [
    "w32time",
    "spn",
    "kerberos_ports",
    "kerberos_logging",
    "receive_connector_auth",
    "intermediate_ca",
    "mailflow_evidence",
]
DC_CHECKS = ["w32time", "ad_replication", "kerberos_ports", "mailflow_evidence"]
KERBEROS_KEY = r"HKLM:\SYSTEM\CurrentControlSet\Control\Lsa\Kerberos\Parameters"


def ensure_ansible_windows() -> Path:
    """ansible.windows from the ansible package on the package index, unpacked once into .cache."""
    collection = ANSIBLE_WINDOWS / "ansible_collections" / "ansible" / "windows"
    if (collection / "MANIFEST.json").exists():
        return ANSIBLE_WINDOWS
    with tempfile.TemporaryDirectory() as directory:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", ANSIBLE_PACKAGE, "-d", directory],
            check=True,
        )
        wheel = next(Path(directory).glob("ansible-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            prefix = "ansible_collections/ansible/windows/"
            for name in archive.namelist():
                if name.startswith(prefix) and not name.endswith("/"):
                    target = ANSIBLE_WINDOWS / name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(archive.read(name))
    return ANSIBLE_WINDOWS


def credentials(lab: LabClient) -> dict[str, str]:
    account = lab.status["credentials"]
    return {"domain_username": f"{account['domain']}\\{account['username']}", "domain_password": lab.password}


def plays(phase: str, lab: LabClient) -> list[dict[str, t.Any]]:
    defaults = {"group/mailflow.remediation.mailflow": credentials(lab)}
    if phase == "per module":
        return [
            {
                "hosts": group,
                "gather_facts": False,
                "check_mode": True,
                "module_defaults": defaults,
                "tasks": [{"name": check, f"mailflow.remediation.{check}": {}} for check in checks],
            }
            for group, checks in (("exchange_servers", EXCHANGE_CHECKS), ("domain_controllers", DC_CHECKS))
        ]
    if phase == "kerberos_logging":
        task = {"name": "read", "mailflow.remediation.kerberos_logging": {}}
    else:  # ansible.windows
        task = {"name": "read", "ansible.windows.win_reg_stat": {"path": KERBEROS_KEY, "name": "LogLevel"}}
    return [
        {"hosts": "exchange_servers", "gather_facts": False, "check_mode": True, "tasks": [task], "ignore_errors": True}
    ]


def run_phase(phase: str, lab: LabClient, inventory: Path, work: Path, forks: int) -> float:
    collections = [str(REPO_ROOT / ".collections")]
    extra: list[str] = []
    if phase == "one call":
        playbook = REPO_ROOT / "playbooks" / "audit.yml"
        account = credentials(lab)
        extra = [
            "-e",
            json.dumps(
                {
                    "mailflow_domain_username": account["domain_username"],
                    "mailflow_domain_password": account["domain_password"],
                }
            ),
        ]
    else:
        playbook = work / f"{phase.replace(' ', '-').replace('.', '-')}.yml"
        playbook.write_text(yaml.safe_dump(plays(phase, lab), sort_keys=False), encoding="utf-8")
        if phase == "ansible.windows":
            collections.append(str(ensure_ansible_windows()))
    env = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": os.pathsep.join(collections),
        "ANSIBLE_LOCAL_TEMP": str(work / "ansible-local"),
        "ANSIBLE_FORKS": str(forks),
    }
    lab.reset()
    started = time.perf_counter()
    subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory), str(playbook), *extra],
        env=env,
        cwd=REPO_ROOT,
        check=False,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=3600,
    )
    return time.perf_counter() - started


def print_phase(phase: str, elapsed: float, counters: dict[str, t.Any], hosts: list[str], *, down: bool) -> None:
    numbers = [counters[name] for name in hosts]
    count = len(hosts)
    trips = sum(item["round_trips"] for item in numbers)
    requests = sum(item["requests"] for item in numbers)
    up = sum(item["bytes_in"] for item in numbers) / 1024
    received = sum(item["bytes_out"] for item in numbers) / 1024
    down_text = f", down {received / count:6.1f} KiB/host ({received / 1024:7.1f} MiB)" if down else ""
    runs = f"{trips / count:4.1f}/host" if down else " n/a (the lab refuses it)"
    print(
        f"  {phase:<17} {elapsed:7.1f} s ({elapsed / count * 1000:6.1f} ms/host) | round trips {runs} "
        f"| HTTP requests {requests / count:5.1f}/host ({requests}) | up {up / count:6.1f} KiB/host "
        f"({up / 1024:7.1f} MiB){down_text}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, nargs="+", default=[50])
    parser.add_argument("--forks", type=int, default=25)
    parser.add_argument(
        "--phases",
        nargs="+",
        choices=["per-module", "one-call", "ansible.windows"],
        default=["per-module", "one-call", "ansible.windows"],
    )
    args = parser.parse_args()
    for size in args.hosts:
        with tempfile.TemporaryDirectory(prefix="mailflow-bench-") as directory:
            work = Path(directory)
            lab = start_lab(f"generated-{size}", work / "lab", ttl_seconds=7200)
            try:
                inventory = lab.write_inventory(work / "inventory.yml")
                everyone = sorted(lab.status["hosts"])
                exchange = [name for name in everyone if "exchange" in lab.status["hosts"][name]["roles"]]
                print(
                    f"generated-{size}: {len(everyone)} hosts ({len(exchange)} Exchange servers), forks {args.forks}, "
                    "winrm with NTLM and message encryption"
                )
                for phase in ("per module", "one call"):
                    if phase.replace(" ", "-") in args.phases:
                        elapsed = run_phase(phase, lab, inventory, work, args.forks)
                        print_phase(phase, elapsed, lab.counters(), everyone, down=True)
                if "ansible.windows" in args.phases:
                    print("  the one read both can do, Kerberos logging's LogLevel, on the Exchange servers:")
                    for phase in ("kerberos_logging", "ansible.windows"):
                        elapsed = run_phase(phase, lab, inventory, work, args.forks)
                        print_phase(phase, elapsed, lab.counters(), exchange, down=phase != "ansible.windows")
            finally:
                lab.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
