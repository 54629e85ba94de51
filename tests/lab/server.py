"""The running lab: one WinRM listener per host on 127.0.0.1, a journal of writes, counters, faults, a control API.

Everything binds to 127.0.0.1 and the lab stops by itself when its time limit runs out.
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import datetime
import json
import socket
import threading
import time
import typing as t
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.lab.auth import (
    AuthFailed,
    ConnectionAuth,
    challenges,
    install_ntlm_credentials,
    is_encrypted,
    parse_authorization,
)
from tests.lab.fleet import Fleet, HostState, registry_path
from tests.lab.listener import Listener, ListenerHub
from tests.lab.psrp import PSRPService
from tests.lab.runner import Run, run_bootstrap, run_command_line
from tests.lab.scripts import Outcome
from tests.lab.smtp import MailLab
from tests.lab.tls import LabAuthority
from tests.lab.twins import Session
from tests.lab.wsman import ShellService, WSManFault, fault_bytes, is_command_receive

LOOPBACK = "127.0.0.1"
SECRET_KEYS = ("password", "private_key", "pfx", "secret")


def masked(params: t.Any) -> t.Any:
    """Parameters as the journal keeps them: anything that looks like a secret is masked."""
    if isinstance(params, dict):
        return {k: ("********" if any(s in k.lower() for s in SECRET_KEYS) else masked(v)) for k, v in params.items()}
    if isinstance(params, list):
        return [masked(item) for item in params]
    return params


@dataclass
class Counters:
    requests: int = 0
    round_trips: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    script_seconds: float = 0.0
    scripts: dict[str, int] = field(default_factory=dict)


@dataclass
class TransportFaults:
    """Faults of the listener itself, as opposed to host state (set in the fleet file or at run time)."""

    http_500: bool = False
    delay_seconds: float = 0.0
    auth_failure: bool = False
    # Nothing listens on the host's ports (HTTP and HTTPS) while set; clearing it listens again on the same ports.
    refused: bool = False
    # A Receive of a command's output is answered by closing the connection: the host ran the command, the client
    # never hears the outcome.
    drop_mid_command: bool = False


class HostEndpoint:
    """One emulated host as the network sees it: its listener, shells, counters and faults."""

    def __init__(self, lab: Lab, state: HostState) -> None:
        self.lab = lab
        self.state = state
        self.counters = Counters()
        self.faults = TransportFaults()
        self.lock = threading.Lock()
        # Two listeners, as a Windows host has on 5985 and 5986; both reach the same shells and runspace pools.
        self.http = Listener(WinRMHandler, hub=lab.listeners, endpoint=self, name=f"lab-{state.name}-http")
        certificate = lab.authority.server_certificate(state.fqdn)
        self.https = Listener(
            WinRMHandler, hub=lab.listeners, endpoint=self, name=f"lab-{state.name}-https", tls=certificate
        )
        self.port = self.http.port
        self.https_port = self.https.port
        self.shells = ShellService(self.url, self.run_script, PSRPService(self.url, self.run_script_text))
        self.active = False

    @property
    def url(self) -> str:
        return self.http.url

    @property
    def https_url(self) -> str:
        return self.https.url

    def start(self) -> None:
        self.active = True
        self.sync_listeners()

    def stop(self) -> None:
        self.active = False
        self.http.stop()
        self.https.stop()

    def sync_listeners(self) -> None:
        """The listeners follow the refused fault: down while it holds, back on the same ports once it is cleared."""
        if not self.active:
            return
        for listener in (self.http, self.https):
            if self.faults.refused:
                listener.stop()
            else:
                listener.start()

    def run_script(
        self, command: str, arguments: list[str], stdin: bytes, session: Session
    ) -> tuple[bytes, bytes, int]:
        """A cmd shell's ``PowerShell -EncodedCommand ...`` with its stdin."""
        started = time.monotonic()
        result = run_command_line(command, arguments, stdin, host=self.state, fleet=self.lab.fleet, session=session)
        if result.run is not None:
            self._count(result.run, started)
        return result.stdout, result.stderr, result.rc

    def run_script_text(self, text: str, lines: list[str], session: Session) -> Outcome:
        """A pipeline's script and its input objects (psrp)."""
        started = time.monotonic()
        run = run_bootstrap(text, lines, host=self.state, fleet=self.lab.fleet, session=session)
        self._count(run, started)
        return run.outcome

    def _count(self, run: Run, started: float) -> None:
        if not run.scripts:
            return
        # One invocation is one round trip, whether it ran one script or a whole host's audit.
        self.counters.round_trips += 1
        for script in run.scripts:
            self.counters.scripts[script.script] = self.counters.scripts.get(script.script, 0) + 1
            self.lab.journal_changes(self.state.name, script.script, script.params, script.changes)
        self.counters.script_seconds += time.monotonic() - started


class WinRMHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Microsoft-HTTPAPI/2.0"
    sys_version = ""
    timeout = 120
    server: t.Any
    auth: ConnectionAuth

    def setup(self) -> None:
        super().setup()
        tls = self.server.tls
        self.auth = ConnectionAuth(
            self.server.endpoint.lab.fleet.credentials, channel_binding=tls.channel_binding if tls else None
        )

    def log_message(self, format: str, *args: t.Any) -> None:  # noqa: A002 - the signature of the base class
        """The lab is quiet; what matters is in the journal and the counters."""

    def _reply(
        self,
        status: int,
        body: bytes = b"",
        content_type: str = "application/soap+xml;charset=UTF-8",
        headers: t.Sequence[tuple[str, str]] = (),
    ) -> None:
        endpoint: HostEndpoint = self.server.endpoint
        endpoint.counters.bytes_out += len(body)
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if body:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _drop(self) -> None:
        """Close the connection without an answer, as a host that dies (or a firewall that cuts it) would."""
        self.close_connection = True
        with contextlib.suppress(OSError):  # the client may have gone already
            self.connection.shutdown(socket.SHUT_RDWR)

    def _challenge(self) -> None:
        allow_basic = self.server.endpoint.state.winrm.allow_basic
        self._reply(401, headers=[("WWW-Authenticate", challenge) for challenge in challenges(allow_basic=allow_basic)])

    def do_POST(self) -> None:
        endpoint: HostEndpoint = self.server.endpoint
        body = self.rfile.read(int(self.headers.get("Content-Length", "0") or "0"))
        endpoint.counters.requests += 1
        endpoint.counters.bytes_in += len(body)
        faults = endpoint.faults
        if faults.refused:
            # A connection opened before the listener went down: Windows resets those when WinRM stops.
            self._drop()
            return
        if faults.delay_seconds:
            time.sleep(faults.delay_seconds)
        if self.path.split("?")[0].lower() != "/wsman":
            self._reply(404)
            return

        final_headers: list[tuple[str, str]] = []
        authorization = self.headers.get("Authorization")
        try:
            if faults.auth_failure and authorization:
                raise AuthFailed("authentication failure injected by the lab")
            if authorization:
                scheme, token = parse_authorization(authorization)
                if scheme.lower() == "basic":
                    if not endpoint.state.winrm.allow_basic:
                        raise AuthFailed("Basic authentication is off on this WinRM service")
                    self.auth.basic(token)
                elif scheme.lower() in ("negotiate", "ntlm"):
                    out_token = self.auth.negotiate_step(scheme, token)
                    header = f"{self.auth.scheme} {base64.b64encode(out_token).decode()}" if out_token else ""
                    if not self.auth.established:
                        self._reply(401, headers=[("WWW-Authenticate", header)])
                        return
                    if header:
                        final_headers.append(("WWW-Authenticate", header))
                else:
                    raise AuthFailed(f"unsupported authentication scheme {scheme!r}")
            elif not self.auth.established:
                self._challenge()
                return
        except AuthFailed:
            self._challenge()
            return

        if faults.http_500:
            self._reply(500, fault_bytes(WSManFault("w:InternalError", "HTTP 500 injected by the lab")))
            return
        if not body:
            # pywinrm authenticates with an empty POST before it encrypts anything.
            self._reply(200, headers=final_headers)
            return

        encrypted = is_encrypted(self.headers.get("Content-Type", ""))
        if not encrypted and self.server.tls is None and not endpoint.state.winrm.allow_unencrypted:
            # AllowUnencrypted is false: a plain message over HTTP is refused, whoever sent it.
            self._challenge()
            return
        try:
            request = self.auth.decrypt(body) if encrypted else body
        except (AuthFailed, ValueError, IndexError) as exc:
            self._reply(400, str(exc).encode(), content_type="text/plain")
            return
        drop = faults.drop_mid_command and is_command_receive(request)
        try:
            with endpoint.lock:
                session = Session(auth=self.auth.mechanism, user=self.auth.user)
                response, status = endpoint.shells.handle(request, session), 200
        except WSManFault as fault:
            response, status = fault_bytes(fault), 500
        if drop:
            self._drop()
            return
        if encrypted:
            response, content_type = self.auth.encrypt(response)
            self._reply(status, response, content_type=content_type, headers=final_headers)
        else:
            self._reply(status, response, headers=final_headers)


class ControlHandler(BaseHTTPRequestHandler):
    """The lab's own API for tests and the command line: state, journal, counters, faults, stop."""

    protocol_version = "HTTP/1.1"
    server: t.Any

    def log_message(self, format: str, *args: t.Any) -> None:  # noqa: A002
        """Quiet."""

    def _json(self, status: int, document: t.Any) -> None:
        body = json.dumps(document, indent=2, sort_keys=True, default=str).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        lab: Lab = self.server.lab
        parts = [part for part in self.path.split("/") if part]
        if parts == ["status"]:
            self._json(200, lab.status())
        elif parts == ["journal"]:
            self._json(200, lab.journal_entries())
        elif parts == ["counters"]:
            self._json(200, lab.counters())
        elif len(parts) == 2 and parts[0] == "hosts" and parts[1] in lab.endpoints:
            with lab.fleet.lock:
                self._json(200, lab.endpoints[parts[1]].state.snapshot())
        else:
            self._json(404, {"error": f"no such resource {self.path}"})

    def do_POST(self) -> None:
        lab: Lab = self.server.lab
        body = self.rfile.read(int(self.headers.get("Content-Length", "0") or "0"))
        parts = [part for part in self.path.split("/") if part]
        try:
            document = json.loads(body or b"{}")
            if parts == ["stop"]:
                self._json(200, {"stopping": True})
                threading.Thread(target=lab.stop, daemon=True).start()
            elif parts == ["reset"]:
                lab.reset_observations()
                self._json(200, {"reset": True})
            elif len(parts) == 2 and parts[0] == "faults" and parts[1] in lab.endpoints:
                lab.set_faults(parts[1], document)
                self._json(200, {"faults": document})
            else:
                self._json(404, {"error": f"no such resource {self.path}"})
        except (ValueError, TypeError) as exc:
            self._json(400, {"error": str(exc)})


class Lab:
    """A fleet served on loopback. ``start()`` returns once every listener is up."""

    def __init__(self, fleet: Fleet, *, ttl_seconds: float = 3600.0) -> None:
        self.fleet = fleet
        self.ttl_seconds = ttl_seconds
        self.journal: list[dict[str, t.Any]] = []
        self._journal_lock = threading.Lock()
        self.stopped = threading.Event()
        self.credential_file = install_ntlm_credentials(fleet.credentials)
        self.authority = LabAuthority(valid_for=datetime.timedelta(seconds=ttl_seconds))
        self.listeners = ListenerHub()
        self.endpoints = {name: HostEndpoint(self, state) for name, state in fleet.hosts.items()}
        for name, state in fleet.hosts.items():
            self.set_faults(name, state.transport_faults)
        # SMTP per Exchange host, the EOP stand-in, and the queue retries of the mail-flow model.
        self.mail = MailLab(self.fleet, ttl_seconds=ttl_seconds)
        self.control = ThreadingHTTPServer((LOOPBACK, 0), ControlHandler)
        self.control.daemon_threads = True
        self.control.lab = self  # type: ignore[attr-defined]
        self.started_at = time.time()
        self._timer = threading.Timer(ttl_seconds, self.stop)
        self._timer.daemon = True

    def start(self) -> Lab:
        for endpoint in self.endpoints.values():
            endpoint.start()
        threading.Thread(target=self.control.serve_forever, name="lab-control", daemon=True).start()
        self._timer.start()
        self.mail.start()
        return self

    def stop(self) -> None:
        if self.stopped.is_set():
            return
        self.stopped.set()
        self._timer.cancel()
        self.mail.stop()
        # Each listener's shutdown waits for its serve loop to notice; in parallel, a large fleet stops in seconds.
        with concurrent.futures.ThreadPoolExecutor(max_workers=32, thread_name_prefix="lab-stop") as pool:
            list(pool.map(HostEndpoint.stop, self.endpoints.values()))
        self.listeners.stop()
        self.control.shutdown()
        self.control.server_close()

    def status(self) -> dict[str, t.Any]:
        return {
            "fleet": self.fleet.name,
            "control_port": int(self.control.server_address[1]),
            "expires_at": self.started_at + self.ttl_seconds,
            "credentials": {"domain": self.fleet.credentials.domain, "username": self.fleet.credentials.username},
            "mail": self.mail.status(),
            "hosts": {
                name: {
                    "port": endpoint.port,
                    "url": endpoint.url,
                    "https_port": endpoint.https_port,
                    "https_url": endpoint.https_url,
                    "fqdn": endpoint.state.fqdn,
                    "roles": endpoint.state.roles,
                }
                for name, endpoint in self.endpoints.items()
            },
        }

    def journal_changes(
        self, host: str, script: str, params: dict[str, t.Any], changes: list[dict[str, t.Any]]
    ) -> None:
        """Record what a script changed, as the lab found it by comparing the state before and after it."""
        if changes:
            with self.fleet.lock:
                self.fleet.revision += 1
        with self._journal_lock:
            for change in changes:
                self.journal.append(
                    {
                        "seq": len(self.journal) + 1,
                        "time": time.time(),
                        "host": host,
                        "script": script,
                        "params": masked(params),
                        **change,
                    }
                )

    def journal_entries(self) -> list[dict[str, t.Any]]:
        with self._journal_lock:
            return list(self.journal)

    def counters(self) -> dict[str, t.Any]:
        return {name: vars(endpoint.counters) for name, endpoint in self.endpoints.items()}

    def reset_observations(self) -> None:
        with self._journal_lock:
            self.journal.clear()
        for endpoint in self.endpoints.values():
            endpoint.counters = Counters()

    def set_faults(self, host: str, faults: dict[str, t.Any]) -> None:
        """Merge faults into a host; unknown names are an error, so a test cannot set a fault that does nothing."""
        endpoint = self.endpoints[host]
        with self.fleet.lock:
            self.fleet.revision += 1
        for name, value in faults.items():
            if name == "registry_write_denied":
                with self.fleet.lock:
                    endpoint.state.registry_write_denied = {registry_path(key) for key in value or []}
            elif name in vars(endpoint.faults):
                setattr(endpoint.faults, name, type(getattr(endpoint.faults, name))(value or 0))
            else:
                raise ValueError(f"unknown fault {name!r}")
        endpoint.sync_listeners()
