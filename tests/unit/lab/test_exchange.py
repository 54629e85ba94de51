"""Set-ReceiveConnector in the lab refuses what Exchange refuses, so a module that passes the lab does not meet a
validation error on a real Mailbox server."""

from __future__ import annotations

import typing as t

import pytest

from tests.lab.exchange import (
    AUTH_MECHANISMS_TYPE,
    CONNECTOR_VALIDATION_ERROR,
    DEFAULT_AUTH_MECHANISM,
    HUB_PERMISSION_GROUPS,
    PARAMETER_TRANSFORMATION_ERROR,
    PERMISSION_GROUPS_TYPE,
    ReceiveConnector,
    set_receive_connector,
)
from tests.lab.fleet import HostException

AUTH_NAMES = "None, Tls, Integrated, BasicAuth, BasicAuthRequireTLS, ExchangeServer, ExternalAuthoritative"
GROUP_NAMES = "None, AnonymousUsers, ExchangeUsers, ExchangeServers, ExchangeLegacyServers, Partners, Custom"
WITHOUT_EXCHANGE_AUTH = ["Tls", "Integrated", "BasicAuth", "BasicAuthRequireTLS"]


def hub_connector(**settings: list[str]) -> ReceiveConnector:
    return ReceiveConnector(
        server="EX01",
        name="Default EX01",
        transport_role="HubTransport",
        bindings=["0.0.0.0:2525"],
        auth_mechanism=settings.get("auth_mechanism", list(DEFAULT_AUTH_MECHANISM)),
        permission_groups=settings.get("permission_groups", list(HUB_PERMISSION_GROUPS)),
    )


@pytest.mark.parametrize(
    ("start", "change", "message"),
    [
        (
            {},
            {"auth_mechanism": ["Integrated", "ExchangeServer"]},
            "The ExchangeServer authentication mechanism requires the Tls authentication mechanism.",
        ),
        (
            {},
            {"auth_mechanism": WITHOUT_EXCHANGE_AUTH},
            "The ExchangeServers permission group requires the ExchangeServer or ExternalAuthoritative "
            "authentication mechanism.",
        ),
        (
            # The receive_connector_auth fix in the wrong order: the group before the mechanism.
            {"auth_mechanism": WITHOUT_EXCHANGE_AUTH, "permission_groups": ["ExchangeUsers"]},
            {"permission_groups": ["ExchangeUsers", "ExchangeServers"]},
            "The ExchangeServers permission group requires the ExchangeServer or ExternalAuthoritative "
            "authentication mechanism.",
        ),
        (
            {},
            {"auth_mechanism": ["Tls", "BasicAuthRequireTLS", "ExchangeServer"]},
            "The BasicAuthRequireTLS authentication mechanism requires the BasicAuth and Tls authentication "
            "mechanisms.",
        ),
        (
            {},
            {"auth_mechanism": [*DEFAULT_AUTH_MECHANISM, "ExternalAuthoritative"]},
            "The ExternalAuthoritative authentication mechanism can only be combined with Tls.",
        ),
        (
            {"permission_groups": ["AnonymousUsers"]},
            {"auth_mechanism": ["Tls", "ExternalAuthoritative"]},
            "The ExternalAuthoritative authentication mechanism requires the ExchangeServers permission group.",
        ),
    ],
    ids=[
        "exchangeserver-without-tls",
        "exchangeservers-without-exchangeserver",
        "group-before-mechanism",
        "basicauthrequiretls-without-basicauth",
        "externalauthoritative-with-others",
        "externalauthoritative-without-exchangeservers",
    ],
)
def test_set_receive_connector_refuses_what_exchange_refuses_and_changes_nothing(
    start: dict[str, list[str]], change: dict[str, list[str]], message: str
) -> None:
    connector = hub_connector(**start)
    before = (list(connector.auth_mechanism), list(connector.permission_groups))
    with pytest.raises(HostException) as raised:
        set_receive_connector(connector, **change)
    assert (raised.value.error_type, raised.value.message) == (CONNECTOR_VALIDATION_ERROR, message)
    assert (connector.auth_mechanism, connector.permission_groups) == before


@pytest.mark.parametrize(
    ("parameter", "value", "message"),
    [
        (
            "auth_mechanism",
            ["Tls", "Kerberos"],
            "Cannot process argument transformation on parameter 'AuthMechanism'. Cannot convert value \"Kerberos\" "
            f'to type "{AUTH_MECHANISMS_TYPE}". Error: "Unable to match the identifier name Kerberos to a valid '
            f'enumerator name. Specify one of the following enumerator names and try again:\r\n{AUTH_NAMES}"',
        ),
        (
            "permission_groups",
            "ExchangeUsers, ExchangeServer",  # the mechanism's name where a group belongs
            "Cannot process argument transformation on parameter 'PermissionGroups'. Cannot convert value "
            f'"ExchangeServer" to type "{PERMISSION_GROUPS_TYPE}". Error: "Unable to match the identifier name '
            "ExchangeServer to a valid enumerator name. Specify one of the following enumerator names and try "
            f'again:\r\n{GROUP_NAMES}"',
        ),
    ],
    ids=["unknown-mechanism", "unknown-group"],
)
def test_unknown_enum_names_fail_parameter_binding(parameter: str, value: t.Any, message: str) -> None:
    connector = hub_connector()
    with pytest.raises(HostException) as raised:
        set_receive_connector(connector, **{parameter: value})
    assert (raised.value.error_type, raised.value.message) == (PARAMETER_TRANSFORMATION_ERROR, message)


@pytest.mark.parametrize(
    ("start", "change", "auth", "groups", "changed"),
    [
        (
            # The fix in one call: mechanism and group together.
            {"auth_mechanism": WITHOUT_EXCHANGE_AUTH, "permission_groups": ["ExchangeUsers"]},
            {
                "auth_mechanism": [*WITHOUT_EXCHANGE_AUTH, "ExchangeServer"],
                "permission_groups": ["ExchangeUsers", "ExchangeServers"],
            },
            list(DEFAULT_AUTH_MECHANISM),
            ["ExchangeUsers", "ExchangeServers"],
            True,
        ),
        (
            # Names compare case-insensitively and come back in Exchange's order; None beside others is no flag.
            {},
            {"auth_mechanism": "exchangeserver, TLS, None", "permission_groups": ["exchangeservers"]},
            ["Tls", "ExchangeServer"],
            ["ExchangeServers"],
            True,
        ),
        ({}, {"permission_groups": list(reversed(HUB_PERMISSION_GROUPS))}, None, None, False),
        (
            {"permission_groups": ["AnonymousUsers"]},
            {"auth_mechanism": []},
            ["None"],
            ["AnonymousUsers"],
            True,
        ),
    ],
    ids=["mechanism-and-group-together", "normalised", "unchanged", "no-authentication"],
)
def test_set_receive_connector_saves_what_exchange_accepts(
    start: dict[str, list[str]],
    change: dict[str, t.Any],
    auth: list[str] | None,
    groups: list[str] | None,
    changed: bool,
) -> None:
    connector = hub_connector(**start)
    expected = (
        auth if auth is not None else list(connector.auth_mechanism),
        groups if groups is not None else list(connector.permission_groups),
    )
    assert set_receive_connector(connector, **change) is changed
    assert (connector.auth_mechanism, connector.permission_groups) == expected
