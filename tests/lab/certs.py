"""Certificates of the lab: a test PKI generated at start, Windows-style chain building, and chain verification.

Nothing here is committed: every key and certificate is generated in memory when a fleet is loaded. Keys are
EC P-256 because generating them is instantaneous, which keeps a fleet of hundreds of hosts fast to load; the chain
logic does not depend on the key type.

Two different questions are answered here, as on the wire:

- ``build_chain``: what a Windows host builds for its own certificate from its LocalMachine stores (My, CA, Root)
  and therefore what Schannel sends in the handshake: the leaf plus every intermediate it found, never the root.
  AIA retrieval is not modelled: the article's hosts cannot complete the chain by themselves either.
- ``verify_presented``: what the receiving side (the EOP stand-in) concludes from exactly the certificates the
  peer sent, against the roots it trusts, with ``cryptography``'s RFC 5280 path validation.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import typing as t
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

PrivateKey = ec.EllipticCurvePrivateKey

# CertVerifyCertificateChainPolicy results, as CAPI2 logs them (hex without 0x, like the article's event 30).
# The two differ in what an administrator must import: CERT_E_CHAINING means an issuer is nowhere in the host's
# stores (an intermediate for LocalMachine\CA), CERT_E_UNTRUSTEDROOT that the chain is complete but its root is not
# in LocalMachine\Root.
CERT_E_UNTRUSTEDROOT = "800B0109"
CERT_E_CHAINING = "800B010A"
CERT_OK = "0"

ORGANIZATION = "Mailflow Lab Test PKI"


def thumbprint(certificate: x509.Certificate) -> str:
    """What Windows calls a certificate's thumbprint: the SHA-1 of its DER encoding, upper-case hex."""
    return hashlib.sha1(certificate.public_bytes(serialization.Encoding.DER), usedforsecurity=False).hexdigest().upper()


def common_name(certificate: x509.Certificate) -> str:
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else certificate.subject.rfc4514_string()


def is_self_signed(certificate: x509.Certificate) -> bool:
    return certificate.subject == certificate.issuer and issued_by(certificate, certificate)


def issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Name linkage and signature, which is how CryptoAPI matches an issuer when no AIA fetch happens."""
    if certificate.issuer != issuer.subject:
        return False
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def to_pem(certificates: t.Iterable[x509.Certificate]) -> bytes:
    return b"".join(certificate.public_bytes(serialization.Encoding.PEM) for certificate in certificates)


def key_to_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_certificates(data: bytes) -> list[x509.Certificate]:
    """PEM (one or a bundle) or a single DER certificate: the forms an administrator exports from Windows."""
    if b"-----BEGIN CERTIFICATE-----" in data:
        return x509.load_pem_x509_certificates(data)
    return [x509.load_der_x509_certificate(data)]


@dataclass
class Authority:
    """One CA of the lab's PKI (a root when ``issuer`` is None)."""

    name: str
    certificate: x509.Certificate
    private_key: PrivateKey
    issuer: str | None

    @property
    def is_root(self) -> bool:
        return self.issuer is None


@dataclass
class Pki:
    """The fleet's PKI: named authorities, generated once per loaded fleet."""

    authorities: dict[str, Authority] = field(default_factory=dict)

    def roots(self) -> list[x509.Certificate]:
        return [authority.certificate for authority in self.authorities.values() if authority.is_root]

    def intermediates(self) -> list[x509.Certificate]:
        return [authority.certificate for authority in self.authorities.values() if not authority.is_root]

    def certificate(self, name: str) -> x509.Certificate:
        if name not in self.authorities:
            raise ValueError(f"pki: no authority named {name!r}")
        return self.authorities[name].certificate

    def issue_leaf(self, issuer: str, subject: str, dns_names: t.Sequence[str]) -> tuple[x509.Certificate, PrivateKey]:
        """A TLS certificate as a public CA issues one for Exchange: serverAuth and clientAuth, DNS names in the SAN."""
        authority = self.authorities.get(issuer)
        if authority is None:
            raise ValueError(f"pki: no authority named {issuer!r} to issue {subject!r}")
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        names = list(dict.fromkeys([subject, *dns_names]))
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(subject))
            .issuer_name(authority.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=397))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(key_usage(ca=False), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name) for name in names]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(_authority_key_identifier(authority.certificate), critical=False)
        )
        return builder.sign(authority.private_key, hashes.SHA256()), key


def generate_pki(spec: t.Sequence[dict[str, t.Any]]) -> Pki:
    """Authorities in any order; each names its issuer (none for a root)."""
    pending = {str(entry["name"]): entry for entry in spec}
    if len(pending) != len(spec):
        raise ValueError("pki: two authorities share a name")
    pki = Pki()
    while pending:
        ready = [
            name for name, entry in pending.items() if entry.get("issuer") is None or entry["issuer"] in pki.authorities
        ]
        if not ready:
            raise ValueError(f"pki: unknown issuers or a cycle among {sorted(pending)}")
        for name in ready:
            entry = pending.pop(name)
            issuer = pki.authorities[entry["issuer"]] if entry.get("issuer") is not None else None
            pki.authorities[name] = _authority(name, str(entry.get("subject", name)), issuer)
    return pki


def self_signed_server(subject: str) -> tuple[x509.Certificate, PrivateKey]:
    """A certificate for a server whose own certificate nobody in the lab checks (the EOP stand-in)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(subject))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return certificate, key


@dataclass(frozen=True)
class Chain:
    """A chain as a Windows host builds it for its own certificate."""

    certificates: tuple[x509.Certificate, ...]  # leaf first; ends with the root when one was found
    trusted: bool  # ends in a self-signed certificate of the host's Root store
    status: str  # CERT_OK, CERT_E_CHAINING (an issuer missing) or CERT_E_UNTRUSTEDROOT (complete, root not trusted)

    @property
    def sent(self) -> tuple[x509.Certificate, ...]:
        """What Schannel puts in the Certificate message: the chain without its self-signed root."""
        return tuple(certificate for certificate in self.certificates if not is_self_signed(certificate))


def build_chain(
    leaf: x509.Certificate, candidates: t.Iterable[x509.Certificate], roots: t.Iterable[x509.Certificate]
) -> Chain:
    """Walk issuers from the leaf through the host's stores (candidates = My and CA, plus Root) until a root."""
    root_list = list(roots)
    pool = list(candidates) + root_list
    chain = [leaf]
    current = leaf
    # A chain longer than the pool cannot be a real path; the bound also defends against cross-signing loops.
    for _attempt in range(len(pool) + 1):
        if is_self_signed(current):
            break
        issuer = next(
            (candidate for candidate in pool if candidate not in chain and issued_by(current, candidate)), None
        )
        if issuer is None:
            break
        chain.append(issuer)
        current = issuer
    complete = is_self_signed(chain[-1])
    trusted = complete and any(chain[-1] == root for root in root_list)
    status = CERT_OK if trusted else CERT_E_UNTRUSTEDROOT if complete else CERT_E_CHAINING
    return Chain(certificates=tuple(chain), trusted=trusted, status=status)


@dataclass(frozen=True)
class Verification:
    ok: bool
    reason: str  # empty when ok; cryptography's message otherwise (for the lab's logs, never for matching)
    chain: tuple[x509.Certificate, ...] = ()


def verify_presented(
    presented: t.Sequence[x509.Certificate], trusted_roots: t.Sequence[x509.Certificate], *, client: bool = True
) -> Verification:
    """Validate exactly the certificates a peer sent (leaf first) to one of ``trusted_roots``."""
    if not presented:
        return Verification(ok=False, reason="no certificate presented")
    if not trusted_roots:
        return Verification(ok=False, reason="no trusted roots")
    builder = PolicyBuilder().store(Store(list(trusted_roots))).time(_now())
    leaf, intermediates = presented[0], list(presented[1:])
    try:
        if client:
            verified = builder.build_client_verifier().verify(leaf, intermediates)
            return Verification(ok=True, reason="", chain=tuple(verified.chain))
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName
        )
        server_chain = builder.build_server_verifier(x509.DNSName(names[0])).verify(leaf, intermediates)
        return Verification(ok=True, reason="", chain=tuple(server_chain))
    except (VerificationError, x509.ExtensionNotFound, IndexError) as exc:
        return Verification(ok=False, reason=str(exc))


def dns_names(certificate: x509.Certificate) -> list[str]:
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(name) for name in san.get_values_for_type(x509.DNSName)]


def name_matches(pattern: str, certificate: x509.Certificate) -> bool:
    """TlsSenderCertificateName matching: the certificate's CN or a SAN DNS name, a leading ``*.`` as a wildcard."""
    wanted = pattern.lower()
    for name in {common_name(certificate).lower(), *(name.lower() for name in dns_names(certificate))}:
        if name == wanted:
            return True
        if wanted.startswith("*.") and name.split(".", 1)[-1] == wanted[2:] and "." in name:
            return True
        if name.startswith("*.") and wanted.split(".", 1)[-1] == name[2:] and "." in wanted:
            return True
    return False


def windows_dn(name: x509.Name) -> str:
    """A distinguished name as .NET's X500DistinguishedName.Name writes it (what Exchange shows and stores in
    TlsCertificateName): most specific RDN first, separated by ", ", ST written S."""
    return ", ".join(_windows_rdn(rdn.rfc4514_string()) for rdn in reversed(name.rdns))


def _windows_rdn(rdn: str) -> str:
    attribute, _equals, value = rdn.partition("=")
    return f"{_WINDOWS_ATTRIBUTES.get(attribute, attribute)}={value}"


_WINDOWS_ATTRIBUTES = {"ST": "S", "emailAddress": "E", "1.2.840.113549.1.9.1": "E"}


def dn_equal(left: str, right: str) -> bool:
    """Two distinguished names in Windows' string form name the same thing: RDN by RDN, case-insensitively, blanks
    around the separators ignored (how far Exchange normalises beyond that is not modelled)."""

    def parts(dn: str) -> list[str]:
        return [part.strip().casefold() for part in re.split(r"(?<!\\)[,;]", dn) if part.strip()]

    return parts(left) == parts(right)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _name(common: str) -> x509.Name:
    if "=" in common:
        return x509.Name.from_rfc4514_string(common)
    return x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, common), x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION)]
    )


def key_usage(*, ca: bool) -> x509.KeyUsage:
    """The key usage of a CA (signs certificates and CRLs) or of a TLS leaf; shared by the lab's two PKIs."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _authority_key_identifier(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _authority(name: str, subject: str, issuer: Authority | None) -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    subject_name = _name(subject)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject_name)
        .issuer_name(issuer.certificate.subject if issuer else subject_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=2))
        .not_valid_after(now + dt.timedelta(days=3650 if issuer is None else 1825))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(_authority_key_identifier(issuer.certificate), critical=False)
    signer = issuer.private_key if issuer else key
    return Authority(
        name=name,
        certificate=builder.sign(signer, hashes.SHA256()),
        private_key=key,
        issuer=issuer.name if issuer else None,
    )
