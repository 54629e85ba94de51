"""The lab's locales: a host's language changes the texts for people, and only those."""

from __future__ import annotations

import re

import pytest

from tests.lab import locale, onward
from tests.lab.fleet import HostException
from tests.lab.twins import Params, Session, TwinContext
from tests.unit.plugins.action.fleet_hosts import fleet_of


@pytest.mark.parametrize("english", sorted(locale.MESSAGES))
def test_every_message_has_swedish_and_german_with_the_same_placeholders(english: str) -> None:
    translations = locale.MESSAGES[english]
    assert set(translations) == {"sv-SE", "de-DE"}
    placeholders = sorted(re.findall(r"\{([a-z_]+)\}", english))
    for text in translations.values():
        assert sorted(re.findall(r"\{([a-z_]+)\}", text)) == placeholders
        assert text != english


def test_exception_keeps_type_and_hresult_and_translates_the_message() -> None:
    raised = locale.exception("sv-SE", "Microsoft.Management.Infrastructure.CimException", "Access is denied.", -5)
    assert (raised.error_type, raised.message, raised.hresult) == (
        "Microsoft.Management.Infrastructure.CimException",
        "Åtkomst nekad.",
        -5,
    )
    assert locale.exception("en-US", "X", "Access is denied.").message == "Access is denied."


def test_shared_model_code_s_english_exceptions_are_translated_with_their_values() -> None:
    fleet = fleet_of("contoso", locale="de-DE")
    context = TwinContext(fleet.hosts["ex01"], fleet, Session(auth="ntlm", user="CONTOSO\\ansible"))
    with pytest.raises(HostException) as raised:
        onward.exchange_session(context, Params("test", {}, ("domain_username", "domain_password")))
    german = locale.localized(context.host, raised.value)
    assert german.message.startswith("Beim Verbinden mit dem Remoteserver ex01.contoso.example ist folgender Fehler")
    assert (german.error_type, german.hresult) == (raised.value.error_type, raised.value.hresult)
    unknown = HostException("System.Exception", "Something the table does not know.")
    assert locale.localized("sv-SE", unknown) is unknown


@pytest.mark.parametrize("language", ["en-US", "sv-SE", "de-DE"])
def test_a_dcs_firewall_rules_keep_their_names_and_show_display_names_in_its_language(language: str) -> None:
    fleet = fleet_of("contoso", locale=language)
    firewall = fleet.hosts["dc01"].firewall
    assert firewall is not None
    rule = firewall.rule("KerberosKeyDistributionCenter-UDP-In")
    assert rule is not None
    assert rule.display_name == locale.FIREWALL_DISPLAY_NAMES["KerberosKeyDistributionCenter-UDP-In"][language]
