"""What a host's display language changes in the lab: the texts Windows (and Exchange) write for people.

A host's ``locale`` (en-US, sv-SE, de-DE; the fleet file's ``locale:`` key) picks its console code page, and here
the language of the texts its twins return: exception messages, firewall rule display names, a queue's LastError.
The collection must never read any of them; the lab translates them so that a test proves it does not.

The translations are the lab's own renderings in the style of Windows' and Exchange's (the Swedish LastError is
KB 979174's own, quoted by the Swedish article); they were not copied from localized Windows builds, and nothing
may match on them. What does not change with the language: exception types, HResults, rule names (IDs), event
IDs, providers and data fields, SMTP status codes, enum names.

Twins use :func:`exception` to raise a localized HostException, or :func:`localized` to translate one raised by
shared model code (tests/lab/onward.py, tests/lab/exchange.py), and :func:`text` for any other message.
"""

from __future__ import annotations

import re
import typing as t

if t.TYPE_CHECKING:
    from tests.lab.fleet import HostException, HostState

ENGLISH = "en-US"
LOCALES = ("en-US", "sv-SE", "de-DE")

# English template -> its translations. Placeholders in braces are filled in the same way in every language.
MESSAGES: dict[str, dict[str, str]] = {
    # E_ACCESSDENIED, as the firewall and CIM cmdlets report it.
    "Access is denied.": {"sv-SE": "Åtkomst nekad.", "de-DE": "Zugriff verweigert"},
    # ADSI without credentials it could pass on (the second hop), and explicit credentials a DC refused.
    "An operations error occurred.": {
        "sv-SE": "Ett åtgärdsfel inträffade.",
        "de-DE": "Ein Vorgangsfehler ist aufgetreten.",
    },
    "The user name or password is incorrect.": {
        "sv-SE": "Användarnamnet eller lösenordet är felaktigt.",
        "de-DE": "Der Benutzername oder das Kennwort ist falsch.",
    },
    # The Exchange endpoint without a Kerberos ticket (tests/lab/onward.py).
    "Connecting to remote server {server} failed with the following error message : WinRM cannot process the "
    "request. The following error with errorcode 0x8009030e occurred while using Kerberos authentication: A "
    "specified logon session does not exist. It may already have been terminated.": {
        "sv-SE": "Det gick inte att ansluta till fjärrservern {server}. Följande felmeddelande returnerades: WinRM "
        "kan inte bearbeta begäran. Följande fel med felkoden 0x8009030e inträffade vid Kerberos-autentisering: Det "
        "angivna inloggningssessionen finns inte. Den kan redan ha avslutats.",
        "de-DE": "Beim Verbinden mit dem Remoteserver {server} ist folgender Fehler aufgetreten: Der WinRM-Client "
        "kann die Anforderung nicht verarbeiten. Bei der Kerberos-Authentifizierung ist der folgende Fehler mit dem "
        "Fehlercode 0x8009030e aufgetreten: Eine angegebene Anmeldesitzung ist nicht vorhanden. Sie wurde "
        "möglicherweise bereits beendet.",
    },
    # New-CimSession to another host over Kerberos from a logon without credentials to pass on (the second hop).
    "WinRM cannot process the request. The following error with errorcode 0x8009030e occurred while using Kerberos "
    "authentication: A specified logon session does not exist. It may already have been terminated.": {
        "sv-SE": "WinRM kan inte bearbeta begäran. Följande fel med felkoden 0x8009030e inträffade vid "
        "Kerberos-autentisering: Det angivna inloggningssessionen finns inte. Den kan redan ha avslutats.",
        "de-DE": "Der WinRM-Client kann die Anforderung nicht verarbeiten. Bei der Kerberos-Authentifizierung ist der "
        "folgende Fehler mit dem Fehlercode 0x8009030e aufgetreten: Eine angegebene Anmeldesitzung ist nicht "
        "vorhanden. Sie wurde möglicherweise bereits beendet.",
    },
    # A DC that a script was told to use (domain_server) and cannot reach.
    "The specified domain controller {server} does not exist or could not be contacted.": {
        "sv-SE": "Den angivna domänkontrollanten {server} finns inte eller gick inte att kontakta.",
        "de-DE": "Der angegebene Domänencontroller {server} ist nicht vorhanden oder konnte nicht kontaktiert werden.",
    },
    # New-CimSession to another host: nothing answers on its WinRM port.
    "The WinRM client cannot complete the operation within the time specified. Check if the machine name is valid "
    "and is reachable over the network and firewall exception for Windows Remote Management service is enabled.": {
        "sv-SE": "WinRM-klienten kan inte slutföra åtgärden inom den angivna tiden. Kontrollera att datornamnet är "
        "giltigt och kan nås över nätverket och att brandväggsundantaget för tjänsten Windows Remote Management är "
        "aktiverat.",
        "de-DE": "Der WinRM-Client kann den Vorgang nicht in der angegebenen Zeit abschließen. Überprüfen Sie, ob der "
        "Computername gültig und über das Netzwerk erreichbar ist und ob eine Firewallausnahme für den "
        "Windows-Remoteverwaltungsdienst aktiviert ist.",
    },
    # Set-ReceiveConnector's validation (tests/lab/exchange.py).
    "The ExchangeServer authentication mechanism requires the Tls authentication mechanism.": {
        "sv-SE": "Autentiseringsmekanismen ExchangeServer kräver autentiseringsmekanismen Tls.",
        "de-DE": "Der Authentifizierungsmechanismus ExchangeServer erfordert den Authentifizierungsmechanismus Tls.",
    },
    "The BasicAuthRequireTLS authentication mechanism requires the BasicAuth and Tls authentication mechanisms.": {
        "sv-SE": "Autentiseringsmekanismen BasicAuthRequireTLS kräver autentiseringsmekanismerna BasicAuth och Tls.",
        "de-DE": "Der Authentifizierungsmechanismus BasicAuthRequireTLS erfordert die Authentifizierungsmechanismen "
        "BasicAuth und Tls.",
    },
    "The ExternalAuthoritative authentication mechanism can only be combined with Tls.": {
        "sv-SE": "Autentiseringsmekanismen ExternalAuthoritative kan bara kombineras med Tls.",
        "de-DE": "Der Authentifizierungsmechanismus ExternalAuthoritative kann nur mit Tls kombiniert werden.",
    },
    "The ExternalAuthoritative authentication mechanism requires the ExchangeServers permission group.": {
        "sv-SE": "Autentiseringsmekanismen ExternalAuthoritative kräver behörighetsgruppen ExchangeServers.",
        "de-DE": "Der Authentifizierungsmechanismus ExternalAuthoritative erfordert die Berechtigungsgruppe "
        "ExchangeServers.",
    },
    "The ExchangeServers permission group requires the ExchangeServer or ExternalAuthoritative authentication "
    "mechanism.": {
        "sv-SE": "Behörighetsgruppen ExchangeServers kräver autentiseringsmekanismen ExchangeServer eller "
        "ExternalAuthoritative.",
        "de-DE": "Die Berechtigungsgruppe ExchangeServers erfordert den Authentifizierungsmechanismus ExchangeServer "
        "oder ExternalAuthoritative.",
    },
    # A queue's LastError for KB 979174's symptom; the Swedish one is the article's.
    '451 4.4.0 Primary target IP address responded with: "454 4.7.0 Temporary authentication failure." Attempted '
    "failover to alternate host, but that did not succeed. Either there are no alternate hosts, or delivery failed "
    "to all alternate hosts.": {
        "sv-SE": '451 4.4.0 IP-adress för primärt mål har svarat med: "454 4.7.0 Tillfälligt autentiseringsfel." '
        "Redundansförsök gjordes till en alternativ värd, men det gick inte. Det finns antingen inga alternativa "
        "värdar eller så gick det inte att leverera till alla alternativa värdar.",
        "de-DE": '451 4.4.0 Die primäre Ziel-IP-Adresse hat geantwortet: "454 4.7.0 Vorübergehender '
        'Authentifizierungsfehler." Ein Failover auf einen alternativen Host wurde versucht, war aber nicht '
        "erfolgreich. Entweder gibt es keine alternativen Hosts, oder die Zustellung an alle alternativen Hosts ist "
        "fehlgeschlagen.",
    },
}

# Firewall rules' DisplayName and DisplayGroup by rule name (the ID, which Windows does not translate).
FIREWALL_DISPLAY_NAMES: dict[str, dict[str, str]] = {
    "KerberosKeyDistributionCenter-TCP-In": {
        "en-US": "Kerberos Key Distribution Center (TCP-In)",
        "sv-SE": "Kerberos-nyckeldistributionscenter (TCP-in)",
        "de-DE": "Kerberos-Schlüsselverteilungscenter (TCP eingehend)",
    },
    "KerberosKeyDistributionCenter-UDP-In": {
        "en-US": "Kerberos Key Distribution Center (UDP-In)",
        "sv-SE": "Kerberos-nyckeldistributionscenter (UDP-in)",
        "de-DE": "Kerberos-Schlüsselverteilungscenter (UDP eingehend)",
    },
    "KerberosKeyDistributionCenterPCR-TCP-In": {
        "en-US": "Kerberos Key Distribution Center - PCR (TCP-In)",
        "sv-SE": "Kerberos-nyckeldistributionscenter - lösenordsbyte (TCP-in)",
        "de-DE": "Kerberos-Schlüsselverteilungscenter - Kennwortänderung (TCP eingehend)",
    },
    "KerberosKeyDistributionCenterPCR-UDP-In": {
        "en-US": "Kerberos Key Distribution Center - PCR (UDP-In)",
        "sv-SE": "Kerberos-nyckeldistributionscenter - lösenordsbyte (UDP-in)",
        "de-DE": "Kerberos-Schlüsselverteilungscenter - Kennwortänderung (UDP eingehend)",
    },
    "ADDS-W32Time-NTP-UDP-In": {
        "en-US": "Active Directory Domain Controller - W32Time (NTP-UDP-In)",
        "sv-SE": "Active Directory-domänkontrollant - W32Time (NTP-UDP-in)",
        "de-DE": "Active Directory-Domänencontroller - W32Time (NTP-UDP eingehend)",
    },
    "WINRM-HTTP-In-TCP": {
        "en-US": "Windows Remote Management (HTTP-In)",
        "sv-SE": "Windows Remote Management (HTTP-in)",
        "de-DE": "Windows-Remoteverwaltung (HTTP eingehend)",
    },
}
FIREWALL_GROUPS: dict[str, dict[str, str]] = {
    "Kerberos Key Distribution Center": {
        "sv-SE": "Kerberos-nyckeldistributionscenter",
        "de-DE": "Kerberos-Schlüsselverteilungscenter",
    },
    "Windows Remote Management": {"sv-SE": "Windows Remote Management", "de-DE": "Windows-Remoteverwaltung"},
}


def _locale_of(where: HostState | str) -> str:
    return where if isinstance(where, str) else where.locale


def text(where: HostState | str, english: str, **values: t.Any) -> str:
    """``english`` (a template of MESSAGES, or any text) in the language of a host or locale, filled in."""
    locale = _locale_of(where)
    template = MESSAGES.get(english, {}).get(locale, english) if locale != ENGLISH else english
    return template.format(**values) if values else template


def exception(
    where: HostState | str, error_type: str, english: str, hresult: int | None = None, **values: t.Any
) -> HostException:
    """A HostException whose message is in the host's language; type and HResult are the same everywhere."""
    from tests.lab.fleet import HostException  # fleet.py imports the lab's model, which imports this module

    return HostException(error_type, text(where, english, **values), hresult)


def localized(where: HostState | str, raised: HostException) -> HostException:
    """An exception raised in English by shared model code, with its message in the host's language (when MESSAGES
    knows it; else unchanged)."""
    from tests.lab.fleet import HostException

    locale = _locale_of(where)
    if locale == ENGLISH:
        return raised
    for english, translations in MESSAGES.items():
        values = _fill(english, raised.message)
        if values is not None and locale in translations:
            return HostException(raised.error_type, translations[locale].format(**values), raised.hresult)
    return raised


def _fill(template: str, message: str) -> dict[str, str] | None:
    """The placeholder values that make ``template`` read ``message``, or None when it cannot."""
    pattern = "".join(
        f"(?P<{part[1:-1]}>.+?)" if part.startswith("{") else re.escape(part)
        for part in re.split(r"(\{[a-z_]+\})", template)
        if part
    )
    match = re.fullmatch(pattern, message, re.DOTALL)
    return match.groupdict() if match else None


def firewall_display_name(locale: str, rule: str, english: str = "") -> str:
    names = FIREWALL_DISPLAY_NAMES.get(rule, {})
    return names.get(locale, names.get(ENGLISH, english))


def firewall_group(locale: str, english: str) -> str:
    return FIREWALL_GROUPS.get(english, {}).get(locale, english) if locale != ENGLISH else english
