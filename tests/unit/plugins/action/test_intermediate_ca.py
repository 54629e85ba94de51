"""intermediate_ca: the decision, check mode, the diff, export and import, and every refusal of bad input, against an
emulated Exchange server of the contoso fleet (ex01 lacks the issuing intermediate, ex03 both, ex02 none)."""

from __future__ import annotations

import base64
import subprocess
import sys
import tempfile
import typing as t
from pathlib import Path

import pytest
from ansible import constants as C  # noqa: N812
from ansible.errors import AnsibleActionFail
from cryptography.hazmat.primitives import serialization

from ansible_collections.mailflow.remediation.plugins.action.intermediate_ca import ActionModule
from ansible_collections.mailflow.remediation.plugins.plugin_utils import _x509
from ansible_collections.mailflow.remediation.plugins.plugin_utils._x509 import Certificate
from tests.lab.fleet import Fleet, load_fleet
from tests.pki import Pki, make_pki
from tests.playbook import REPO_ROOT
from tests.unit.conftest import EmulatedHost, make_action, with_params

FQCN = "mailflow.remediation.intermediate_ca"
CREDENTIALS = {"domain_username": "CONTOSO\\ansible", "domain_password": "Lab-Passw0rd!"}


@pytest.fixture(autouse=True)
def run_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test is one ansible-playbook run: its own controller temp dir, hence its own validation verdicts."""
    directory = tmp_path / "ansible-local-run"
    monkeypatch.setattr(C, "DEFAULT_LOCAL_TMP", str(directory))
    return directory


@pytest.fixture
def contoso() -> Fleet:
    return load_fleet("contoso")


def on(fleet: Fleet, name: str) -> EmulatedHost:
    emulated = EmulatedHost(fleet.hosts[name])
    emulated.fleet = fleet
    emulated.state = fleet.hosts[name]
    return emulated


def pem_file(fleet: Fleet, tmp_path: Path, *names: str) -> str:
    assert fleet.pki is not None
    path = tmp_path / f"{'-'.join(names)}.pem"
    path.write_bytes(b"".join(fleet.pki.certificate(name).public_bytes(serialization.Encoding.PEM) for name in names))
    return str(path)


def subject(fleet: Fleet, name: str) -> Certificate:
    assert fleet.pki is not None
    return Certificate(fleet.pki.certificate(name))


def run(emulated: EmulatedHost, args: dict[str, t.Any], *, check_mode: bool = False) -> dict[str, t.Any]:
    action = make_action(ActionModule, args, emulated, check_mode=check_mode, fqcn=FQCN)
    return t.cast(dict, action.run(task_vars={"inventory_hostname": emulated.state.name}))


def ca_store(emulated: EmulatedHost) -> set[str]:
    return {entry.thumbprint for entry in emulated.state.certificates.entries("CA")}


@pytest.mark.parametrize(
    ("host", "missing"),
    [("ex01", ["public-tls"]), ("ex03", ["public-tls", "public-policy"]), ("ex02", [])],
    ids=["issuing intermediate missing", "both missing", "complete"],
)
@pytest.mark.parametrize("check_mode", [True, False], ids=["check", "apply"])
def test_imports_exactly_the_missing_intermediates_and_check_mode_writes_nothing(
    contoso: Fleet, tmp_path: Path, host: str, missing: list[str], check_mode: bool
) -> None:
    emulated = on(contoso, host)
    before = ca_store(emulated)
    args = {"src": [pem_file(contoso, tmp_path, "public-tls", "public-policy")], **CREDENTIALS}
    result = run(emulated, args, check_mode=check_mode)

    wanted = [subject(contoso, name) for name in missing]
    assert result["changed"] is bool(missing)
    assert (result["article"], result["step"]) == ("KB 3212877", "1-3")
    assert result["changes"] == [
        f"import {c.subject} (thumbprint {c.thumbprint}) into LocalMachine\\CA" for c in wanted
    ]
    assert result["imported"] == [{"subject": c.subject, "thumbprint": c.thumbprint} for c in wanted]
    assert result["unfixable"] == []
    assert result["certificate"]["presented_for"] == ["SMTP", "send connector Outbound to Office 365"]
    assert [link["stores"] for link in result["chain"]] == [["My"], ["CA"], ["CA"], ["Root"]]
    assert result["diff"]["after"].endswith(
        f"chain the host builds: complete to the trusted root {subject(contoso, 'public-root').subject}\n"
    )
    for item in wanted:
        line = f"LocalMachine\\CA: {item.subject} (thumbprint {item.thumbprint})"
        assert line in result["diff"]["after"] and line not in result["diff"]["before"]
    # One round trip to read, one more only when a real run imports.
    assert len(emulated.calls) == (2 if missing and not check_mode else 1)
    if check_mode or not missing:
        assert emulated.changes == [] and ca_store(emulated) == before
    else:
        assert ca_store(emulated) == before | {c.thumbprint for c in wanted}
        assert all(change["path"].startswith("host/certificates/CA") for change in emulated.changes)
        again = run(emulated, args)
        assert again["changed"] is False and again["changes"] == [] and len(emulated.calls) == 3


def test_the_incomplete_chain_is_reported_before_and_complete_after(contoso: Fleet, tmp_path: Path) -> None:
    emulated = on(contoso, "ex01")
    args = {"src": [pem_file(contoso, tmp_path, "public-tls")], **CREDENTIALS}
    result = run(emulated, args)
    leaf = emulated.state.smtp_certificate()
    assert leaf is not None
    tls, policy, root = (subject(contoso, name) for name in ("public-tls", "public-policy", "public-root"))
    # Before: what the host's stores hold of the chain the given issuing CA leads to, and that the host cannot
    # build it; after: the issuing CA in LocalMachine\CA, the one added line of the diff.
    assert result["diff"]["before"] == (
        f"certificate: {Certificate(leaf.certificate).subject} (thumbprint {leaf.thumbprint}), presented for SMTP, "
        "send connector Outbound to Office 365\n"
        f"LocalMachine\\CA: {policy.subject} (thumbprint {policy.thumbprint})\n"
        f"LocalMachine\\Root: {root.subject} (thumbprint {root.thumbprint})\n"
        f"chain the host builds: incomplete: the issuer {tls.subject} of {Certificate(leaf.certificate).subject} is "
        "in none of its stores\n"
    )
    assert result["diff"]["after"] == (
        f"certificate: {Certificate(leaf.certificate).subject} (thumbprint {leaf.thumbprint}), presented for SMTP, "
        "send connector Outbound to Office 365\n"
        f"LocalMachine\\CA: {tls.subject} (thumbprint {tls.thumbprint})\n"
        f"LocalMachine\\CA: {policy.subject} (thumbprint {policy.thumbprint})\n"
        f"LocalMachine\\Root: {root.subject} (thumbprint {root.thumbprint})\n"
        f"chain the host builds: complete to the trusted root {root.subject}\n"
    )
    chain = emulated.state.smtp_chain()
    assert chain is not None and chain.trusted


def test_the_chain_exported_from_one_host_completes_another(contoso: Fleet) -> None:
    reference = run(on(contoso, "ex02"), {**CREDENTIALS})
    assert reference["changed"] is False
    exported = reference["intermediates_der"]
    assert [Certificate.from_der(base64.b64decode(der)).name for der in exported] == [
        "Lab Public TLS Issuing CA",
        "Lab Public Policy CA",
    ]
    target = on(contoso, "ex03")
    result = run(target, {"content": exported, **CREDENTIALS})
    assert result["changed"] is True and len(result["imported"]) == 2
    chain = target.state.smtp_chain()
    assert chain is not None and chain.trusted


def test_a_thumbprint_needs_no_exchange_session_and_no_credentials(contoso: Fleet, tmp_path: Path) -> None:
    emulated = on(contoso, "ex01")
    leaf = emulated.state.smtp_certificate()
    assert leaf is not None
    # As certlm.msc shows it when copied: blanks and a left-to-right mark in front.
    shown = "\u200e" + " ".join(leaf.thumbprint[i : i + 2] for i in range(0, 40, 2)).lower()
    result = run(emulated, {"thumbprint": shown, "src": [pem_file(contoso, tmp_path, "public-tls")]})
    assert result["changed"] is True
    assert result["certificate"]["thumbprint"] == leaf.thumbprint
    assert result["certificate"]["presented_for"] == ["thumbprint"]
    assert result["send_connectors"] == []
    assert [params["thumbprint"] for _script, params in emulated.calls] == [leaf.thumbprint, leaf.thumbprint]


def test_without_credentials_the_exchange_session_is_the_second_hop(contoso: Fleet) -> None:
    emulated = on(contoso, "ex01")
    result = run(emulated, {})
    assert result["failed"] is True and result["script"] == "certificate_chain"
    assert result["msg"].startswith(
        f"{FQCN} could not authenticate from ex01 to Exchange "
        "(System.Management.Automation.Remoting.PSRemotingTransportException: Connecting to remote server "
        "ex01.contoso.example failed"
    )
    assert "domain_username and domain_password" in result["msg"]
    assert emulated.changes == []


def test_an_audit_without_certificates_names_the_missing_issuer(contoso: Fleet) -> None:
    emulated = on(contoso, "ex01")
    result = run(emulated, {**CREDENTIALS}, check_mode=True)
    leaf = emulated.state.smtp_certificate()
    assert leaf is not None
    tls = subject(contoso, "public-tls")
    assert result["changed"] is False and "bundle" not in result
    assert result["unfixable"] == [
        f"the issuer {tls.subject} of {Certificate(leaf.certificate).subject} is in none of the host's stores and "
        "not among the certificates given: give it in src or content (KB 3212877 steps 1-2)"
    ]
    assert result["warnings"] == [f"cannot be fixed by this module: {result['unfixable'][0]}"]


def test_a_root_the_host_does_not_trust_is_reported_and_never_imported(contoso: Fleet, tmp_path: Path) -> None:
    emulated = on(contoso, "ex03")
    root = subject(contoso, "public-root")
    # Imported into the wrong store: the chain is complete, and ends in a root the host does not trust.
    emulated.state.certificates.remove("Root", root.thumbprint)
    emulated.state.certificates.add("CA", root.certificate)
    result = run(emulated, {"src": [pem_file(contoso, tmp_path, "public-tls", "public-policy")], **CREDENTIALS})
    assert result["changed"] is True and len(result["imported"]) == 2
    assert result["unfixable"] == [
        f"the chain ends in the root {root.subject} (thumbprint {root.thumbprint}), which is not in "
        "LocalMachine\\Root: CryptoAPI calls it untrusted (CAPI2 event 30, 800B0109); this module imports "
        "intermediates only, import the root yourself if you trust it"
    ]
    assert root.thumbprint not in {entry.thumbprint for entry in emulated.state.certificates.entries("Root")}


def test_only_chain_refuses_after_the_read_what_does_not_chain_to_the_hosts_certificate(
    contoso: Fleet, tmp_path: Path
) -> None:
    pki = make_pki()
    emulated = on(contoso, "ex01")
    path = tmp_path / "other.pem"
    path.write_bytes(pki.pem(pki.second, pki.intermediate))
    with pytest.raises(
        AnsibleActionFail, match=r"does not chain to O=Mailflow Lab Test PKI,CN=mail\.contoso\.example"
    ) as raised:
        run(emulated, {"src": [str(path)], **CREDENTIALS})
    assert raised.value.message.endswith(
        "nothing was imported. With only_chain: true every certificate given must be an issuer on its chain"
    )
    assert len(emulated.calls) == 1 and emulated.changes == []
    # only_chain: false takes what the chain needs from a larger bundle, and leaves the rest.
    mixed = tmp_path / "mixed.pem"
    assert contoso.pki is not None
    mixed.write_bytes(pki.second.pem + contoso.pki.certificate("public-tls").public_bytes(serialization.Encoding.PEM))
    result = run(emulated, {"src": [str(mixed)], "only_chain": False, **CREDENTIALS})
    assert [item["subject"] for item in result["imported"]] == [subject(contoso, "public-tls").subject]


def test_a_bundle_is_validated_once_per_run(contoso: Fleet, tmp_path: Path) -> None:
    src = pem_file(contoso, tmp_path, "public-tls", "public-policy")
    first = run(on(contoso, "ex01"), {"src": [src], **CREDENTIALS}, check_mode=True)
    second = run(on(contoso, "ex03"), {"src": [src], **CREDENTIALS}, check_mode=True)
    assert first["bundle"]["validated"] == "this task"
    assert second["bundle"]["validated"] == "earlier in this run"
    assert first["bundle"]["sha256"] == second["bundle"]["sha256"]


def test_an_import_the_host_did_not_keep_fails_the_task(contoso: Fleet, tmp_path: Path) -> None:
    emulated = on(contoso, "ex01")
    real_execute = emulated.execute

    def forget_imports(
        cmd: str, sudoable: bool = True, in_data: bytes | None = None, **options: t.Any
    ) -> dict[str, t.Any]:
        return real_execute(
            cmd, sudoable, with_params(in_data, lambda params: params.update(action="read", **{"import": []}))
        )

    action = make_action(
        ActionModule, {"src": [pem_file(contoso, tmp_path, "public-tls")], **CREDENTIALS}, emulated, fqcn=FQCN
    )
    action._low_level_execute_command = forget_imports
    with pytest.raises(
        AnsibleActionFail, match=r"(?s)after the change, expected .*LocalMachine\\CA: .*Lab Public TLS Issuing CA"
    ):
        action.run(task_vars={"inventory_hostname": "ex01"})


# --- bad input: a clear, whole message, and no host contact -------------------------------------------------------


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki()


def bad_inputs(pki: Pki, tmp: Path) -> list[tuple[str, dict[str, t.Any], str]]:
    def write(name: str, data: bytes) -> str:
        path = tmp / name
        path.write_bytes(data)
        return str(path)

    def s(item: t.Any) -> str:
        return Certificate(item.certificate).subject

    chain = write("chain.pem", pki.pem(pki.second, pki.intermediate))
    leaf = write("leaf.pem", pki.leaf.pem)
    truncated = pki.second.pem.decode().rsplit("-----END", 1)[0]
    damaged = pki.second.pem.decode().replace("MII", "M!I", 1)
    if damaged == pki.second.pem.decode():
        damaged = pki.second.pem.decode().replace("\n", "\n*", 2)
    return [
        (
            "a leaf",
            {"src": [leaf]},
            f"src[0] ({leaf}): {s(pki.leaf)} is not a CA certificate (BasicConstraints CA is false): a server's own "
            "certificate is not an intermediate",
        ),
        (
            "a leaf inside a bundle",
            {"src": [write("with-leaf.pem", pki.pem(pki.leaf, pki.second))]},
            f"src[0] ({tmp}/with-leaf.pem), certificate 1 of 2: {s(pki.leaf)} is not a CA certificate "
            "(BasicConstraints CA is false): a server's own certificate is not an intermediate",
        ),
        (
            "no BasicConstraints",
            {"content": [pki.no_constraints.pem.decode()]},
            f"content[0]: {s(pki.no_constraints)} is not a CA certificate: it has no BasicConstraints extension",
        ),
        (
            "KeyUsage without keyCertSign",
            {"content": [pki.no_cert_sign.pem.decode()]},
            f"content[0]: {s(pki.no_cert_sign)} is a CA certificate whose KeyUsage lacks keyCertSign: it may not sign "
            "others",
        ),
        (
            "no KeyUsage",
            {"content": [pki.no_key_usage.pem.decode()]},
            f"content[0]: {s(pki.no_key_usage)} has no KeyUsage extension, so it does not assert keyCertSign, which "
            "RFC 5280 requires of a CA",
        ),
        (
            "expired",
            {"content": [pki.expired.pem.decode()]},
            f"content[0]: {s(pki.expired)} expired on {pki.expired.certificate.not_valid_after_utc.isoformat()}",
        ),
        (
            "not yet valid",
            {"content": [pki.not_yet_valid.pem.decode()]},
            f"content[0]: {s(pki.not_yet_valid)} is not valid before "
            f"{pki.not_yet_valid.certificate.not_valid_before_utc.isoformat()}",
        ),
        (
            "a self-signed root",
            {"src": [chain], "content": [pki.root.pem.decode()]},
            f"content[0]: {s(pki.root)} is a self-signed root; a root belongs in LocalMachine\\Root, which this module "
            "does not change: give intermediates only",
        ),
        (
            "a root in a .p7b",
            {"src": [write("full.p7b", pki.p7b(pki.root))]},
            f"src[0] ({tmp}/full.p7b): {s(pki.root)} is a self-signed root; a root belongs in "
            "LocalMachine\\Root, which this module does not change: give intermediates only",
        ),
        (
            "a private key in a PEM bundle",
            {"src": [write("with-key.pem", pki.second.pem + pki.key_pem(pki.second))]},
            f"src[0] ({tmp}/with-key.pem): contains a private key (PEM block 2, PRIVATE KEY); give certificates "
            "only: a private key must never be sent to a host to complete a chain",
        ),
        (
            "a private key as content",
            {"content": [pki.key_pem(pki.leaf).decode()]},
            "content[0]: contains a private key (PEM block 1, PRIVATE KEY); give certificates only: a private key must "
            "never be sent to a host to complete a chain",
        ),
        (
            "a .pfx",
            {"src": [write("leaf.pfx", pki.pfx(pki.leaf))]},
            f"src[0] ({tmp}/leaf.pfx): is a PKCS #12 (.pfx) file, which holds a private key; export the intermediate "
            "certificates without it (DER .cer, PEM or .p7b)",
        ),
        (
            "an unrelated CA in the bundle",
            {"src": [chain, write("unrelated.pem", pki.unrelated.pem)]},
            f"src[1] ({tmp}/unrelated.pem): {s(pki.unrelated)} does not chain to the same certificate as the others "
            f"({s(pki.second)}, from src[0] ({chain}), certificate 1 of 2); with only_chain: true every certificate "
            "given must lie on one chain: remove it, or set only_chain: false to import from a larger bundle only "
            "what the chain needs",
        ),
        (
            "a missing file",
            {"src": [str(tmp / "nowhere.pem")]},
            f"src[0] ({tmp}/nowhere.pem): no such file on the controller",
        ),
        ("a directory", {"src": [str(tmp)]}, f"src[0] ({tmp}): is a directory, not a certificate file"),
        ("an empty file", {"src": [write("empty.pem", b"\n\n")]}, f"src[0] ({tmp}/empty.pem): is empty"),
        (
            "garbage bytes",
            {"src": [write("garbage.cer", b"\x30\x03\x02\x01\x05 not a certificate")]},
            f"src[0] ({tmp}/garbage.cer): is not a certificate in PEM, DER or PKCS #7 (.p7b) form",
        ),
        (
            "a truncated PEM",
            {"content": [truncated]},
            "content[0]: a PEM block has no matching -----END ...----- line (a truncated file?)",
        ),
        (
            "damaged base64 in PEM",
            {"content": [damaged]},
            "content[0], PEM block 1 (CERTIFICATE): the base64 inside it is damaged",
        ),
        (
            "a certificate request",
            {"content": ["-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n"]},
            "content[0], PEM block 1 (CERTIFICATE REQUEST): a certificate request, not a certificate",
        ),
        (
            "text that is neither PEM nor base64",
            {"content": ["please import the Sectigo intermediates"]},
            "content[0]: is neither PEM (-----BEGIN CERTIFICATE-----) nor the base64 of a DER certificate",
        ),
        ("empty content", {"content": ["  "]}, "content[0]: is empty"),
        (
            "a thumbprint that is not one",
            {"thumbprint": "not-a-thumbprint"},
            "thumbprint: 'not-a-thumbprint' is not a SHA-1 thumbprint (40 hexadecimal digits, as certlm.msc shows it)",
        ),
        (
            "a SHA-256 where the SHA-1 thumbprint belongs",
            {"thumbprint": "A" * 64},
            f"thumbprint: '{'A' * 64}' is not a SHA-1 thumbprint (40 hexadecimal digits, as certlm.msc shows it)",
        ),
        (
            "thumbprint and send_connector",
            {"thumbprint": "A" * 40, "send_connector": "Outbound to Office 365"},
            "parameters are mutually exclusive: thumbprint|send_connector",
        ),
        (
            "an empty send connector",
            {"send_connector": " "},
            "send_connector: is empty; give the name of a send connector, or leave it out",
        ),
        (
            "a password without a user",
            {"domain_password": "x"},
            "parameters are required together: domain_username, domain_password",
        ),
        (
            "an unknown option",
            {"certificates": [chain]},
            f"Unsupported parameters for ({FQCN}) module: certificates. Supported parameters include: content, "
            "domain_password, domain_server, domain_username, only_chain, send_connector, src, thumbprint.",
        ),
        (
            "src that is not a list of paths",
            {"src": {"file": chain}},
            "argument 'src' is of type dict and we were unable to convert to list: <class 'dict'> cannot be "
            "converted to a list",
        ),
    ]


with tempfile.TemporaryDirectory() as _scratch:
    BAD_INPUT_NAMES = [case[0] for case in bad_inputs(make_pki(), Path(_scratch))]


@pytest.mark.parametrize("case", BAD_INPUT_NAMES)
def test_bad_input_is_refused_with_one_whole_message_and_no_host_contact(
    pki: Pki, contoso: Fleet, tmp_path: Path, case: str
) -> None:
    args, message = next((args, message) for name, args, message in bad_inputs(pki, tmp_path) if name == case)
    emulated = on(contoso, "ex01")
    with pytest.raises(AnsibleActionFail) as raised:
        run(emulated, args)
    assert raised.value.message == message
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
    assert emulated.calls == [] and emulated.command_lines == []


def test_there_are_at_least_twenty_bad_inputs() -> None:
    assert len(BAD_INPUT_NAMES) >= 20


# --- cryptography is a declared controller requirement ------------------------------------------------------------


def test_without_cryptography_the_task_says_what_to_install(
    contoso: Fleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_x509, "CRYPTOGRAPHY_IMPORT_ERROR", ImportError("No module named 'cryptography'"))
    emulated = on(contoso, "ex01")
    with pytest.raises(AnsibleActionFail) as raised:
        run(emulated, {"src": [pem_file(contoso, tmp_path, "public-tls")]})
    assert raised.value.message == (
        f"{FQCN} validates certificates on the controller and needs the Python library cryptography 43 or newer in "
        f"the Python that runs Ansible ({sys.executable}); the Python library cryptography is not installed (No "
        "module named 'cryptography'). Install it: pip install 'cryptography>=43' (the collection's "
        "requirements.txt)"
    )
    assert emulated.calls == []


def test_the_action_plugins_load_without_cryptography() -> None:
    # A controller without cryptography must still load the plugins, to fail the task with the message above.
    program = (
        "import sys; sys.modules['cryptography'] = None\n"
        "from ansible_collections.mailflow.remediation.plugins.action import intermediate_ca, smtp_tls_chain\n"
        "from ansible_collections.mailflow.remediation.plugins.plugin_utils import _x509\n"
        "print(_x509.cryptography_problem())\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,
        env={"PYTHONPATH": f"{REPO_ROOT}:{REPO_ROOT / '.collections'}"},
    )
    assert output.stdout.startswith("the Python library cryptography is not installed (")
