"""spn: owners forest-wide as the host's DC sees them, duplicates always reported and removed only when told, removals
before additions (a DC refuses an SPN another account holds), the diff per account, refused writes, argument
validation and the second hop."""

from __future__ import annotations

import typing as t

import pytest
from ansible.errors import AnsibleActionFail

from ansible_collections.mailflow.remediation.plugins.action.spn import ActionModule
from tests.lab.directory import Account
from tests.lab.fleet import Fleet, fleet_from_document, load_fleet
from tests.unit.conftest import EmulatedHost, make_action
from tests.unit.lab.conftest import fleet_document, host_entry

FQCN = "mailflow.remediation.spn"
CREDENTIALS = {"domain_username": "CONTOSO\\ansible", "domain_password": "Lab-Passw0rd!"}
EX01 = "SMTPSVC/ex01.contoso.example"
EX03 = "SMTPSVC/ex03.contoso.example"
EX01_DUPLICATE = (
    f"{EX01} is registered on EX01$ and on svc-mailrelay (duplicate: Kerberos cannot tell which account the ticket "
    "is for); remove_duplicates: true removes it from svc-mailrelay"
)
EX03_HELD = (
    f"{EX03} is held by svc-ex03-relay, not by EX03$: a DC refuses to add it to EX03$ while another account holds it "
    "(8647 (ERROR_DS_SPN_VALUE_NOT_UNIQUE_IN_FOREST)); remove_duplicates: true moves it"
)


def on(fleet: Fleet, name: str) -> EmulatedHost:
    emulated = EmulatedHost(fleet.hosts[name])
    emulated.fleet = fleet
    return emulated


def run(emulated: EmulatedHost, args: dict[str, t.Any], *, check_mode: bool = False) -> dict[str, t.Any]:
    action = make_action(ActionModule, args, emulated, check_mode=check_mode, fqcn=FQCN)
    return t.cast(dict, action.run(task_vars={"inventory_hostname": emulated.state.name}))


def views(fleet: Fleet) -> dict[str, dict[str, list[str]]]:
    return {dc: fleet.directory.view(dc) for dc in fleet.directory.dcs}


CONTOSO = [
    pytest.param("ex01", {}, [], [EX01_DUPLICATE], id="ex01 duplicate reported"),
    pytest.param(
        "ex01",
        {"remove_duplicates": True},
        [f"remove {EX01} from svc-mailrelay (duplicate of EX01$)"],
        [],
        id="ex01 duplicate removed",
    ),
    pytest.param("ex03", {}, ["add SMTP/EX03 to EX03$"], [EX03_HELD], id="ex03 held elsewhere, hygiene added"),
    pytest.param(
        "ex03",
        {"remove_duplicates": True},
        [f"remove {EX03} from svc-ex03-relay (it belongs on EX03$)", "add SMTP/EX03 to EX03$", f"add {EX03} to EX03$"],
        [],
        id="ex03 moved from the wrong account",
    ),
]


@pytest.mark.parametrize(("host", "args", "changes", "unfixable"), CONTOSO)
@pytest.mark.parametrize("check_mode", [True, False], ids=["check", "apply"])
def test_contoso_step_3_drift_is_found_the_same_in_check_mode_and_for_real(
    host: str, args: dict[str, t.Any], changes: list[str], unfixable: list[str], check_mode: bool
) -> None:
    fleet = load_fleet("contoso")
    before = views(fleet)
    emulated = on(fleet, host)
    result = run(emulated, {**CREDENTIALS, **args}, check_mode=check_mode)

    assert (result["article"], result["step"]) == ("KB 979174", "3")
    assert result["changes"] == changes and result["changed"] is bool(changes)
    assert result["unfixable"] == unfixable
    assert len(emulated.calls) == (2 if changes and not check_mode else 1)
    if check_mode or not changes:
        assert emulated.changes == [] and views(fleet) == before
        return
    again = run(on(fleet, host), {**CREDENTIALS, **args})
    assert (again["changed"], again["changes"], again["unfixable"]) == (False, [], unfixable)


def test_the_fix_moves_the_spn_and_the_diff_lists_it_per_account() -> None:
    fleet = load_fleet("contoso")
    result = run(on(fleet, "ex03"), {**CREDENTIALS, "remove_duplicates": True})
    dc = fleet.directory
    assert dc.owners("dc03", EX03) == ["EX03$"]
    assert result["added"] == {"EX03$": ["SMTP/EX03", EX03]}
    assert result["removed"] == {"svc-ex03-relay": [EX03]}
    assert result["diff"]["before"] == (
        "as dc03.contoso.example sees them:\nEX03$:\n  SMTP/ex03.contoso.example\n  SMTPSVC/EX03\n"
        f"svc-ex03-relay:\n  {EX03}\n"
    )
    assert result["diff"]["after"] == (
        "as dc03.contoso.example sees them:\nEX03$:\n  SMTP/EX03\n  SMTP/ex03.contoso.example\n  SMTPSVC/EX03\n"
        f"  {EX03}\n"
    )
    # The write went to dc03, the DC ex03 authenticates against: it has it now, the others once it replicates.
    assert EX03 not in dc.spns("dc01", "EX03$")


def duplicated_on_a_user_and_a_second_computer() -> Fleet:
    """clean, plus ex01's SPN on a user account and on ex02's computer account (both older than 2012 R2's check)."""
    document = fleet_document("clean")
    document["accounts"] = [{"name": "svc-smtp", "kind": "user", "spns": [EX01, "HTTP/portal.contoso.example"]}]
    host_entry(document, "ex02")["computer_account"] = {"extra_spns": [EX01]}
    return fleet_from_document("duplicates", document)


def test_a_duplicate_on_a_user_and_a_computer_is_reported_and_only_removed_when_told() -> None:
    fleet = duplicated_on_a_user_and_a_second_computer()
    reported = run(on(fleet, "ex01"), CREDENTIALS)
    assert reported["changed"] is False
    assert reported["duplicates"] == {EX01: ["EX01$", "EX02$", "svc-smtp"]}
    assert reported["unfixable"] == [
        f"{EX01} is registered on EX01$ and on EX02$ and svc-smtp (duplicate: Kerberos cannot tell which account the "
        "ticket is for); remove_duplicates: true removes it from EX02$ and svc-smtp"
    ]
    untouched = views(fleet)

    removed = run(on(fleet, "ex01"), {**CREDENTIALS, "remove_duplicates": True})
    assert removed["changes"] == [
        f"remove {EX01} from EX02$ (duplicate of EX01$)",
        f"remove {EX01} from svc-smtp (duplicate of EX01$)",
    ]
    assert removed["removed"] == {"EX02$": [EX01], "svc-smtp": [EX01]} and removed["added"] == {}
    after = fleet.directory.view("dc01")
    # Exactly those: EX01$ keeps it, the others keep everything else.
    assert after["EX01$"] == untouched["dc01"]["EX01$"]
    assert after["svc-smtp"] == ["HTTP/portal.contoso.example"]
    assert after["EX02$"] == [spn for spn in untouched["dc01"]["EX02$"] if spn != EX01]
    assert removed["owners"][EX01] == ["EX01$"]


def test_a_write_that_has_not_replicated_shows_as_missing_on_the_dc_that_lacks_it() -> None:
    fleet = load_fleet("contoso")  # ex02's SMTPSVC SPNs were added on dc01, and dc03's links are down
    on_dc01 = run(on(fleet, "ex02"), {**CREDENTIALS, "domain_server": "dc01.contoso.example"}, check_mode=True)
    on_dc03 = run(on(fleet, "ex02"), {**CREDENTIALS, "domain_server": "dc03.contoso.example"}, check_mode=True)
    assert (on_dc01["dc"], on_dc01["changed"]) == ("dc01.contoso.example", False)
    assert (on_dc03["dc"], on_dc03["changes"]) == (
        "dc03.contoso.example",
        ["add SMTPSVC/EX02 to EX02$", "add SMTPSVC/ex02.contoso.example to EX02$"],
    )


def test_state_absent_removes_from_the_account_only() -> None:
    fleet = load_fleet("contoso")
    args = {**CREDENTIALS, "state": "absent", "spns": [EX01]}
    result = run(on(fleet, "ex01"), args)
    assert result["changes"] == [f"remove {EX01} from EX01$"]
    assert fleet.directory.owners("dc01", EX01) == ["svc-mailrelay"]


def test_explicit_account_and_spns() -> None:
    fleet = load_fleet("clean")
    fleet.directory.add_account(Account("svc-smtp", "user"))
    args = {**CREDENTIALS, "account": "svc-smtp", "spns": ["SMTPSVC/mail.contoso.example"]}
    result = run(on(fleet, "ex01"), args)
    assert result["changes"] == ["add SMTPSVC/mail.contoso.example to svc-smtp"]
    assert result["account"] == {
        "sam": "svc-smtp",
        "found": True,
        "dn": "CN=svc-smtp,CN=Users,DC=contoso,DC=example",
        "kind": "user",
    }


def test_an_unknown_account_fails_naming_the_option() -> None:
    emulated = on(load_fleet("contoso"), "ex01")
    with pytest.raises(AnsibleActionFail) as raised:
        run(emulated, {**CREDENTIALS, "account": "svc-nobody"})
    assert raised.value.message == (
        "mailflow.remediation.spn: account: there is no account svc-nobody in the forest as dc01.contoso.example "
        "sees it"
    )
    assert emulated.changes == []


def test_a_write_the_account_may_not_make_fails_naming_it_and_writes_nothing() -> None:
    document = fleet_document("contoso")
    document["directory"]["write_denied"] = ["svc-mailrelay"]
    fleet = fleet_from_document("denied", document)
    before = views(fleet)
    emulated = on(fleet, "ex01")
    with pytest.raises(AnsibleActionFail) as raised:
        run(emulated, {**CREDENTIALS, "remove_duplicates": True})
    assert raised.value.message == (
        "mailflow.remediation.spn: dc01.contoso.example refused to change the SPNs of svc-mailrelay (access denied: "
        "the account this task uses may not write its servicePrincipalName); the changes before it were made, the "
        "ones after it were not"
    )
    assert emulated.changes == [] and views(fleet) == before


class Concurrent(EmulatedHost):
    """Someone else registers the SPN on another account between the module's read and its write."""

    def execute(self, cmd: str, sudoable: bool = True, in_data: bytes | None = None, **options: t.Any) -> t.Any:
        if self.calls:
            self.fleet.directory.write("dc03", "svc-ex03-relay", add=["SMTP/EX03"])
        return super().execute(cmd, sudoable, in_data, **options)


def test_a_dc_that_refuses_an_spn_fails_the_task_with_error_8647() -> None:
    fleet = load_fleet("contoso")
    emulated = Concurrent(fleet.hosts["ex03"])
    emulated.fleet = fleet
    with pytest.raises(AnsibleActionFail) as raised:
        run(emulated, CREDENTIALS)
    assert raised.value.message == (
        "mailflow.remediation.spn: dc03.contoso.example refused to change the SPNs of EX03$ (error 8647 "
        "(ERROR_DS_SPN_VALUE_NOT_UNIQUE_IN_FOREST), 0x8007202F); the changes before it were made, the ones after it "
        "were not"
    )


def test_without_credentials_a_member_fails_with_the_second_hop_and_writes_nothing() -> None:
    emulated = on(load_fleet("contoso"), "ex01")
    result = run(emulated, {"remove_duplicates": True})
    assert result["failed"] is True and "this is the second hop" in result["msg"]
    assert emulated.changes == [] and len(emulated.calls) == 1


def test_a_blocked_global_catalog_is_a_clear_failure() -> None:
    fleet = load_fleet("contoso")
    firewall = fleet.hosts["dc01"].firewall
    assert firewall is not None
    rule = firewall.rule("ADDS-LDAPGC-TCP-In")
    assert rule is not None
    rule.enabled = False
    result = run(on(fleet, "ex01"), CREDENTIALS)
    assert result["msg"] == (
        "host script spn_owners failed on the host: System.Runtime.InteropServices.COMException: The server is not "
        "operational."
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"state": "gone"}, "value of state must be one of: present, absent, got: gone"),
        ({"spns": []}, "spns: give at least one SPN, or leave the option out for SMTP/ and SMTPSVC/"),
        ({"spns": ["SMTPSVC"]}, "spns: 'SMTPSVC' is not a service principal name (serviceclass/host[:port])"),
        (
            {"spns": ["SMTP SVC/ex01"]},
            "spns: 'SMTP SVC/ex01' is not a service principal name (serviceclass/host[:port])",
        ),
        (
            {"account": "CONTOSO\\EX01$"},
            "account: 'CONTOSO\\\\EX01$' is not a sAMAccountName (EX01$, svc-mail): at most 20 characters, without a "
            'domain and without any of " / \\ [ ] : ; | = , + * ? < > @',
        ),
        (
            {"state": "absent", "remove_duplicates": True},
            "remove_duplicates: only applies to state=present, not state=absent",
        ),
        (
            {"account": ""},
            "account: '' is not a sAMAccountName (EX01$, svc-mail): at most 20 characters, without a domain and "
            'without any of " / \\ [ ] : ; | = , + * ? < > @',
        ),
        (
            {"account": "svc-exchange-smtp-relay"},
            "account: 'svc-exchange-smtp-relay' is not a sAMAccountName (EX01$, svc-mail): at most 20 characters, "
            'without a domain and without any of " / \\ [ ] : ; | = , + * ? < > @',
        ),
        (
            {"spn": "SMTPSVC/ex01"},
            "Unsupported parameters for (mailflow.remediation.spn) module: spn. Supported parameters include: "
            "account, domain_password, domain_server, domain_username, remove_duplicates, spns, state.",
        ),
    ],
)
def test_bad_input_names_the_option_and_never_reaches_the_host(args: dict[str, t.Any], message: str) -> None:
    emulated = on(load_fleet("contoso"), "ex01")
    with pytest.raises(AnsibleActionFail) as raised:
        run(emulated, args)
    assert raised.value.message == message
    assert emulated.calls == [] and emulated.stdins == []
