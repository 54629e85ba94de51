"""mailflow_evidence: the symptoms before and after a fix, matched on codes, IDs and data fields, never changed."""

from __future__ import annotations

import datetime
import time
import typing as t

import pytest
from ansible.errors import AnsibleActionFail

from ansible_collections.mailflow.remediation.plugins.action.kerberos_ports import ActionModule as KerberosPorts
from ansible_collections.mailflow.remediation.plugins.action.mailflow_evidence import ActionModule
from ansible_collections.mailflow.remediation.plugins.action.receive_connector_auth import (
    ActionModule as ReceiveConnectorAuth,
)
from tests.lab import model
from tests.lab.fleet import Fleet
from tests.lab.smtp import MailLab
from tests.lab.windows import W32TIME_PARAMETERS
from tests.unit.conftest import make_action
from tests.unit.plugins.action.fleet_hosts import CREDENTIALS, emulate, fleet_of, run

FQCN = "mailflow.remediation.mailflow_evidence"
EXCHANGE = ("ex01", "ex02", "ex03")


def evidence(fleet: Fleet, name: str, **args: t.Any) -> dict[str, t.Any]:
    result, host = run(ActionModule, fleet, name, {**CREDENTIALS, **args}, fqcn=FQCN, check_mode=False)
    assert result["changed"] is False and result["changes"] == [] and host.changes == []
    assert len(host.calls) == 1
    return t.cast(dict, result["evidence"])


def newest_record(found: dict[str, t.Any], key: str) -> int | None:
    samples = found["events"][key]["samples"]
    return samples[0]["record_id"] if samples else None


def test_contoso_shows_every_symptom_where_it_is_planted() -> None:
    fleet = fleet_of("contoso")
    with MailLab(fleet, retry_interval=0):
        pass  # the first retry cycle: queues fail, events are logged, relays to EOP are refused
    counts = {name: evidence(fleet, name)["counts"] for name in ("ex01", "ex02", "ex03", "dc01", "dc02", "dc03")}
    assert {name: counts[name]["queues_454"] for name in EXCHANGE} == {"ex01": 2, "ex02": 2, "ex03": 1}
    assert {name: counts[name]["messages_454"] for name in EXCHANGE} == {"ex01": 14, "ex02": 7, "ex03": 7}
    assert {name: counts[name]["queues_5_7_64"] for name in EXCHANGE} == {"ex01": 1, "ex02": 0, "ex03": 1}
    assert {name: counts[name]["protocol_log_5_7_64"] for name in EXCHANGE} == {"ex01": 1, "ex02": 0, "ex03": 1}
    assert {name: counts[name]["event_1035"] > 0 for name in EXCHANGE} == {"ex01": True, "ex02": True, "ex03": True}
    # CAPI2 logging is on only on ex01; the KDCs of ex01's senders log its duplicate SPN.
    assert {name: counts[name]["capi2_event_30"] > 0 for name in EXCHANGE} == {
        "ex01": True,
        "ex02": False,
        "ex03": False,
    }
    assert {name: counts[name]["kdc_event_11"] > 0 for name in ("dc01", "dc02", "dc03")} == {
        "dc01": False,
        "dc02": True,
        "dc03": True,
    }
    assert counts["ex01"]["kerberos_errors"] > 0  # event 4, KRB_AP_ERR_MODIFIED, from ex03's misplaced SPN


def test_samples_carry_the_event_data_fields_never_the_message() -> None:
    fleet = fleet_of("contoso")
    with MailLab(fleet, retry_interval=0):
        pass
    found = evidence(fleet, "ex01", samples=1)
    sample = found["events"]["event_1035"]["samples"][0]
    assert (sample["id"], sample["provider"], sample["data"]["2"], sample["data"]["3"]) == (
        1035,
        "MSExchangeTransport",
        "Default EX01",
        "ExchangeAuth",
    )
    capi2 = found["events"]["capi2_event_30"]["samples"][0]
    assert capi2["data"]["Result.value"] == "800B010A"
    line = found["protocol_log_5_7_64"]["samples"][0]
    assert line["data"].startswith("550 5.7.64 TenantAttribution") and line["connector"] == "Outbound to Office 365"


def test_what_was_found_counts_the_refused_relays_in_the_send_protocol_log() -> None:
    fleet = fleet_of("contoso")
    with MailLab(fleet, retry_interval=0):
        pass  # ex01's and ex03's relays to Exchange Online are refused with 550 5.7.64; ex02 relays none
    found = {}
    for name in ("ex01", "ex02"):
        result = run(ActionModule, fleet, name, CREDENTIALS, fqcn=FQCN)[0]
        assert result["diff"]["before"] == result["diff"]["after"] == f"{result['found']}\n"
        found[name] = result["found"].splitlines()
    # The first line names the time window, which moves with the clock; the Exchange lines follow it.
    assert found["ex01"][0].startswith("EX01 since ")
    assert found["ex01"][1:4] == [
        "  queues with 454 4.7.0: 2 (14 messages); EX01\\3 to ex02.contoso.example; EX01\\4 to ex03.contoso.example",
        "  queues with 5.7.64: 1; EX01\\5 to contoso-example.mail.protection.outlook.com",
        "  send protocol log lines with 5.7.64: 1",
    ]
    assert found["ex02"][3] == "  send protocol log lines with 5.7.64: 0"


def fix_what_other_modules_fix(fleet: Fleet) -> None:
    """KB 979174 steps 1-3 (issue 7's modules, not built yet) and KB 3212877 (issue 8's) through the lab model,
    as tests/unit/lab/test_fleets.py's fix_contoso does them."""
    hosts = fleet.hosts
    hosts["dc01"].registry[W32TIME_PARAMETERS.upper()].update(
        Type=("String", "NTP"), NtpServer=("String", "time.lab.example,0x8")
    )
    hosts["ex03"].registry[W32TIME_PARAMETERS.upper()]["Type"] = ("String", "NT5DS")
    assert (hosts["dc01"].w32time_config_update(), hosts["ex03"].w32time_config_update()) == (0, 0)
    hosts["dc02"].start_service("W32Time")
    assert all(result.ok for result in model.resync_all(fleet).values())
    assert all(result.ok for result in fleet.directory.replicate(force=True))
    fleet.directory.write("dc01", "svc-mailrelay", remove=["SMTPSVC/ex01.contoso.example"])
    fleet.directory.write("dc03", "svc-ex03-relay", remove=["SMTPSVC/ex03.contoso.example"])
    fleet.directory.write("dc03", "EX03$", add=["SMTPSVC/ex03.contoso.example", "SMTP/EX03"])
    assert fleet.pki is not None
    for name in ("ex01", "ex03"):
        hosts[name].import_intermediates(fleet.pki.intermediates())


def test_after_every_cause_is_fixed_the_queues_drain_and_no_new_event_1035_appears() -> None:
    fleet = fleet_of("contoso")
    with MailLab(fleet, retry_interval=0) as mail:
        mail.retry()
        before = {name: evidence(fleet, name) for name in EXCHANGE}
        assert all(before[name]["counts"]["queues_454"] > 0 for name in EXCHANGE)
        assert all(before[name]["counts"]["event_1035"] > 0 for name in EXCHANGE)

        # Steps 4 and 6 by this collection's modules, the rest through the model (see fix_what_other_modules_fix).
        for dc in ("dc02", "dc03"):
            assert run(KerberosPorts, fleet, dc, CREDENTIALS, fqcn="mailflow.remediation.kerberos_ports")[0]["changed"]
        for name in ("ex01", "ex02"):
            result = run(
                ReceiveConnectorAuth, fleet, name, CREDENTIALS, fqcn="mailflow.remediation.receive_connector_auth"
            )
            assert result[0]["changed"] is True
        fix_what_other_modules_fix(fleet)
        fixed_at = datetime.datetime.fromtimestamp(time.time(), datetime.UTC).isoformat()
        last_1035 = {name: newest_record(evidence(fleet, name), "event_1035") for name in EXCHANGE}
        protocol_lines = {name: evidence(fleet, name)["counts"]["protocol_log_5_7_64"] for name in EXCHANGE}

        assert all(attempt.delivered for attempt in mail.retry())
        mail.retry()

        after = {name: evidence(fleet, name, since=fixed_at) for name in EXCHANGE}
        whole_day = {name: evidence(fleet, name) for name in EXCHANGE}
    for name in EXCHANGE:
        counts = after[name]["counts"]
        assert (counts["queues_454"], counts["messages_454"], counts["queues_5_7_64"]) == (0, 0, 0), name
        # No new event 1035 and no new refused relay since the fix: the newest ones are those from before it.
        assert newest_record(whole_day[name], "event_1035") == last_1035[name], name
        assert whole_day[name]["counts"]["protocol_log_5_7_64"] == protocol_lines[name], name
    # ex01 and ex02 kept their time; ex03's events from before its clock was stepped back 7 minutes still carry
    # later times than the fix (what the module documents about 'since').
    assert (after["ex01"]["counts"]["event_1035"], after["ex02"]["counts"]["event_1035"]) == (0, 0)


def test_a_swedish_last_error_is_matched_on_its_status_codes() -> None:
    fleet = fleet_of("contoso", locale="sv-SE")
    with MailLab(fleet, retry_interval=0):
        pass
    found = evidence(fleet, "ex01")
    assert found["counts"]["queues_454"] == 2
    assert "Tillfälligt autentiseringsfel" in found["queues_454"][0]["last_error"]


@pytest.mark.parametrize("locale", ["sv-SE", "de-DE"])
@pytest.mark.parametrize("name", ["ex01", "ex03", "dc02"])
def test_a_swedish_or_german_host_gives_the_same_counts(locale: str, name: str) -> None:
    results = []
    for fleet in (fleet_of("contoso"), fleet_of("contoso", locale=locale)):
        with MailLab(fleet, retry_interval=0):
            pass
        results.append(evidence(fleet, name)["counts"])
    assert results[0] == results[1]


@pytest.mark.parametrize(
    ("since", "seconds", "moment"),
    [
        ("30m", 1800, None),
        ("24h", 86400, None),
        ("7D", 604800, None),
        ("2024-05-01T08:00:00Z", None, "2024-05-01T08:00:00Z"),
        ("2024-05-01T10:00:00+02:00", None, "2024-05-01T08:00:00Z"),
        ("2024-05-01 08:00", None, "2024-05-01T08:00:00Z"),
    ],
)
def test_since_is_a_duration_on_the_hosts_clock_or_a_moment_in_utc(
    since: str, seconds: int | None, moment: str | None
) -> None:
    host = emulate(fleet_of("contoso"), "dc01")
    make_action(ActionModule, {"since": since}, host, fqcn=FQCN).run(task_vars={})
    sent = host.calls[0][1]
    assert (sent["since_seconds"], sent["since_time"]) == (seconds, moment)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            {"since": "yesterday"},
            "since: 'yesterday' is neither a duration (30m, 24h, 7d) nor an ISO 8601 time (2024-05-01T08:00:00Z)",
        ),
        ({"since": "0h"}, "since: '0h' is no window of time; give a positive duration"),
        ({"samples": 51}, "samples: must be from 0 to 50, not 51"),
        ({"samples": -1}, "samples: must be from 0 to 50, not -1"),
        (
            {"queues": True},
            "Unsupported parameters for (mailflow.remediation.mailflow_evidence) module: queues. Supported parameters "
            "include: domain_password, domain_server, domain_username, samples, since.",
        ),
    ],
)
def test_bad_input_names_the_option_and_never_reaches_the_host(args: dict[str, t.Any], message: str) -> None:
    host = emulate(fleet_of("contoso"), "ex01")
    with pytest.raises(AnsibleActionFail) as raised:
        make_action(ActionModule, args, host, fqcn=FQCN).run(task_vars={})
    assert raised.value.message == message
    assert host.calls == [] and host.command_lines == []


def test_on_an_exchange_server_without_credentials_the_queues_name_the_second_hop() -> None:
    result, host = run(ActionModule, fleet_of("contoso"), "ex01", {}, fqcn=FQCN)
    assert result["failed"] is True and "second hop" in result["msg"] and host.changes == []
    # A DC has no Exchange to reach: the events alone, no second hop.
    assert run(ActionModule, fleet_of("contoso"), "dc02", {}, fqcn=FQCN)[0]["changed"] is False
