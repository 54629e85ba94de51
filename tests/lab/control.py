"""Start, stop and inspect a lab that runs in its own process; write Ansible inventories for it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import typing as t
import urllib.request
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
STATUS_FILE = "lab.json"
# The lab's CA certificate, written at start: what a client trusts to validate the hosts' HTTPS listeners.
CA_FILE = "lab-ca.pem"
# The fleet's PKI (KB 3212877), written at start: one PEM file per authority, certificates only (the keys stay in the
# lab's memory), for the tasks that give intermediates or trust a root.
PKI_DIR = "pki"
CONNECTIONS = ("winrm", "psrp")
SCHEMES = ("http", "https")
# pywinrm speaks raw NTLM; pypsrp also NTLM inside SPNEGO ("negotiate", the psrp plugin's default).
AUTHS = {"winrm": ("ntlm", "basic"), "psrp": ("ntlm", "negotiate", "basic")}
COMBINATIONS = tuple((c, s, a) for c in CONNECTIONS for s in SCHEMES for a in AUTHS[c])


class LabClient:
    """Talks to a running lab through its control API on 127.0.0.1."""

    def __init__(self, state_dir: str | Path) -> None:
        self.state_dir = Path(state_dir)
        document = json.loads((self.state_dir / STATUS_FILE).read_text(encoding="utf-8"))
        self.pid = int(document["pid"])
        self.status = document["status"]
        self.password = str(document["password"])
        self.ca_file = self.state_dir / CA_FILE
        self.pki_dir = self.state_dir / PKI_DIR
        self.base = f"http://127.0.0.1:{self.status['control_port']}"

    def _call(self, method: str, path: str, document: t.Any = None) -> t.Any:
        data = json.dumps(document).encode() if document is not None else None
        # The control API is plain HTTP on 127.0.0.1; the URL is built here, never taken from input.
        request = urllib.request.Request(self.base + path, data=data, method=method)  # noqa: S310
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return json.loads(response.read())

    def journal(self) -> list[dict[str, t.Any]]:
        return t.cast(list, self._call("GET", "/journal"))

    def counters(self) -> dict[str, t.Any]:
        return t.cast(dict, self._call("GET", "/counters"))

    def host(self, name: str) -> dict[str, t.Any]:
        return t.cast(dict, self._call("GET", f"/hosts/{name}"))

    def set_faults(self, host: str, **faults: t.Any) -> None:
        self._call("POST", f"/faults/{host}", faults)

    def reset(self) -> None:
        self._call("POST", "/reset", {})

    def stop(self, timeout: float = 10.0) -> None:
        with contextlib.suppress(OSError):  # already stopped
            self._call("POST", "/stop", {})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(self.pid):
            time.sleep(0.05)
        if _alive(self.pid):
            os.kill(self.pid, signal.SIGTERM)

    def write_inventory(
        self,
        path: str | Path,
        *,
        connection: str = "winrm",
        auth: str = "ntlm",
        scheme: str = "http",
        cert_validation: str = "ca",
    ) -> Path:
        """An inventory of the fleet: groups exchange_servers and domain_controllers, one lab port per host.

        Exchange hosts also get ``mailflow_smtp_port``, their SMTP listener (the collection's convention for a port
        other than 25), and every host ``lab_pki_dir``, where the fleet's CA certificates are (PKI_DIR).

        ``scheme`` picks each host's HTTP or HTTPS listener. Over HTTPS, ``cert_validation`` is ``ca`` (validate
        against the lab's CA file), ``ignore``, or ``system`` (validate against the system's trust store, which
        does not know the lab's CA: the error a user sees with an untrusted certificate).
        """
        if (connection, scheme, auth) not in COMBINATIONS:
            raise ValueError(f"no lab inventory for connection={connection} scheme={scheme} auth={auth}")
        port_key = "https_port" if scheme == "https" else "port"
        smtp_ports = (self.status.get("mail") or {}).get("smtp_ports", {})
        groups: dict[str, dict[str, t.Any]] = {"exchange_servers": {"hosts": {}}, "domain_controllers": {"hosts": {}}}
        for name, host in self.status["hosts"].items():
            for role, group in (("exchange", "exchange_servers"), ("dc", "domain_controllers")):
                if role in host["roles"]:
                    entry = {"ansible_host": "127.0.0.1", "ansible_port": host[port_key], "lab_fqdn": host["fqdn"]}
                    if name in smtp_ports:
                        entry["mailflow_smtp_port"] = smtp_ports[name]
                    groups[group]["hosts"][name] = entry
        connection_vars: dict[str, t.Any] = {
            "ansible_connection": connection,
            "ansible_user": self.status["credentials"]["username"],
            "ansible_password": self.password,
            "lab_pki_dir": str(self.pki_dir.resolve()),
        }
        connection_vars.update(self._transport_vars(connection, auth, scheme, cert_validation))
        document = {"all": {"vars": connection_vars, "children": groups}}
        target = Path(path)
        target.write_text(
            "# Written by the lab for a fleet on 127.0.0.1; it stops by itself.\n"
            + yaml.safe_dump(document, sort_keys=False),
            encoding="utf-8",
        )
        return target

    def _transport_vars(self, connection: str, auth: str, scheme: str, cert_validation: str) -> dict[str, t.Any]:
        ca_file = str(self.ca_file.resolve())
        if connection == "winrm":
            winrm: dict[str, t.Any] = {"ansible_winrm_transport": auth, "ansible_winrm_scheme": scheme}
            if scheme == "https" and cert_validation == "ignore":
                winrm["ansible_winrm_server_cert_validation"] = "ignore"
            elif scheme == "https" and cert_validation == "ca":
                winrm["ansible_winrm_ca_trust_path"] = ca_file
            return winrm
        psrp: dict[str, t.Any] = {"ansible_psrp_auth": auth, "ansible_psrp_protocol": scheme}
        if scheme == "http" and auth == "basic":
            # pypsrp refuses Basic over HTTP unless told that the messages go unencrypted (AllowUnencrypted).
            psrp["ansible_psrp_message_encryption"] = "never"
        if scheme == "https" and cert_validation == "ignore":
            psrp["ansible_psrp_cert_validation"] = "ignore"
        elif scheme == "https" and cert_validation == "ca":
            psrp["ansible_psrp_ca_cert"] = ca_file
        return psrp

    def write_inventories(self, directory: str | Path) -> dict[tuple[str, str, str], Path]:
        """Every combination as inventory-CONNECTION-SCHEME-AUTH.yml, plus inventory-winrm.yml and
        inventory-psrp.yml (NTLM over HTTP), the names the lab has always written."""
        target = Path(directory)
        written = {
            (connection, scheme, auth): self.write_inventory(
                target / f"inventory-{connection}-{scheme}-{auth}.yml", connection=connection, auth=auth, scheme=scheme
            )
            for connection, scheme, auth in COMBINATIONS
        }
        for connection in CONNECTIONS:
            self.write_inventory(target / f"inventory-{connection}.yml", connection=connection)
        return written


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:
        waited = os.waitpid(pid, os.WNOHANG)[0]
    except ChildProcessError:
        return True
    return waited == 0


def start_lab(fleet: str, state_dir: str | Path, *, ttl_seconds: float = 3600.0, timeout: float = 30.0) -> LabClient:
    """Start a lab in the background and wait until it listens."""
    state = Path(state_dir)
    state.mkdir(parents=True, exist_ok=True)
    (state / STATUS_FILE).unlink(missing_ok=True)
    log = open(state / "lab.log", "ab")  # noqa: SIM115 - handed to the child process
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.lab",
            "serve",
            "--fleet",
            fleet,
            "--state-dir",
            str(state),
            "--ttl",
            str(ttl_seconds),
        ],
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    log.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (state / STATUS_FILE).exists():
            return LabClient(state)
        if process.poll() is not None:
            raise RuntimeError(f"the lab exited with {process.returncode}; see {state / 'lab.log'}")
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"the lab did not start within {timeout} s; see {state / 'lab.log'}")
