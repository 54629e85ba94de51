# Copyright: mailflow.remediation contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of mailflow.remediation.smtp_tls_chain (the cause of KB 3212877, seen from outside).

It runs on the controller only and never uses the task's connection, so it is not a MailflowAction (whose base runs
host scripts); it returns the same result shape: never changed, article, step, found, changes, unfixable.
"""

from __future__ import annotations

import functools
import smtplib
import socket
import ssl
import sys
import typing as t
import warnings
from pathlib import Path

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.mailflow.remediation.plugins.plugin_utils._action_base import DOMAIN_OPTIONS
from ansible_collections.mailflow.remediation.plugins.plugin_utils._x509 import (
    CRYPTOGRAPHY_INSTALL,
    Certificate,
    CertificateError,
    cryptography_problem,
    load_certificates,
    name_matches,
    utc_now,
    verify_client_chain,
    verify_to_roots,
)

ARTICLE = "KB 3212877"
STEP = "cause"
DEFAULT_PORT = 25
PORT_VARIABLE = "mailflow_smtp_port"  # an inventory convention: the host's SMTP port when it is not 25
SYSTEM = "system"


class SmtpProbeError(Exception):
    """The probe could not get a chain from the server; the message says where and why."""


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True
    _supports_async = False

    ARGUMENTS: t.ClassVar[dict[str, t.Any]] = dict(
        argument_spec=dict(
            host=dict(type="str"),
            port=dict(type="int"),
            timeout=dict(type="float", default=10.0),
            ehlo_name=dict(type="str"),
            ca_file=dict(type="path"),
            eop_ca_file=dict(type="path"),
            eop_certificate_name=dict(type="str"),
            # Accepted, unused: one module_defaults entry for the group serves every module of the collection.
            **DOMAIN_OPTIONS,
        )
    )

    def run(self, tmp: t.Any = None, task_vars: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        fqcn = str(self._task.resolved_action or self._task.action)
        try:
            params = self.validate_argument_spec(**self.ARGUMENTS)[1]
        except AnsibleActionFail as exc:
            raise AnsibleActionFail(str(exc.message).replace(f"({self._load_name})", f"({fqcn})")) from None
        problem = cryptography_problem()
        if problem is not None:
            raise AnsibleActionFail(
                f"{fqcn} verifies certificates on the controller and needs the Python library cryptography 43 or "
                f"newer in the Python that runs Ansible ({sys.executable}); {problem}. Install it: "
                f"{CRYPTOGRAPHY_INSTALL}"
            )
        host = params["host"] or str(task_vars.get("ansible_host") or task_vars.get("inventory_hostname", ""))
        port = params["port"] if params["port"] is not None else task_vars.get(PORT_VARIABLE, DEFAULT_PORT)
        check(str(port).isdigit() and 1 <= int(port) <= 65535, "port", f"{port!r} is not a TCP port (1-65535)")
        check(params["timeout"] > 0, "timeout", f"{params['timeout']} is not a number of seconds above 0")
        check(bool(host), "host", "is empty, and the inventory gives no ansible_host")
        roots, trust = trust_roots(params["ca_file"], option="ca_file")
        eop_roots, eop_trust = (
            trust_roots(params["eop_ca_file"], option="eop_ca_file") if params["eop_ca_file"] else (roots, trust)
        )

        result.update(article=ARTICLE, step=STEP, changed=False, changes=[])
        try:
            banner, presented = probe(
                host,
                int(port),
                timeout=params["timeout"],
                ehlo_name=params["ehlo_name"] or socket.getfqdn(),
            )
        except SmtpProbeError as exc:
            result.update(failed=True, msg=str(exc), server={"host": host, "port": int(port)})
            return result

        now = utc_now()
        verdict = verify_to_roots(presented, roots, now=now)
        eop = verify_client_chain(presented, eop_roots, now=now)
        where = f"{host}:{port}"
        unfixable = []
        if not verdict.ok:
            unfixable.append(
                f"{where} presents an incomplete or untrusted chain: {verdict.reason}; mailflow.remediation."
                "intermediate_ca imports the missing intermediates on the server"
            )
        eop_report: dict[str, t.Any] = {"accepted": eop.ok, "reason": eop.reason, "roots": eop_trust}
        if not eop.ok:
            unfixable.append(
                f"a verifier that trusts only the roots of {eop_trust} refuses the chain of {where} as a TLS client "
                f"certificate ({eop.reason}): Exchange Online answers 550 5.7.64 TenantAttribution"
            )
        if params["eop_certificate_name"]:
            matches = name_matches(params["eop_certificate_name"], presented[0])
            eop_report["certificate_name_matches"] = matches
            if not matches:
                unfixable.append(
                    f"{presented[0].subject} does not match the certificate name "
                    f"{params['eop_certificate_name']!r} that Exchange Online's connector expects"
                )
        result.update(
            found=describe(where, presented, verdict.ok, trust),
            unfixable=unfixable,
            server={"host": host, "port": int(port), "banner": banner},
            presented=[item.describe() for item in presented],
            verified=verdict.ok,
            missing_issuer=verdict.missing_issuer,
            trust=trust,
            eop=eop_report,
        )
        if unfixable:
            result["warnings"] = [f"cannot be fixed by this module: {item}" for item in unfixable]
        return result


def check(condition: bool, option: str, message: str) -> None:
    if not condition:
        raise AnsibleActionFail(f"{option}: {message}")


def describe(where: str, presented: t.Sequence[Certificate], verified: bool, trust: str) -> str:
    names = " <- ".join(item.name for item in presented)
    verdict = "verifies" if verified else "does not verify"
    return f"{where} presents {len(presented)} certificate(s): {names}; the chain {verdict} against {trust} roots"


def trust_roots(path: str | None, *, option: str) -> tuple[list[Certificate], str]:
    """The trust bundle: a CA file given on the controller, or the system's (what OpenSSL would use)."""
    if path is None:
        return system_roots(), SYSTEM
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise AnsibleActionFail(f"{option}: cannot read {path} on the controller ({exc.strerror or exc})") from None
    try:
        return load_certificates(data, origin=f"{option} ({path})"), path
    except CertificateError as exc:
        raise AnsibleActionFail(str(exc)) from None


@functools.cache
def system_roots() -> list[Certificate]:
    paths = ssl.get_default_verify_paths()
    files = [Path(paths.cafile)] if paths.cafile and Path(paths.cafile).is_file() else []
    if not files and paths.capath and Path(paths.capath).is_dir():
        files = sorted(item for item in Path(paths.capath).iterdir() if item.is_file())
    roots: list[Certificate] = []
    with warnings.catch_warnings():
        # Distributions still ship a few old roots that cryptography warns about (a negative serial number).
        warnings.simplefilter("ignore")
        for item in files:
            try:
                roots += load_certificates(item.read_bytes(), origin=str(item))
            except (OSError, CertificateError):
                continue  # one unreadable file of a hashed directory does not spoil the others
    return roots


def probe(host: str, port: int, *, timeout: float, ehlo_name: str) -> tuple[str, list[Certificate]]:
    """Connect, EHLO, STARTTLS, and return the greeting and the certificates the server sent (leaf first)."""
    where = f"{host}:{port}"
    client = smtplib.SMTP(timeout=timeout, local_hostname=ehlo_name)
    try:
        try:
            _code, greeting = client.connect(host, port)
        except TimeoutError:
            raise SmtpProbeError(f"{where}: no connection within {timeout:g} s (timed out)") from None
        except smtplib.SMTPServerDisconnected as exc:
            # smtplib reports a greeting that never came as a disconnection caused by the timeout.
            if isinstance(exc.__context__, (TimeoutError, socket.timeout)):
                raise SmtpProbeError(f"{where}: no SMTP greeting within {timeout:g} s (timed out)") from None
            raise SmtpProbeError(f"{where}: closed the connection before its greeting") from None
        except ConnectionRefusedError:
            raise SmtpProbeError(f"{where}: connection refused; is SMTP listening on port {port}?") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise SmtpProbeError(f"{where}: cannot connect ({exc})") from None
        banner = greeting.decode("ascii", "replace")
        # smtplib takes the TLS server name for STARTTLS from the host given to its constructor, not to connect().
        client._host = host  # type: ignore[attr-defined]
        try:
            code, reply = client.ehlo()
            if code != 250:
                raise SmtpProbeError(f"{where}: refused EHLO: {code} {reply.decode('ascii', 'replace')}")
            if not client.has_extn("starttls"):
                offered = ", ".join(sorted(client.esmtp_features)) or "nothing"
                raise SmtpProbeError(f"{where} does not offer STARTTLS (its EHLO reply offers: {offered})")
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            # The chain is judged afterwards, on what the server sent, against the trust bundle; the handshake
            # itself must not stop at an incomplete chain, which is what this module is there to show.
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            client.starttls(context=context)
            chain = presented_chain(client.sock)
        except TimeoutError:
            raise SmtpProbeError(f"{where}: the server stopped answering for {timeout:g} s (timed out)") from None
        except smtplib.SMTPResponseException as exc:
            text = exc.smtp_error.decode("ascii", "replace") if isinstance(exc.smtp_error, bytes) else exc.smtp_error
            raise SmtpProbeError(f"{where}: refused STARTTLS: {exc.smtp_code} {text}") from None
        except ssl.SSLError as exc:
            raise SmtpProbeError(f"{where}: the TLS handshake after STARTTLS failed ({exc})") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise SmtpProbeError(f"{where}: the SMTP session failed ({exc})") from None
    finally:
        try:
            client.quit()
        except (OSError, smtplib.SMTPException):
            client.close()
    if not chain:
        raise SmtpProbeError(f"{where}: the server presented no certificate")
    return banner, chain


def presented_chain(sock: t.Any) -> list[Certificate]:
    """Every certificate in the server's Certificate message, leaf first (not only the leaf getpeercert gives)."""
    # SSLSocket.get_unverified_chain is public from Python 3.13; from 3.10 the SSL object has it.
    chain_of = getattr(sock, "get_unverified_chain", None) or getattr(
        getattr(sock, "_sslobj", None), "get_unverified_chain", None
    )
    if chain_of is not None:
        items = [item for item in chain_of() or [] if item is not None]
        return [
            load_certificates(item.public_bytes().encode("ascii"), origin=f"certificate {index} presented")[0]
            for index, item in enumerate(items, start=1)
        ]
    leaf = sock.getpeercert(binary_form=True)
    return [Certificate.from_der(leaf, origin="the certificate presented")] if leaf else []
