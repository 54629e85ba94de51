"""KB 979174 in the lab: from the clean fleet, each cause alone breaks ex01 -> ex02 and fixing it alone heals it."""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

import pytest

from tests.lab import model, topology
from tests.lab.exchange import set_receive_connector
from tests.lab.fleet import Fleet
from tests.lab.windows import APPLICATION, SYSTEM
from tests.unit.lab.conftest import host_entry

Document = dict[str, t.Any]


@dataclass(frozen=True)
class Case:
    cause: str
    introduce: t.Callable[[Document], None]
    fix: t.Callable[[Fleet], None]


def _skew(document: Document) -> None:
    host_entry(document, "ex02")["clock_offset"] = 420


def _resync(fleet: Fleet) -> None:
    assert model.resync(fleet, fleet.hosts["ex02"]).ok


def _spn_absent(document: Document) -> None:
    host_entry(document, "ex02")["computer_account"] = {"spns_absent": ["SMTPSVC/ex02.contoso.example"]}


def _register_spn(fleet: Fleet) -> None:
    # Written on ex02's own DC; dc01 (ex01's KDC) gets it by ordinary replication before the retry.
    assert fleet.directory.write("dc02", "EX02$", add=["SMTPSVC/ex02.contoso.example"]) is not None


def _wrong_account(document: Document) -> None:
    # Registered on a service account instead of EX02$: the KDC issues a ticket ex02 cannot decrypt.
    _spn_absent(document)
    _duplicate(document)


def _move_spn_to_the_server(fleet: Fleet) -> None:
    # The DC refuses the SPN while svc-relay holds it, so it leaves svc-relay first (setspn -S would refuse too).
    assert fleet.directory.write("dc01", "svc-relay", remove=["SMTPSVC/ex02.contoso.example"]) is not None
    assert fleet.directory.write("dc01", "EX02$", add=["SMTPSVC/ex02.contoso.example"]) is not None


def _not_replicated(document: Document) -> None:
    _spn_absent(document)
    host_entry(document, "dc01")["replication_partners"] = [{"source": "dc02", "last_result": 1722}]
    document["directory"] = {"pending": [{"dc": "dc02", "account": "EX02$", "add": ["SMTPSVC/ex02.contoso.example"]}]}


def _force_sync(fleet: Fleet) -> None:
    assert all(result.ok for result in fleet.directory.replicate(force=True))


def _duplicate(document: Document) -> None:
    document["accounts"] = [{"name": "svc-relay", "kind": "user", "spns": ["SMTPSVC/ex02.contoso.example"]}]


def _remove_duplicate(fleet: Fleet) -> None:
    assert fleet.directory.write("dc01", "svc-relay", remove=["SMTPSVC/ex02.contoso.example"]) is not None


def _network_block(document: Document) -> None:
    document["network"] = {"blocked": [{"from": "ex01", "to": "dc01", "protocol": "UDP", "port": 88}]}


def _unblock_network(fleet: Fleet) -> None:
    fleet.network.blocked.clear()  # the network team's change: the collection only reports it


def _firewall_rule(document: Document) -> None:
    host_entry(document, "dc01")["firewall"] = {
        "inbound": [{"name": "KerberosKeyDistributionCenter-TCP-In", "enabled": False}]
    }


def _enable_rule(fleet: Fleet) -> None:
    firewall = fleet.hosts["dc01"].firewall
    assert firewall is not None
    rule = firewall.rule("KerberosKeyDistributionCenter-TCP-In")
    assert rule is not None
    rule.enabled = True


def _connector(**settings: list[str]) -> t.Callable[[Document], None]:
    def introduce(document: Document) -> None:
        host_entry(document, "ex02")["exchange"] = {"receive_connectors": [{"name": "Default EX02", **settings}]}

    return introduce


def _set_connector(**settings: list[str]) -> t.Callable[[Fleet], None]:
    """Set-ReceiveConnector on ex02's internal connector, with Exchange's validation."""

    def fix(fleet: Fleet) -> None:
        exchange = fleet.hosts["ex02"].exchange
        assert exchange is not None
        connector = exchange.connector("Default EX02")
        assert connector is not None
        assert set_receive_connector(connector, **settings)

    return fix


CASES = [
    Case(model.CLOCK_SKEW, _skew, _resync),
    Case(model.SPN_MISSING, _spn_absent, _register_spn),
    Case(model.SPN_MISSING, _wrong_account, _move_spn_to_the_server),
    Case(model.SPN_NOT_REPLICATED, _not_replicated, _force_sync),
    Case(model.SPN_DUPLICATE, _duplicate, _remove_duplicate),
    Case(model.KERBEROS_PORT_BLOCKED, _network_block, _unblock_network),
    Case(model.KERBEROS_PORT_BLOCKED, _firewall_rule, _enable_rule),
    # Externally secured: the one valid connector that grants ExchangeServers without offering ExchangeServer. The fix
    # must drop ExternalAuthoritative, which Exchange allows beside Tls only.
    Case(
        model.CONNECTOR_AUTH_MECHANISM,
        _connector(auth_mechanism=["Tls", "ExternalAuthoritative"], permission_groups=["ExchangeServers"]),
        _set_connector(auth_mechanism=["Tls", "ExchangeServer"]),
    ),
    Case(
        model.CONNECTOR_PERMISSION_GROUPS,
        _connector(permission_groups=["ExchangeUsers", "ExchangeLegacyServers"]),
        _set_connector(permission_groups=["ExchangeUsers", "ExchangeServers", "ExchangeLegacyServers"]),
    ),
]
IDS = [f"{case.cause}-{case.introduce.__name__.strip('_')}" for case in CASES]


def _events_1035(fleet: Fleet, host: str) -> list[t.Any]:
    return fleet.hosts[host].events.query(
        APPLICATION, provider=model.TRANSPORT_PROVIDER, event_id=model.EVENT_INBOUND_AUTH_FAILED
    )


def test_the_clean_fleet_delivers(clean_document: Document, load: t.Callable[[Document], Fleet]) -> None:
    fleet = load(clean_document)
    assert model.causes_by_pair(fleet) == {("ex01", "ex02"): [], ("ex02", "ex01"): []}
    topology.submit(fleet, fleet.hosts["ex01"], "ex02", 3)
    [attempt] = model.settle(fleet)
    assert attempt.delivered and attempt.messages == 3
    assert not _events_1035(fleet, "ex02")


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_one_cause_alone_makes_the_symptom_and_fixing_it_alone_clears_it(
    case: Case, clean_document: Document, load: t.Callable[[Document], Fleet]
) -> None:
    case.introduce(clean_document)
    fleet = load(clean_document)
    sender, receiver = fleet.hosts["ex01"], fleet.hosts["ex02"]
    assert receiver.exchange is not None
    assert model.causes_by_pair(fleet)[("ex01", "ex02")] == [case.cause]

    queue = topology.submit(fleet, sender, "ex02", 3)
    [attempt] = model.settle(fleet)
    assert (attempt.delivered, attempt.causes) == (False, (case.cause,))
    assert (queue.status, queue.message_count) == ("Retry", 3)
    assert queue.last_error.startswith("451 4.4.0 ") and '"454 4.7.0 ' in queue.last_error
    [event] = _events_1035(fleet, "ex02")
    assert (event.category, event.data["2"], event.data["3"], event.data["4"]) == (
        "SmtpReceive",
        "Default EX02",
        "ExchangeAuth",
        sender.ip,
    )
    assert receiver.exchange.received == 0

    case.fix(fleet)
    [attempt] = model.settle(fleet)
    assert attempt.delivered
    assert model.causes_by_pair(fleet)[("ex01", "ex02")] == []
    assert (queue.status, queue.message_count, queue.last_error) == ("Ready", 0, "")
    assert receiver.exchange.received == 3
    assert len(_events_1035(fleet, "ex02")) == 1  # no new failure once fixed


@pytest.mark.parametrize(
    ("introduce", "host", "code"),
    [
        (_skew, "ex02", "0x25"),
        (_spn_absent, "ex01", "0x7"),
        (_not_replicated, "ex01", "0x7"),
        (_duplicate, "ex01", "0x7"),  # the KDC refuses a ticket for a name two accounts hold
        (_wrong_account, "ex01", "0x29"),  # ex02 cannot decrypt the ticket and says so
    ],
    ids=["clock-skew", "spn-missing", "spn-not-replicated", "spn-duplicate", "spn-on-a-wrong-account"],
)
def test_kerberos_logging_shows_the_error_once_loglevel_is_set(
    introduce: t.Callable[[Document], None],
    host: str,
    code: str,
    clean_document: Document,
    load: t.Callable[[Document], Fleet],
) -> None:
    introduce(clean_document)
    fleet = load(clean_document)
    topology.submit(fleet, fleet.hosts["ex01"], "ex02", 1)
    model.settle(fleet)
    assert not fleet.hosts[host].events.query(SYSTEM, event_id=model.EVENT_KERBEROS_ERROR)

    # KB 979174 step 5, as the kerberos_log_level twin writes it.
    fleet.hosts[host].registry[model.KERBEROS_PARAMETERS.upper()] = {"LogLevel": ("DWord", 1)}
    model.settle(fleet)
    events = fleet.hosts[host].events.query(
        SYSTEM, provider=model.KERBEROS_PROVIDER, event_id=model.EVENT_KERBEROS_ERROR
    )
    assert [(event.data["ErrorCode"], event.data["TargetName"]) for event in events] == [
        (code, "SMTPSVC/ex02.contoso.example")
    ]


DUPLICATE_NAME = (model.KDC_PROVIDER, model.EVENT_KDC_DUPLICATE_NAME)
AP_ERR_MODIFIED = (model.KERBEROS_PROVIDER, model.EVENT_KRB_AP_ERR_MODIFIED)


@pytest.mark.parametrize(
    ("introduce", "kdc_events", "client_events"),
    [
        # The KDC of the sender (dc01 for ex01) logs the duplicate; the client gets no ticket, so logs no event 4.
        (
            _duplicate,
            [(*DUPLICATE_NAME, {"Name": "SMTPSVC/ex02.contoso.example", "Type": "DS_SERVICE_PRINCIPAL_NAME"})],
            [],
        ),
        # A single wrong account: the KDC is content, the client logs event 4 without any LogLevel.
        (_wrong_account, [], [(*AP_ERR_MODIFIED, {"Server": "EX02$", "TargetName": "SMTPSVC/ex02.contoso.example"})]),
        (_spn_absent, [], []),
    ],
    ids=["duplicate", "wrong-account", "missing"],
)
def test_what_kerberos_logs_without_kerberos_logging(
    introduce: t.Callable[[Document], None],
    kdc_events: list[tuple[str, int, dict[str, str]]],
    client_events: list[tuple[str, int, dict[str, str]]],
    clean_document: Document,
    load: t.Callable[[Document], Fleet],
) -> None:
    introduce(clean_document)
    fleet = load(clean_document)
    topology.submit(fleet, fleet.hosts["ex01"], "ex02", 1)
    model.settle(fleet)
    logged = {
        name: [(event.provider, event.event_id, event.data) for event in fleet.hosts[name].events.query(SYSTEM)]
        for name in ("dc01", "dc02", "ex01", "ex02")
    }
    assert logged == {"dc01": kdc_events, "dc02": [], "ex01": client_events, "ex02": []}


@pytest.mark.parametrize(
    "spn", ["SMTP/EX02", "SMTP/ex02.contoso.example", "SMTPSVC/EX02"], ids=["smtp-short", "smtp-fqdn", "smtpsvc-short"]
)
def test_the_other_spns_of_step_3_are_hygiene_not_a_cause(
    spn: str, clean_document: Document, load: t.Callable[[Document], Fleet]
) -> None:
    host_entry(clean_document, "ex02")["computer_account"] = {"spns_absent": [spn]}
    clean_document["accounts"] = [{"name": "svc-relay", "kind": "user", "spns": [spn.replace("EX02", "ex02")]}]
    fleet = load(clean_document)
    assert spn in topology.smtp_spns(fleet.hosts["ex02"])
    assert spn not in fleet.directory.spns("dc01", "EX02$")
    assert model.causes_by_pair(fleet)[("ex01", "ex02")] == []


def test_a_persistent_replication_failure_survives_a_forced_sync(
    clean_document: Document, load: t.Callable[[Document], Fleet]
) -> None:
    _not_replicated(clean_document)
    host_entry(clean_document, "dc01")["replication_partners"] = [
        {"source": "dc02", "last_result": 1722, "persistent": True, "consecutive_failures": 5}
    ]
    fleet = load(clean_document)
    [result] = fleet.directory.replicate(force=True, destination="dc01")
    assert (result.ok, result.result) == (False, 1722)
    link = fleet.directory.link("dc01", "dc02")
    assert link is not None and link.consecutive_failures == 6
    assert [change.account for change in fleet.directory.backlog("dc01")] == ["EX02$"]
    assert model.causes_by_pair(fleet)[("ex01", "ex02")] == [model.SPN_NOT_REPLICATED]


def test_a_change_is_seen_where_it_was_made_before_it_replicates(
    clean_document: Document, load: t.Callable[[Document], Fleet]
) -> None:
    fleet = load(clean_document)
    directory = fleet.directory
    spn = "SMTPSVC/ex01.contoso.example"
    directory.write("dc02", "EX01$", remove=[spn])
    assert spn not in directory.spns("dc02", "EX01$")
    assert spn in directory.spns("dc01", "EX01$")
    # ex02 authenticates against dc02, which already lacks the SPN; ex01's own DC does not matter for ex02 -> ex01.
    assert model.causes_by_pair(fleet)[("ex02", "ex01")] == [model.SPN_MISSING]
    directory.replicate(force=False)
    assert spn not in directory.spns("dc01", "EX01$")


@pytest.mark.parametrize(
    ("host", "change", "reason"),
    [
        ("ex02", {"w32time": {"type": "NoSync"}}, "nosync"),
        ("ex02", {"services": {"W32Time": "Stopped"}}, "service_stopped"),
        ("dc01", {"w32time": {"type": "NT5DS"}}, "hierarchy_root"),
        ("dc02", {"services": {"W32Time": "Running"}}, ""),
    ],
)
def test_time_sources_follow_the_w32time_type(
    host: str, change: Document, reason: str, clean_document: Document, load: t.Callable[[Document], Fleet]
) -> None:
    host_entry(clean_document, host).update(change)
    fleet = load(clean_document)
    assert model.time_source(fleet, fleet.hosts[host]).reason == reason


def test_an_unreachable_external_peer_leaves_the_pdc_without_time(
    clean_document: Document, load: t.Callable[[Document], Fleet]
) -> None:
    clean_document["network"] = {"blocked": [{"from": "dc01", "to": "external", "protocol": "UDP", "port": 123}]}
    fleet = load(clean_document)
    source = model.time_source(fleet, fleet.hosts["dc01"])
    assert (source.peer, source.reason) == (None, "unreachable")


def test_resync_refuses_a_step_beyond_the_phase_correction_limit(
    clean_document: Document, load: t.Callable[[Document], Fleet]
) -> None:
    host_entry(clean_document, "ex02").update(clock_offset=200000, w32time={"max_neg_phase_correction": 172800})
    fleet = load(clean_document)
    result = model.resync(fleet, fleet.hosts["ex02"])
    assert (result.ok, result.reason, fleet.hosts["ex02"].clock_offset) == (False, "phase_correction_limit", 200000)


def test_resync_all_brings_a_fixed_hierarchy_into_line(
    clean_document: Document, load: t.Callable[[Document], Fleet]
) -> None:
    for name, offset in (("dc01", 30.0), ("dc02", -500.0), ("ex01", 900.0), ("ex02", 10.0)):
        host_entry(clean_document, name)["clock_offset"] = offset
    fleet = load(clean_document)
    results = model.resync_all(fleet)
    assert all(result.ok for result in results.values())
    # The PDC takes true time from its external peer; everyone else follows the hierarchy.
    assert {name: host.clock_offset for name, host in fleet.hosts.items()} == dict.fromkeys(fleet.hosts, 0.0)
