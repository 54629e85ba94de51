"""Fleets of any size for benchmarks: ``python -m tests.lab.generate --hosts 500 [--broken 0.2] [-o fleet.yml]``.

:func:`generate_fleet` returns a fleet document (the YAML schema of tests/lab/topology.py) built like
``clean.yml``: one DC per ten hosts (at least one, two from four hosts on), sites of up to two DCs and their
Exchange servers, a ring of queues between Exchange servers, and a queue to EOP on every tenth. ``broken`` is the
share of Exchange servers that get one cause, chosen reproducibly from ``seed``; with 0 there is nothing to fix.
``load_fleet("generated-N")`` loads ``generate_fleet(N)`` without writing a file.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import typing as t

import yaml

# One cause per broken Exchange server, in the order the generator deals them out.
CAUSES = (
    "clock_skew",
    "spn_missing",
    "spn_duplicate",
    "kerberos_port_blocked",
    "receive_connector_auth_mechanism",
    "receive_connector_permission_groups",
    "missing_intermediate",
)


def generate_fleet(
    hosts: int, *, seed: int = 0, broken: float = 0.0, domain: str = "contoso.example"
) -> dict[str, t.Any]:
    if hosts < 2:
        raise ValueError("a generated fleet needs at least two hosts (a DC and an Exchange server)")
    if not 0.0 <= broken <= 1.0:
        raise ValueError("broken is a share between 0 and 1")
    rng = random.Random(seed)
    dc_count = max(2 if hosts >= 4 else 1, round(hosts / 10))
    exchange_count = hosts - dc_count
    site_count = math.ceil(dc_count / 2)
    sites = [f"Site{index + 1:02d}" for index in range(site_count)]
    width = max(2, len(str(hosts)))

    entries: list[dict[str, t.Any]] = []
    for index in range(dc_count):
        entry: dict[str, t.Any] = {
            "name": f"dc{index + 1:0{width}d}",
            "roles": ["dc"],
            "site": sites[index // 2],
            "ip": _ip(len(entries)),
        }
        if index == 0:
            entry["w32time"] = {"type": "NTP", "ntp_server": "time.lab.example,0x8", "announce_flags": 5}
        entries.append(entry)
    exchange_names = [f"ex{index + 1:0{width}d}" for index in range(exchange_count)]
    for index, name in enumerate(exchange_names):
        queues: list[dict[str, t.Any]] = []
        if exchange_count > 1:
            queues.append({"to": exchange_names[(index + 1) % exchange_count], "messages": rng.randint(1, 20)})
        if index % 10 == 0:
            queues.append({"to": "eop", "messages": rng.randint(1, 5)})
        entries.append(
            {
                "name": name,
                "roles": ["exchange"],
                "site": sites[index % site_count],
                "ip": _ip(len(entries)),
                "exchange": {"queues": queues},
                "certificates": {"smtp": {"subject": f"mail.{domain}", "dns": [f"mail.{domain}", f"{name}.{domain}"]}},
            }
        )
    document: dict[str, t.Any] = {
        "credentials": {"domain": domain.split(".")[0].upper(), "username": "ansible", "password": "Lab-Passw0rd!"},
        "forest": {
            "name": domain,
            "netbios": domain.split(".")[0].upper(),
            "pdc_emulator": entries[0]["name"],
            "sites": sites,
        },
        "settings": {"max_clock_skew": 300, "queue_retry_seconds": 2},
        "pki": [
            {"name": "public-root", "subject": "Lab Public Root CA"},
            {"name": "public-tls", "subject": "Lab Public TLS Issuing CA", "issuer": "public-root"},
        ],
        "eop": {"tenant_domain": domain, "tls_sender_certificate_name": f"mail.{domain}"},
        "network": {"blocked": []},
        "accounts": [],
        "hosts": entries,
    }
    victims = rng.sample(exchange_names, k=round(broken * exchange_count))
    for number, name in enumerate(victims):
        _break(document, name, CAUSES[number % len(CAUSES)])
    return document


def _ip(index: int) -> str:
    return f"10.{index // 250 // 250 % 250}.{index // 250 % 250 + 1}.{index % 250 + 1}"


def _break(document: dict[str, t.Any], name: str, cause: str) -> None:
    entry = next(item for item in document["hosts"] if item["name"] == name)
    fqdn = f"{name}.{document['forest']['name']}"
    if cause == "clock_skew":
        entry.update(clock_offset=600, w32time={"type": "NoSync"})
    elif cause == "spn_missing":
        entry["computer_account"] = {"spns_absent": [f"SMTPSVC/{fqdn}"]}
    elif cause == "spn_duplicate":
        # SMTPSVC/<FQDN>: the only one of the four SPNs whose duplicate breaks Exchange authentication.
        document["accounts"].append({"name": f"svc-{name}", "kind": "user", "spns": [f"SMTPSVC/{fqdn}"]})
    elif cause == "kerberos_port_blocked":
        # The DC it would use is the first of its site; block UDP 88 on the network path to every DC.
        document["network"]["blocked"].append({"from": name, "to": "*", "protocol": "UDP", "port": 88})
    elif cause == "receive_connector_auth_mechanism":
        # Externally secured instead of Exchange authentication: the one valid connector that still grants
        # ExchangeServers without offering ExchangeServer, so the server gets this cause alone.
        entry["exchange"]["receive_connectors"] = [
            {
                "name": f"Default {name.upper()}",
                "auth_mechanism": ["Tls", "ExternalAuthoritative"],
                "permission_groups": ["ExchangeServers"],
            }
        ]
    elif cause == "receive_connector_permission_groups":
        entry["exchange"]["receive_connectors"] = [
            {"name": f"Default {name.upper()}", "permission_groups": ["ExchangeUsers"]}
        ]
    elif cause == "missing_intermediate":
        entry["certificates"]["ca"] = []
        entry["capi2_logging"] = True


def main(argv: t.Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.lab.generate", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--hosts", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--broken", type=float, default=0.0, help="share of Exchange servers with one cause (0..1)")
    parser.add_argument("-o", "--output", help="write the fleet file here instead of to stdout")
    args = parser.parse_args(argv)
    document = generate_fleet(args.hosts, seed=args.seed, broken=args.broken)
    text = (
        f"# Generated by python -m tests.lab.generate --hosts {args.hosts} --seed {args.seed} --broken {args.broken}\n"
    )
    text += yaml.safe_dump(document, sort_keys=False)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
