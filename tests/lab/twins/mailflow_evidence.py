"""Twin of plugins/plugin_utils/host_scripts/mailflow_evidence.ps1 (reviewed against v1, with lib/directory.ps1
and lib/exchange.ps1).

Events come from HostState.events (EventLogs.query by log and provider, then IDs, levels and the window), their
data fields as the script's Get-MailflowEventData names them (tests/lab/windows.py keeps them so). Queues are the
Exchange state's, behind the Exchange session (the second hop). The send protocol log is the Exchange state's
send_protocol_log, the lines the lab's relay to EOP writes (tests/lab/smtp.py), one file per UTC day as the
Transport service rolls them.
"""

from __future__ import annotations

import datetime as dt
import re
import typing as t

from tests.lab import locale, onward
from tests.lab.fleet import HostException
from tests.lab.libraries import computer_identity
from tests.lab.twins.receive_connectors import SETUP
from tests.lab.windows import iso_time

if t.TYPE_CHECKING:
    from tests.lab.fleet import HostState
    from tests.lab.twins import Params, TwinContext
    from tests.lab.windows import Event

VERSION = 1
SHA256 = "cc78e550c13a59282c23522d12ec200c8e8f440304aecc55b16c05490e03551e"

REPLY_STATUS = re.compile(r"^\d{3} (\d\.\d{1,3}\.\d{1,3})\b")


def run(context: TwinContext, params: Params) -> dict[str, t.Any]:
    host = context.host
    identity = computer_identity(host, context.fleet)
    now = host.now()
    since = now - int(params["since_seconds"] or 0)
    if params["since_time"] is not None:
        since = dt.datetime.fromisoformat(str(params["since_time"]).replace("Z", "+00:00")).timestamp()
    samples = int(params["samples"])
    result: dict[str, t.Any] = {
        "host": {
            "name": identity["name"],
            "fqdn": identity["fqdn"],
            "is_dc": identity["is_dc"],
            "now": iso_time(now),
            "since": iso_time(since),
        },
        "exchange": None,
        "queues": [],
        "events": [_events(host, query, since, samples) for query in params["event_queries"]],
        "protocol_log": None,
    }
    exchange = host.exchange
    if exchange is None:
        return result
    result["exchange"] = dict(SETUP)
    statuses = [str(status) for status in params["protocol_log_status"]]
    result["protocol_log"] = _protocol_log(exchange.send_protocol_log, since, statuses, samples)
    try:
        onward.exchange_session(context, params)
    except HostException as exc:
        raise locale.localized(host, exc) from None
    result["queues"] = [
        {
            "identity": queue.identity,
            "delivery_type": queue.delivery_type,
            "next_hop_domain": queue.next_hop_domain,
            "status": queue.status,
            "message_count": queue.message_count,
            "last_error": queue.last_error,
        }
        for queue in exchange.queues
    ]
    return result


# What the script reads of each query. Ansible runs it under Set-StrictMode -Version Latest, where a property the
# JSON object lacks is a PropertyNotFoundException, not $null.
QUERY_PROPERTIES = ("key", "log", "provider", "ids", "levels", "field", "values")


def _read_strictly(query: dict[str, t.Any]) -> None:
    for name in QUERY_PROPERTIES:
        if name not in query:
            raise HostException(
                "System.Management.Automation.PropertyNotFoundException",
                f"The property '{name}' cannot be found on this object. Verify that the property exists.",
            )


def _events(host: HostState, query: dict[str, t.Any], since: float, samples: int) -> dict[str, t.Any]:
    _read_strictly(query)
    found: list[Event] = host.events.query(query["log"], provider=query["provider"])
    ids = {int(item) for item in query.get("ids") or []}
    levels = {int(item) for item in query.get("levels") or []}
    field = query.get("field")
    wanted = {str(value).upper() for value in query.get("values") or []}
    # Get-WinEvent returns the newest first.
    matching = [
        event
        for event in sorted(found, key=lambda event: (event.time, event.record_id), reverse=True)
        if event.time >= since
        and (not ids or event.event_id in ids)
        and (not levels or event.level in levels)
        and (not field or str(event.data.get(field, "")).upper() in wanted)
    ]
    by_id: dict[str, int] = {}
    for event in matching:
        by_id[str(event.event_id)] = by_id.get(str(event.event_id), 0) + 1
    return {
        "key": query["key"],
        "count": len(matching),
        "by_id": by_id,
        "samples": [
            {
                "time": iso_time(event.time),
                "id": event.event_id,
                "record_id": event.record_id,
                "provider": event.provider,
                "level": event.level,
                "category": event.category,
                "data": {str(key): str(value) for key, value in event.data.items()},
            }
            for event in matching[:samples]
        ],
    }


def _protocol_log(lines: list[t.Any], since: float, statuses: list[str], samples: int) -> dict[str, t.Any]:
    days: dict[str, float] = {}
    for line in lines:
        day = iso_time(line.time)[:10]
        days[day] = max(days.get(day, 0.0), line.time)
    matched = []
    for line in lines:
        reply = REPLY_STATUS.match(line.data)
        if reply is None or reply.group(1) not in statuses or line.time < since:
            continue
        matched.append(line)
    newest = sorted(matched, key=lambda line: line.time, reverse=True)[:samples]
    return {
        "files": sum(1 for last in days.values() if last >= since),
        "count": len(matched),
        "samples": [
            {
                "time": iso_time(line.time),
                "connector": line.connector,
                "session": line.session,
                "remote": line.remote,
                "data": line.data,
            }
            for line in newest
        ],
    }


QUERIES = [
    {
        "key": "event_1035",
        "log": "Application",
        "provider": "MSExchangeTransport",
        "ids": [1035],
        "levels": [],
        "field": None,
        "values": [],
    },
    {
        "key": "capi2_event_30",
        "log": "Microsoft-Windows-CAPI2/Operational",
        "provider": "Microsoft-Windows-CAPI2",
        "ids": [30],
        "levels": [],
        "field": "Result.value",
        "values": ["800B0109", "800B010A"],
    },
]
CONTOSO_CREDENTIALS = {"domain_username": "CONTOSO\\ansible", "domain_password": "Lab-Passw0rd!"}
EXAMPLES = [
    (
        "contoso",
        "ex01",
        {
            "since_seconds": 86400,
            "samples": 3,
            "event_queries": QUERIES,
            "protocol_log_status": ["5.7.64"],
            **CONTOSO_CREDENTIALS,
        },
    ),
    ("contoso", "dc02", {"since_seconds": 3600, "samples": 1, "event_queries": QUERIES, "protocol_log_status": []}),
    (
        "contoso",
        "ex02",
        {"since_time": "2020-01-01T00:00:00Z", "samples": 0, "event_queries": [], "protocol_log_status": ["5.7.64"]},
    ),
]
