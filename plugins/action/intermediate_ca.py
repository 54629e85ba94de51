# Copyright: mailflow.remediation contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of mailflow.remediation.intermediate_ca (KB 3212877 steps 1-3)."""

from __future__ import annotations

import base64
import sys
import typing as t
from dataclasses import dataclass, replace
from pathlib import Path as FilePath

from ansible import constants as C  # noqa: N812 - ansible-core's own spelling
from ansible.errors import AnsibleActionFail, AnsibleError

from ansible_collections.mailflow.remediation.plugins.plugin_utils._action_base import (
    ArgumentError,
    ArgumentSpec,
    MailflowAction,
    Plan,
    domain_params,
    with_domain_options,
)
from ansible_collections.mailflow.remediation.plugins.plugin_utils._certificate_bundle import Bundle, validated_bundle
from ansible_collections.mailflow.remediation.plugins.plugin_utils._x509 import (
    CRYPTOGRAPHY_INSTALL,
    Certificate,
    CertificateError,
    Link,
    Path,
    ancestors,
    best_path,
    cryptography_problem,
    merge_links,
    utc_now,
)

SCRIPT = "certificate_chain"
# Exchange Online Protection's MX hosts, which a send connector relaying through EOP names as smart hosts.
EOP_SMART_HOST_SUFFIX = ".mail.protection.outlook.com"
THUMBPRINT_NOISE = str.maketrans("", "", " :\u200e\u200f\ufeff")  # what copying from certlm.msc brings along


@dataclass(frozen=True)
class View:
    """The certificate whose chain the run completes, and that chain as the host's stores hold it."""

    certificate: Certificate | None
    presented_for: tuple[str, ...] = ()
    has_private_key: bool = True
    path: Path | None = None  # from the certificate upward, through the host's stores and the certificates given
    status: str = ""  # the chain the host builds, in words
    host_chain: tuple[Link, ...] = ()  # as X509Chain built it, each element with the stores that hold it
    pool: tuple[Link, ...] = ()  # what a path may go through: the host's certificates and the ones given
    send_connectors: tuple[dict[str, t.Any], ...] = ()
    imported: tuple[str, ...] = ()
    note: str = ""  # why there is no certificate


class ActionModule(MailflowAction):
    ARTICLE = "KB 3212877"
    STEP = "1-3"
    SUBJECT = "the SMTP certificate's chain in the LocalMachine stores"
    REACHES = "Exchange"
    ARGUMENTS: t.ClassVar[ArgumentSpec] = with_domain_options(
        ArgumentSpec(
            argument_spec=dict(
                src=dict(type="list", elements="path", default=[]),
                content=dict(type="list", elements="str", default=[]),
                only_chain=dict(type="bool", default=True),
                thumbprint=dict(type="str"),
                send_connector=dict(type="str"),
            ),
            mutually_exclusive=[("thumbprint", "send_connector")],
        )
    )

    bundle: Bundle | None = None

    # --- before any host contact ----------------------------------------------------------------------------------
    def check_arguments(self, params: dict[str, t.Any]) -> None:
        problem = cryptography_problem()
        if problem is not None:
            raise AnsibleActionFail(missing_cryptography(self._fqcn, problem))
        if params["thumbprint"] is not None:
            thumbprint = params["thumbprint"].translate(THUMBPRINT_NOISE).upper()
            if len(thumbprint) != 40 or any(digit not in "0123456789ABCDEF" for digit in thumbprint):
                raise ArgumentError(
                    "thumbprint",
                    f"{params['thumbprint']!r} is not a SHA-1 thumbprint (40 hexadecimal digits, as certlm.msc "
                    "shows it)",
                )
            params["thumbprint"] = thumbprint
        if params["send_connector"] is not None and not params["send_connector"].strip():
            raise ArgumentError("send_connector", "is empty; give the name of a send connector, or leave it out")
        for index, text in enumerate(params["content"]):
            if not text.strip():
                raise ArgumentError(f"content[{index}]", "is empty")
        try:
            sources = [self._controller_file(path) for path in params["src"]]
            self.bundle = None
            if sources or params["content"]:
                self.bundle = validated_bundle(
                    src=sources, content=params["content"], only_chain=params["only_chain"], cache_dir=cache_dir()
                )
        except CertificateError as exc:
            raise AnsibleActionFail(str(exc)) from None

    def _controller_file(self, path: str) -> str:
        """A relative src is looked up as Ansible looks up files: the role's files/, then the playbook's."""
        if FilePath(path).is_absolute():
            return path
        try:
            return str(self._find_needle("files", path))
        except AnsibleError:
            return path  # read_sources reports that it does not exist

    # --- the hooks ------------------------------------------------------------------------------------------------
    def read_state(self, params: dict[str, t.Any]) -> View:
        result = self.run_script(SCRIPT, self._script_params(params, action="read"))
        return self._view(params, result)

    def plan(self, params: dict[str, t.Any], before: View) -> Plan:
        if before.certificate is None or before.path is None:
            return Plan(expected=before, unfixable=[before.note])
        path = before.path
        unfixable = []
        if not before.has_private_key:
            unfixable.append(
                f"{before.certificate.subject} (thumbprint {before.certificate.thumbprint}) has no private key in "
                "LocalMachine\\My: Exchange cannot present it; install it again with its key"
            )
        if self.bundle is not None and params["only_chain"]:
            reachable = ancestors(before.certificate, [link.certificate for link in before.pool])
            strays = [item for item in self.bundle.certificates if item.sha256 not in reachable]
            if strays:
                raise AnsibleActionFail(
                    f"{strays[0].origin}: {strays[0].subject} does not chain to {before.certificate.subject} "
                    f"(thumbprint {before.certificate.thumbprint}, issued by {before.certificate.issuer}); nothing "
                    "was imported. With only_chain: true every certificate given must be an issuer on its chain"
                )
        top = path.top
        if not path.complete:
            unfixable.append(
                f"the issuer {top.issuer} of {top.subject} is in none of the host's stores and not among the "
                "certificates given: give it in src or content (KB 3212877 steps 1-2)"
            )
        elif not path.trusted:
            unfixable.append(
                f"the chain ends in the root {top.subject} (thumbprint {top.thumbprint}), which is not in "
                "LocalMachine\\Root: CryptoAPI calls it untrusted (CAPI2 event 30, 800B0109); this module imports "
                "intermediates only, import the root yourself if you trust it"
            )
        additions = path.additions
        if not additions:
            return Plan(expected=before, unfixable=unfixable)
        predicted = Path(
            tuple(replace(link, stores=("CA",)) if link.certificate in additions else link for link in path.links)
        )
        expected = replace(
            before, path=predicted, status=predicted_status(predicted), imported=tuple(a.thumbprint for a in additions)
        )
        return Plan(
            changes=[
                f"import {item.subject} (thumbprint {item.thumbprint}) into LocalMachine\\CA" for item in additions
            ],
            expected=expected,
            change_params=self._script_params(
                params,
                action="import",
                thumbprint=before.certificate.thumbprint,
                imports=[item.der_base64 for item in additions],
            ),
            unfixable=unfixable,
        )

    def apply(self, params: dict[str, t.Any], plan: Plan) -> View:
        expected = t.cast(View, plan.expected)
        change_params = plan.change_params or {}
        result = self.run_script(SCRIPT, change_params)
        # The import run names the certificate by thumbprint (no Exchange session); why it is presented stays.
        after = self._view({**params, "thumbprint": change_params.get("thumbprint")}, result)
        return replace(after, presented_for=expected.presented_for, send_connectors=expected.send_connectors)

    def render(self, state: View) -> str:
        if state.certificate is None or state.path is None:
            return f"certificate: none ({state.note})\n"
        leaf = state.certificate
        presented = ", ".join(state.presented_for)
        lines = [f"certificate: {leaf.subject} (thumbprint {leaf.thumbprint}), presented for {presented}"]
        for link in state.path.links[1:]:
            if link.stores:
                stores = ", ".join(f"LocalMachine\\{store}" for store in link.stores)
                lines.append(f"{stores}: {link.certificate.subject} (thumbprint {link.certificate.thumbprint})")
        lines.append(f"chain the host builds: {state.status}")
        return "\n".join(lines) + "\n"

    def report(self, params: dict[str, t.Any], before: View, after: View) -> dict[str, t.Any]:
        found: dict[str, t.Any] = {"send_connectors": list(before.send_connectors)}
        if self.bundle is not None:
            found["bundle"] = self.bundle.report()
        if after.certificate is None or after.path is None:
            return {**found, "certificate": None, "chain": [], "intermediates_der": [], "imported": []}
        stored = [link for link in after.path.links if link.stores]
        added = before.path.additions if before.path is not None else []
        return {
            **found,
            "certificate": {
                **after.certificate.describe(),
                "presented_for": list(after.presented_for),
                "has_private_key": after.has_private_key,
            },
            "chain": [
                {**link.certificate.describe(), "stores": list(link.stores), "der": link.certificate.der_base64}
                for link in stored
            ],
            # KB 3212877 step 2, "export from the server": what another host's task can take as content.
            "intermediates_der": [
                link.certificate.der_base64
                for link in stored[1:]
                if not link.certificate.self_signed and link.certificate.is_ca
            ],
            "imported": [{"subject": item.subject, "thumbprint": item.thumbprint} for item in added],
        }

    # --- helpers --------------------------------------------------------------------------------------------------
    @property
    def _fqcn(self) -> str:
        return str(self._task.resolved_action or self._task.action)

    def _script_params(
        self,
        params: dict[str, t.Any],
        *,
        action: str,
        thumbprint: str | None = None,
        imports: list[str] | None = None,
    ) -> dict[str, t.Any]:
        names: set[str] = set()
        for item in self.bundle.certificates if self.bundle is not None else ():
            names.add(base64.b64encode(item.certificate.issuer.public_bytes()).decode("ascii"))
            names.add(base64.b64encode(item.certificate.subject.public_bytes()).decode("ascii"))
        return {
            "action": action,
            "thumbprint": thumbprint or params["thumbprint"],
            "names": sorted(names),
            "import": imports or [],
            **domain_params(params),
        }

    def _view(self, params: dict[str, t.Any], result: dict[str, t.Any]) -> View:
        exchange = result["exchange"]
        connectors = tuple(exchange["send_connectors"]) if exchange else ()
        candidate, note = self._choose(params, result)
        if candidate is None:
            return View(certificate=None, send_connectors=connectors, note=note)
        host_chain = tuple(
            Link(Certificate.from_der(base64.b64decode(item["der"]), origin="the host"), tuple(item["stores"]))
            for item in candidate["chain"]
        )
        issuers = [
            Link(Certificate.from_der(base64.b64decode(item["der"]), origin="the host"), tuple(item["stores"]))
            for item in result["issuers"]
        ]
        view = View(
            certificate=host_chain[0].certificate,
            presented_for=tuple(candidate["reasons"]),
            has_private_key=bool(candidate["has_private_key"]),
            host_chain=host_chain,
            send_connectors=connectors,
            imported=tuple(result["imported"]),
            status=host_status(host_chain, candidate["chain_status"]),
        )
        pool = tuple(pool_of([*host_chain[1:], *issuers], self.bundle))
        return replace(view, pool=pool, path=best_path(host_chain[0], pool))

    def _choose(self, params: dict[str, t.Any], result: dict[str, t.Any]) -> tuple[dict[str, t.Any] | None, str]:
        """The certificate whose chain to complete, in the documented order; (None, why) when there is none."""
        candidates = list(result["candidates"])
        host = str(self._task_vars.get("inventory_hostname", "the host"))
        if params["thumbprint"]:
            if not candidates:
                raise AnsibleActionFail(
                    f"{self._fqcn}: no certificate with thumbprint {params['thumbprint']} in LocalMachine\\My on {host}"
                )
            return candidates[0], ""
        exchange = result["exchange"] or {"send_connectors": [], "smtp_certificates": []}
        connectors = exchange["send_connectors"]
        if params["send_connector"]:
            wanted = params["send_connector"].strip().lower()
            named = [item for item in connectors if item["name"].lower() == wanted]
            if not named:
                known = ", ".join(sorted(item["name"] for item in connectors)) or "none"
                raise AnsibleActionFail(
                    f"{self._fqcn}: {host} is the source of no send connector named {params['send_connector']!r} "
                    f"(its send connectors: {known})"
                )
            relaying = named
        else:
            relaying = [
                item
                for item in connectors
                if item["enabled"] and any(h.lower().endswith(EOP_SMART_HOST_SUFFIX) for h in item["smart_hosts"])
            ]
        designated = {
            id(candidate): candidate
            for connector in relaying
            for candidate in candidates
            if f"send connector {connector['name']}" in candidate["reasons"]
        }
        if len(designated) > 1:
            names = ", ".join(sorted(item["name"] for item in relaying))
            raise AnsibleActionFail(
                f"{self._fqcn}: the send connectors {names} on {host} present different certificates; choose one "
                "with send_connector or thumbprint"
            )
        if designated:
            return next(iter(designated.values())), ""
        smtp = [item for item in candidates if "SMTP" in item["reasons"]]
        if smtp:
            # Exchange's own self-signed certificate stays enabled for SMTP next to a purchased one; it has no
            # intermediates to complete. Among the others, the latest to expire, as Exchange prefers.
            chosen = max(smtp, key=smtp_preference)
            return chosen, ""
        if relaying:
            return None, (
                f"the send connector {relaying[0]['name']} designates no certificate in LocalMachine\\My "
                f"(TlsCertificateName {relaying[0]['tls_certificate_name']!r}): Exchange presents no certificate to "
                "Exchange Online, which answers 550 5.7.64"
            )
        raise AnsibleActionFail(
            f"{self._fqcn}: {host} has no certificate enabled for SMTP and no send connector to Exchange Online "
            "Protection: give thumbprint"
        )

    @property
    def _task_vars(self) -> dict[str, t.Any]:
        return getattr(self, "_mailflow_task_vars", {}) or {}

    def run(self, tmp: t.Any = None, task_vars: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        self._mailflow_task_vars = task_vars or {}
        return super().run(tmp, task_vars)


def pool_of(host: t.Sequence[Link], bundle: Bundle | None) -> list[Link]:
    """What a path may go through: the host's certificates that its stores hold (not what X509Chain may have
    downloaded), and the certificates given, with the stores that already hold them."""
    given = [Link(item) for item in bundle.certificates] if bundle is not None else []
    return merge_links([*(link for link in host if link.stores), *given])


def smtp_preference(candidate: dict[str, t.Any]) -> tuple[bool, str]:
    chain = candidate["chain"]
    leaf = Certificate.from_der(base64.b64decode(chain[0]["der"]), origin="the host")
    return (not leaf.self_signed, leaf.not_after.isoformat())


def host_status(chain: t.Sequence[Link], flags: t.Sequence[str]) -> str:
    """The chain X509Chain built, as far as the host's stores hold it, in words."""
    stored = list(chain[:1])
    for link in chain[1:]:
        if not link.stores:
            break
        stored.append(link)
    top = stored[-1].certificate
    if len(stored) < len(chain) or "PartialChain" in flags or not top.self_signed:
        words = f"incomplete: the issuer {top.issuer} of {top.subject} is in none of its stores"
    elif "UntrustedRoot" in flags or "Root" not in stored[-1].stores:
        words = f"complete, but the root {top.subject} is not in LocalMachine\\Root"
    else:
        words = f"complete to the trusted root {top.subject}"
    if "NotTimeValid" in flags:
        words += "; a certificate on it is outside its validity period"
    return words


def predicted_status(path: Path) -> str:
    """What host_status will say once the path's additions are in LocalMachine\\CA."""
    now = utc_now()
    flags = []
    if any(not link.certificate.not_before <= now <= link.certificate.not_after for link in path.links):
        flags.append("NotTimeValid")
    if not path.complete:
        flags.append("PartialChain")
    elif not path.trusted:
        flags.append("UntrustedRoot")
    return host_status(path.links, flags)


def cache_dir() -> FilePath | None:
    """The controller's temporary directory of this ansible-playbook run, shared by its forked workers."""
    local_tmp = getattr(C, "DEFAULT_LOCAL_TMP", None)
    return FilePath(local_tmp) if local_tmp else None


def missing_cryptography(fqcn: str, problem: str) -> str:
    return (
        f"{fqcn} validates certificates on the controller and needs the Python library cryptography 43 or newer in "
        f"the Python that runs Ansible ({sys.executable}); {problem}. Install it: {CRYPTOGRAPHY_INSTALL}"
    )
