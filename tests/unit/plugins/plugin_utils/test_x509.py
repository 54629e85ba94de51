"""Certificate handling on the controller: the forms certificates come in, identity, roles, chains, verification,
and a validation that forked workers share."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import multiprocessing
import typing as t
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.mailflow.remediation.plugins.plugin_utils import _certificate_bundle as bundles
from ansible_collections.mailflow.remediation.plugins.plugin_utils._x509 import (
    INTERMEDIATE,
    LEAF,
    ROOT,
    Certificate,
    CertificateError,
    Link,
    best_path,
    check_one_chain,
    cryptography_problem,
    issued_by,
    load_certificates,
    load_text,
    utc_now,
    verify_client_chain,
    verify_to_roots,
)
from tests.pki import Pki, issue, make_pki


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki()


def cert(item: t.Any) -> Certificate:
    return Certificate(item.certificate, "test")


@pytest.mark.parametrize(
    ("form", "count"),
    [
        ("pem", 1),
        ("pem bundle", 2),
        ("pem bundle with text around it", 2),
        ("der", 1),
        ("p7b der", 2),
        ("p7b pem", 2),
        ("pem with a byte order mark and CRLF", 1),
    ],
)
def test_every_form_an_administrator_exports_is_read(pki: Pki, form: str, count: int) -> None:
    data = {
        "pem": pki.intermediate.pem,
        "pem bundle": pki.pem(pki.second, pki.intermediate),
        "pem bundle with text around it": b"subject=CN=x\n" + pki.second.pem + b"issuer=CN=y\n" + pki.intermediate.pem,
        "der": pki.intermediate.der,
        "p7b der": pki.p7b(pki.second, pki.intermediate),
        "p7b pem": pki.p7b(pki.second, pki.intermediate, encoding=serialization.Encoding.PEM),
        "pem with a byte order mark and CRLF": b"\xef\xbb\xbf" + pki.intermediate.pem.replace(b"\n", b"\r\n"),
    }[form]
    loaded = load_certificates(data, origin="src[0] (x)")
    assert len(loaded) == count
    assert {item.subject for item in loaded} <= {cert(pki.second).subject, cert(pki.intermediate).subject}


def test_text_takes_pem_or_the_base64_of_der_as_a_module_returns_it(pki: Pki) -> None:
    as_base64 = base64.b64encode(pki.second.der).decode()
    assert load_text(as_base64, origin="content[0]")[0].sha256 == cert(pki.second).sha256
    wrapped = "\n".join(as_base64[i : i + 64] for i in range(0, len(as_base64), 64))
    assert load_text(wrapped, origin="content[0]")[0].sha256 == cert(pki.second).sha256
    assert load_text(pki.second.pem.decode(), origin="content[0]")[0].sha256 == cert(pki.second).sha256


def test_identity_is_sha256_and_the_thumbprint_is_windows_sha1(pki: Pki) -> None:
    item = cert(pki.second)
    assert item.sha256 == hashlib.sha256(pki.second.der).hexdigest().upper()
    assert item.thumbprint == hashlib.sha1(pki.second.der, usedforsecurity=False).hexdigest().upper()
    assert len(item.thumbprint) == 40 and item.thumbprint.isupper()


@pytest.mark.parametrize(
    ("name", "role"),
    [
        ("root", ROOT),
        ("cross_root", ROOT),
        ("intermediate", INTERMEDIATE),
        ("cross_intermediate", INTERMEDIATE),
        ("second", INTERMEDIATE),
        ("leaf", LEAF),
    ],
)
def test_root_intermediate_and_leaf_are_told_apart(pki: Pki, name: str, role: str) -> None:
    assert cert(getattr(pki, name)).role == role


def test_a_self_signed_leaf_is_a_leaf() -> None:
    assert cert(issue("exchange.contoso.example", None, ca=False)).role == LEAF


def test_issuance_needs_names_key_identifiers_and_the_signature(pki: Pki) -> None:
    assert issued_by(cert(pki.leaf), cert(pki.second))
    assert not issued_by(cert(pki.leaf), cert(pki.intermediate))
    # Same subject and key identifier, another key: the signature decides.
    impostor = issue("Test Issuing CA", pki.intermediate)
    assert cert(impostor).subject == cert(pki.second).subject
    assert not issued_by(cert(pki.leaf), cert(impostor))
    # A cross-signed copy has the key of the original: it issued what the original issued.
    assert issued_by(cert(pki.second), cert(pki.cross_intermediate))


def test_the_best_path_prefers_a_trusted_root_and_fewest_imports(pki: Pki) -> None:
    leaf = Link(cert(pki.leaf), ("My",))
    given = [Link(cert(pki.second)), Link(cert(pki.intermediate)), Link(cert(pki.cross_intermediate))]
    # The host trusts only the cross root: the path goes through the cross-signed copy.
    pool = [*given, Link(cert(pki.cross_root), ("Root",)), Link(cert(pki.root), ("CA",))]
    path = best_path(leaf, pool)
    assert path.trusted
    assert [link.certificate.subject for link in path.links][-1] == cert(pki.cross_root).subject
    assert [item.sha256 for item in path.additions] == [cert(pki.second).sha256, cert(pki.cross_intermediate).sha256]
    # Without any given, the path stops at the leaf, incomplete.
    alone = best_path(leaf, [Link(cert(pki.root), ("Root",))])
    assert not alone.complete and alone.top.sha256 == cert(pki.leaf).sha256


@pytest.mark.parametrize(
    ("names", "ok"),
    [
        (["second", "intermediate"], True),
        (["second", "intermediate", "cross_intermediate"], True),
        (["intermediate", "cross_intermediate"], True),
        (["second"], True),
        (["second", "unrelated"], False),
        (["intermediate", "unrelated"], False),
    ],
)
def test_one_chain_allows_cross_signed_copies_and_nothing_unrelated(pki: Pki, names: list[str], ok: bool) -> None:
    certificates = [Certificate(getattr(pki, name).certificate, f"src[{i}]") for i, name in enumerate(names)]
    if ok:
        check_one_chain(certificates)
    else:
        with pytest.raises(CertificateError, match="does not chain to the same certificate as the others"):
            check_one_chain(certificates)


def test_a_presented_chain_verifies_to_its_roots_and_names_the_missing_issuer(pki: Pki) -> None:
    now = utc_now()
    complete = verify_to_roots([cert(pki.leaf), cert(pki.second), cert(pki.intermediate)], [cert(pki.root)], now=now)
    assert complete.ok and complete.missing_issuer is None
    partial = verify_to_roots([cert(pki.leaf), cert(pki.second)], [cert(pki.root)], now=now)
    assert not partial.ok
    assert partial.missing_issuer == cert(pki.intermediate).subject
    assert partial.reason == (
        f"the issuer {cert(pki.intermediate).subject} of {cert(pki.second).subject} was not presented and is not in "
        "the trust bundle"
    )
    other = verify_to_roots(
        [cert(pki.leaf), cert(pki.second), cert(pki.intermediate)], [cert(pki.unrelated_root)], now=now
    )
    assert not other.ok and other.missing_issuer == cert(pki.root).subject


def test_a_presented_chain_through_a_certificate_that_is_not_a_ca_does_not_verify(pki: Pki) -> None:
    not_a_ca = issue("Test Server Acting As CA", pki.root, ca=False)
    leaf = issue("relay.contoso.example", not_a_ca, ca=False)
    verdict = verify_to_roots([cert(leaf), cert(not_a_ca)], [cert(pki.root)], now=utc_now())
    assert (verdict.ok, verdict.reason) == (
        False,
        f"{cert(not_a_ca).subject} signs another certificate but is not a CA",
    )


def test_the_client_view_is_rfc_5280_path_validation(pki: Pki) -> None:
    now = utc_now()
    chain = [cert(pki.leaf), cert(pki.second), cert(pki.intermediate)]
    assert verify_client_chain(chain, [cert(pki.root)], now=now).ok
    assert verify_client_chain(chain, [cert(pki.cross_root)], now=now).ok is False
    chain_via_cross = [cert(pki.leaf), cert(pki.second), cert(pki.cross_intermediate)]
    assert verify_client_chain(chain_via_cross, [cert(pki.cross_root)], now=now).ok
    assert not verify_client_chain(chain[:2], [cert(pki.root)], now=now).ok
    assert not verify_client_chain(chain, [cert(pki.root)], now=now + dt.timedelta(days=400)).ok


# --- once per run, across forked workers --------------------------------------------------------------------------


def _validate_in_worker(args: tuple[str, str, str]) -> str:
    path, cache, _index = args
    bundle = bundles.validated_bundle(src=[path], content=[], only_chain=True, cache_dir=Path(cache))
    return bundle.validated


def test_forked_workers_validate_a_bundle_once_and_read_the_verdict(pki: Pki, tmp_path: Path) -> None:
    path = tmp_path / "chain.pem"
    path.write_bytes(pki.pem(pki.second, pki.intermediate))
    cache = tmp_path / "ansible-local-1234"
    # Forked, as ansible-playbook's workers are, but from forkserver's single-threaded process: a fork of pytest
    # itself copies whatever lock another thread holds at that moment, and a worker can then wait on it for ever.
    context = multiprocessing.get_context("forkserver")
    with context.Pool(8) as pool:
        verdicts = pool.map(_validate_in_worker, [(str(path), str(cache), str(index)) for index in range(24)])
    assert verdicts.count(bundles.THIS_TASK) == 1
    assert verdicts.count(bundles.EARLIER) == 23
    # A changed file is a new bundle, validated again.
    path.write_bytes(pki.pem(pki.second))
    assert _validate_in_worker((str(path), str(cache), "x")) == bundles.THIS_TASK


def test_a_refusal_is_remembered_for_the_run_too(pki: Pki, tmp_path: Path) -> None:
    path = tmp_path / "leaf.pem"
    path.write_bytes(pki.leaf.pem)
    for _attempt in range(2):
        with pytest.raises(CertificateError, match="is not a CA certificate"):
            bundles.validated_bundle(src=[str(path)], content=[], only_chain=True, cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("*.json"))) == 1


@pytest.mark.parametrize(
    "stale",
    [
        {"version": 0},  # left by another version of the collection
        {"key": "0" * 64},  # not this bundle's verdict
        ["not", "a", "verdict"],
    ],
    ids=["another version", "another bundle", "not a verdict"],
)
def test_a_cached_verdict_that_is_not_this_versions_for_this_bundle_is_validated_again(
    pki: Pki, tmp_path: Path, stale: t.Any
) -> None:
    path = tmp_path / "chain.pem"
    path.write_bytes(pki.pem(pki.second, pki.intermediate))
    cache = tmp_path / "cache"
    first = bundles.validated_bundle(src=[str(path)], content=[], only_chain=True, cache_dir=cache)
    [entry] = cache.glob("*.json")
    # A verdict that would refuse the bundle, were it read.
    verdict = {**json.loads(entry.read_text(encoding="utf-8")), "error": "refused", "certificates": []}
    entry.write_text(json.dumps({**verdict, **stale} if isinstance(stale, dict) else stale), encoding="utf-8")
    again = bundles.validated_bundle(src=[str(path)], content=[], only_chain=True, cache_dir=cache)
    assert (again.validated, again.certificates) == (bundles.THIS_TASK, first.certificates)


def test_der_is_never_stripped_like_text() -> None:
    # About one certificate in 40 ends in a byte that is whitespace in ASCII (its signature's last byte).
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Whitespace Root")])
    for serial in range(1, 2000):
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
            .not_valid_after(dt.datetime(2036, 1, 1, tzinfo=dt.UTC))
            .sign(key, hashes.SHA256())
        )
        der = certificate.public_bytes(serialization.Encoding.DER)
        if der[-1:].isspace():
            break
    else:
        pytest.fail("no certificate ended in a whitespace byte")
    assert [item.sha256 for item in load_certificates(der, origin="x")] == [hashlib.sha256(der).hexdigest().upper()]


@pytest.mark.parametrize(
    ("version", "problem"),
    [
        ("43.0.0", None),
        ("50.0.2", None),
        ("42.0.8", "the Python library cryptography is version 42.0.8; 43.0 or newer is needed"),
    ],
)
def test_cryptography_43_is_the_oldest_the_controller_accepts(
    monkeypatch: pytest.MonkeyPatch, version: str, problem: str | None
) -> None:
    import cryptography

    monkeypatch.setattr(cryptography, "__version__", version)
    assert cryptography_problem() == problem
