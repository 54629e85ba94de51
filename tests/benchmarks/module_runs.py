"""Benchmark: what one run of each module costs on the wire, against a contoso lab. Prints numbers; asserts none.

    .venv/bin/python -m tests.benchmarks.module_runs [--connection winrm|psrp]

For each module, an audit (check mode) on one host: round trips, HTTP requests and bytes up and down, from the lab's
counters (winrm with NTLM and message encryption by default). Every number includes the connection's own requests
(ansible-core opens and closes the connection for every task).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import typing as t
from pathlib import Path

import yaml

from tests.lab.control import start_lab
from tests.playbook import run_playbook

CREDENTIALS = {"domain_username": "CONTOSO\\ansible", "domain_password": "Lab-Passw0rd!"}
# Module -> (host, arguments) for an audit of that module on a host where it has something to look at.
RUNS: dict[str, tuple[str, dict[str, t.Any]]] = {
    "w32time": ("ex03", {}),
    "ad_replication": ("dc03", {}),
    "spn": ("ex01", {}),
    "kerberos_ports": ("ex01", {}),
    "kerberos_logging": ("ex01", {}),
    "receive_connector_auth": ("ex01", {}),
    "mailflow_evidence": ("ex01", {}),
    "intermediate_ca": ("ex01", {"src": ["{{ lab_pki_dir }}/public-tls.pem"]}),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--connection", choices=["winrm", "psrp"], default="winrm")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mailflow-bench-") as directory:
        work = Path(directory)
        lab = start_lab("contoso", work / "lab", ttl_seconds=600)
        try:
            inventory = lab.write_inventory(work / "inventory.yml", connection=args.connection)
            print(f"one audit run per module, {args.connection} with NTLM and message encryption, contoso")
            for module, (host, module_args) in RUNS.items():
                lab.reset()
                task = {"name": module, f"mailflow.remediation.{module}": {**CREDENTIALS, **module_args}}
                play = [{"hosts": host, "gather_facts": False, "check_mode": True, "tasks": [task]}]
                playbook = work / f"{module}.yml"
                playbook.write_text(yaml.safe_dump(play), encoding="utf-8")
                run = run_playbook(playbook, inventory, work)
                numbers = lab.counters()[host]
                print(
                    f"{module:<24} {host:<5} rc={run.rc} round trips {numbers['round_trips']}, "
                    f"HTTP requests {numbers['requests']}, up {numbers['bytes_in'] / 1024:5.1f} KiB, "
                    f"down {numbers['bytes_out'] / 1024:5.1f} KiB"
                )
        finally:
            lab.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
