"""KB 3212877 in the lab, over real SMTP and TLS on loopback.

From the clean fleet, a missing intermediate in ex01's LocalMachine\\CA alone makes EOP answer 550 5.7.64 and
(with CAPI2 logging on) event 30 appear; importing the intermediates alone makes the next relay succeed.
"""

from __future__ import annotations

import smtplib
import ssl
import typing as t

import pytest
from cryptography import x509

from tests.lab import topology
from tests.lab.certs import CERT_E_CHAINING, CERT_E_UNTRUSTEDROOT, thumbprint
from tests.lab.exchange import EOP, OFFICE365_SEND_CONNECTOR, SendConnector, tls_certificate_name
from tests.lab.fleet import Fleet, HostState
from tests.lab.smtp import CAPI2_PROVIDER, EVENT_CHAIN_POLICY, MailLab, wait_for
from tests.lab.windows import CAPI2_OPERATIONAL, StoredCertificate
from tests.unit.lab.conftest import host_entry

Document = dict[str, t.Any]

# A chain with two intermediates, so that either one (or both) can be the missing one.
TWO_INTERMEDIATES = [
    {"name": "public-root", "subject": "Lab Public Root CA"},
    {"name": "public-policy", "subject": "Lab Public Policy CA", "issuer": "public-root"},
    {"name": "public-tls", "subject": "Lab Public TLS Issuing CA", "issuer": "public-policy"},
]


def presented_by_server(port: int) -> list[x509.Certificate]:
    """STARTTLS to an Exchange host as a client would, and return the chain it sent (leaf first)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP("127.0.0.1", port, local_hostname="probe.lab.invalid", timeout=10) as client:
        client.ehlo()
        assert client.has_extn("starttls")
        client.starttls(context=context)
        sslobj = client.sock._sslobj  # type: ignore[union-attr]
        chain = [x509.load_pem_x509_certificate(item.public_bytes().encode()) for item in sslobj.get_unverified_chain()]
        code = client.ehlo()[0]
        assert code == 250
    return chain


@pytest.mark.parametrize(
    ("pki", "ca_store", "sent"),
    [
        pytest.param(None, [], 1, id="the-only-intermediate-missing"),
        pytest.param(TWO_INTERMEDIATES, ["public-policy"], 1, id="the-issuing-intermediate-missing"),
        pytest.param(TWO_INTERMEDIATES, ["public-tls"], 2, id="the-upper-intermediate-missing"),
        pytest.param(TWO_INTERMEDIATES, [], 1, id="both-intermediates-missing"),
    ],
)
def test_a_missing_intermediate_alone_makes_eop_refuse_and_importing_it_alone_lets_mail_through(
    pki: list[Document] | None,
    ca_store: list[str],
    sent: int,
    clean_document: Document,
    load: t.Callable[[Document], Fleet],
) -> None:
    if pki is not None:
        clean_document["pki"] = pki
    entry = host_entry(clean_document, "ex01")
    entry["certificates"]["ca"] = ca_store
    entry["capi2_logging"] = True
    fleet = load(clean_document)
    host = fleet.hosts["ex01"]
    assert fleet.pki is not None and host.exchange is not None

    with MailLab(fleet, retry_interval=0) as mail:
        assert mail.eop is not None
        queue = topology.submit(fleet, host, EOP, 2)
        [attempt] = [item for item in mail.retry() if item.sender == "ex01"]

        assert not attempt.delivered
        assert queue.last_error.startswith("550 5.7.64 TenantAttribution; Relay Access Denied")
        assert [ndr["status"] for ndr in host.exchange.ndrs] == ["5.7.64"]
        record = mail.eop.records[-1]
        leaf = host.smtp_certificate()
        assert leaf is not None
        assert record.presented[0] == leaf.thumbprint and len(record.presented) == sent
        assert not record.attributed
        events = host.events.query(CAPI2_OPERATIONAL, provider=CAPI2_PROVIDER, event_id=EVENT_CHAIN_POLICY)
        # An intermediate is nowhere in the host's stores, so CryptoAPI cannot build the chain: CERT_E_CHAINING.
        assert events and {event.data["Result.value"] for event in events} == {CERT_E_CHAINING}
        assert events[-1].data["Certificate.fileRef"] == f"{leaf.thumbprint}.cer"
        assert len(presented_by_server(mail.ports["ex01"])) == sent

        # KB 3212877 step 3: import the intermediates (exported from a host that has them) into LocalMachine\CA.
        assert host.import_intermediates(fleet.pki.intermediates())
        count = len(host.events.query(CAPI2_OPERATIONAL, event_id=EVENT_CHAIN_POLICY))
        topology.submit(fleet, host, EOP, 2)
        [attempt] = [item for item in mail.retry() if item.sender == "ex01"]

        assert attempt.delivered and attempt.reply.startswith("250 ")
        assert (queue.last_error, queue.message_count) == ("", 0)
        assert mail.eop.records[-1].attributed
        assert len(mail.eop.records[-1].presented) == 1 + len(fleet.pki.intermediates())
        assert len(presented_by_server(mail.ports["ex01"])) == 1 + len(fleet.pki.intermediates())
        assert len(host.events.query(CAPI2_OPERATIONAL, event_id=EVENT_CHAIN_POLICY)) == count


@pytest.mark.parametrize(
    ("ca_store", "root_store", "status", "relay_code"),
    [
        pytest.param(["public-tls"], ["public-root"], "0", 250, id="complete-and-trusted"),
        pytest.param([], ["public-root"], CERT_E_CHAINING, 550, id="intermediate-missing"),
        pytest.param(["public-tls"], [], CERT_E_CHAINING, 250, id="root-nowhere"),
        # The root imported into LocalMachine\CA instead of Root: the chain is complete but ends untrusted.
        pytest.param(["public-tls", "public-root"], [], CERT_E_UNTRUSTEDROOT, 250, id="root-in-the-wrong-store"),
    ],
)
def test_event_30_tells_a_missing_issuer_from_an_untrusted_root(
    ca_store: list[str],
    root_store: list[str],
    status: str,
    relay_code: int,
    clean_document: Document,
    load: t.Callable[[Document], Fleet],
) -> None:
    entry = host_entry(clean_document, "ex01")
    entry["certificates"].update(ca=ca_store, root=root_store)
    entry["capi2_logging"] = True
    fleet = load(clean_document)
    host = fleet.hosts["ex01"]
    chain = host.smtp_chain()
    assert chain is not None and chain.status == status
    with MailLab(fleet, retry_interval=0) as mail:
        # EOP judges what was sent (never the root), against its own roots: the host's Root store does not matter.
        assert mail.relay(host).code == relay_code
    events = host.events.query(CAPI2_OPERATIONAL, provider=CAPI2_PROVIDER, event_id=EVENT_CHAIN_POLICY)
    assert [event.data["Result.value"] for event in events] == ([] if status == "0" else [status])


def test_the_clean_fleet_relays_and_presents_complete_chains(
    clean_document: Document, load: t.Callable[[Document], Fleet]
) -> None:
    fleet = load(clean_document)
    with MailLab(fleet, retry_interval=0) as mail:
        for host in fleet.exchange_servers():
            reply = mail.relay(host)
            assert reply.code == 250, reply.text
            chain = presented_by_server(mail.ports[host.name])
            expected = host.smtp_chain()
            assert expected is not None and expected.trusted
            assert [thumbprint(item) for item in chain] == [thumbprint(item) for item in expected.sent]


def test_without_capi2_logging_the_relay_fails_silently(
    clean_document: Document, load: t.Callable[[Document], Fleet]
) -> None:
    host_entry(clean_document, "ex02")["certificates"]["ca"] = []
    fleet = load(clean_document)
    host = fleet.hosts["ex02"]
    with MailLab(fleet, retry_interval=0) as mail:
        reply = mail.relay(host)
    assert reply.code == 550 and reply.text.split()[1] == "5.7.64"
    assert not host.events.query(CAPI2_OPERATIONAL)
    host.set_capi2_logging(True)
    with MailLab(fleet, retry_interval=0) as mail:
        assert mail.relay(host).code == 550
    assert [event.event_id for event in host.events.query(CAPI2_OPERATIONAL)] == [EVENT_CHAIN_POLICY]


def test_a_certificate_for_another_name_is_not_attributed(
    clean_document: Document, load: t.Callable[[Document], Fleet]
) -> None:
    host_entry(clean_document, "ex01")["certificates"]["smtp"] = {"subject": "ex01.fabrikam.example"}
    fleet = load(clean_document)
    with MailLab(fleet, retry_interval=0) as mail:
        assert mail.relay(fleet.hosts["ex01"]).code == 550
        assert mail.eop is not None
        assert "TlsSenderCertificateName" in mail.eop.records[-1].reason
        # Mail for the tenant's own domain is inbound, not relay: EOP takes it without attribution.
        assert mail.relay(fleet.hosts["ex01"], recipient="user@contoso.example").code == 250


def test_the_mail_lab_stops_listening_and_stops_by_itself(
    clean_document: Document, load: t.Callable[[Document], Fleet]
) -> None:
    fleet = load(clean_document)
    mail = MailLab(fleet, ttl_seconds=0.3, retry_interval=0).start()
    port = mail.ports["ex01"]
    assert presented_by_server(port)
    assert mail.stopped.wait(5), "the mail lab did not stop after its time limit"
    with pytest.raises(OSError):
        smtplib.SMTP("127.0.0.1", port, timeout=2)


def test_the_background_retry_delivers_once_the_cause_is_gone(
    clean_document: Document, load: t.Callable[[Document], Fleet]
) -> None:
    host_entry(clean_document, "ex01")["certificates"]["ca"] = []
    host_entry(clean_document, "ex01")["exchange"] = {"queues": [{"to": "eop", "messages": 4}]}
    fleet = load(clean_document)
    host = fleet.hosts["ex01"]
    assert fleet.pki is not None and host.exchange is not None
    with MailLab(fleet, retry_interval=0.05) as mail:
        queue = host.exchange.queue_to(EOP)
        assert queue is not None and queue.last_error.startswith("550 5.7.64")  # the first retry runs at start
        with fleet.lock:
            host.import_intermediates(fleet.pki.intermediates())
        assert wait_for(lambda: queue.last_error == "" and host.exchange is not None and host.exchange.relayed > 0)
        assert not mail.errors


# --- the certificate a relay presents is the send connector's ----------------------------------------------------

OTHER_NAME = "ex01.fabrikam.example"


def _import_other(fleet: Fleet, host: HostState, subject: str) -> StoredCertificate:
    """A second certificate in LocalMachine\\My, from the same public CA, not enabled for SMTP."""
    assert fleet.pki is not None
    leaf, key = fleet.pki.issue_leaf("public-tls", subject, [subject])
    assert host.import_certificate("My", leaf, key)
    return host.certificates.store("My")[thumbprint(leaf)]


def _office365(host: HostState) -> SendConnector:
    assert host.exchange is not None
    connector = host.exchange.send_connector(OFFICE365_SEND_CONNECTOR)
    assert connector is not None
    return connector


def _as_is(fleet: Fleet, host: HostState) -> StoredCertificate | None:
    return host.smtp_certificate()


def _names_other(fleet: Fleet, host: HostState) -> StoredCertificate | None:
    other = _import_other(fleet, host, OTHER_NAME)
    _office365(host).tls_certificate_name = tls_certificate_name(other.certificate)
    return other


def _names_good_one_not_enabled_for_smtp(fleet: Fleet, host: HostState) -> StoredCertificate | None:
    # The SMTP-enabled certificate carries a name EOP does not know; the connector names a good one.
    good = _import_other(fleet, host, "mail.contoso.example")
    _office365(host).tls_certificate_name = tls_certificate_name(good.certificate)
    return good


def _name_written_differently(fleet: Fleet, host: HostState) -> StoredCertificate | None:
    # Other case, no blanks after the separators: the same issuer and subject.
    connector = _office365(host)
    connector.tls_certificate_name = (
        "<I>o=mailflow lab test pki,cn=lab public tls issuing ca<S>O=MAILFLOW LAB TEST PKI,CN=MAIL.CONTOSO.EXAMPLE"
    )
    return host.smtp_certificate()


def _names_nothing_in_my(fleet: Fleet, host: HostState) -> StoredCertificate | None:
    _office365(host).tls_certificate_name = "<I>CN=Some Other CA<S>CN=mail.contoso.example"
    return None


def _without_private_key(fleet: Fleet, host: HostState) -> StoredCertificate | None:
    entry = host.smtp_certificate()
    assert entry is not None
    entry.private_key = None  # imported from a .cer: the certificate without its key
    return None


def _no_name(fleet: Fleet, host: HostState) -> StoredCertificate | None:
    _office365(host).tls_certificate_name = None
    return None


@pytest.mark.parametrize(
    ("change", "smtp_subject", "code"),
    [
        (_as_is, None, 250),
        (_names_other, None, 550),
        (_names_good_one_not_enabled_for_smtp, OTHER_NAME, 250),
        (_name_written_differently, None, 250),
        (_names_nothing_in_my, None, 550),
        (_without_private_key, None, 550),
        (_no_name, None, 550),
    ],
    ids=lambda value: value.__name__.strip("_") if callable(value) else None,
)
def test_a_relay_presents_the_certificate_its_send_connector_names(
    change: t.Callable[[Fleet, HostState], StoredCertificate | None],
    smtp_subject: str | None,
    code: int,
    clean_document: Document,
    load: t.Callable[[Document], Fleet],
) -> None:
    if smtp_subject is not None:
        host_entry(clean_document, "ex01")["certificates"]["smtp"] = {"subject": smtp_subject}
    fleet = load(clean_document)
    host = fleet.hosts["ex01"]
    presented = change(fleet, host)
    with MailLab(fleet, retry_interval=0) as mail:
        reply = mail.relay(host)
        assert mail.eop is not None
        record = mail.eop.records[-1]
    assert (reply.code, reply.text.split()[1]) == (code, "2.6.0" if code == 250 else "5.7.64")
    assert record.presented[:1] == ([presented.thumbprint] if presented is not None else [])


def test_every_exchange_host_gets_an_office365_connector_naming_its_smtp_certificate(
    clean_document: Document, load: t.Callable[[Document], Fleet]
) -> None:
    fleet = load(clean_document)
    assert fleet.eop is not None
    for host in fleet.exchange_servers():
        assert host.exchange is not None
        assert [connector.snapshot() for connector in host.exchange.send_connectors] == [
            {
                "name": "Outbound to Office 365",
                "address_spaces": ["*"],
                "smart_hosts": ["contoso-example.mail.protection.outlook.com"],
                "tls_certificate_name": "<I>O=Mailflow Lab Test PKI, CN=Lab Public TLS Issuing CA"
                "<S>O=Mailflow Lab Test PKI, CN=mail.contoso.example",
                "require_tls": True,
                "enabled": True,
            }
        ]


def test_a_fleet_file_plants_send_connectors_over_the_default(
    clean_document: Document, load: t.Callable[[Document], Fleet]
) -> None:
    host_entry(clean_document, "ex01")["exchange"] = {
        "send_connectors": [
            {"name": "Outbound to Office 365", "tls_certificate_name": "<I>CN=Old CA<S>CN=mail.contoso.example"},
            {"name": "To Fabrikam", "address_spaces": ["fabrikam.example"], "smart_hosts": ["mx.fabrikam.example"]},
        ]
    }
    fleet = load(clean_document)
    host = fleet.hosts["ex01"]
    assert host.exchange is not None
    office365 = host.exchange.send_connector("Outbound to Office 365")
    assert office365 is not None and office365.smart_hosts == ["contoso-example.mail.protection.outlook.com"]
    # The most specific address space routes; the Fabrikam connector names no certificate, so none is presented.
    assert host.exchange.route("fabrikam.example") is host.exchange.send_connector("To Fabrikam")
    assert host.exchange.route("contoso.example") is office365
    with MailLab(fleet, retry_interval=0) as mail:
        assert mail.relay(host).code == 550
        assert mail.eop is not None and mail.eop.records[-1].presented == []
