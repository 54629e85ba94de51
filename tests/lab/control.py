"""Start, stop and inspect a lab that runs in its own process; write Ansible inventories for it."""

from __future__ import annotations

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


class LabClient:
    """Talks to a running lab through its control API on 127.0.0.1."""

    def __init__(self, state_dir: str | Path) -> None:
        self.state_dir = Path(state_dir)
        document = json.loads((self.state_dir / STATUS_FILE).read_text(encoding="utf-8"))
        self.pid = int(document["pid"])
        self.status = document["status"]
        self.password = str(document["password"])
        self.base = f"http://127.0.0.1:{self.status['control_port']}"

    def _call(self, method: str, path: str, document: t.Any = None) -> t.Any:
        data = json.dumps(document).encode() if document is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback control API
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
        try:
            self._call("POST", "/stop", {})
        except OSError:
            pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(self.pid):
            time.sleep(0.05)
        if _alive(self.pid):
            os.kill(self.pid, signal.SIGTERM)

    def write_inventory(self, path: str | Path, *, connection: str = "winrm", auth: str = "ntlm") -> Path:
        """An inventory of the fleet: groups exchange_servers and domain_controllers, one lab port per host."""
        groups: dict[str, dict[str, t.Any]] = {"exchange_servers": {"hosts": {}}, "domain_controllers": {"hosts": {}}}
        for name, host in self.status["hosts"].items():
            entry = {"ansible_host": "127.0.0.1", "ansible_port": host["port"], "lab_fqdn": host["fqdn"]}
            for role, group in (("exchange", "exchange_servers"), ("dc", "domain_controllers")):
                if role in host["roles"]:
                    groups[group]["hosts"][name] = entry
        connection_vars: dict[str, t.Any] = {
            "ansible_connection": connection,
            "ansible_user": self.status["credentials"]["username"],
            "ansible_password": self.password,
        }
        if connection == "winrm":
            connection_vars.update(ansible_winrm_transport=auth, ansible_winrm_scheme="http")
        else:
            connection_vars.update(ansible_psrp_auth=auth, ansible_psrp_protocol="http")
        document = {"all": {"vars": connection_vars, "children": groups}}
        target = Path(path)
        target.write_text(
            "# Written by the lab for a fleet on 127.0.0.1; it stops by itself.\n" + yaml.safe_dump(document, sort_keys=False),
            encoding="utf-8",
        )
        return target


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
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
        [sys.executable, "-m", "tests.lab", "serve", "--fleet", fleet, "--state-dir", str(state), "--ttl", str(ttl_seconds)],
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
