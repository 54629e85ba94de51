"""What host scripts return on Windows, as their twins answer it: the fields, error records and filters a
controller reads, each on a host where it makes a difference."""

from __future__ import annotations

import datetime as dt
import typing as t

import pytest

from ansible_collections.mailflow.remediation.plugins.plugin_utils._host_script import load_host_script, wire_params
from tests.lab.exchange import ProtocolLogLine
from tests.lab.fleet import Fleet, HostException, load_fleet
from tests.lab.twins import TWINS, Params, Session, TwinContext
from tests.lab.twins.kerberos_log_level import KEY, VALUE, powershell_int
from tests.lab.windows import APPLICATION, iso_time

CREDENTIALS = {"domain_username": "CONTOSO\\ansible", "domain_password": "Lab-Passw0rd!"}


def run_twin(fleet: Fleet, host: str, name: str, params: dict[str, t.Any], *, auth: str = "ntlm") -> dict[str, t.Any]:
    """One run of a host script on ``host``, with the parameters as the seam sends them."""
    script = load_host_script(name)
    context = TwinContext(fleet.hosts[host], fleet, Session(auth=auth, user="CONTOSO\\ansible"))
    return TWINS[name].run(context, Params(name, wire_params(script, params), script.contract.inputs))


def test_a_script_sees_every_declared_input_and_only_those() -> None:
    declared = load_host_script("kerberos_log_level").contract.inputs
    params = Params("kerberos_log_level", {"action": "read"}, declared)
    assert len(params) == len(declared) == 2
    assert dict(params) == {"action": "read", "value": None}


@pytest.mark.parametrize(("auth", "delegates"), [("basic", True), ("credssp", True), ("ntlm", False)])
def test_a_credssp_logon_reaches_the_exchange_endpoint_without_explicit_credentials(auth: str, delegates: bool) -> None:
    fleet = load_fleet("contoso")
    params = {"action": "read", "changes": []}
    if delegates:
        assert run_twin(fleet, "ex01", "receive_connectors", params, auth=auth)["connectors"]
        return
    with pytest.raises(HostException) as raised:
        run_twin(fleet, "ex01", "receive_connectors", params, auth=auth)
    assert raised.value.error_type == "System.Management.Automation.Remoting.PSRemotingTransportException"


def test_replication_times_are_stamped_by_the_dcs_own_clock() -> None:
    fleet = load_fleet("contoso")
    dc = fleet.hosts["dc03"]
    dc.clock_offset = 7200.0
    links = fleet.directory.links_into(dc.name)
    assert links

    neighbors = run_twin(fleet, "dc03", "ad_replication", {"action": "read"})["neighbors"]

    by_source = {fleet.hosts[link.source].fqdn: link for link in links}
    for neighbor in neighbors:
        link = by_source[neighbor["source"]]
        assert neighbor["last_attempt"] == iso_time(link.last_attempt + 7200.0)
        assert neighbor["last_success"] == iso_time(link.last_success + 7200.0)


def test_every_chain_candidate_lists_the_exchange_services_its_certificate_is_enabled_for() -> None:
    fleet = load_fleet("contoso")
    host = fleet.hosts["ex01"]
    params = {"action": "read", "names": [], "import": [], **CREDENTIALS}
    result = run_twin(fleet, "ex01", "certificate_chain", params)
    assert result["candidates"]
    services = {entry.thumbprint: sorted(entry.services) or ["None"] for entry in host.certificates.entries("My")}
    for candidate in result["candidates"]:
        assert candidate["services"] == services[candidate["thumbprint"]]
    assert any("SMTP" in candidate["services"] for candidate in result["candidates"])


@pytest.mark.parametrize(
    ("value", "stored"),
    [(None, 0), ("", 0), (True, 1), ("2.5", 2), ("3.5", 4)],
    ids=["null", "empty string", "true", "2.5 to even", "3.5 to even"],
)
def test_setting_loglevel_casts_as_powershell_int_does(value: t.Any, stored: int) -> None:
    fleet = load_fleet("single")
    host = fleet.hosts["ex01"]
    context = TwinContext(host, fleet, Session(auth="ntlm", user="LAB\\ansible"))
    declared = load_host_script("kerberos_log_level").contract.inputs
    assert powershell_int(value) == stored

    params = Params("kerberos_log_level", {"action": "set", "value": value}, declared)
    result = TWINS["kerberos_log_level"].run(context, params)

    assert result == {"key_exists": True, "exists": True, "kind": "DWord", "value": stored}
    assert host.registry_value(KEY, VALUE) == ("DWord", stored)


def evidence(fleet: Fleet, **params: t.Any) -> dict[str, t.Any]:
    defaults = {"samples": 5, "event_queries": [], "protocol_log_status": [], **CREDENTIALS}
    return run_twin(fleet, "ex01", "mailflow_evidence", {**defaults, **params})


def test_an_event_query_with_levels_returns_only_events_of_those_levels() -> None:
    fleet = load_fleet("contoso")
    host = fleet.hosts["ex01"]
    for level in (2, 3):
        host.events.write(APPLICATION, "LabTest", 4242, time=host.now() - 60, level=level, data={"1": "x"})
    query = {"key": "q", "log": APPLICATION, "provider": "LabTest", "ids": [4242], "field": None, "values": []}

    every = evidence(fleet, since_seconds=3600, event_queries=[{**query, "levels": []}])["events"][0]
    errors = evidence(fleet, since_seconds=3600, event_queries=[{**query, "levels": [2]}])["events"][0]

    assert every["count"] == 2
    assert errors["count"] == 1 and [sample["level"] for sample in errors["samples"]] == [2]


@pytest.mark.parametrize("missing", ["key", "log", "provider", "ids", "levels", "field", "values"])
def test_an_event_query_without_a_property_the_script_reads_fails_as_under_strict_mode(missing: str) -> None:
    # Ansible runs the script under Set-StrictMode -Version Latest: $Query.field of an object without it throws.
    query: dict[str, t.Any] = {
        "key": "q",
        "log": APPLICATION,
        "provider": "LabTest",
        "ids": [],
        "levels": [],
        "field": None,
        "values": [],
    }
    del query[missing]
    with pytest.raises(HostException) as raised:
        evidence(load_fleet("contoso"), since_seconds=3600, event_queries=[query])
    assert (raised.value.error_type, raised.value.message) == (
        "System.Management.Automation.PropertyNotFoundException",
        f"The property '{missing}' cannot be found on this object. Verify that the property exists.",
    )


def test_the_protocol_log_counts_the_daily_files_written_to_since_the_window_opened() -> None:
    fleet = load_fleet("contoso")
    host = fleet.hosts["ex01"]
    exchange = host.exchange
    assert exchange is not None
    now = host.now()
    exchange.send_protocol_log.clear()
    for age_days, data in ((5, "550 5.7.64 old"), (2, "250 2.0.0 OK"), (0.001, "550 5.7.64 TenantAttribution")):
        exchange.log_send(
            ProtocolLogLine(now - age_days * 86400, "Outbound to Office 365", "08DC", 1, "a", "b", "<", data)
        )
    since = dt.datetime.fromtimestamp(now - 3 * 86400, dt.UTC).isoformat().replace("+00:00", "Z")

    log = evidence(fleet, since_time=since, protocol_log_status=["5.7.64"])["protocol_log"]

    assert (log["files"], log["count"]) == (2, 1)
    assert [sample["data"] for sample in log["samples"]] == ["550 5.7.64 TenantAttribution"]


def test_the_protocol_log_samples_are_the_newest_lines_first() -> None:
    fleet = load_fleet("contoso")
    host = fleet.hosts["ex01"]
    exchange = host.exchange
    assert exchange is not None
    now = host.now()
    exchange.send_protocol_log.clear()
    for age_minutes in (30, 10, 20, 40):
        exchange.log_send(
            ProtocolLogLine(
                now - age_minutes * 60, "Outbound to Office 365", "08DC", 1, "a", "b", "<", f"550 5.7.64 {age_minutes}"
            )
        )

    log = evidence(fleet, since_seconds=3600, samples=2, protocol_log_status=["5.7.64"])["protocol_log"]

    assert log["count"] == 4
    assert [sample["data"] for sample in log["samples"]] == ["550 5.7.64 10", "550 5.7.64 20"]


def test_a_receive_connector_exchange_cannot_find_fails_alone_with_management_object_not_found() -> None:
    fleet = load_fleet("contoso")
    changes = [{"identity": "EX01\\Nowhere", "auth_mechanism": None, "permission_groups": "ExchangeServers"}]

    result = run_twin(fleet, "ex01", "receive_connectors", {"action": "set", "changes": changes, **CREDENTIALS})

    assert result["failures"] == [
        {
            "identity": "EX01\\Nowhere",
            "type": "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException",
            "message": "The operation couldn't be performed because object 'EX01\\Nowhere' couldn't be found.",
        }
    ]


def test_spn_writes_stop_at_the_first_the_dc_refuses_with_its_adsi_error() -> None:
    fleet = load_fleet("contoso")
    dcs = [dc.name for dc in fleet.domain_controllers()]
    before = {dc: sorted(fleet.directory.spns(dc, "EX03$")) for dc in dcs}
    writes = [
        {"dn": "CN=Nobody,CN=Users,DC=contoso,DC=example", "add": ["SMTP/nobody"]},
        {"dn": "CN=EX03,CN=Computers,DC=contoso,DC=example", "add": ["SMTP/lab-test.contoso.example"]},
    ]

    params = {"action": "write", "spns": ["SMTP/lab-test.contoso.example"], "writes": writes, **CREDENTIALS}
    result = run_twin(fleet, "ex03", "spn_owners", params)

    assert result["refused"] == {
        "dn": "CN=Nobody,CN=Users,DC=contoso,DC=example",
        "type": "System.DirectoryServices.DirectoryServicesCOMException",
        "hresult": -2147016656,  # 0x80072030 ERROR_DS_NO_SUCH_OBJECT
        "extended_error": 8240,
    }
    assert result["owners"] == []
    assert {dc: sorted(fleet.directory.spns(dc, "EX03$")) for dc in dcs} == before
