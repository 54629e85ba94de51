"""receive_connector_auth: adds only what is missing, in values Exchange accepts; refusals and absent Exchange."""

from __future__ import annotations

import typing as t

import pytest
from ansible.errors import AnsibleActionFail

from ansible_collections.mailflow.remediation.plugins.action.receive_connector_auth import ActionModule
from tests.lab import exchange as lab_exchange
from tests.lab.fleet import Fleet
from tests.unit.conftest import make_action
from tests.unit.plugins.action.fleet_hosts import CREDENTIALS, emulate, fleet_of, host_entry, run

FQCN = "mailflow.remediation.receive_connector_auth"
DEFAULT_AUTH = ["Tls", "Integrated", "BasicAuth", "BasicAuthRequireTLS", "ExchangeServer"]
HUB_GROUPS = ["ExchangeUsers", "ExchangeServers", "ExchangeLegacyServers"]


def connectors(fleet: Fleet, name: str, args: dict[str, t.Any] | None = None, **options: t.Any) -> tuple[dict, t.Any]:
    return run(ActionModule, fleet, name, {**CREDENTIALS, **(args or {})}, fqcn=FQCN, **options)


def state_of(fleet: Fleet, host: str, connector: str) -> tuple[list[str], list[str]]:
    exchange = fleet.hosts[host].exchange
    assert exchange is not None
    found = exchange.connector(connector)
    assert found is not None
    return found.auth_mechanism, found.permission_groups


CONTOSO = {
    "ex01": [
        "EX01\\Default EX01: AuthMechanism add ExchangeServer",
        "EX01\\Default EX01: PermissionGroups add ExchangeServers",
    ],
    "ex02": ["EX02\\Default EX02: PermissionGroups add ExchangeServers"],
    "ex03": [],
}


@pytest.mark.parametrize("name", sorted(CONTOSO))
@pytest.mark.parametrize("check_mode", [True, False], ids=["check", "apply"])
def test_contoso_reports_exactly_its_plants(name: str, check_mode: bool) -> None:
    fleet = fleet_of("contoso")
    before = state_of(fleet, name, f"Default {name.upper()}")
    result, host = connectors(fleet, name, check_mode=check_mode)
    assert (result["article"], result["step"]) == ("KB 979174", "6")
    assert result["changes"] == CONTOSO[name] and result["changed"] is bool(CONTOSO[name])
    assert result["unfixable"] == []
    assert len(host.calls) == (2 if CONTOSO[name] and not check_mode else 1)
    assert [item["identity"] for item in result["connectors"]] == [f"{name.upper()}\\Default {name.upper()}"]
    if check_mode or not CONTOSO[name]:
        assert host.changes == [] and state_of(fleet, name, f"Default {name.upper()}") == before
    else:
        auth, groups = state_of(fleet, name, f"Default {name.upper()}")
        assert "ExchangeServer" in auth and "ExchangeServers" in groups
        # Every other value as it was: nothing removed, only the missing names added.
        assert set(before[0]) <= set(auth) and set(before[1]) <= set(groups)
        assert connectors(fleet, name)[0]["changed"] is False


@pytest.mark.parametrize(
    ("auth", "groups", "after_auth", "after_groups", "changes"),
    [
        pytest.param(
            ["Integrated"],
            ["ExchangeUsers"],
            ["Tls", "Integrated", "ExchangeServer"],
            ["ExchangeUsers", "ExchangeServers"],
            [
                "AuthMechanism add Tls, ExchangeServer (Exchange requires Tls with ExchangeServer)",
                "PermissionGroups add ExchangeServers",
            ],
            id="Tls comes with ExchangeServer",
        ),
        pytest.param(
            ["None"],
            ["None"],
            ["Tls", "ExchangeServer"],
            ["ExchangeServers"],
            [
                "AuthMechanism add Tls, ExchangeServer (Exchange requires Tls with ExchangeServer)",
                "PermissionGroups add ExchangeServers",
            ],
            id="None gives way",
        ),
        pytest.param(
            ["Tls", "ExchangeServer"],
            ["AnonymousUsers", "Partners"],
            ["Tls", "ExchangeServer"],
            ["AnonymousUsers", "ExchangeServers", "Partners"],
            ["PermissionGroups add ExchangeServers"],
            id="only the group",
        ),
        pytest.param(DEFAULT_AUTH, HUB_GROUPS, DEFAULT_AUTH, HUB_GROUPS, [], id="nothing missing"),
    ],
)
def test_only_what_is_missing_is_added_in_values_exchange_accepts(
    auth: list[str], groups: list[str], after_auth: list[str], after_groups: list[str], changes: list[str]
) -> None:
    fleet = fleet_of("clean")
    exchange = fleet.hosts["ex01"].exchange
    assert exchange is not None
    connector = exchange.connector("Default EX01")
    assert connector is not None
    connector.auth_mechanism, connector.permission_groups = list(auth), list(groups)
    result = connectors(fleet, "ex01")[0]
    assert result["changes"] == [f"EX01\\Default EX01: {change}" for change in changes]
    assert state_of(fleet, "ex01", "Default EX01") == (after_auth, after_groups)


def plant(document: dict[str, t.Any], **connector: t.Any) -> None:
    host_entry(document, "ex01")["exchange"] = {"receive_connectors": [connector]}


@pytest.mark.parametrize(
    ("connector", "unfixable", "changes"),
    [
        (
            {
                "name": "Default EX01",
                "auth_mechanism": ["Tls", "ExternalAuthoritative"],
                "permission_groups": ["ExchangeServers"],
            },
            [
                "EX01\\Default EX01 is externally secured (AuthMechanism ExternalAuthoritative), which Exchange "
                "does not combine with ExchangeServer; decide whether it should take mail from other Exchange "
                "servers at all"
            ],
            [],
        ),
        (
            {"name": "Default EX01", "enabled": False, "permission_groups": ["ExchangeUsers"]},
            [
                "EX01\\Default EX01 is disabled: other Exchange servers cannot deliver through it; enable it "
                "(Set-ReceiveConnector -Enabled $true) if that is not on purpose"
            ],
            ["EX01\\Default EX01: PermissionGroups add ExchangeServers"],
        ),
        (
            {"name": "Default EX01", "bindings": ["0.0.0.0:2526"]},
            [
                "EX01: no receive connector of the Transport service (HubTransport) listens on port 2525: other "
                "Exchange servers cannot deliver to EX01; restore the Default EX01 connector, or name the connector "
                "that takes "
                "their mail in 'connectors'"
            ],
            [],
        ),
    ],
    ids=["externally secured", "disabled", "nothing on 2525"],
)
def test_what_it_does_not_change_is_unfixable(
    connector: dict[str, t.Any], unfixable: list[str], changes: list[str]
) -> None:
    fleet = fleet_of("clean", change=lambda document: plant(document, **connector))
    result = connectors(fleet, "ex01")[0]
    assert result["unfixable"] == unfixable
    assert result["changes"] == changes


def test_given_connectors_by_name_or_identity_and_an_unknown_one_fails_naming_what_there_is() -> None:
    fleet = fleet_of("contoso")
    result = connectors(
        fleet, "ex01", {"connectors": ["default frontend ex01", "EX01\\Default EX01"]}, check_mode=True
    )[0]
    # In the server's order; the frontend connector (port 25) is managed too because it was named.
    assert [item["identity"] for item in result["connectors"]] == ["EX01\\Default EX01", "EX01\\Default Frontend EX01"]
    assert result["changes"] == [
        "EX01\\Default EX01: AuthMechanism add ExchangeServer",
        "EX01\\Default EX01: PermissionGroups add ExchangeServers",
    ]
    with pytest.raises(AnsibleActionFail) as raised:
        connectors(fleet, "ex01", {"connectors": ["Relay"]})
    assert raised.value.message == (
        "connectors: EX01 has no receive connector 'Relay' (it has: EX01\\Default EX01, EX01\\Default Frontend EX01)"
    )


def test_a_host_without_exchange_fails_clearly() -> None:
    with pytest.raises(AnsibleActionFail) as raised:
        connectors(fleet_of("contoso"), "dc01")
    assert raised.value.message == (
        "mailflow.remediation.receive_connector_auth: Exchange Server 2013 or later is not installed on this host "
        "(no HKLM\\SOFTWARE\\Microsoft\\ExchangeServer\\v15\\Setup); run it on Mailbox servers (the inventory group "
        "exchange_servers)"
    )


def test_without_credentials_over_ntlm_the_exchange_session_names_the_second_hop() -> None:
    result, host = run(ActionModule, fleet_of("contoso"), "ex01", {}, fqcn=FQCN)
    assert result["failed"] is True
    assert result["error_type"] == "System.Management.Automation.Remoting.PSRemotingTransportException"
    assert "could not authenticate from the host to Exchange" in result["msg"] and "second hop" in result["msg"]
    assert host.changes == []


def refuse_everything(monkeypatch: pytest.MonkeyPatch, message: str) -> None:
    # A rule of Exchange's the module did not foresee: the refusal must surface, with Exchange's exception type.
    def validate(auth_mechanism: t.Sequence[str], permission_groups: t.Sequence[str]) -> None:
        lab_exchange._refuse(lab_exchange.CONNECTOR_VALIDATION_ERROR, message)

    monkeypatch.setattr(lab_exchange, "validate_receive_connector", validate)


def test_a_refusal_by_exchange_fails_with_its_type_and_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    fleet = fleet_of("contoso")
    before = state_of(fleet, "ex02", "Default EX02")
    refuse_everything(
        monkeypatch, "The ExchangeServer authentication mechanism requires the Tls authentication mechanism."
    )
    host = emulate(fleet, "ex02")
    with pytest.raises(AnsibleActionFail) as raised:
        make_action(ActionModule, CREDENTIALS, host, fqcn=FQCN).run(task_vars={})
    assert raised.value.message == (
        "Exchange refused Set-ReceiveConnector for EX02\\Default EX02: "
        "Microsoft.Exchange.Data.DataValidationException: The ExchangeServer authentication mechanism requires "
        "the Tls authentication mechanism.; nothing was changed"
    )
    assert host.changes == [] and state_of(fleet, "ex02", "Default EX02") == before


def test_a_swedish_refusal_reaches_the_controller_intact(monkeypatch: pytest.MonkeyPatch) -> None:
    fleet = fleet_of("contoso", locale="sv-SE")
    refuse_everything(
        monkeypatch, "The ExchangeServer authentication mechanism requires the Tls authentication mechanism."
    )
    with pytest.raises(AnsibleActionFail) as raised:
        connectors(fleet, "ex02")
    assert "DataValidationException: Autentiseringsmekanismen ExchangeServer kräver autentiseringsmekanismen Tls." in (
        raised.value.message
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"connectors": []}, "connectors: give at least one connector name or identity, or leave it out"),
        ({"connectors": ["Default EX01", "  "]}, "connectors: a connector name or identity cannot be empty"),
        ({"connectors": "Default EX01"}, None),
        ({"domain_password": "x"}, "parameters are required together: domain_username, domain_password"),
        (
            {"auth_mechanism": ["ExchangeServer"]},
            "Unsupported parameters for (mailflow.remediation.receive_connector_auth) module: auth_mechanism. "
            "Supported parameters include: connectors, domain_password, domain_server, domain_username.",
        ),
    ],
)
def test_bad_input_names_the_option_and_never_reaches_the_host(args: dict[str, t.Any], message: str | None) -> None:
    host = emulate(fleet_of("contoso"), "ex01")
    action = make_action(ActionModule, args, host, fqcn=FQCN, check_mode=True)
    if message is None:
        # A single name is a list of one, as Ansible converts it: not an error.
        assert action.run(task_vars={})["failed"] is True  # no credentials: the second hop, after one round trip
        return
    with pytest.raises(AnsibleActionFail) as raised:
        action.run(task_vars={})
    assert raised.value.message == message
    assert host.calls == [] and host.command_lines == []


@pytest.mark.parametrize("locale", ["sv-SE", "de-DE"])
@pytest.mark.parametrize("name", sorted(CONTOSO))
def test_a_swedish_or_german_host_gives_the_same_results(locale: str, name: str) -> None:
    english = connectors(fleet_of("contoso"), name)[0]
    localized = connectors(fleet_of("contoso", locale=locale), name)[0]
    for key in ("changed", "changes", "unfixable", "connectors", "found"):
        assert localized[key] == english[key], key
