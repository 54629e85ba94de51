"""The second hop as the lab models it: who may reach a DC's directory or the Exchange endpoint from a host."""

from __future__ import annotations

import typing as t

import pytest

from tests.lab import onward
from tests.lab.fleet import HostException, load_fleet
from tests.lab.twins import Params, Session, TwinContext

DOMAIN_INPUTS = ("domain_server", "domain_username", "domain_password")


def context(host: str, auth: str) -> TwinContext:
    fleet = load_fleet("contoso")
    return TwinContext(fleet.hosts[host], fleet, Session(auth=auth, user="CONTOSO\\ansible"))


def params(**values: t.Any) -> Params:
    return Params("test", values, DOMAIN_INPUTS)


@pytest.mark.parametrize(
    ("host", "auth", "given", "error"),
    [
        (
            "ex01",
            "ntlm",
            {},
            ("System.DirectoryServices.DirectoryServicesCOMException", onward.ERROR_DS_OPERATIONS_ERROR),
        ),
        ("ex01", "basic", {}, None),
        ("dc01", "ntlm", {}, None),
        ("ex01", "ntlm", {"domain_username": "CONTOSO\\ansible", "domain_password": "Lab-Passw0rd!"}, None),
        (
            "ex01",
            "ntlm",
            {"domain_username": "CONTOSO\\ansible", "domain_password": "wrong"},
            ("System.DirectoryServices.DirectoryServicesCOMException", onward.ERROR_LOGON_FAILURE),
        ),
    ],
    ids=["member over NTLM", "member over Basic", "on the DC itself", "explicit credentials", "wrong credentials"],
)
def test_directory_access(host: str, auth: str, given: dict[str, t.Any], error: tuple[str, int] | None) -> None:
    twin_context = context(host, auth)
    dc = twin_context.fleet.hosts["dc01"]
    if error is None:
        onward.directory_access(twin_context, params(**given), dc)
        return
    with pytest.raises(HostException) as raised:
        onward.directory_access(twin_context, params(**given), dc)
    assert (raised.value.error_type, raised.value.hresult) == error


@pytest.mark.parametrize(
    ("auth", "given", "refused"),
    [
        ("ntlm", {}, True),
        ("basic", {}, False),
        ("ntlm", {"domain_username": "ansible", "domain_password": "Lab-Passw0rd!"}, False),
    ],
)
def test_the_exchange_endpoint_is_a_second_hop_too(auth: str, given: dict[str, t.Any], refused: bool) -> None:
    twin_context = context("ex01", auth)
    if not refused:
        onward.exchange_session(twin_context, params(**given))
        return
    with pytest.raises(HostException) as raised:
        onward.exchange_session(twin_context, params(**given))
    assert raised.value.error_type == "System.Management.Automation.Remoting.PSRemotingTransportException"
    assert raised.value.hresult == onward.SEC_E_NO_CREDENTIALS
