"""Command line of the lab: python -m tests.lab {start,serve,stop,show,journal,counters,fault} ...

python -m tests.lab start --fleet single --state-dir .cache/lab   # background, writes inventories
python -m tests.lab show ex01 --state-dir .cache/lab
python -m tests.lab journal --state-dir .cache/lab
python -m tests.lab stop --state-dir .cache/lab
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import typing as t
from pathlib import Path

from tests.lab.certs import to_pem
from tests.lab.control import CA_FILE, PKI_DIR, STATUS_FILE, LabClient, start_lab
from tests.lab.fleet import load_fleet
from tests.lab.server import Lab


def serve(args: argparse.Namespace) -> int:
    lab = Lab(load_fleet(args.fleet), ttl_seconds=args.ttl).start()
    state = Path(args.state_dir)
    state.mkdir(parents=True, exist_ok=True)
    # Before the status file: whoever sees the lab as started can already validate its HTTPS listeners.
    (state / CA_FILE).write_bytes(lab.authority.ca_pem)
    if lab.fleet.pki is not None:
        (state / PKI_DIR).mkdir(exist_ok=True)
        for name, authority in lab.fleet.pki.authorities.items():
            (state / PKI_DIR / f"{name}.pem").write_bytes(to_pem([authority.certificate]))
    document = {"pid": os.getpid(), "status": lab.status(), "password": lab.fleet.credentials.password}
    temporary = state / (STATUS_FILE + ".tmp")
    temporary.write_text(json.dumps(document, indent=2), encoding="utf-8")
    temporary.replace(state / STATUS_FILE)
    signal.signal(signal.SIGTERM, lambda *_: lab.stop())
    try:
        while not lab.stopped.wait(0.5):
            pass
    except KeyboardInterrupt:
        lab.stop()
    (state / STATUS_FILE).unlink(missing_ok=True)
    return 0


def main(argv: t.Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.lab", description="A loopback WinRM fleet for tests (a test double)."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("start", "serve"):
        command = commands.add_parser(name)
        command.add_argument("--fleet", default="single", help="a fleet file, or the name of one in tests/lab/fleets")
        command.add_argument("--state-dir", default=".cache/lab")
        command.add_argument("--ttl", type=float, default=3600.0, help="seconds until the lab stops by itself")
    for name in ("stop", "journal", "counters", "status"):
        commands.add_parser(name).add_argument("--state-dir", default=".cache/lab")
    show = commands.add_parser("show")
    show.add_argument("host")
    show.add_argument("--state-dir", default=".cache/lab")
    fault = commands.add_parser("fault", help="set faults: NAME=JSON ...")
    fault.add_argument("host")
    fault.add_argument("settings", nargs="+")
    fault.add_argument("--state-dir", default=".cache/lab")
    args = parser.parse_args(argv)

    if args.command == "serve":
        return serve(args)
    if args.command == "start":
        client = start_lab(args.fleet, args.state_dir, ttl_seconds=args.ttl)
        for (connection, scheme, auth), path in client.write_inventories(args.state_dir).items():
            print(f"inventory ({connection}, {scheme}, {auth}): {path}")
        print(f"CA certificate of the HTTPS listeners: {client.ca_file}")
        print(json.dumps(client.status, indent=2))
        return 0
    client = LabClient(args.state_dir)
    if args.command == "stop":
        client.stop()
    elif args.command == "status":
        print(json.dumps(client.status, indent=2))
    elif args.command == "journal":
        print(json.dumps(client.journal(), indent=2))
    elif args.command == "counters":
        print(json.dumps(client.counters(), indent=2))
    elif args.command == "show":
        print(json.dumps(client.host(args.host), indent=2))
    elif args.command == "fault":
        pairs = (item.split("=", 1) for item in args.settings)
        settings = {pair[0]: json.loads(pair[1]) for pair in pairs}
        client.set_faults(args.host, **settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
