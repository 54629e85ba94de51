"""Twin of plugins/plugin_utils/host_scripts/certificate_chain.ps1 (reviewed against v1).

The chain is the one tests/lab/certs.py builds as CryptoAPI does from the host's stores (My and CA as candidates,
Root as trust anchors, no AIA retrieval), so X509Chain's elements and status are those of ``host.certificates``.
X509ChainStatusFlags as .NET names them: PartialChain (an issuer in no store), UntrustedRoot (complete, root not in
LocalMachine\\Root), NotTimeValid (an element outside its validity by the host's clock); none when trusted.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import typing as t

from cryptography import x509

from tests.lab.certs import Chain, is_self_signed, thumbprint
from tests.lab.fleet import HostException
from tests.lab.onward import REMOTING_ERROR, exchange_session
from tests.lab.windows import STORES

if t.TYPE_CHECKING:
    from tests.lab.fleet import HostState
    from tests.lab.twins import Params, TwinContext
    from tests.lab.windows import StoredCertificate

VERSION = 1
SHA256 = "a222c1ad336a7b3fe07e837857439ee0cb473fa97ba5fab0bd11d9e6279cac61"


def run(context: TwinContext, params: Params) -> dict[str, t.Any]:
    host = context.host
    action = params["action"]
    if action not in ("read", "import"):
        raise HostException("System.ArgumentException", "action must be read or import")
    imported: list[str] = []
    if action == "import":
        for der in params["import"] or []:
            certificate = _certificate_from_base64(der)
            constraints = _basic_constraints(certificate)
            if constraints is None or not constraints.ca or certificate.subject == certificate.issuer:
                raise HostException(
                    "System.ArgumentException", f"{thumbprint(certificate)} is not an intermediate CA certificate"
                )
            # Find(FindByThumbprint) first, then X509Store.Add: only what is not there yet is added.
            if host.certificates.add("CA", certificate):
                imported.append(thumbprint(certificate))

    holders = _holders(host)
    reasons: dict[str, list[str]] = {}
    services: dict[str, list[str]] = {}
    exchange: dict[str, t.Any] | None = None
    if params["thumbprint"]:
        for entry in host.certificates.entries("My"):
            # -eq compares strings case-insensitively.
            if entry.thumbprint.lower() == str(params["thumbprint"]).lower():
                reasons[entry.thumbprint] = ["thumbprint"]
    else:
        exchange_session(context, params)
        if host.exchange is None:
            raise HostException(
                REMOTING_ERROR,
                f"Connecting to remote server {host.fqdn} failed with the following error message : The WS-Management "
                "service cannot process the request. Cannot find the Microsoft.Exchange session configuration in the "
                "WSMan: drive on the localhost computer.",
                -2144108526,
            )
        server = host.exchange.server
        connectors = [
            {
                "name": connector.name,
                "enabled": connector.enabled,
                "smart_hosts": list(connector.smart_hosts),
                "address_spaces": [f"SMTP:{space};1" for space in connector.address_spaces],
                "tls_certificate_name": connector.tls_certificate_name or "",
            }
            for connector in host.exchange.send_connectors
        ]
        smtp = []
        for entry in host.certificates.entries("My"):
            # Get-ExchangeCertificate's Services: "IMAP, POP, IIS, SMTP", or None for a certificate without any.
            services[entry.thumbprint] = sorted(entry.services) or ["None"]
            if "SMTP" in entry.services:
                smtp.append(entry.thumbprint)
        exchange = {"server": server, "send_connectors": connectors, "smtp_certificates": smtp}
        for entry in host.certificates.entries("My"):
            why = ["SMTP"] if entry.thumbprint in smtp else []
            why += [
                f"send connector {connector.name}"
                for connector in host.exchange.send_connectors
                if connector.names(entry.certificate)
            ]
            if why:
                reasons[entry.thumbprint] = why

    candidates = [
        _candidate(host, entry, reasons[entry.thumbprint], services.get(entry.thumbprint, []), holders)
        for entry in host.certificates.entries("My")
        if entry.thumbprint in reasons
    ]
    wanted = {str(name) for name in params["names"] or []}
    issuers = []
    listed: set[str] = set()
    more = True
    while more:  # the certificates named, then their issuers in turn, as the script walks the stores
        more = False
        for store in STORES:
            for entry in host.certificates.entries(store):
                if entry.thumbprint in listed or _name(entry.certificate.subject) not in wanted:
                    continue
                listed.add(entry.thumbprint)
                issuers.append(
                    {
                        "thumbprint": entry.thumbprint,
                        "der": _der(entry.certificate),
                        "stores": holders[entry.thumbprint],
                    }
                )
                if _name(entry.certificate.issuer) not in wanted:
                    wanted.add(_name(entry.certificate.issuer))
                    more = True
    return {"exchange": exchange, "candidates": candidates, "issuers": issuers, "imported": imported}


def _candidate(
    host: HostState, entry: StoredCertificate, reasons: list[str], services: list[str], holders: dict[str, list[str]]
) -> dict[str, t.Any]:
    chain = host.certificates.chain(entry)
    return {
        "thumbprint": entry.thumbprint,
        "reasons": reasons,
        "services": services,
        "has_private_key": entry.private_key is not None,
        "chain": [
            {"thumbprint": thumbprint(item), "der": _der(item), "stores": holders.get(thumbprint(item), [])}
            for item in chain.certificates
        ],
        "chain_status": _status(host, chain),
    }


def _status(host: HostState, chain: Chain) -> list[str]:
    flags = []
    now = dt.datetime.fromtimestamp(host.now(), dt.UTC)
    if any(not item.not_valid_before_utc <= now <= item.not_valid_after_utc for item in chain.certificates):
        flags.append("NotTimeValid")
    if not is_self_signed(chain.certificates[-1]):
        flags.append("PartialChain")
    elif not chain.trusted:
        flags.append("UntrustedRoot")
    return flags


def _name(name: x509.Name) -> str:
    return base64.b64encode(name.public_bytes()).decode("ascii")


def _holders(host: HostState) -> dict[str, list[str]]:
    holders: dict[str, list[str]] = {}
    for store in STORES:
        for entry in host.certificates.entries(store):
            holders.setdefault(entry.thumbprint, []).append(store)
    return holders


def _der(certificate: x509.Certificate) -> str:
    from cryptography.hazmat.primitives import serialization

    return base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode("ascii")


def _certificate_from_base64(text: t.Any) -> x509.Certificate:
    try:
        data = base64.b64decode(str(text), validate=True)
    except (binascii.Error, ValueError):
        raise HostException(
            "System.FormatException",
            "The input is not a valid Base-64 string as it contains a non-base 64 character, more than two padding "
            "characters, or an illegal character among the padding characters.",
        ) from None
    try:
        return x509.load_der_x509_certificate(data)
    except ValueError:
        raise HostException(
            "System.Security.Cryptography.CryptographicException", "Cannot find the requested object.", -2146885628
        ) from None


def _basic_constraints(certificate: x509.Certificate) -> x509.BasicConstraints | None:
    try:
        return certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return None


def _smtp_thumbprint(fleet: t.Any, host: str) -> str:
    return str(fleet.hosts[host].smtp_certificate().thumbprint)


def _import_example(fleet: t.Any) -> dict[str, t.Any]:
    """ex03 of contoso lacks both intermediates: import them (the fleet's PKI is generated when it loads)."""
    return {
        "action": "import",
        "thumbprint": None,
        "names": [],
        "import": [_der(item) for item in fleet.pki.intermediates()],
        "domain_username": "CONTOSO\\ansible",
        "domain_password": "Lab-Passw0rd!",
    }


# Runs that exercise the script (tests/unit/lab/test_twin_discipline.py): (fleet, host, parameters), where the
# parameters may be a function of the loaded fleet.
EXAMPLES: list[tuple[str, str, t.Any]] = [
    (
        "contoso",
        "ex01",
        {
            "action": "read",
            "names": [],
            "import": [],
            "domain_username": "CONTOSO\\ansible",
            "domain_password": "Lab-Passw0rd!",
        },
    ),
    ("contoso", "ex03", _import_example),
    ("contoso", "ex02", {"action": "read", "names": [], "import": []}),
    (
        "clean",
        "ex01",
        lambda fleet: {"action": "read", "thumbprint": _smtp_thumbprint(fleet, "ex01"), "names": [], "import": []},
    ),
]
