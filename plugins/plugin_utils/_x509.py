# Copyright: mailflow.remediation contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""X.509 on the controller: read certificates in the forms administrators have them, tell CAs from leaves, and build
and verify chains, with ``cryptography``.

Private to the mailflow.remediation collection; not a public API and may change without notice.

Every problem with a certificate input raises :class:`CertificateError` with a whole sentence that names the input
(``src[1] (/srv/pki/bundle.pem), certificate 2 of 3``) and what is wrong with it; the action plugin turns it into a
task failure once. Identity is the SHA-256 of the DER encoding; ``thumbprint`` is the SHA-1 that Windows shows.

Chains are built the way CryptoAPI matches issuers when it does not download anything: the issuer's subject equals
the certificate's issuer name (byte for byte, as CertCompareCertificateName compares encoded names), the authority
key identifier matches the issuer's subject key identifier when both are present, and the signature verifies.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import re
import typing as t
from dataclasses import dataclass, field

try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs7
    from cryptography.x509.oid import NameOID
    from cryptography.x509.verification import PolicyBuilder, Store, VerificationError
except ImportError as exc:
    CRYPTOGRAPHY_IMPORT_ERROR: ImportError | None = exc
else:
    CRYPTOGRAPHY_IMPORT_ERROR = None

# The oldest cryptography with everything used here: the client verifier of the path validation API came with 43.
CRYPTOGRAPHY_MINIMUM = (43, 0)
CRYPTOGRAPHY_INSTALL = "pip install 'cryptography>=43' (the collection's requirements.txt)"

ROOT = "root"
INTERMEDIATE = "intermediate"
LEAF = "leaf"

PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 #]+)-----(.*?)-----END \1-----", re.DOTALL)
PEM_BEGIN = re.compile(rb"-----BEGIN ([A-Z0-9 #]+)-----")
PEM_CERTIFICATES = (b"CERTIFICATE", b"X509 CERTIFICATE")
PEM_PKCS7 = (b"PKCS7", b"PKCS #7 SIGNED DATA", b"CMS")
# How long a chain may be before it is a loop of cross-signatures rather than a path.
MAX_DEPTH = 10


def cryptography_problem() -> str | None:
    """Why this controller cannot handle certificates, in an administrator's words; None when it can."""
    if CRYPTOGRAPHY_IMPORT_ERROR is not None:
        return f"the Python library cryptography is not installed ({CRYPTOGRAPHY_IMPORT_ERROR})"
    import cryptography

    version = tuple(int(part) for part in re.findall(r"\d+", cryptography.__version__)[:2])
    if version < CRYPTOGRAPHY_MINIMUM:
        return f"the Python library cryptography is version {cryptography.__version__}; 43.0 or newer is needed"
    return None


class CertificateError(Exception):
    """A certificate input that cannot be used; the message names the input and the reason."""


@dataclass(frozen=True)
class Certificate:
    """One certificate with what the collection needs to know about it."""

    certificate: x509.Certificate
    origin: str = ""  # where it came from, for messages: "src[0] (/path), certificate 2 of 3"
    der: bytes = field(init=False, repr=False)
    sha256: str = field(init=False)
    thumbprint: str = field(init=False)

    def __post_init__(self) -> None:
        der = self.certificate.public_bytes(serialization.Encoding.DER)
        object.__setattr__(self, "der", der)
        object.__setattr__(self, "sha256", hashlib.sha256(der).hexdigest().upper())
        object.__setattr__(self, "thumbprint", hashlib.sha1(der, usedforsecurity=False).hexdigest().upper())

    @classmethod
    def from_der(cls, der: bytes, *, origin: str = "") -> Certificate:
        try:
            return cls(x509.load_der_x509_certificate(der), origin)
        except ValueError as exc:
            raise CertificateError(f"{origin}: not a DER-encoded X.509 certificate ({exc})") from None

    @property
    def subject(self) -> str:
        return self.certificate.subject.rfc4514_string()

    @property
    def issuer(self) -> str:
        return self.certificate.issuer.rfc4514_string()

    @property
    def name(self) -> str:
        """The common name, or the whole subject when it has none: how administrators call a certificate."""
        names = self.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return str(names[0].value) if names else self.subject

    @property
    def der_base64(self) -> str:
        return base64.b64encode(self.der).decode("ascii")

    @property
    def not_before(self) -> dt.datetime:
        return self.certificate.not_valid_before_utc

    @property
    def not_after(self) -> dt.datetime:
        return self.certificate.not_valid_after_utc

    @property
    def is_ca(self) -> bool:
        constraints = _extension(self.certificate, x509.BasicConstraints)
        return bool(constraints is not None and constraints.ca)

    @property
    def self_signed(self) -> bool:
        return issued_by(self, self)

    @property
    def role(self) -> str:
        """root (a self-signed CA), intermediate (a CA signed by another) or leaf (not a CA, self-signed or not)."""
        if not self.is_ca:
            return LEAF
        return ROOT if self.self_signed else INTERMEDIATE

    @property
    def subject_key_id(self) -> bytes | None:
        ski = _extension(self.certificate, x509.SubjectKeyIdentifier)
        return ski.digest if ski is not None else None

    @property
    def authority_key_id(self) -> bytes | None:
        aki = _extension(self.certificate, x509.AuthorityKeyIdentifier)
        return aki.key_identifier if aki is not None else None

    @property
    def key_identity(self) -> bytes:
        """The CA this certificate stands for: its subject and public key. Cross-signed copies of one CA share it."""
        key = self.certificate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return self.certificate.subject.public_bytes() + key

    def describe(self) -> dict[str, t.Any]:
        """What a module returns about a certificate."""
        return {
            "subject": self.subject,
            "issuer": self.issuer,
            "thumbprint": self.thumbprint,
            "sha256": self.sha256,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "role": self.role,
        }


def _extension(certificate: x509.Certificate, kind: type) -> t.Any:
    try:
        return certificate.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None
    except ValueError:
        # A malformed extension (cryptography refuses to parse it) counts as absent; validation says so.
        return None


def issued_by(child: Certificate, issuer: Certificate) -> bool:
    """Whether ``issuer`` issued ``child``: names, key identifiers when both carry them, and the signature."""
    if child.certificate.issuer.public_bytes() != issuer.certificate.subject.public_bytes():
        return False
    authority, subject = child.authority_key_id, issuer.subject_key_id
    if authority is not None and subject is not None and authority != subject:
        return False
    try:
        child.certificate.verify_directly_issued_by(issuer.certificate)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


# --- reading ------------------------------------------------------------------------------------------------------


def load_certificates(data: bytes, *, origin: str) -> list[Certificate]:
    """Every certificate in ``data``: PEM (one or a bundle, PKCS #7 blocks included), DER, or PKCS #7 (.p7b) DER.

    Refuses, naming ``origin``: empty or unreadable input, a private key anywhere in it (a PEM key block, a PKCS #12
    file), certificate requests and other PEM blocks that are not certificates.
    """
    stripped = data.strip().lstrip(b"\xef\xbb\xbf").strip()
    if not stripped:
        raise CertificateError(f"{origin}: is empty")
    if stripped.startswith(b"-----BEGIN") or PEM_BEGIN.search(stripped[:4096]):
        certificates = _load_pem(stripped, origin=origin)
    else:
        # DER is binary: its last byte may be 0x20 or 0x0A, which stripping would cut off.
        certificates = _load_binary(data, origin=origin)
    if not certificates:
        raise CertificateError(f"{origin}: holds no certificate")
    total = len(certificates)
    if total == 1:
        return certificates
    return [
        Certificate(item.certificate, f"{origin}, certificate {index} of {total}")
        for index, item in enumerate(certificates, start=1)
    ]


def load_text(text: str, *, origin: str) -> list[Certificate]:
    """Certificates given as text: PEM, or the base64 of a DER certificate or a PKCS #7 bundle (what a module
    returns as ``der``)."""
    if "-----BEGIN" in text:
        return load_certificates(text.encode("utf-8", "replace"), origin=origin)
    compact = re.sub(r"\s+", "", text)
    if not compact:
        raise CertificateError(f"{origin}: is empty")
    try:
        data = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise CertificateError(
            f"{origin}: is neither PEM (-----BEGIN CERTIFICATE-----) nor the base64 of a DER certificate"
        ) from None
    return load_certificates(data, origin=origin)


def _load_pem(data: bytes, *, origin: str) -> list[Certificate]:
    certificates: list[Certificate] = []
    blocks = list(PEM_BLOCK.finditer(data))
    if len(blocks) != len(PEM_BEGIN.findall(data)):
        raise CertificateError(f"{origin}: a PEM block has no matching -----END ...----- line (a truncated file?)")
    for number, block in enumerate(blocks, start=1):
        kind = block.group(1)
        label = kind.decode("ascii")
        where = f"{origin}, PEM block {number} ({label})"
        if b"PRIVATE KEY" in kind:
            raise CertificateError(
                f"{origin}: contains a private key (PEM block {number}, {label}); give certificates only: "
                "a private key must never be sent to a host to complete a chain"
            )
        body = block.group(2)
        # Headers such as "Proc-Type:" belong to encrypted PEM; a certificate block has none.
        payload = b"".join(line for line in body.split() if b":" not in line)
        try:
            der = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise CertificateError(f"{where}: the base64 inside it is damaged") from None
        if kind in PEM_CERTIFICATES:
            try:
                certificates.append(Certificate(x509.load_der_x509_certificate(der), origin))
            except ValueError as exc:
                raise CertificateError(f"{where}: not a readable X.509 certificate ({exc})") from None
        elif kind in PEM_PKCS7:
            certificates += _load_pkcs7(der, where=where)
        elif kind == b"TRUSTED CERTIFICATE":
            raise CertificateError(
                f"{where}: an OpenSSL trusted certificate, which carries trust settings; convert it with "
                "'openssl x509 -in FILE -out FILE.pem' first"
            )
        elif b"REQUEST" in kind:
            raise CertificateError(f"{where}: a certificate request, not a certificate")
        else:
            raise CertificateError(f"{where}: not a certificate")
    return certificates


def _load_binary(data: bytes, *, origin: str) -> list[Certificate]:
    try:
        return [Certificate(x509.load_der_x509_certificate(data), origin)]
    except ValueError:
        pass
    try:
        return _load_pkcs7(data, where=origin)
    except CertificateError:
        pass
    if _looks_like_pkcs12(data):
        raise CertificateError(
            f"{origin}: is a PKCS #12 (.pfx) file, which holds a private key; export the intermediate "
            "certificates without it (DER .cer, PEM or .p7b)"
        )
    raise CertificateError(f"{origin}: is not a certificate in PEM, DER or PKCS #7 (.p7b) form")


def _load_pkcs7(data: bytes, *, where: str) -> list[Certificate]:
    try:
        loaded = pkcs7.load_der_pkcs7_certificates(data)
    except (ValueError, UnsupportedAlgorithm):
        raise CertificateError(f"{where}: not a readable PKCS #7 bundle") from None
    if not loaded:
        raise CertificateError(f"{where}: a PKCS #7 bundle that holds no certificate")
    return [Certificate(item, where) for item in loaded]


def _looks_like_pkcs12(data: bytes) -> bool:
    """A PFX is SEQUENCE { INTEGER 3, ContentInfo, ... }: enough to say so rather than "unreadable"."""
    if len(data) < 8 or data[0] != 0x30:
        return False
    length = data[1]
    offset = 2 + (length & 0x7F if length & 0x80 else 0)
    return data[offset : offset + 3] == b"\x02\x01\x03"


# --- what an intermediate must be ---------------------------------------------------------------------------------


def check_intermediate(certificate: Certificate, *, now: dt.datetime) -> None:
    """Refuse what must not go into LocalMachine\\CA as an intermediate, naming the certificate and the reason."""
    who = f"{certificate.origin}: {certificate.subject}"
    constraints = _extension(certificate.certificate, x509.BasicConstraints)
    if constraints is None:
        raise CertificateError(f"{who} is not a CA certificate: it has no BasicConstraints extension")
    if not constraints.ca:
        raise CertificateError(
            f"{who} is not a CA certificate (BasicConstraints CA is false): a server's own certificate is not an "
            "intermediate"
        )
    usage = _extension(certificate.certificate, x509.KeyUsage)
    if usage is None:
        raise CertificateError(
            f"{who} has no KeyUsage extension, so it does not assert keyCertSign, which RFC 5280 requires of a CA"
        )
    if not usage.key_cert_sign:
        raise CertificateError(f"{who} is a CA certificate whose KeyUsage lacks keyCertSign: it may not sign others")
    if certificate.self_signed:
        raise CertificateError(
            f"{who} is a self-signed root; a root belongs in LocalMachine\\Root, which this module does not "
            "change: give intermediates only"
        )
    if now > certificate.not_after:
        raise CertificateError(f"{who} expired on {certificate.not_after.isoformat()}")
    if now < certificate.not_before:
        raise CertificateError(f"{who} is not valid before {certificate.not_before.isoformat()}")


def check_one_chain(certificates: t.Sequence[Certificate]) -> None:
    """Every certificate leads to the same lowest CA: one chain, possibly cross-signed, and nothing unrelated.

    The lowest CA is the one that issued none of the others (the issuer of the server's certificate, in a bundle
    exported from a chain). Certificates of one CA (same subject and key, signed by different issuers) count once.
    """
    if len(certificates) < 2:
        return
    issues = {
        item.sha256: [other for other in certificates if other is not item and issued_by(other, item)]
        for item in certificates
    }
    lowest: dict[bytes, Certificate] = {}
    for item in certificates:
        if not issues[item.sha256]:
            lowest.setdefault(item.key_identity, item)
    if len(lowest) == 1:
        return
    first, *others = sorted(lowest.values(), key=lambda item: item.origin)
    stray = others[0]
    raise CertificateError(
        f"{stray.origin}: {stray.subject} does not chain to the same certificate as the others "
        f"({first.subject}, from {first.origin}); with only_chain: true every certificate given must lie on one "
        "chain: remove it, or set only_chain: false to import from a larger bundle only what the chain needs"
    )


def ancestors(start: Certificate, pool: t.Sequence[Certificate]) -> set[str]:
    """SHA-256 of every certificate in ``pool`` reachable upward from ``start`` through issuers in ``pool``."""
    found: set[str] = set()
    frontier = [start]
    while frontier:
        current = frontier.pop()
        for candidate in pool:
            if candidate.sha256 not in found and candidate.sha256 != current.sha256 and issued_by(current, candidate):
                found.add(candidate.sha256)
                frontier.append(candidate)
    return found


# --- chains -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Link:
    """One certificate of a path and where it is: the stores of a host that hold it, or nowhere yet."""

    certificate: Certificate
    stores: tuple[str, ...] = ()


@dataclass(frozen=True)
class Path:
    """A path from a leaf upward; ``links[0]`` is the leaf."""

    links: tuple[Link, ...]

    @property
    def top(self) -> Certificate:
        return self.links[-1].certificate

    @property
    def complete(self) -> bool:
        """Ends in a self-signed root."""
        return self.top.self_signed

    @property
    def trusted(self) -> bool:
        return self.complete and "Root" in self.links[-1].stores

    @property
    def additions(self) -> list[Certificate]:
        """The intermediates on the path that no store holds yet (what an import must add)."""
        return [link.certificate for link in self.links[1:] if not link.stores and not link.certificate.self_signed]


def best_path(leaf: Link, pool: t.Sequence[Link]) -> Path:
    """The path from ``leaf`` a host would be best served by: to a root in its Root store if one can be reached,
    else complete to any root, else as far as it goes; among equals the one needing the fewest additions."""
    best: Path | None = None

    def score(path: Path) -> tuple[bool, bool, int, int]:
        return (path.trusted, path.complete, -len(path.additions), -len(path.links))

    def walk(links: tuple[Link, ...]) -> None:
        nonlocal best
        top = links[-1].certificate
        extended = False
        if not top.self_signed and len(links) <= MAX_DEPTH:
            seen = {link.certificate.sha256 for link in links}
            for candidate in pool:
                if candidate.certificate.sha256 not in seen and issued_by(top, candidate.certificate):
                    extended = True
                    walk((*links, candidate))
        if not extended:
            path = Path(links)
            if best is None or score(path) > score(best):
                best = path

    walk((leaf,))
    # walk() records at least the leaf alone.
    return t.cast(Path, best)


def merge_links(links: t.Iterable[Link]) -> list[Link]:
    """One link per certificate, with the union of the stores that hold it."""
    merged: dict[str, Link] = {}
    for link in links:
        known = merged.get(link.certificate.sha256)
        stores = tuple(sorted(set(link.stores) | set(known.stores if known else ())))
        merged[link.certificate.sha256] = Link(link.certificate, stores)
    return list(merged.values())


# --- verification of a presented chain ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str = ""  # empty when ok
    missing_issuer: str | None = None  # the issuer name nobody presented and the trust roots do not hold
    path: tuple[Certificate, ...] = ()


def verify_to_roots(presented: t.Sequence[Certificate], roots: t.Sequence[Certificate], *, now: dt.datetime) -> Verdict:
    """Whether the certificates a server presented (leaf first) chain to one of ``roots`` using only themselves:
    links, validity and CA constraints. Names the issuer that is missing when they do not."""
    if not presented:
        return Verdict(False, "no certificate was presented")
    pool = [Link(item, ("presented",)) for item in presented[1:]] + [Link(item, ("Root",)) for item in roots]
    path = best_path(Link(presented[0], ("presented",)), merge_links(pool))
    chain = tuple(link.certificate for link in path.links)
    if not path.trusted:
        top = path.top
        if top.self_signed:
            reason = f"the chain ends in {top.subject}, a root the trust bundle does not hold"
            return Verdict(False, reason, None, chain)
        return Verdict(
            False,
            f"the issuer {top.issuer} of {top.subject} was not presented and is not in the trust bundle",
            top.issuer,
            chain,
        )
    for item in chain:
        if not item.not_before <= now <= item.not_after:
            return Verdict(False, f"{item.subject} is not valid now (valid {item.not_before} to {item.not_after})")
    for item in chain[1:-1]:
        if not item.is_ca:
            return Verdict(False, f"{item.subject} signs another certificate but is not a CA")
    return Verdict(True, "", None, chain)


def verify_client_chain(
    presented: t.Sequence[Certificate], roots: t.Sequence[Certificate], *, now: dt.datetime
) -> Verdict:
    """What a verifier that trusts only ``roots`` concludes of ``presented`` as a TLS client certificate chain:
    RFC 5280 path validation (cryptography's), as Exchange Online's certificate-based connector does."""
    if not presented:
        return Verdict(False, "no certificate was presented")
    if not roots:
        return Verdict(False, "no trusted roots were given")
    verifier = PolicyBuilder().store(Store([item.certificate for item in roots])).time(now).build_client_verifier()
    try:
        verified = verifier.verify(presented[0].certificate, [item.certificate for item in presented[1:]])
    except VerificationError as exc:
        return Verdict(False, str(exc))
    return Verdict(True, "", None, tuple(Certificate(item, "verified") for item in verified.chain))


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)  # noqa: UP017 - the controller may run Python 3.10, before datetime.UTC


def name_matches(pattern: str, certificate: Certificate) -> bool:
    """A TlsSenderCertificateName-style match: the common name or a SAN DNS name, ``*.`` as a wildcard."""
    san = _extension(certificate.certificate, x509.SubjectAlternativeName)
    dns = san.get_values_for_type(x509.DNSName) if san is not None else []
    names = {certificate.name.lower(), *(str(name).lower() for name in dns)}
    wanted = pattern.lower()
    for name in names:
        if name == wanted:
            return True
        if wanted.startswith("*.") and "." in name and name.split(".", 1)[1] == wanted[2:]:
            return True
        if name.startswith("*.") and "." in wanted and wanted.split(".", 1)[1] == name[2:]:
            return True
    return False
