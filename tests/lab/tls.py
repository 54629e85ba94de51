"""The lab's own certificate authority and one server certificate per host, made at start and never stored.

Clients validate the lab's HTTPS listeners against the CA certificate that the lab writes into its state
directory; the private keys live only in the lab's memory (and for a moment in a temporary file, because
:meth:`ssl.SSLContext.load_cert_chain` reads only files).
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import ssl
import tempfile
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.lab.certs import key_to_pem, key_usage, to_pem

# Clocks of CI machines and of the lab differ a little; a certificate valid from an hour ago is valid for both.
BACKDATE = datetime.timedelta(hours=1)


@dataclass(frozen=True)
class ServerCertificate:
    context: ssl.SSLContext
    der: bytes

    @property
    def channel_binding(self) -> bytes:
        """RFC 5929 tls-server-end-point data, as an NTLM client binds its authentication to this certificate."""
        return b"tls-server-end-point:" + hashlib.sha256(self.der).digest()


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mailflow.remediation lab (a test double)"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


class LabAuthority:
    """A CA made for one run of the lab; it signs the certificate of every host's HTTPS listener."""

    def __init__(self, *, valid_for: datetime.timedelta) -> None:
        self.not_before = datetime.datetime.now(datetime.UTC) - BACKDATE
        self.not_after = self.not_before + BACKDATE + valid_for + datetime.timedelta(days=1)
        # EC keys: generating one takes microseconds, an RSA key takes long enough to slow every lab start.
        self._key = ec.generate_private_key(ec.SECP256R1())
        public = self._key.public_key()
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(_name("mailflow lab CA"))
            .issuer_name(_name("mailflow lab CA"))
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.not_before)
            .not_valid_after(self.not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(key_usage(ca=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(self._key, hashes.SHA256())
        )

    @property
    def ca_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def server_certificate(self, fqdn: str) -> ServerCertificate:
        """A leaf for 127.0.0.1, localhost and the host's FQDN, loaded into a server-side TLS context."""
        key = ec.generate_private_key(ec.SECP256R1())
        names: list[x509.GeneralName] = [
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.DNSName("localhost"),
            x509.DNSName(fqdn),
        ]
        certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(fqdn))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.not_before)
            .not_valid_after(self.not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(key_usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        handle, path = tempfile.mkstemp(prefix="lab-tls-", suffix=".pem")
        try:
            with os.fdopen(handle, "wb") as stream:
                stream.write(key_to_pem(key) + to_pem([certificate]))
            context.load_cert_chain(path)
        finally:
            os.unlink(path)
        return ServerCertificate(context=context, der=certificate.public_bytes(serialization.Encoding.DER))
