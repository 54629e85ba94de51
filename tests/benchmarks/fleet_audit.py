"""Benchmark: the audit and the remediation across a lab fleet of N Exchange servers. Prints numbers; asserts none.

    .venv/bin/python -m tests.benchmarks.fleet_audit --hosts 50 --forks 25

Reports wall time per phase, round trips and bytes per host (from the lab's counters), and the peak memory of
ansible-playbook (the controller). Run it on an otherwise idle machine; the numbers are for comparison over time.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from tests.lab.control import REPO_ROOT, start_lab

KEY = r"HKLM\SYSTEM\CurrentControlSet\Control\Lsa\Kerberos\Parameters"


def write_fleet(path: Path, hosts: int) -> Path:
    document = {
        "hosts": [
            {
                "name": f"ex{index:03d}",
                "fqdn": f"ex{index:03d}.contoso.example",
                "roles": ["exchange"],
                "registry": {KEY: {}},
            }
            for index in range(1, hosts + 1)
        ]
    }
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--forks", type=int, default=10)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="mailflow-bench-") as directory:
        work = Path(directory)
        lab = start_lab(str(write_fleet(work / "fleet.yml", args.hosts)), work / "lab", ttl_seconds=1800)
        try:
            inventory = lab.write_inventory(work / "inventory.yml")
            env = {
                **os.environ,
                "ANSIBLE_COLLECTIONS_PATH": str(REPO_ROOT / ".collections"),
                "ANSIBLE_LOCAL_TEMP": str(work / "ansible-local"),
            }
            ansible_playbook = str(Path(sys.executable).parent / "ansible-playbook")
            print(f"fleet: {args.hosts} Exchange servers, forks {args.forks}, winrm NTLM with message encryption")
            for phase, playbook, extra in (
                ("audit --check", "playbooks/audit.yml", ["--check"]),
                ("remediate", "playbooks/remediate_454_4_7_0.yml", []),
                ("audit --check", "playbooks/audit.yml", ["--check"]),
            ):
                lab.reset()
                started = time.perf_counter()
                subprocess.run(
                    [ansible_playbook, "-i", str(inventory), "-f", str(args.forks), playbook, *extra],
                    env=env,
                    cwd=REPO_ROOT,
                    check=True,
                    stdout=subprocess.DEVNULL,
                    timeout=1800,
                )
                elapsed = time.perf_counter() - started
                counters = lab.counters().values()
                trips = sum(c["round_trips"] for c in counters)
                requests = sum(c["requests"] for c in counters)
                bytes_in = sum(c["bytes_in"] for c in counters)
                bytes_out = sum(c["bytes_out"] for c in counters)
                print(
                    f"{phase:<14} {elapsed:6.2f} s wall, {elapsed / args.hosts * 1000:6.1f} ms/host, "
                    f"{trips / args.hosts:.1f} round trips/host, {requests / args.hosts:.1f} HTTP requests/host, "
                    f"{bytes_in / args.hosts / 1024:.1f} KiB in, {bytes_out / args.hosts / 1024:.1f} KiB out/host, "
                    f"{len(lab.journal())} writes"
                )
        finally:
            lab.stop()
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"peak RSS of the largest child process (ansible-playbook or the lab): {peak:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
