"""The lab's directory as the w32time, ad_replication and spn twins reach it: DsReplicaSyncAll (pull toward a DC,
or pushed out from it), what the lab's account may not do, and a DC bound from a host (the network, then the second
hop), with the errors Windows gives."""

from __future__ import annotations

import typing as t

import pytest

from tests.lab import domain, onward
from tests.lab.directory import ERROR_DS_DRA_ACCESS_DENIED, RPC_S_SERVER_UNAVAILABLE
from tests.lab.fleet import Fleet, HostException, load_fleet
from tests.lab.topology import Block
from tests.lab.twins import Params, Session, TwinContext
from tests.unit.lab.conftest import host_entry

Document = dict[str, t.Any]
Load = t.Callable[[Document], Fleet]
SPN = "SMTPSVC/ex02.contoso.example"


def sites(fleet: Fleet) -> dict[str, str]:
    return {dc.name: dc.site for dc in fleet.domain_controllers()}


def three_dcs(document: Document) -> Document:
    """clean plus dc03 in Branch, whose links from dc01 and dc02 fail (the Branch site link was down)."""
    document["hosts"].append(
        {
            "name": "dc03",
            "roles": ["dc"],
            "site": "Branch",
            "replication_partners": [
                {"source": "dc01", "last_result": RPC_S_SERVER_UNAVAILABLE, "last_success_age": 86400},
                {"source": "dc02", "last_result": RPC_S_SERVER_UNAVAILABLE, "last_success_age": 86400},
            ],
        }
    )
    return document


def test_a_pull_retries_the_dcs_failing_inbound_links_and_brings_the_changes_in(
    clean_document: Document, load: Load
) -> None:
    fleet = load(three_dcs(clean_document))
    directory = fleet.directory
    directory.write("dc01", "EX02$", remove=[SPN])
    results = directory.sync_all("dc03", push=False, cross_site=True, site_of=sites(fleet))
    assert {(r.destination, r.source, r.ok) for r in results} == {("dc03", "dc01", True), ("dc03", "dc02", True)}
    assert all(link.last_result == 0 and link.consecutive_failures == 0 for link in directory.links_into("dc03"))
    assert SPN not in directory.spns("dc03", "EX02$")
    # A pull moves nothing out: dc02 has not pulled dc01's write.
    assert SPN in directory.spns("dc02", "EX02$")


def test_pushing_outward_makes_every_dc_pull_from_the_home_dc_and_leaves_its_inbound_links_alone(
    clean_document: Document, load: Load
) -> None:
    fleet = load(three_dcs(clean_document))
    directory = fleet.directory
    directory.write("dc03", "EX02$", remove=[SPN])
    results = directory.sync_all("dc03", push=True, cross_site=True, site_of=sites(fleet))
    assert {(r.destination, r.source) for r in results} == {("dc01", "dc03"), ("dc02", "dc03")}
    assert all(SPN not in directory.spns(dc, "EX02$") for dc in directory.dcs)
    assert {link.last_result for link in directory.links_into("dc03")} == {RPC_S_SERVER_UNAVAILABLE}


def test_without_cross_site_only_the_home_site_takes_part(clean_document: Document, load: Load) -> None:
    fleet = load(three_dcs(clean_document))
    results = fleet.directory.sync_all("dc01", push=True, cross_site=False, site_of=sites(fleet))
    assert results == []  # dc01 is alone in HQ


def test_a_persistent_link_fails_again_and_a_denied_sync_changes_nothing(clean_document: Document, load: Load) -> None:
    document = three_dcs(clean_document)
    host_entry(document, "dc03")["replication_partners"][0]["persistent"] = True
    document["directory"] = {"sync_denied": ["dc02"]}
    fleet = load(document)
    directory = fleet.directory
    before = {(link.destination, link.source): link.snapshot() for link in directory.links}
    pulled = directory.sync_all("dc03", push=False, cross_site=True, site_of=sites(fleet))
    assert {(r.source, r.ok, r.result) for r in pulled} == {("dc01", False, 1722), ("dc02", True, 0)}
    assert directory.link("dc03", "dc01").consecutive_failures == 2  # type: ignore[union-attr]
    pushed = directory.sync_all("dc01", push=True, cross_site=True, site_of=sites(fleet))
    denied = [r for r in pushed if r.destination == "dc02"]
    assert [(r.ok, r.result) for r in denied] == [(False, ERROR_DS_DRA_ACCESS_DENIED)]
    assert directory.link("dc02", "dc01").snapshot() == before[("dc02", "dc01")]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("directory_section", "message"),
    [
        ({"sync_denied": ["ex01"]}, "directory.sync_denied: ex01 is not a domain controller"),
        ({"write_deny": ["svc"]}, r"directory: unknown key\(s\) \['write_deny'\]"),
    ],
)
def test_the_directory_section_refuses_what_it_does_not_know(
    directory_section: Document, message: str, clean_document: Document, load: Load
) -> None:
    clean_document["directory"] = directory_section
    with pytest.raises(ValueError, match=message):
        load(clean_document)


def test_every_dc_allows_ldap_and_the_global_catalog_by_default() -> None:
    fleet = load_fleet("contoso")
    for dc in fleet.domain_controllers():
        for port in (domain.LDAP_PORT, domain.GLOBAL_CATALOG_PORT):
            assert fleet.reachable("ex01", dc.name, "TCP", port).ok, (dc.name, port)


DOMAIN_INPUTS = ("domain_server", "domain_username", "domain_password")
CREDENTIALS = {"domain_username": "CONTOSO\\ansible", "domain_password": "Lab-Passw0rd!"}


@pytest.mark.parametrize(
    ("host", "server", "given", "blocked", "error"),
    [
        ("ex01", "dc01.contoso.example", CREDENTIALS, None, None),
        ("ex01", None, CREDENTIALS, None, None),  # serverless: the DC locator's choice, ex01's DC in HQ
        ("dc01", "dc01.contoso.example", {}, None, None),
        ("ex01", "dc01.contoso.example", {}, None, (onward.ADSI_ERROR, onward.ERROR_DS_OPERATIONS_ERROR)),
        ("ex01", "dc09.contoso.example", CREDENTIALS, None, (domain.COM_ERROR, domain.ERROR_DS_SERVER_DOWN)),
        ("ex01", "ex02", CREDENTIALS, None, (domain.COM_ERROR, domain.ERROR_DS_SERVER_DOWN)),
        ("ex01", "dc01", CREDENTIALS, 389, (domain.COM_ERROR, domain.ERROR_DS_SERVER_DOWN)),
        # The network fails first: no credentials never get as far as the second hop.
        ("ex01", "dc01", {}, 389, (domain.COM_ERROR, domain.ERROR_DS_SERVER_DOWN)),
    ],
    ids=[
        "credentials",
        "serverless",
        "on the DC",
        "second hop",
        "no such DC",
        "not a DC",
        "LDAP blocked",
        "blocked first",
    ],
)
def test_binding_a_dc_from_a_host(
    host: str, server: str | None, given: dict[str, t.Any], blocked: int | None, error: tuple[str, int] | None
) -> None:
    fleet = load_fleet("contoso")
    if blocked is not None:
        fleet.network.blocked.append(Block(host, "dc01", "TCP", blocked))
    context = TwinContext(fleet.hosts[host], fleet, Session(auth="ntlm", user="CONTOSO\\ansible"))
    params = Params("test", {"domain_server": None, **given}, DOMAIN_INPUTS)
    if error is None:
        assert domain.bind(context, params, server).name == "dc01"
        return
    with pytest.raises(HostException) as raised:
        domain.bind(context, params, server)
    assert (raised.value.error_type, raised.value.hresult) == error


@pytest.mark.parametrize(
    ("sam", "dn"),
    [
        ("EX01$", "CN=EX01,CN=Computers,DC=contoso,DC=example"),
        ("DC02$", "CN=DC02,OU=Domain Controllers,DC=contoso,DC=example"),
        ("svc-mailrelay", "CN=svc-mailrelay,CN=Users,DC=contoso,DC=example"),
    ],
)
def test_accounts_have_the_distinguished_names_windows_gives_them(sam: str, dn: str) -> None:
    fleet = load_fleet("contoso")
    assert domain.account_dn(fleet, sam) == dn
    assert domain.account_by_dn(fleet, dn.upper()) == sam
