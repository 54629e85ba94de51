"""smtp_tls_chain against SMTP servers that are not the lab (aiosmtpd on loopback, a complete and an incomplete
chain, one without STARTTLS, one that never answers), against the lab's Exchange hosts, and with bad input."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import typing as t
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Sink
from ansible.errors import AnsibleActionFail
from cryptography.hazmat.primitives import serialization

from ansible_collections.mailflow.remediation.plugins.action.smtp_tls_chain import ActionModule
from ansible_collections.mailflow.remediation.plugins.plugin_utils._x509 import Certificate
from tests.lab.fleet import load_fleet
from tests.lab.smtp import MailLab
from tests.pki import Issued, Pki, make_pki
from tests.unit.conftest import EmulatedHost, make_action

FQCN = "mailflow.remediation.smtp_tls_chain"
LOOPBACK = "127.0.0.1"


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki(leaf_name="smtp.fabrikam.example")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def aiosmtpd_server(directory: Path, chain: t.Sequence[Issued] | None) -> t.Iterator[int]:
    """aiosmtpd on loopback, offering STARTTLS with ``chain`` (leaf first), or no STARTTLS at all when None."""
    kwargs: dict[str, t.Any] = {}
    if chain is not None:
        directory.mkdir(exist_ok=True)
        (directory / "chain.pem").write_bytes(b"".join(item.pem for item in chain))
        (directory / "key.pem").write_bytes(Pki.key_pem(chain[0]))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(directory / "chain.pem", directory / "key.pem")
        kwargs["tls_context"] = context
    port = free_port()
    controller = Controller(Sink(), hostname=LOOPBACK, port=port, **kwargs)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


@contextlib.contextmanager
def silent_server() -> t.Iterator[tuple[int, list[int]]]:
    """Accepts connections and never says a word (a firewall that lets SYNs through, a hung service)."""
    listener = socket.socket()
    listener.bind((LOOPBACK, 0))
    listener.listen(8)
    accepted: list[int] = []
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                connection, _address = listener.accept()
            except OSError:
                continue
            accepted.append(1)
            held.append(connection)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1]), accepted
    finally:
        stop.set()
        thread.join(timeout=2)
        for connection in held:
            connection.close()
        listener.close()


def roots_file(directory: Path, *roots: Issued) -> str:
    path = directory / "roots.pem"
    path.write_bytes(b"".join(item.pem for item in roots))
    return str(path)


def run(args: dict[str, t.Any], *, task_vars: dict[str, t.Any] | None = None) -> tuple[dict[str, t.Any], EmulatedHost]:
    load = load_fleet("single")
    host = EmulatedHost(load.hosts["ex01"])
    action = make_action(ActionModule, args, host, fqcn=FQCN, check_mode=False)
    result = action.run(task_vars={"inventory_hostname": "ex01", "ansible_host": LOOPBACK, **(task_vars or {})})
    return t.cast(dict, result), host


def subject(item: Issued) -> str:
    return Certificate(item.certificate).subject


def test_a_complete_chain_verifies_and_eop_accepts_it(pki: Pki, tmp_path: Path) -> None:
    with aiosmtpd_server(tmp_path / "srv", [pki.leaf, pki.second, pki.intermediate]) as port:
        result, host = run({"port": port, "ca_file": roots_file(tmp_path, pki.root)})
    assert result["changed"] is False and result["changes"] == [] and result["unfixable"] == []
    assert (result["article"], result["step"]) == ("KB 3212877", "cause")
    assert [item["subject"] for item in result["presented"]] == [
        subject(pki.leaf),
        subject(pki.second),
        subject(pki.intermediate),
    ]
    assert [item["role"] for item in result["presented"]] == ["leaf", "intermediate", "intermediate"]
    assert result["presented"][0]["thumbprint"] == Certificate(pki.leaf.certificate).thumbprint
    assert result["verified"] is True and result["missing_issuer"] is None
    assert result["eop"] == {"accepted": True, "reason": "", "roots": roots_file(tmp_path, pki.root)}
    assert result["server"]["port"] == port and result["server"]["banner"]
    # The task's WinRM connection is never used.
    assert host.calls == [] and host.command_lines == []


def test_an_incomplete_chain_names_the_missing_issuer_and_eop_refuses_it(pki: Pki, tmp_path: Path) -> None:
    with aiosmtpd_server(tmp_path / "srv", [pki.leaf, pki.second]) as port:
        result, _host = run({"port": port, "ca_file": roots_file(tmp_path, pki.root)})
    assert result["changed"] is False and "failed" not in result
    assert len(result["presented"]) == 2
    assert result["verified"] is False
    assert result["missing_issuer"] == subject(pki.intermediate)
    assert result["eop"]["accepted"] is False and result["eop"]["reason"]
    where = f"{LOOPBACK}:{result['server']['port']}"
    assert result["unfixable"][0] == (
        f"{where} presents an incomplete or untrusted chain: the issuer {subject(pki.intermediate)} of "
        f"{subject(pki.second)} was not presented and is not in the trust bundle; mailflow.remediation.intermediate_ca "
        "imports the missing intermediates on the server"
    )
    assert result["unfixable"][1].startswith(
        f"a verifier that trusts only the roots of {roots_file(tmp_path, pki.root)} refuses the chain of {where} as a "
        "TLS client certificate ("
    )
    assert result["warnings"] == [f"cannot be fixed by this module: {item}" for item in result["unfixable"]]


def test_the_eop_view_trusts_only_its_own_roots_and_checks_the_name(pki: Pki, tmp_path: Path) -> None:
    other = tmp_path / "eop-roots.pem"
    other.write_bytes(pki.unrelated_root.pem)
    with aiosmtpd_server(tmp_path / "srv", [pki.leaf, pki.second, pki.intermediate]) as port:
        result, _host = run(
            {
                "port": port,
                "ca_file": roots_file(tmp_path, pki.root),
                "eop_ca_file": str(other),
                "eop_certificate_name": "*.contoso.example",
            }
        )
    assert result["verified"] is True
    assert result["eop"]["accepted"] is False and result["eop"]["certificate_name_matches"] is False
    assert result["unfixable"][-1] == (
        f"{subject(pki.leaf)} does not match the certificate name '*.contoso.example' that Exchange Online's "
        "connector expects"
    )


def test_the_port_comes_from_the_inventory_variable(pki: Pki, tmp_path: Path) -> None:
    with aiosmtpd_server(tmp_path / "srv", [pki.leaf, pki.second, pki.intermediate]) as port:
        result, _host = run({"ca_file": roots_file(tmp_path, pki.root)}, task_vars={"mailflow_smtp_port": port})
    assert result["server"] == {"host": LOOPBACK, "port": port, "banner": result["server"]["banner"]}
    assert result["verified"] is True


def test_against_the_system_trust_store_a_private_root_does_not_verify(pki: Pki, tmp_path: Path) -> None:
    with aiosmtpd_server(tmp_path / "srv", [pki.leaf, pki.second, pki.intermediate]) as port:
        result, _host = run({"port": port})
    assert result["trust"] == "system" and result["verified"] is False
    assert result["missing_issuer"] == subject(pki.root)


def test_a_server_without_starttls_fails_clearly(tmp_path: Path) -> None:
    with aiosmtpd_server(tmp_path / "srv", None) as port:
        result, _host = run({"port": port})
    assert result["failed"] is True
    assert result["msg"].startswith(f"{LOOPBACK}:{port} does not offer STARTTLS (its EHLO reply offers: ")
    assert "8bitmime" in result["msg"]


def test_a_server_that_never_answers_times_out_clearly() -> None:
    with silent_server() as (port, accepted):
        result, _host = run({"port": port, "timeout": 0.5})
    assert result["failed"] is True
    assert result["msg"] == f"{LOOPBACK}:{port}: no SMTP greeting within 0.5 s (timed out)"
    assert accepted == [1]


def test_a_closed_port_fails_clearly() -> None:
    port = free_port()
    result, _host = run({"port": port})
    assert result["msg"] == f"{LOOPBACK}:{port}: connection refused; is SMTP listening on port {port}?"


def test_the_labs_exchange_hosts_before_and_after_the_import(tmp_path: Path) -> None:
    fleet = load_fleet("contoso")
    assert fleet.pki is not None
    root = tmp_path / "root.pem"
    root.write_bytes(fleet.pki.certificate("public-root").public_bytes(serialization.Encoding.PEM))
    with MailLab(fleet, retry_interval=0) as mail:
        before, _host = run({"port": mail.ports["ex01"], "ca_file": str(root)})
        assert len(before["presented"]) == 1 and before["verified"] is False
        assert before["eop"]["accepted"] is False
        assert before["missing_issuer"] == Certificate(fleet.pki.certificate("public-tls")).subject
        fleet.hosts["ex01"].import_intermediates(fleet.pki.intermediates())
        after, _host = run({"port": mail.ports["ex01"], "ca_file": str(root)})
    assert len(after["presented"]) == 3 and after["verified"] is True and after["eop"]["accepted"] is True


@pytest.mark.parametrize(
    ("args", "task_vars", "message"),
    [
        ({"port": 0}, {}, "port: 0 is not a TCP port (1-65535)"),
        ({"port": 70000}, {}, "port: 70000 is not a TCP port (1-65535)"),
        ({}, {"mailflow_smtp_port": "smtp"}, "port: 'smtp' is not a TCP port (1-65535)"),
        ({"timeout": 0}, {}, "timeout: 0.0 is not a number of seconds above 0"),
        (
            {"ca_file": "/nonexistent/roots.pem"},
            {},
            "ca_file: cannot read /nonexistent/roots.pem on the controller (No such file or directory)",
        ),
        (
            {"port": "twenty-five"},
            {},
            "argument 'port' is of type str and we were unable to convert to int: \"'twenty-five'\" cannot be "
            "converted to an int",
        ),
        (
            {"hostname": "mail"},
            {},
            f"Unsupported parameters for ({FQCN}) module: hostname. Supported parameters include: ca_file, "
            "domain_password, domain_server, domain_username, ehlo_name, eop_ca_file, eop_certificate_name, host, "
            "port, timeout.",
        ),
    ],
)
def test_bad_input_is_refused_before_any_connection(
    args: dict[str, t.Any], task_vars: dict[str, t.Any], message: str
) -> None:
    with silent_server() as (port, accepted):
        with pytest.raises(AnsibleActionFail) as raised:
            given_port = "port" in args or "mailflow_smtp_port" in task_vars
            run(args if given_port else {"port": port, **args}, task_vars=task_vars)
        assert raised.value.message == message
        assert accepted == []


def test_a_ca_file_that_is_not_certificates_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "roots.pem"
    path.write_text("not a certificate")
    with pytest.raises(AnsibleActionFail) as raised:
        run({"ca_file": str(path)})
    assert raised.value.message == f"ca_file ({path}): is not a certificate in PEM, DER or PKCS #7 (.p7b) form"
