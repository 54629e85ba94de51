"""A test PKI, generated in memory (never committed): root -> intermediate -> second intermediate -> leaf, a
cross-signed copy of the intermediate under another root, an expired and a not-yet-valid intermediate, an
unrelated CA, and CA certificates that break one rule each.

EC P-256 keys: generating them is instantaneous, and nothing here depends on the key type.
"""

from __future__ import annotations

import datetime as dt
import typing as t
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

Key = ec.EllipticCurvePrivateKey
DAY = dt.timedelta(days=1)


def _name(common: str) -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, common), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test PKI")]
    )


def _usage(*, ca: bool, cert_sign: bool | None = None) -> x509.KeyUsage:
    sign = ca if cert_sign is None else cert_sign
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=sign,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


@dataclass
class Issued:
    certificate: x509.Certificate
    key: Key

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @property
    def name(self) -> x509.Name:
        return self.certificate.subject


def issue(
    subject: str,
    issuer: Issued | None,
    *,
    ca: bool = True,
    key: Key | None = None,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    basic_constraints: bool = True,
    key_usage: bool = True,
    cert_sign: bool | None = None,
    dns: t.Sequence[str] = (),
) -> Issued:
    """A certificate for ``subject`` signed by ``issuer`` (self-signed when None)."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = _name(subject)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.name if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - DAY)
        .not_valid_after(not_after or now + 365 * DAY)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if basic_constraints:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    if key_usage:
        builder = builder.add_extension(_usage(ca=ca, cert_sign=cert_sign), critical=True)
    if issuer is not None:
        ski = issuer.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
    if not ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        ).add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name) for name in (dns or [subject])]), critical=False
        )
    return Issued(builder.sign(issuer.key if issuer else key, hashes.SHA256()), key)


@dataclass
class Pki:
    root: Issued
    intermediate: Issued  # issued by root
    second: Issued  # issued by intermediate; issues the leaf
    leaf: Issued
    cross_root: Issued
    cross_intermediate: Issued  # intermediate's subject and key, signed by cross_root
    expired: Issued  # an intermediate under root that expired
    not_yet_valid: Issued
    unrelated_root: Issued
    unrelated: Issued  # an intermediate under unrelated_root
    no_cert_sign: Issued  # a CA whose KeyUsage lacks keyCertSign
    no_key_usage: Issued  # a CA without KeyUsage
    no_constraints: Issued  # a certificate without BasicConstraints
    extra: dict[str, Issued] = field(default_factory=dict)

    @staticmethod
    def pem(*items: Issued) -> bytes:
        return b"".join(item.pem for item in items)

    @staticmethod
    def p7b(*items: Issued, encoding: serialization.Encoding = serialization.Encoding.DER) -> bytes:
        return pkcs7.serialize_certificates([item.certificate for item in items], encoding)

    @staticmethod
    def pfx(item: Issued) -> bytes:
        return pkcs12.serialize_key_and_certificates(
            b"leaf", item.key, item.certificate, None, serialization.BestAvailableEncryption(b"secret")
        )

    @staticmethod
    def key_pem(item: Issued) -> bytes:
        return item.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )


def make_pki(*, leaf_name: str = "mail.contoso.example", dns: t.Sequence[str] = ()) -> Pki:
    now = dt.datetime.now(dt.UTC)
    root = issue("Test Root CA", None)
    intermediate = issue("Test Policy CA", root)
    second = issue("Test Issuing CA", intermediate)
    leaf = issue(leaf_name, second, ca=False, dns=dns or [leaf_name])
    cross_root = issue("Test Cross Root CA", None)
    cross = issue("Test Policy CA", cross_root, key=intermediate.key)
    expired = issue("Test Old Issuing CA", root, not_before=now - 800 * DAY, not_after=now - 30 * DAY)
    future = issue("Test Next Issuing CA", root, not_before=now + 30 * DAY, not_after=now + 800 * DAY)
    unrelated_root = issue("Unrelated Root CA", None)
    unrelated = issue("Unrelated Issuing CA", unrelated_root)
    return Pki(
        root=root,
        intermediate=intermediate,
        second=second,
        leaf=leaf,
        cross_root=cross_root,
        cross_intermediate=cross,
        expired=expired,
        not_yet_valid=future,
        unrelated_root=unrelated_root,
        unrelated=unrelated,
        no_cert_sign=issue("Test Signing-less CA", root, cert_sign=False),
        no_key_usage=issue("Test Usage-less CA", root, key_usage=False),
        no_constraints=issue("Test Constraint-less CA", root, basic_constraints=False),
    )
