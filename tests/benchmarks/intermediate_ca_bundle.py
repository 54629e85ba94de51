"""Benchmark: one bundle of intermediates imported across 10 to 200 Exchange servers. Prints numbers; asserts none.

    .venv/bin/python -m tests.benchmarks.intermediate_ca_bundle --hosts 10 50 100 200 --forks 25

For each size, a generated lab fleet whose Exchange servers all lack the issuing intermediate; one ansible-playbook
run of intermediate_ca with a vendor-sized bundle (the lab's issuing CA among --bundle unrelated intermediates,
only_chain: false). Reported per size: wall time, the controller's CPU time (ansible-playbook and its forked
workers, from getrusage of the finished children) per host, how many hosts' tasks validated the bundle themselves
(1 when the validation is shared across the forks) and how long that one validation took, and round trips and
bytes per host from the lab's counters. Controller CPU per host stays flat when the bundle is validated once.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

import yaml

from tests.lab.control import start_lab
from tests.lab.generate import generate_fleet
from tests.pki import issue
from tests.playbook import run_playbook


def fleet_file(directory: Path, exchange_servers: int) -> Path:
    """A generated fleet with ``exchange_servers`` Exchange servers, none holding the issuing intermediate."""
    hosts = exchange_servers + max(2, round(exchange_servers / 9))
    document = generate_fleet(hosts)
    for entry in document["hosts"]:
        if "exchange" in entry["roles"]:
            entry["certificates"]["ca"] = []
    path = directory / f"fleet-{exchange_servers}.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def vendor_bundle(directory: Path, count: int) -> Path:
    """``count`` intermediates of unrelated CAs, as a vendor's bundle of every intermediate it ever had."""
    root = issue("Vendor Root CA", None)
    path = directory / "vendor-bundle.pem"
    path.write_bytes(b"".join(issue(f"Vendor Intermediate CA {index}", root).pem for index in range(count)))
    return path


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, nargs="+", default=[10, 50, 100, 200])
    parser.add_argument("--forks", type=int, default=25)
    parser.add_argument("--bundle", type=int, default=150, help="unrelated intermediates in the bundle")
    args = parser.parse_args()

    print(
        f"intermediate_ca, one bundle ({args.bundle} unrelated intermediates + the issuing CA, only_chain: false), "
        f"imported on every Exchange server; forks {args.forks}; winrm NTLM with message encryption"
    )
    print(
        f"{'hosts':>5} {'wall s':>7} {'ctrl CPU s':>10} {'ctrl CPU ms/host':>16} {'validated by':>12} "
        f"{'validation ms':>13} {'trips/host':>10} {'KiB in/host':>11} {'KiB out/host':>12} {'changed':>7}"
    )
    with tempfile.TemporaryDirectory(prefix="mailflow-bench-bundle-") as scratch:
        work = Path(scratch)
        bundle = vendor_bundle(work, args.bundle)
        for size in args.hosts:
            lab = start_lab(str(fleet_file(work, size)), work / f"lab-{size}", ttl_seconds=1800)
            try:
                exchange = [name for name, host in lab.status["hosts"].items() if "exchange" in host["roles"]]
                inventory = lab.write_inventory(work / f"inventory-{size}.yml")
                playbook = work / f"play-{size}.yml"
                task = {
                    "name": "import",
                    "mailflow.remediation.intermediate_ca": {
                        "src": [str(bundle), "{{ lab_pki_dir }}/public-tls.pem"],
                        "only_chain": False,
                        "domain_username": "{{ ansible_user }}",
                        "domain_password": "{{ ansible_password }}",
                    },
                }
                play = [{"name": "bench", "hosts": "exchange_servers", "gather_facts": False, "tasks": [task]}]
                playbook.write_text(yaml.safe_dump(play, sort_keys=False), encoding="utf-8")
                lab.reset()
                cpu = children_cpu()
                started = time.perf_counter()
                run = run_playbook(
                    playbook,
                    inventory,
                    work,
                    extra_args=["-f", str(args.forks)],
                    env={**os.environ, "ANSIBLE_NOCOLOR": "1"},
                    timeout=1800,
                )
                wall = time.perf_counter() - started
                cpu = children_cpu() - cpu
                if run.rc != 0:
                    print(run.stdout[-3000:], run.stderr[-3000:])
                    return 1
                results = [item["result"] for item in run.results if item["task"] == "import"]
                validated_here = [item for item in results if item["bundle"]["validated"] == "this task"]
                validation_ms = statistics.mean(item["bundle"]["validation_ms"] for item in results)
                counters = [numbers for name, numbers in lab.counters().items() if name in exchange]
                hosts = len(exchange)
                print(
                    f"{hosts:>5} {wall:>7.1f} {cpu:>10.1f} {cpu / hosts * 1000:>16.1f} {len(validated_here):>12} "
                    f"{validation_ms:>13.1f} {sum(c['round_trips'] for c in counters) / hosts:>10.1f} "
                    f"{sum(c['bytes_in'] for c in counters) / hosts / 1024:>11.1f} "
                    f"{sum(c['bytes_out'] for c in counters) / hosts / 1024:>12.1f} "
                    f"{sum(1 for item in results if item['changed']):>7}"
                )
            finally:
                lab.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
