"""Benchmark: the audit and the remediation across a lab fleet of N Exchange servers. Prints numbers; asserts none.

    .venv/bin/python -m tests.benchmarks.fleet_audit --hosts 50 --forks 25   # a generated-50 lab fleet

Reports wall time per phase, round trips and bytes per host (from the lab's counters), and the peak memory of
ansible-playbook (the controller). Run it on an otherwise idle machine; the numbers are for comparison over time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.lab.control import REPO_ROOT, start_lab


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--forks", type=int, default=10)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="mailflow-bench-") as directory:
        work = Path(directory)
        lab = start_lab(f"generated-{args.hosts}", work / "lab", ttl_seconds=1800)
        try:
            exchange = [name for name, host in lab.status["hosts"].items() if "exchange" in host["roles"]]
            inventory = lab.write_inventory(work / "inventory.yml")
            env = {
                **os.environ,
                "ANSIBLE_COLLECTIONS_PATH": str(REPO_ROOT / ".collections"),
                "ANSIBLE_LOCAL_TEMP": str(work / "ansible-local"),
            }
            ansible_playbook = str(Path(sys.executable).parent / "ansible-playbook")
            print(
                f"fleet: {args.hosts} hosts ({len(exchange)} Exchange servers), forks {args.forks}, "
                "winrm NTLM with message encryption; per-host figures are per Exchange server"
            )
            # The second hop from the Exchange servers to AD and Exchange, as the playbooks take it.
            login = lab.status["credentials"]
            account = {
                "mailflow_domain_username": f"{login['domain']}\\{login['username']}",
                "mailflow_domain_password": lab.password,
                "fix_454_4_7_0_kerberos_logging_saved_dir": str(work / "kerberos_logging"),
            }
            credentials = ["-e", json.dumps(account)]
            for phase, playbook, extra in (
                ("audit --check", "playbooks/audit.yml", ["--check", *credentials]),
                ("remediate", "playbooks/remediate_454_4_7_0.yml", credentials),
                ("audit --check", "playbooks/audit.yml", ["--check", *credentials]),
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
                counters = [numbers for name, numbers in lab.counters().items() if name in exchange]
                per_host = len(exchange)
                trips = sum(c["round_trips"] for c in counters)
                requests = sum(c["requests"] for c in counters)
                bytes_in = sum(c["bytes_in"] for c in counters)
                bytes_out = sum(c["bytes_out"] for c in counters)
                print(
                    f"{phase:<14} {elapsed:6.2f} s wall, {elapsed / per_host * 1000:6.1f} ms/host, "
                    f"{trips / per_host:.1f} round trips/host, {requests / per_host:.1f} HTTP requests/host, "
                    f"{bytes_in / per_host / 1024:.1f} KiB in, {bytes_out / per_host / 1024:.1f} KiB out/host, "
                    f"{len(lab.journal())} writes"
                )
        finally:
            lab.stop()
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"peak RSS of the largest child process (ansible-playbook or the lab): {peak:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
