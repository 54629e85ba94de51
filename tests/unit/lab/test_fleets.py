"""The shipped fleets say what they claim: single stays as it was, clean has nothing to fix, contoso has every cause
of both articles (and is fixable), generated fleets scale; the fleet file schema refuses what it does not know."""

from __future__ import annotations

import os
import smtplib
import typing as t
from pathlib import Path

import pytest
import yaml

from tests.lab import model, topology
from tests.lab.exchange import EOP, set_receive_connector
from tests.lab.fleet import Fleet, fleet_from_document, load_fleet
from tests.lab.generate import generate_fleet, main
from tests.lab.smtp import EVENT_CHAIN_POLICY, MailLab
from tests.lab.windows import CAPI2_OPERATIONAL, SYSTEM, W32TIME_PARAMETERS
from tests.unit.lab.conftest import fleet_document, host_entry

Document = dict[str, t.Any]


def test_single_loads_as_before() -> None:
    fleet = load_fleet("single")
    host = fleet.hosts["ex01"]
    assert (host.fqdn, host.roles, fleet.forest, fleet.pki) == ("ex01.contoso.example", ["exchange"], None, None)
    assert host.registry == {r"HKLM\SYSTEM\CURRENTCONTROLSET\CONTROL\LSA\KERBEROS\PARAMETERS": {}}
    assert host.registry_key(r"HKLM\SYSTEM\CurrentControlSet\Control\Lsa\Kerberos\Parameters") == {}
    assert host.exchange is None and host.firewall is None and not host.services
    assert model.causes_by_pair(fleet) == {}
    assert model.retry_queues(fleet) == []


def test_clean_has_nothing_to_fix() -> None:
    fleet = load_fleet("clean")
    assert all(causes == [] for causes in model.causes_by_pair(fleet).values())
    assert all(model.resync(fleet, host).ok for host in fleet.hosts.values())
    assert all(link.last_result == 0 for link in fleet.directory.links)
    assert all(not fleet.directory.backlog(dc) for dc in fleet.directory.dcs)
    assert all(not fleet.directory.duplicates(dc) for dc in fleet.directory.dcs)
    for dc in fleet.domain_controllers():
        assert dc.firewall is not None and all(rule.enabled for rule in dc.firewall.rules)
    for host in fleet.exchange_servers():
        chain = host.smtp_chain()
        assert chain is not None and chain.trusted
        for dc in fleet.domain_controllers():
            for protocol, port in (("TCP", 88), ("UDP", 88), ("TCP", 464), ("UDP", 464)):
                assert fleet.reachable(host.name, dc.name, protocol, port).ok
    with MailLab(fleet, retry_interval=0) as mail:
        assert {host.name: mail.relay(host).code for host in fleet.exchange_servers()} == {"ex01": 250, "ex02": 250}


# What the demo shows, pair by pair; every cause of KB 979174 is in it.
CONTOSO_PAIRS = {
    ("ex01", "ex02"): [model.CONNECTOR_PERMISSION_GROUPS],
    ("ex01", "ex03"): [model.CLOCK_SKEW, model.SPN_MISSING],
    ("ex02", "ex01"): [
        model.SPN_DUPLICATE,
        model.KERBEROS_PORT_BLOCKED,
        model.CONNECTOR_AUTH_MECHANISM,
        model.CONNECTOR_PERMISSION_GROUPS,
    ],
    ("ex02", "ex03"): [model.CLOCK_SKEW, model.SPN_MISSING, model.KERBEROS_PORT_BLOCKED],
    ("ex03", "ex01"): [
        model.CLOCK_SKEW,
        model.SPN_DUPLICATE,
        model.CONNECTOR_AUTH_MECHANISM,
        model.CONNECTOR_PERMISSION_GROUPS,
    ],
    ("ex03", "ex02"): [model.CLOCK_SKEW, model.SPN_NOT_REPLICATED, model.CONNECTOR_PERMISSION_GROUPS],
}


def test_contoso_has_every_cause_of_both_articles() -> None:
    fleet = load_fleet("contoso")
    pairs = model.causes_by_pair(fleet)
    assert pairs == CONTOSO_PAIRS
    assert {cause for causes in pairs.values() for cause in causes} == set(model.CAUSES)
    # Step 1 findings beyond the skew itself, step 2's failing links, step 4's network block and closed 464.
    reasons = {name: model.time_source(fleet, host).reason for name, host in fleet.hosts.items()}
    assert (reasons["dc01"], reasons["dc02"], reasons["ex03"]) == ("hierarchy_root", "service_stopped", "nosync")
    assert {(link.destination, link.source) for link in fleet.directory.links if link.last_result} == {
        ("dc03", "dc01"),
        ("dc03", "dc02"),
    }
    assert not fleet.reachable("ex01", "dc03", "TCP", 88).ok
    assert fleet.reachable("ex01", "dc03", "UDP", 464).blocked_by == "firewall"
    # Step 3 beyond the causes: ex03 lacks SMTP/EX03 too (hygiene), and its SMTPSVC SPN is on a wrong account.
    ex03 = fleet.hosts["ex03"]
    assert set(topology.smtp_spns(ex03)) - set(fleet.directory.spns("dc03", "EX03$")) == {
        "SMTP/EX03",
        "SMTPSVC/ex03.contoso.example",
    }
    assert fleet.directory.owners("dc03", "SMTPSVC/ex03.contoso.example") == ["svc-ex03-relay"]
    # KB 3212877: ex01 (CAPI2 logging on) and ex03 send incomplete chains, ex02 a complete one.
    trusted = {}
    for host in fleet.exchange_servers():
        chain = host.smtp_chain()
        assert chain is not None
        trusted[host.name] = chain.trusted
    assert trusted == {"ex01": False, "ex02": True, "ex03": False}

    with MailLab(fleet, retry_interval=0) as mail:  # start() runs the first retry, as the lab does
        queues = {host.name: host.exchange.queue_to(EOP) for host in fleet.exchange_servers() if host.exchange}
        assert {name: queue.last_error[:10] for name, queue in queues.items() if queue} == {
            "ex01": "550 5.7.64",
            "ex02": "",
            "ex03": "550 5.7.64",
        }
        assert mail.eop is not None
    stuck = [queue for host in fleet.exchange_servers() if host.exchange for queue in host.exchange.queues]
    assert {queue.identity for queue in stuck if '"454 4.7.0 ' in queue.last_error} == {
        "EX01\\3",
        "EX01\\4",
        "EX02\\3",
        "EX02\\4",
        "EX03\\3",
    }
    assert fleet.hosts["ex01"].events.query(CAPI2_OPERATIONAL, event_id=EVENT_CHAIN_POLICY)
    assert not fleet.hosts["ex03"].events.query(CAPI2_OPERATIONAL)
    # Kerberos, without any LogLevel: the KDCs of ex01's senders (dc02, dc03) log its duplicate SPN (event 11), the
    # senders to ex03 get KRB_AP_ERR_MODIFIED from it (event 4).
    kerberos = {
        name: sorted({(event.provider, event.event_id) for event in host.events.query(SYSTEM)})
        for name, host in fleet.hosts.items()
    }
    assert kerberos == {
        "dc01": [],
        "dc02": [(model.KDC_PROVIDER, model.EVENT_KDC_DUPLICATE_NAME)],
        "dc03": [(model.KDC_PROVIDER, model.EVENT_KDC_DUPLICATE_NAME)],
        "ex01": [(model.KERBEROS_PROVIDER, model.EVENT_KRB_AP_ERR_MODIFIED)],
        "ex02": [(model.KERBEROS_PROVIDER, model.EVENT_KRB_AP_ERR_MODIFIED)],
        "ex03": [],
    }


def fix_contoso(fleet: Fleet) -> None:
    """What the two remediation roles do, in the order of the articles, through the state the twins change."""
    hosts = fleet.hosts
    # 979174 step 1: a reliable source for the forest root, the hierarchy for everyone else, service running.
    hosts["dc01"].registry[W32TIME_PARAMETERS.upper()].update(
        Type=("String", "NTP"), NtpServer=("String", "time.lab.example,0x8")
    )
    hosts["ex03"].registry[W32TIME_PARAMETERS.upper()]["Type"] = ("String", "NT5DS")
    # Registry values take effect only once the service re-reads them, as on Windows.
    assert (hosts["dc01"].w32time_config_update(), hosts["ex03"].w32time_config_update()) == (0, 0)
    hosts["dc02"].start_service("W32Time")
    assert all(result.ok for result in model.resync_all(fleet).values())
    # Step 2: forced sync.
    assert all(result.ok for result in fleet.directory.replicate(force=True))
    # Step 3: remove the duplicate; move ex03's SPN off the wrong account (the DC refuses it while another account
    # holds it, so the removal comes first); register the hygiene SPN.
    fleet.directory.write("dc01", "svc-mailrelay", remove=["SMTPSVC/ex01.contoso.example"])
    fleet.directory.write("dc03", "svc-ex03-relay", remove=["SMTPSVC/ex03.contoso.example"])
    fleet.directory.write("dc03", "EX03$", add=["SMTPSVC/ex03.contoso.example", "SMTP/EX03"])
    # Step 4: the DC's inbound rules (the network block is reported, never changed).
    for dc, rule in (
        ("dc02", "KerberosKeyDistributionCenter-UDP-In"),
        ("dc03", "KerberosKeyDistributionCenterPCR-UDP-In"),
    ):
        firewall = hosts[dc].firewall
        assert firewall is not None
        found = firewall.rule(rule)
        assert found is not None
        found.enabled = True
    # Step 6: Exchange authentication on the connectors that take internal mail, through Set-ReceiveConnector's
    # validation: ex01 needs ExchangeServer before (here: with) ExchangeServers.
    for name in ("ex01", "ex02"):
        exchange = hosts[name].exchange
        assert exchange is not None
        connector = exchange.connector(f"Default {name.upper()}")
        assert connector is not None
        assert set_receive_connector(
            connector,
            auth_mechanism=[*connector.auth_mechanism, "ExchangeServer"],
            permission_groups=[*connector.permission_groups, "ExchangeServers"],
        )
    # 3212877 step 3: the intermediates into LocalMachine\CA.
    assert fleet.pki is not None
    for name in ("ex01", "ex03"):
        hosts[name].import_intermediates(fleet.pki.intermediates())


def test_contoso_is_fixable_and_then_delivers_everything() -> None:
    fleet = load_fleet("contoso")
    with MailLab(fleet, retry_interval=0) as mail:
        fix_contoso(fleet)
        attempts = mail.retry()  # replication on healthy links, then every queue
        assert all(attempt.delivered for attempt in attempts), [a for a in attempts if not a.delivered]
    assert all(causes == [] for causes in model.causes_by_pair(fleet).values())
    queues = [queue for host in fleet.exchange_servers() if host.exchange for queue in host.exchange.queues]
    assert all((queue.message_count, queue.last_error) == (0, "") for queue in queues)
    assert not fleet.reachable("ex01", "dc03", "TCP", 88).ok  # still there: someone else's firewall


@pytest.mark.parametrize("hosts", [2, 3, 10, 60])
def test_generated_fleets_have_nothing_to_fix_by_default(hosts: int) -> None:
    fleet = fleet_from_document("generated", generate_fleet(hosts))
    assert len(fleet.hosts) == hosts
    assert fleet.domain_controllers() and fleet.exchange_servers()
    assert all(causes == [] for causes in model.causes_by_pair(fleet).values())
    assert all(attempt.delivered for attempt in model.retry_queues(fleet))


def test_a_broken_generated_fleet_has_a_cause_on_every_broken_server() -> None:
    document = generate_fleet(40, broken=1.0, seed=7)
    fleet = fleet_from_document("generated", document)
    assert generate_fleet(40, broken=1.0, seed=7) == document  # reproducible
    found = {cause for causes in model.causes_by_pair(fleet).values() for cause in causes}
    assert found == set(model.CAUSES) - {model.SPN_NOT_REPLICATED}
    untrusted = [host for host in fleet.exchange_servers() if not (chain := host.smtp_chain()) or not chain.trusted]
    assert untrusted


def test_the_generator_writes_a_fleet_file_the_lab_loads(tmp_path: Path) -> None:
    target = tmp_path / "fleet.yml"
    assert main(["--hosts", "25", "--broken", "0.2", "-o", str(target)]) == 0
    assert len(load_fleet(target).hosts) == 25
    assert len(load_fleet("generated-12").hosts) == 12


def test_a_generated_fleet_of_hundreds_loads_and_retries_quickly() -> None:
    fleet = load_fleet("generated-300")
    assert len(fleet.hosts) == 300
    assert all(attempt.delivered for attempt in model.retry_queues(fleet))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: host_entry(d, "ex01").update(w32time={"typ": "NTP"}), r"ex01\.w32time: unknown key"),
        (
            lambda d: host_entry(d, "dc01").update(firewall={"inbound": [{"name": "x", "port": 88, "proto": "TCP"}]}),
            "unknown key",
        ),
        (lambda d: d.update(network={"blocked": [{"from": "ex01", "to": "nowhere"}]}), "neither a host"),
        (lambda d: host_entry(d, "ex01").update(logon_server="ex02"), "not a domain controller"),
        (lambda d: host_entry(d, "ex01").update(certificates={"ca": ["no-such-ca"]}), "no authority"),
        (
            lambda d: host_entry(d, "ex01").update(exchange={"queues": [{"to": "dc01", "messages": 1}]}),
            "not an Exchange server",
        ),
        (lambda d: host_entry(d, "dc02").update(replication_partners=["ex01"]), "not another domain controller"),
        (lambda d: d["pki"].append({"name": "orphan", "issuer": "nobody"}), "unknown issuers"),
        (
            lambda d: host_entry(d, "ex01").update(
                exchange={"receive_connectors": [{"name": "Default EX01", "auth_mechanism": ["Tls", "Integrated"]}]}
            ),
            r"ex01\.receive_connectors 'Default EX01': The ExchangeServers permission group requires",
        ),
        (
            lambda d: host_entry(d, "ex01").update(
                exchange={"receive_connectors": [{"name": "Relay", "auth_mechanism": ["Kerberos"]}]}
            ),
            r"Cannot convert value \"Kerberos\"",
        ),
    ],
)
def test_the_schema_refuses_what_it_does_not_know(change: t.Callable[[Document], None], message: str) -> None:
    document = fleet_document("clean")
    change(document)
    with pytest.raises(ValueError, match=message):
        fleet_from_document("bad", document)


def test_the_lab_serves_smtp_and_eop_and_stops_them(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.lab.server import Lab

    monkeypatch.delenv("NTLM_USER_FILE", raising=False)  # Lab() points pyspnego at its own file; undo that after
    lab = Lab(load_fleet("clean"), ttl_seconds=60).start()
    try:
        status = lab.status()["mail"]
        assert set(status["smtp_ports"]) == {"ex01", "ex02"} and status["eop"]["port"]
        with smtplib.SMTP("127.0.0.1", status["smtp_ports"]["ex02"], timeout=5) as client:
            assert client.ehlo()[0] == 250 and client.has_extn("starttls")
        yaml.safe_dump(lab.status())  # the status file the command line writes stays plain data
    finally:
        lab.stop()
        os.unlink(lab.credential_file)
    with pytest.raises(OSError):
        smtplib.SMTP("127.0.0.1", status["smtp_ports"]["ex02"], timeout=2)
