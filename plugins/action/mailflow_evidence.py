# Copyright: mailflow.remediation contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of mailflow.remediation.mailflow_evidence (the symptoms of KB 979174 and KB 3212877)."""

from __future__ import annotations

import datetime
import re
import typing as t

from ansible_collections.mailflow.remediation.plugins.plugin_utils._action_base import (
    ArgumentError,
    ArgumentSpec,
    MailflowAction,
    Plan,
    with_domain_options,
)

SCRIPT = "mailflow_evidence"
DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$", re.IGNORECASE)
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_SAMPLES = 50
# SMTP replies inside a queue's LastError: the basic code and the enhanced status code, in any language around them.
SMTP_REPLY = re.compile(r"\b([245]\d\d)[ -]([245]\.\d{1,3}\.\d{1,3})\b")
STATUS_454 = ("454", "4.7.0")
STATUS_TENANT_ATTRIBUTION = "5.7.64"
# CAPI2 event 30's results that KB 3212877 names: a chain to an untrusted root, or one missing an issuer.
CHAIN_RESULTS = ("800B0109", "800B010A")


class EventQuery(t.NamedTuple):
    key: str
    title: str
    log: str
    provider: str
    ids: tuple[int, ...] = ()
    levels: tuple[int, ...] = ()
    field: str | None = None
    values: tuple[str, ...] = ()

    def wire(self) -> dict[str, t.Any]:
        return {
            "key": self.key,
            "log": self.log,
            "provider": self.provider,
            "ids": list(self.ids),
            "levels": list(self.levels),
            "field": self.field,
            "values": list(self.values),
        }


# What a person looks at, by log, provider, ID and event data field: never the rendered (localized) message.
EVENT_QUERIES = (
    EventQuery(
        "event_1035", "event 1035 (MSExchangeTransport, SmtpReceive)", "Application", "MSExchangeTransport", (1035,)
    ),
    EventQuery(
        "capi2_event_30",
        f"CAPI2 event 30 with {' or '.join(CHAIN_RESULTS)}",
        "Microsoft-Windows-CAPI2/Operational",
        "Microsoft-Windows-CAPI2",
        (30,),
        field="Result.value",
        values=CHAIN_RESULTS,
    ),
    EventQuery(
        "kdc_event_11",
        "KDC event 11 (duplicate SPN)",
        "System",
        "Microsoft-Windows-Kerberos-Key-Distribution-Center",
        (11,),
    ),
    # Kerberos client errors and warnings, whatever their ID (3 with LogLevel set, 4 KRB_AP_ERR_MODIFIED, ...).
    EventQuery(
        "kerberos_errors", "Kerberos errors (System)", "System", "Microsoft-Windows-Security-Kerberos", levels=(1, 2, 3)
    ),
)


class ActionModule(MailflowAction):
    ARTICLE = "KB 979174, KB 3212877"
    STEP = "symptoms"
    SUBJECT = "mail-flow evidence"
    REACHES = "Exchange"
    ARGUMENTS: t.ClassVar[ArgumentSpec] = with_domain_options(
        ArgumentSpec(
            argument_spec=dict(
                since=dict(type="str", default="24h"),
                samples=dict(type="int", default=5),
            )
        )
    )

    def check_arguments(self, params: dict[str, t.Any]) -> None:
        since_window(params["since"])
        if not 0 <= params["samples"] <= MAX_SAMPLES:
            raise ArgumentError("samples", f"must be from 0 to {MAX_SAMPLES}, not {params['samples']}")

    def read_state(self, params: dict[str, t.Any]) -> dict[str, t.Any]:
        seconds, moment = since_window(params["since"])
        return t.cast(
            dict,
            self.run_script(
                SCRIPT,
                {
                    "since_seconds": seconds,
                    "since_time": moment,
                    "samples": params["samples"],
                    "event_queries": [query.wire() for query in EVENT_QUERIES],
                    "protocol_log_status": [STATUS_TENANT_ATTRIBUTION],
                    "domain_username": params.get("domain_username"),
                    "domain_password": params.get("domain_password"),
                },
            ),
        )

    def plan(self, params: dict[str, t.Any], before: dict[str, t.Any]) -> Plan:
        # Evidence only: nothing to change, in check mode or not.
        return Plan(expected=before)

    def apply(self, params: dict[str, t.Any], plan: Plan) -> t.Any:
        return plan.expected

    def render(self, state: dict[str, t.Any]) -> str:
        evidence = summarize(state)
        counts = evidence["counts"]
        lines = [f"{state['host']['name']} since {state['host']['since']} (host clock {state['host']['now']}):"]
        if state["exchange"] is not None:
            lines.append(
                f"  queues with 454 4.7.0: {counts['queues_454']} ({counts['messages_454']} messages)"
                + "".join(f"; {queue['identity']} to {queue['next_hop_domain']}" for queue in evidence["queues_454"])
            )
            lines.append(
                f"  queues with 5.7.64: {counts['queues_5_7_64']}"
                + "".join(f"; {queue['identity']} to {queue['next_hop_domain']}" for queue in evidence["queues_5_7_64"])
            )
            lines.append(f"  send protocol log lines with 5.7.64: {counts['protocol_log_5_7_64']}")
        for query in EVENT_QUERIES:
            found = evidence["events"][query.key]
            per_id = ", ".join(f"event {key}: {value}" for key, value in sorted(found["by_id"].items()))
            lines.append(
                f"  {query.title}: {found['count']}"
                + (f" ({per_id})" if query.key == "kerberos_errors" and per_id else "")
            )
        return "".join(f"{line}\n" for line in lines)

    def report(self, params: dict[str, t.Any], before: dict[str, t.Any], after: dict[str, t.Any]) -> dict[str, t.Any]:
        return {"evidence": summarize(before)}


def since_window(value: str) -> tuple[int | None, str | None]:
    """``since`` as the script takes it: seconds back from the host's clock, or a moment (ISO 8601, UTC)."""
    duration = DURATION.match(value)
    if duration:
        seconds = int(duration.group(1)) * UNITS[duration.group(2).lower()]
        if seconds <= 0:
            raise ArgumentError("since", f"{value!r} is no window of time; give a positive duration")
        return seconds, None
    try:
        moment = datetime.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ArgumentError(
            "since", f"{value!r} is neither a duration (30m, 24h, 7d) nor an ISO 8601 time (2024-05-01T08:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return None, moment.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")


def replies(last_error: str) -> list[tuple[str, str]]:
    return SMTP_REPLY.findall(last_error or "")


def summarize(state: dict[str, t.Any]) -> dict[str, t.Any]:
    """What the state shows of each symptom: counts per kind and the newest samples."""
    queues = state["queues"]
    queues_454 = [queue for queue in queues if STATUS_454 in replies(queue["last_error"])]
    queues_5_7_64 = [
        queue
        for queue in queues
        if any(status == STATUS_TENANT_ATTRIBUTION for _code, status in replies(queue["last_error"]))
    ]
    events = {item["key"]: item for item in state["events"]}
    protocol_log = state["protocol_log"] or {"files": 0, "count": 0, "samples": []}

    def queue_view(queue: dict[str, t.Any]) -> dict[str, t.Any]:
        return {key: queue[key] for key in ("identity", "next_hop_domain", "status", "message_count", "last_error")}

    return {
        "host": state["host"],
        "counts": {
            "queues_454": len(queues_454),
            "messages_454": sum(queue["message_count"] for queue in queues_454),
            "queues_5_7_64": len(queues_5_7_64),
            "messages_5_7_64": sum(queue["message_count"] for queue in queues_5_7_64),
            "protocol_log_5_7_64": protocol_log["count"],
            **{query.key: events.get(query.key, {}).get("count", 0) for query in EVENT_QUERIES},
        },
        "queues_454": [queue_view(queue) for queue in queues_454],
        "queues_5_7_64": [queue_view(queue) for queue in queues_5_7_64],
        "protocol_log_5_7_64": protocol_log,
        "events": {
            query.key: events.get(query.key, {"key": query.key, "count": 0, "by_id": {}, "samples": []})
            for query in EVENT_QUERIES
        },
    }
