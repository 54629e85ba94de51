"""Twin of plugins/plugin_utils/host_scripts/ad_replication.ps1 (reviewed against v1)."""

from __future__ import annotations

import time
import typing as t

from tests.lab import domain
from tests.lab.windows import iso_time

if t.TYPE_CHECKING:
    from tests.lab.twins import Params, TwinContext

VERSION = 1
SHA256 = "1839698db8c2ffabd3962e32068fc41acce2aac9c28bfca0cd61b9289de8bc69"

# SyncFromAllServersErrorCategory: the partner answered, but the replication failed.
ERROR_REPLICATING = "ErrorReplicating"


def run(context: TwinContext, params: Params) -> dict[str, t.Any]:
    host, fleet = context.host, context.fleet
    identity = domain.identity(context)
    server = host.fqdn if host.is_dc else params["domain_server"]
    dc = domain.bind(context, params, str(server) if server else None)
    partitions = domain.partitions(fleet)

    errors: list[dict[str, t.Any]] = []
    if params["action"] == "sync":
        sites = {item.name: item.site for item in fleet.domain_controllers()}
        # The lab keeps one link per pair of DCs for every naming context: each context's sync exercises it again.
        for partition in partitions:
            for mode in ("pull", "push"):
                for outcome in fleet.directory.sync_all(dc.name, push=mode == "push", cross_site=True, site_of=sites):
                    if not outcome.ok:
                        errors.append(
                            {
                                "partition": partition,
                                "mode": mode,
                                "source": fleet.hosts[outcome.source].fqdn,
                                "target": fleet.hosts[outcome.destination].fqdn,
                                "category": ERROR_REPLICATING,
                                "code": outcome.result,
                            }
                        )

    # The DC stamps its replication times with its own clock; the script's "now" is the host's.
    neighbors = [
        {
            "partition": partition,
            "source": fleet.hosts[link.source].fqdn,
            "last_result": link.last_result,
            "consecutive_failures": link.consecutive_failures,
            "last_success": iso_time(link.last_success + dc.clock_offset),
            "last_attempt": iso_time(link.last_attempt + dc.clock_offset),
        }
        for partition in partitions
        for link in fleet.directory.links_into(dc.name)
    ]
    return {
        "identity": identity,
        "dc": dc.fqdn,
        "partitions": partitions,
        "neighbors": neighbors,
        "sync_errors": errors,
        "now": iso_time(time.time() + host.clock_offset),
    }


# Runs that exercise the script (tests/unit/lab/test_twin_discipline.py): (fleet, host, parameters).
_CREDENTIALS = {"domain_username": "CONTOSO\\ansible", "domain_password": "Lab-Passw0rd!"}
EXAMPLES = [
    ("contoso", "dc03", {"action": "read"}),
    ("contoso", "dc03", {"action": "sync"}),
    ("contoso", "dc01", {"action": "sync"}),
    ("contoso", "ex03", {"action": "read", **_CREDENTIALS}),
    ("contoso", "ex01", {"action": "sync", "domain_server": "dc03.contoso.example", **_CREDENTIALS}),
]
