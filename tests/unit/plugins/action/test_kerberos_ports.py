"""kerberos_ports against the contoso fleet and its variants: probes, a DC's own rules, what cannot be fixed."""

from __future__ import annotations

import typing as t

import pytest
from ansible.errors import AnsibleActionFail

from ansible_collections.mailflow.remediation.plugins.action.kerberos_ports import ActionModule
from tests.lab.fleet import Fleet
from tests.unit.conftest import make_action
from tests.unit.plugins.action.fleet_hosts import CREDENTIALS, emulate, fleet_of, host_entry, run

FQCN = "mailflow.remediation.kerberos_ports"
NETWORK_BLOCK_EX01_DC03 = (
    "ex01 -> dc03 TCP/88: no answer although dc03's firewall allows it: a network firewall between them blocks it "
    "(for its owner to open; this module never changes it)"
)


def dc02_udp(source: str) -> str:
    return (
        f"{source} -> dc02 UDP/88: no answer: dc02's own firewall: closed: rule KerberosKeyDistributionCenter-UDP-In "
        "disabled; fix it by running mailflow.remediation.kerberos_ports on dc02"
    )


def ports(fleet: Fleet, name: str, args: dict[str, t.Any] | None = None, **options: t.Any) -> tuple[dict, t.Any]:
    return run(ActionModule, fleet, name, {**CREDENTIALS, **(args or {})}, fqcn=FQCN, **options)


# What contoso plants for step 4, host by host: (changes, unfixable).
CONTOSO = {
    "ex01": ([], [dc02_udp("ex01"), NETWORK_BLOCK_EX01_DC03]),
    "ex02": ([], [dc02_udp("ex02")]),
    "ex03": ([], [dc02_udp("ex03")]),
    "dc01": ([], []),
    "dc02": (["dc02: enable inbound rule KerberosKeyDistributionCenter-UDP-In (UDP/88)"], []),
    "dc03": (["dc03: enable inbound rule KerberosKeyDistributionCenterPCR-UDP-In (UDP/464)"], []),
}


@pytest.mark.parametrize("name", sorted(CONTOSO))
@pytest.mark.parametrize("check_mode", [True, False], ids=["check", "apply"])
def test_contoso_reports_exactly_its_plants_and_check_mode_writes_nothing(name: str, check_mode: bool) -> None:
    fleet = fleet_of("contoso")
    result, host = ports(fleet, name, check_mode=check_mode)
    changes, unfixable = CONTOSO[name]
    assert (result["article"], result["step"]) == ("KB 979174", "4")
    assert result["changes"] == changes and result["changed"] is bool(changes)
    assert result["unfixable"] == unfixable
    assert result.get("warnings", []) == [f"cannot be fixed by this module: {item}" for item in unfixable]
    assert (result["diff"]["before"] != result["diff"]["after"]) is bool(changes)
    # One round trip to read; one more only for a real change.
    assert len(host.calls) == (2 if changes and not check_mode else 1)
    if check_mode or not changes:
        assert host.changes == []
    else:
        assert [change["path"] for change in host.changes] == [
            f"host/firewall/rules/{1 if name == 'dc02' else 3}/enabled"
        ]


def test_the_network_block_is_never_fixed_and_the_dc_fix_clears_the_firewall_cause() -> None:
    fleet = fleet_of("contoso")
    for dc in ("dc02", "dc03"):
        assert ports(fleet, dc)[0]["changed"] is True
        again = ports(fleet, dc)[0]
        assert again["changed"] is False and again["changes"] == [] and again["unfixable"] == []
    after = {name: ports(fleet, name)[0] for name in ("ex01", "ex02", "ex03")}
    assert {name: result["unfixable"] for name, result in after.items()} == {
        "ex01": [NETWORK_BLOCK_EX01_DC03],
        "ex02": [],
        "ex03": [],
    }
    assert all(result["changed"] is False for result in after.values())
    assert not fleet.reachable("ex01", "dc03", "TCP", 88).ok  # someone else's firewall, untouched


def test_a_disabled_kdc_rule_is_enabled_not_duplicated() -> None:
    fleet = fleet_of("contoso")
    firewall = fleet.hosts["dc02"].firewall
    assert firewall is not None
    names_before = [rule.name for rule in firewall.rules]
    result, host = ports(fleet, "dc02")
    assert [rule.name for rule in firewall.rules] == names_before
    rule = firewall.rule("KerberosKeyDistributionCenter-UDP-In")
    assert rule is not None and rule.enabled
    assert host.calls[-1] == ("kerberos_firewall", {"enable": ["KerberosKeyDistributionCenter-UDP-In"], "create": []})
    assert "  UDP/88: allowed by rule KerberosKeyDistributionCenter-UDP-In\n" in result["diff"]["after"]
    assert "  UDP/88: closed: rule KerberosKeyDistributionCenter-UDP-In disabled\n" in result["diff"]["before"]


def without_udp_kdc_rule(document: dict[str, t.Any]) -> None:
    # A DC whose default UDP 88 rule was deleted: a Block rule named like it would be planted the same way.
    host_entry(document, "dc01")["firewall"] = {
        "inbound": [{"name": "KerberosKeyDistributionCenter-UDP-In", "action": "Block", "enabled": False}]
    }


def test_a_port_that_no_rule_opens_gets_the_collections_own_rule_once() -> None:
    fleet = fleet_of("clean", change=without_udp_kdc_rule)
    result = ports(fleet, "dc01")[0]
    assert result["changes"] == [
        "dc01: add inbound rule mailflow.remediation-Kerberos-UDP-88-In (UDP/88): no rule opens it"
    ]
    firewall = fleet.hosts["dc01"].firewall
    assert firewall is not None
    added = firewall.rule("mailflow.remediation-Kerberos-UDP-88-In")
    assert added is not None and (added.protocol, added.local_port, added.enabled) == ("UDP", 88, True)
    assert fleet.reachable("ex01", "dc01", "UDP", 88).ok
    assert ports(fleet, "dc01")[0]["changed"] is False


def test_check_mode_shows_the_rule_it_would_add_as_a_real_run_leaves_it() -> None:
    fleet = fleet_of("clean", change=without_udp_kdc_rule)
    firewall = fleet.hosts["dc01"].firewall
    assert firewall is not None
    predicted = ports(fleet, "dc01", check_mode=True)[0]
    assert firewall.rule("mailflow.remediation-Kerberos-UDP-88-In") is None  # check mode wrote nothing
    added = [rule for rule in predicted["firewall"]["rules"] if rule["name"].startswith("mailflow.remediation-")]
    # What an administrator finds in Windows Defender Firewall, by its display name, before letting it be added.
    assert added == [
        {
            "name": "mailflow.remediation-Kerberos-UDP-88-In",
            "display_name": "Kerberos (UDP 88 in), added by mailflow.remediation",
            "protocol": "UDP",
            "local_ports": ["88"],
            "enabled": True,
            "action": "Allow",
            "source": "Local",
        }
    ]
    assert ports(fleet, "dc01")[0]["firewall"] == predicted["firewall"]


def test_a_block_rule_is_reported_not_overridden() -> None:
    def block(document: dict[str, t.Any]) -> None:
        host_entry(document, "dc01")["firewall"] = {
            "inbound": [{"name": "Block-Kerberos-UDP", "protocol": "UDP", "port": 88, "action": "Block"}]
        }

    fleet = fleet_of("clean", change=block)
    result, host = ports(fleet, "dc01")
    assert result["changed"] is False and host.changes == []
    assert result["unfixable"] == [
        "dc01: inbound UDP/88 is blocked by the rule Block-Kerberos-UDP (action Block), which this module does not "
        "override; disable or remove it if it is not on purpose"
    ]
    seen_from_ex01 = ports(fleet, "ex01")[0]["unfixable"]
    assert seen_from_ex01 == [
        "ex01 -> dc01 UDP/88: no answer: dc01's own firewall: blocked by rule Block-Kerberos-UDP; fix it by running "
        "mailflow.remediation.kerberos_ports on dc01"
    ]


def test_a_udp_only_block_is_found_while_tcp_gets_through() -> None:
    def block_udp(document: dict[str, t.Any]) -> None:
        document["network"] = {"blocked": [{"from": "ex01", "to": "dc01", "protocol": "UDP", "port": 88}]}

    fleet = fleet_of("clean", change=block_udp)
    result = ports(fleet, "ex01")[0]
    assert result["unfixable"] == [
        "ex01 -> dc01 UDP/88: no answer although dc01's firewall allows it: a network firewall between them blocks it "
        "(for its owner to open; this module never changes it)"
    ]
    to_dc01 = {(p["protocol"], p["port"]): p["result"] for p in result["probes"] if p["destination"].startswith("dc01")}
    assert to_dc01 == {("TCP", 88): "open", ("TCP", 464): "open", ("UDP", 88): "no_answer"}
    assert result["changed"] is False


def test_a_dc_whose_kdc_is_stopped_refuses_and_a_name_that_does_not_resolve_is_said_so() -> None:
    fleet = fleet_of("clean")
    fleet.hosts["dc02"].stop_service("Kdc")
    result = ports(fleet, "ex01", {"domain_controllers": ["dc02", "dc09.contoso.example"]})[0]
    assert result["unfixable"] == [
        "ex01 -> dc02 TCP/88: refused, nothing listens there; check that the Kerberos Key Distribution Center "
        "service runs on dc02",
        "ex01 -> dc02 TCP/464: refused, nothing listens there; check that the Kerberos Key Distribution Center "
        "service runs on dc02",
        "ex01 -> dc02 UDP/88: refused, nothing listens there; check that the Kerberos Key Distribution Center "
        "service runs on dc02",
        "ex01 -> dc09 TCP/88: the name dc09.contoso.example does not resolve in DNS",
        "ex01 -> dc09 TCP/464: the name dc09.contoso.example does not resolve in DNS",
        "ex01 -> dc09 UDP/88: the name dc09.contoso.example does not resolve in DNS",
    ]


def test_what_was_found_says_each_port_of_a_stopped_kdc_refused() -> None:
    fleet = fleet_of("clean")
    fleet.hosts["dc02"].stop_service("Kdc")
    result = ports(fleet, "ex01", {"domain_controllers": ["dc02", "dc09.contoso.example"]}, check_mode=True)[0]
    expected = (
        "ex01 -> dc02: TCP/88 refused, TCP/464 refused, UDP/88 refused\n"
        "ex01 -> dc09.contoso.example: TCP/88 name not resolved, TCP/464 name not resolved, UDP/88 name not resolved"
    )
    assert result["found"] == expected
    assert result["diff"]["before"] == result["diff"]["after"] == f"{expected}\n"


def test_given_dcs_need_no_directory_and_an_unreadable_dc_firewall_says_what_to_do() -> None:
    fleet = fleet_of("contoso")
    # No credentials: the probes need none, but the DC's rules cannot be read over CIM from an NTLM logon.
    result = run(ActionModule, fleet, "ex02", {"domain_controllers": ["dc02"]}, fqcn=FQCN)[0]
    assert result["unfixable"] == [
        "ex02 -> dc02 UDP/88: no answer, and dc02's inbound rules could not be read from here "
        "(Microsoft.Management.Infrastructure.CimException: WinRM cannot process the request. The following error "
        "with errorcode 0x8009030e occurred while using Kerberos authentication: A specified logon session does not "
        "exist. It may already have been terminated.); fix it by running mailflow.remediation.kerberos_ports on "
        "dc02, and if its rules allow it, a network firewall between them blocks it"
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"timeout": 0}, "timeout: must be from 1 to 60 seconds, not 0"),
        ({"timeout": 61}, "timeout: must be from 1 to 60 seconds, not 61"),
        (
            {"timeout": "soon"},
            "argument 'timeout' is of type str and we were unable to convert to int: \"'soon'\" cannot be converted "
            "to an int",
        ),
        ({"domain_controllers": []}, "domain_controllers: give at least one domain controller, or leave it out"),
        ({"domain_controllers": ["dc01", " "]}, "domain_controllers: ' ' is not a host name"),
        ({"domain_controllers": ["dc 01"]}, "domain_controllers: 'dc 01' is not a host name"),
        ({"domain_username": "CONTOSO\\ansible"}, "parameters are required together: domain_username, domain_password"),
        (
            {"ports": [88]},
            "Unsupported parameters for (mailflow.remediation.kerberos_ports) module: ports. Supported parameters "
            "include: domain_controllers, domain_password, domain_server, domain_username, timeout.",
        ),
    ],
)
def test_bad_input_names_the_option_and_never_reaches_the_host(args: dict[str, t.Any], message: str) -> None:
    host = emulate(fleet_of("contoso"), "ex01")
    with pytest.raises(AnsibleActionFail) as raised:
        make_action(ActionModule, args, host, fqcn=FQCN).run(task_vars={})
    assert raised.value.message == message
    assert host.calls == [] and host.command_lines == []


def test_without_credentials_over_ntlm_the_directory_lookup_names_the_second_hop() -> None:
    result, host = run(ActionModule, fleet_of("contoso"), "ex01", {}, fqcn=FQCN)
    assert result["failed"] is True
    assert result["msg"].startswith(
        "mailflow.remediation.kerberos_ports could not authenticate from the host to Active Directory "
        "(System.DirectoryServices.DirectoryServicesCOMException: An operations error occurred.); this is the second "
        "hop"
    )
    assert host.changes == []


def test_an_unreachable_domain_server_fails_clearly_and_writes_nothing() -> None:
    result, host = ports(fleet_of("contoso"), "ex01", {"domain_server": "dc09.contoso.example"})
    assert result["failed"] is True and result["script"] == "kerberos_ports"
    assert result["msg"] == (
        "host script kerberos_ports failed on the host: "
        "System.DirectoryServices.ActiveDirectory.ActiveDirectoryObjectNotFoundException: The specified domain "
        "controller dc09.contoso.example does not exist or could not be contacted."
    )
    assert host.changes == []


def test_access_denied_on_the_firewall_fails_and_writes_nothing() -> None:
    fleet = fleet_of("contoso")
    firewall = fleet.hosts["dc02"].firewall
    assert firewall is not None
    firewall.write_denied = True
    result, host = ports(fleet, "dc02")
    assert result["failed"] is True and result["script"] == "kerberos_firewall"
    assert result["msg"] == (
        "host script kerberos_firewall failed on the host: Microsoft.Management.Infrastructure.CimException: "
        "Access is denied."
    )
    assert host.changes == []


@pytest.mark.parametrize("locale", ["sv-SE", "de-DE"])
@pytest.mark.parametrize("name", sorted(CONTOSO))
def test_a_swedish_or_german_host_gives_the_same_results(locale: str, name: str) -> None:
    english = ports(fleet_of("contoso"), name)[0]
    localized_fleet = fleet_of("contoso", locale=locale)
    localized = ports(localized_fleet, name)[0]
    for key in ("changed", "changes", "unfixable", "probes", "found"):
        assert localized[key] == english[key], key
    if localized["firewall"] is not None:
        # Only what is for people differs: the rules' display names.
        assert [rule["name"] for rule in localized["firewall"]["rules"]] == [
            rule["name"] for rule in english["firewall"]["rules"]
        ]
        assert {rule["display_name"] for rule in localized["firewall"]["rules"]} != {
            rule["display_name"] for rule in english["firewall"]["rules"]
        }


def test_a_non_ascii_exception_message_reaches_the_controller_intact() -> None:
    fleet = fleet_of("contoso", locale="sv-SE")
    firewall = fleet.hosts["dc02"].firewall
    assert firewall is not None
    firewall.write_denied = True
    result, host = ports(fleet, "dc02")
    assert result["msg"].endswith("Microsoft.Management.Infrastructure.CimException: Åtkomst nekad.")
    # The bootstrap escapes it (the console code page would garble it): ASCII on the wire.
    assert host.changes == []


def test_a_dc_probing_itself_is_not_stopped_by_its_own_inbound_rules() -> None:
    fleet = fleet_of("contoso")
    result = ports(fleet, "dc02", {"domain_controllers": ["dc02", "dc01"]}, check_mode=True)[0]
    assert {(p["destination"], p["protocol"], p["result"]) for p in result["probes"] if p["protocol"] == "UDP"} == {
        ("dc02", "UDP", "open"),
        ("dc01", "UDP", "open"),
    }
    assert result["changes"] == ["dc02: enable inbound rule KerberosKeyDistributionCenter-UDP-In (UDP/88)"]
