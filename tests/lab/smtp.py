"""KB 3212877 on the wire: each Exchange host serves SMTP with STARTTLS, and an EOP stand-in judges relays.

Direction, as in the article: the on-premises Exchange server connects to Exchange Online Protection and, in the
STARTTLS handshake, presents as its TLS *client* certificate the one its send connector's TlsCertificateName
designates (none at all when no certificate in LocalMachine\\My matches with its private key, or no send
connector routes the mail), not whichever is enabled for SMTP; EOP's certificate-based inbound
connector (TlsSenderCertificateName) attributes the connection to the tenant only if that chain validates to a root
it trusts. Unattributed relaying is refused at RCPT with ``550 5.7.64 TenantAttribution; Relay Access Denied``.

What a host presents is what Windows builds for its certificate from its LocalMachine stores: the leaf plus the
intermediates it found (tests/lab/certs.py). A host missing an intermediate in LocalMachine\\CA therefore sends an
incomplete chain, logs CAPI2 event 30 (result 800B010A, CERT_E_CHAINING) when CAPI2 logging is on, and is refused
by EOP; importing the intermediate makes the next relay succeed, because every handshake rebuilds the chain from the
stores.

The EOP stand-in lets OpenSSL accept any client certificate issued by the fleet's PKI (its OpenSSL trust store holds
every authority, with partial chains allowed) only so that the handshake completes, as EOP's does; the verdict is
made afterwards by ``cryptography`` over exactly the certificates the client sent, against EOP's trusted roots.

Everything binds to 127.0.0.1, and stops with the lab or by itself after its time limit.
"""

from __future__ import annotations

import abc
import contextlib
import email.utils
import selectors
import smtplib
import socket
import ssl
import sys
import tempfile
import threading
import time
import typing as t
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from tests.lab import model
from tests.lab.certs import (
    CERT_E_CHAINING,
    CERT_E_UNTRUSTEDROOT,
    Chain,
    common_name,
    key_to_pem,
    name_matches,
    self_signed_server,
    thumbprint,
    to_pem,
    verify_presented,
)
from tests.lab.exchange import ProtocolLogLine, Queue
from tests.lab.windows import CAPI2_OPERATIONAL, LEVEL_ERROR

if t.TYPE_CHECKING:
    from tests.lab.fleet import Fleet, HostState

LOOPBACK = "127.0.0.1"
SOCKET_TIMEOUT = 15.0
MAX_LINE = 4096
MAX_MESSAGE = 10 * 1024 * 1024

CAPI2_PROVIDER = "Microsoft-Windows-CAPI2"
EVENT_CHAIN_POLICY = 30  # CertVerifyCertificateChainPolicy

REPLY_TENANT_ATTRIBUTION = "550 5.7.64 TenantAttribution; Relay Access Denied"


# --- plumbing: one acceptor thread for every listener, one thread per connection ----------------------------------


class Acceptor:
    """Accepts on many loopback listeners from one thread, so a fleet of hundreds of hosts costs one thread."""

    def __init__(self, name: str) -> None:
        self.selector = selectors.DefaultSelector()
        self.stopped = threading.Event()
        self.connections: set[socket.socket] = set()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        # Writing to this pair wakes the selector at once when the lab stops.
        self._wake_reader, self._wake_writer = socket.socketpair()
        self.selector.register(self._wake_reader, selectors.EVENT_READ, None)

    def listen(self, serve: t.Callable[[socket.socket, tuple[str, int]], None]) -> int:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind((LOOPBACK, 0))
        listener.listen(64)
        listener.setblocking(False)
        self.selector.register(listener, selectors.EVENT_READ, serve)
        return int(listener.getsockname()[1])

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        while not self.stopped.is_set():
            try:
                events = self.selector.select(timeout=0.2)
            except (OSError, ValueError):
                return  # the selector was closed by stop()
            for key, _mask in events:
                if key.data is None:
                    return
                listener = t.cast(socket.socket, key.fileobj)
                try:
                    connection, address = listener.accept()
                except OSError:
                    continue
                connection.setblocking(True)
                connection.settimeout(SOCKET_TIMEOUT)
                # SMTP is a dialogue of small writes: without this, Nagle and delayed ACKs add 40 ms to each turn.
                connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with self.lock:
                    self.connections.add(connection)
                threading.Thread(target=self._serve, args=(key.data, connection, address), daemon=True).start()

    def _serve(
        self, serve: t.Callable[[socket.socket, tuple[str, int]], None], connection: socket.socket, address: t.Any
    ) -> None:
        try:
            serve(connection, address)
        except (OSError, ssl.SSLError, ValueError):
            pass  # the client went away or spoke nonsense; a real server drops the session too
        finally:
            with self.lock:
                self.connections.discard(connection)
            connection.close()

    def stop(self) -> None:
        self.stopped.set()
        with contextlib.suppress(OSError):
            self._wake_writer.send(b"x")
        if self.thread.is_alive():
            self.thread.join(timeout=2)
        self._wake_writer.close()
        for key in list(self.selector.get_map().values()):
            t.cast(socket.socket, key.fileobj).close()
        self.selector.close()
        with self.lock:
            for connection in list(self.connections):
                with contextlib.suppress(OSError):  # already closed by the peer
                    connection.shutdown(socket.SHUT_RDWR)


class Session(abc.ABC):
    """The server side of one SMTP session (RFC 5321 with STARTTLS, RFC 3207), as both servers speak it."""

    def __init__(self, connection: socket.socket, address: tuple[str, int]) -> None:
        self.socket: socket.socket = connection
        self.address = address
        self.reader = connection.makefile("rb")
        self.tls = False
        self.helo = ""
        self.mail_from: str | None = None
        self.recipients: list[str] = []

    # What a subclass decides ------------------------------------------------------------------------------------
    @abc.abstractmethod
    def banner(self) -> str:
        """The 220 greeting's text."""

    @abc.abstractmethod
    def hostname(self) -> str:
        """The name the server gives in its EHLO reply."""

    def extensions(self) -> list[str]:
        return []

    def tls_context(self) -> ssl.SSLContext | None:
        return None

    def after_tls(self) -> None:  # noqa: B027 - an optional hook; most servers need nothing here
        """Called once the STARTTLS handshake completed."""

    def rcpt(self, address: str) -> str:
        return "250 2.1.5 Recipient OK"

    def message(self, data: bytes) -> str:
        return f"250 2.6.0 <{uuid.uuid4()}@{self.hostname()}> Queued mail for delivery"

    # The protocol -----------------------------------------------------------------------------------------------
    def send(self, *lines: str) -> None:
        self.socket.sendall(b"".join(line.encode("ascii") + b"\r\n" for line in lines))

    def readline(self) -> bytes | None:
        line = self.reader.readline(MAX_LINE)
        return line if line else None

    def run(self) -> None:
        self.send(self.banner())
        while True:
            line = self.readline()
            if line is None:
                return
            text = line.decode("ascii", "replace").rstrip("\r\n")
            verb, _space, argument = text.partition(" ")
            verb = verb.upper()
            if verb == "QUIT":
                self.send("221 2.0.0 Service closing transmission channel")
                return
            handler = getattr(self, f"smtp_{verb.lower()}", None) if verb.isalpha() else None
            if handler is None:
                self.send(f"500 5.3.3 Unrecognized command '{verb[:32]}'")
                continue
            handler(argument.strip())

    def smtp_ehlo(self, argument: str) -> None:
        self.helo, self.mail_from, self.recipients = argument, None, []
        lines = [f"{self.hostname()} Hello [{self.address[0]}]", *self.extensions()]
        self.send(*[f"250-{line}" for line in lines[:-1]], f"250 {lines[-1]}")

    def smtp_helo(self, argument: str) -> None:
        self.helo = argument
        self.send(f"250 {self.hostname()} Hello [{self.address[0]}]")

    def smtp_starttls(self, argument: str) -> None:
        context = None if self.tls else self.tls_context()
        if context is None:
            self.send("554 5.7.3 Unable to initialize security subsystem")
            return
        self.send("220 2.0.0 SMTP server ready")
        # Anything the client pipelined after STARTTLS must be ignored (RFC 3207); the reader's buffer goes.
        self.reader.close()
        self.socket = context.wrap_socket(self.socket, server_side=True)
        self.reader = self.socket.makefile("rb")
        self.tls, self.helo, self.mail_from, self.recipients = True, "", None, []
        self.after_tls()

    def smtp_mail(self, argument: str) -> None:
        if not self.helo:
            self.send("503 5.5.2 Send hello first")
            return
        self.mail_from, self.recipients = _address(argument), []
        self.send("250 2.1.0 Sender OK")

    def smtp_rcpt(self, argument: str) -> None:
        if self.mail_from is None:
            self.send("503 5.5.2 Need mail command")
            return
        reply = self.rcpt(_address(argument))
        if reply.startswith("250"):
            self.recipients.append(_address(argument))
        self.send(reply)

    def smtp_data(self, argument: str) -> None:
        if not self.recipients:
            self.send("503 5.5.2 Need rcpt command")
            return
        self.send("354 Start mail input; end with <CRLF>.<CRLF>")
        data = bytearray()
        while True:
            line = self.readline()
            if line is None:
                return
            if line in (b".\r\n", b".\n"):
                break
            data += line[1:] if line.startswith(b"..") else line
            if len(data) > MAX_MESSAGE:
                self.send("552 5.3.4 Message size exceeds fixed maximum message size")
                return
        self.send(self.message(bytes(data)))
        self.mail_from, self.recipients = None, []

    def smtp_rset(self, argument: str) -> None:
        self.mail_from, self.recipients = None, []
        self.send("250 2.0.0 Resetting")

    def smtp_noop(self, argument: str) -> None:
        self.send("250 2.0.0 OK")

    def smtp_auth(self, argument: str) -> None:
        # The lab's SMTP carries KB 3212877's TLS story; Exchange authentication is modelled in tests/lab/model.py.
        self.send("504 5.7.4 Unrecognized authentication type")


def _address(argument: str) -> str:
    """The address in ``FROM:<a@b> SIZE=..`` or ``TO:<a@b>``."""
    rest = argument.partition(":")[2]
    rest = rest.strip()
    if rest.startswith("<"):
        return rest[1 : rest.find(">")] if ">" in rest else rest[1:]
    return rest.split(" ", 1)[0]


# --- the Exchange host's side -------------------------------------------------------------------------------------


def log_chain_failure(host: HostState, chain: Chain) -> None:
    """CAPI2 event 30 as the article shows it, when CAPI2/Operational is enabled (else nothing is logged)."""
    leaf = chain.certificates[0]
    host.log_event(
        CAPI2_OPERATIONAL,
        CAPI2_PROVIDER,
        EVENT_CHAIN_POLICY,
        level=LEVEL_ERROR,
        data={
            "Policy.type": "CERT_CHAIN_POLICY_SSL",
            "Policy.constant": "4",
            "Certificate.fileRef": f"{thumbprint(leaf)}.cer",
            "Certificate.subjectName": common_name(leaf),
            "SSLAdditionalPolicyInfo.authType": "server",
            "Status.chainIndex": "0",
            "Status.elementIndex": "-1",
            "EventAuxInfo.ProcessName": "lsass.exe",
            "Result.value": chain.status,
        },
    )


class Credentials:
    """SSL contexts for a host's current chain, rebuilt whenever its stores change what it would send."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.cache: dict[tuple[str, bool, tuple[str, ...]], ssl.SSLContext] = {}
        self.lock = threading.Lock()

    def context(
        self, fleet: Fleet, host: HostState, *, server_side: bool, recipient_domain: str = ""
    ) -> tuple[ssl.SSLContext, Chain | None]:
        """The context for ``host``'s side of a handshake. As a server it presents its SMTP certificate; as a client
        (relaying mail for ``recipient_domain``) the one its send connector's TlsCertificateName designates, or none
        when no certificate in LocalMachine\\My matches with its private key."""
        with fleet.lock:
            if server_side:
                entry = host.smtp_certificate()
            else:
                connector = host.exchange.route(recipient_domain) if host.exchange is not None else None
                entry = host.send_connector_certificate(connector)
            chain = host.certificates.chain(entry) if entry is not None else None
            if chain is not None and not chain.trusted:
                # Schannel validates its own credential's chain each time it uses it; CAPI2 logs the failure.
                log_chain_failure(host, chain)
        sent = chain.sent if chain is not None else ()
        key = (host.name, server_side, tuple(thumbprint(item) for item in sent))
        with self.lock:
            context = self.cache.get(key)
            if context is None:
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server_side else ssl.PROTOCOL_TLS_CLIENT)
                context.minimum_version = ssl.TLSVersion.TLSv1_2
                if not server_side:
                    # Exchange's opportunistic TLS to a smart host does not validate the server's certificate.
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                if entry is not None and entry.private_key is not None:
                    stem = self.directory / f"{host.name}-{len(self.cache)}"
                    chain_file, key_file = stem.with_suffix(".chain.pem"), stem.with_suffix(".key.pem")
                    _write_private(chain_file, to_pem(sent))
                    _write_private(key_file, key_to_pem(entry.private_key))
                    context.load_cert_chain(chain_file, key_file)
                    key_file.unlink()  # the key lives on in the context; keep it on disk no longer than needed
                self.cache[key] = context
        return context, chain


def _write_private(path: Path, data: bytes) -> None:
    path.touch(mode=0o600)
    path.write_bytes(data)


class ExchangeSession(Session):
    def __init__(self, mail: MailLab, host: HostState, connection: socket.socket, address: tuple[str, int]) -> None:
        super().__init__(connection, address)
        self.mail = mail
        self.host = host

    def hostname(self) -> str:
        return self.host.fqdn

    def banner(self) -> str:
        stamp = email.utils.formatdate(self.host.now(), localtime=False)
        return f"220 {self.host.fqdn} Microsoft ESMTP MAIL Service ready at {stamp}"

    def extensions(self) -> list[str]:
        lines = ["SIZE 37748736", "PIPELINING", "DSN", "ENHANCEDSTATUSCODES"]
        if not self.tls and self.host.smtp_certificate() is not None:
            lines.append("STARTTLS")
        lines += ["8BITMIME", "BINARYMIME", "CHUNKING", "SMTPUTF8"]
        return lines

    def tls_context(self) -> ssl.SSLContext | None:
        if self.host.smtp_certificate() is None:
            return None
        context = self.mail.credentials.context(self.mail.fleet, self.host, server_side=True)[0]
        return context


# --- the EOP stand-in ---------------------------------------------------------------------------------------------


@dataclass
class EopRecord:
    """One session as the stand-in saw it (for tests and the lab's logs)."""

    client: str  # EHLO name
    presented: list[str] = field(default_factory=list)  # thumbprints of the certificates the client sent
    attributed: bool = False
    reason: str = ""
    replies: list[str] = field(default_factory=list)


class EopSession(Session):
    def __init__(self, eop: EopStandIn, connection: socket.socket, address: tuple[str, int]) -> None:
        super().__init__(connection, address)
        self.eop = eop
        self.record = EopRecord(client="")
        self.attributed = False

    def hostname(self) -> str:
        return self.eop.hostname

    def banner(self) -> str:
        return (
            f"220 {self.eop.hostname} Microsoft ESMTP MAIL Service ready (lab stand-in for Exchange Online Protection)"
        )

    def extensions(self) -> list[str]:
        return [
            "SIZE 157286400",
            "PIPELINING",
            "DSN",
            "ENHANCEDSTATUSCODES",
            *([] if self.tls else ["STARTTLS"]),
            "8BITMIME",
            "SMTPUTF8",
        ]

    def tls_context(self) -> ssl.SSLContext:
        return self.eop.context

    def after_tls(self) -> None:
        sslobj = getattr(self.socket, "_sslobj", None)
        # Python 3.13 makes this public as SSLSocket.get_unverified_chain(); 3.11 has it on the SSL object.
        chain_of = getattr(self.socket, "get_unverified_chain", None) or getattr(sslobj, "get_unverified_chain", None)
        raw = chain_of() if chain_of is not None else None
        # _ssl.Certificate.public_bytes() gives PEM by default (the DER constant is private in 3.11). A client that
        # presented no certificate comes back as [None] from 3.11's server side, not as an empty chain.
        presented = [
            x509.load_pem_x509_certificate(item.public_bytes().encode("ascii"))
            for item in raw or []
            if item is not None
        ]
        self.record.presented = [thumbprint(item) for item in presented]
        verification = verify_presented(presented, self.eop.trusted_roots)
        if not verification.ok:
            self.record.reason = f"chain: {verification.reason}"
        elif not name_matches(self.eop.settings.tls_sender_certificate_name, presented[0]):
            self.record.reason = "certificate name does not match TlsSenderCertificateName"
        else:
            self.attributed = True
        self.record.attributed = self.attributed

    def smtp_ehlo(self, argument: str) -> None:
        self.record.client = argument
        super().smtp_ehlo(argument)

    def send(self, *lines: str) -> None:
        self.record.replies.extend(lines)
        super().send(*lines)

    def rcpt(self, address: str) -> str:
        domain = address.rpartition("@")[2].lower()
        if domain == self.eop.settings.tenant_domain.lower() or self.attributed:
            return "250 2.1.5 Recipient OK"
        return f"{REPLY_TENANT_ATTRIBUTION} [{self.eop.hostname}]"

    def message(self, data: bytes) -> str:
        self.eop.accepted += 1
        return (
            f"250 2.6.0 <{uuid.uuid4()}@{self.eop.hostname}> [InternalId={self.eop.accepted}] Queued mail for delivery"
        )


class EopStandIn:
    def __init__(self, fleet: Fleet, directory: Path) -> None:
        assert fleet.eop is not None and fleet.pki is not None
        self.settings = fleet.eop
        self.hostname = fleet.eop.mx
        self.trusted_roots = [fleet.pki.certificate(name) for name in fleet.eop.trusted_roots]
        self.records: list[EopRecord] = []
        self.accepted = 0
        certificate, key = self_signed_server(self.hostname)
        _write_private(directory / "eop.pem", to_pem([certificate]))
        _write_private(directory / "eop.key.pem", key_to_pem(key))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(directory / "eop.pem", directory / "eop.key.pem")
        (directory / "eop.key.pem").unlink()
        # Ask for a client certificate and let the handshake finish for any the fleet's PKI issued: see the module
        # docstring. The attribution verdict is verify_presented's, not OpenSSL's.
        context.verify_mode = ssl.CERT_OPTIONAL
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        context.load_verify_locations(
            cadata=to_pem(item.certificate for item in fleet.pki.authorities.values()).decode("ascii")
        )
        self.context = context
        self.port = 0

    def serve(self, connection: socket.socket, address: tuple[str, int]) -> None:
        session = EopSession(self, connection, address)
        self.records.append(session.record)
        del self.records[:-1000]
        session.run()


# --- the mail side of the lab -------------------------------------------------------------------------------------


class MailLab:
    """SMTP listeners for every Exchange host, the EOP stand-in, and Exchange's periodic queue retry.

    ``with MailLab(fleet) as mail: ...`` in a test, or started and stopped by the Lab. ``retry_interval`` None takes
    the fleet's ``queue_retry_seconds``; 0 disables the background retry (tests call :meth:`retry` themselves).
    """

    def __init__(self, fleet: Fleet, *, ttl_seconds: float = 3600.0, retry_interval: float | None = None) -> None:
        self.fleet = fleet
        self.ttl_seconds = ttl_seconds
        self.retry_interval = fleet.settings.queue_retry_seconds if retry_interval is None else retry_interval
        self._directory = tempfile.TemporaryDirectory(prefix="mailflow-lab-smtp-")
        directory = Path(self._directory.name)
        self.credentials = Credentials(directory)
        self.acceptor = Acceptor("lab-smtp")
        self.ports: dict[str, int] = {}
        for host in fleet.exchange_servers():
            self.ports[host.name] = self.acceptor.listen(self._exchange_handler(host))
        self.eop = EopStandIn(fleet, directory) if fleet.eop is not None and fleet.pki is not None else None
        if self.eop is not None:
            self.eop.port = self.acceptor.listen(self.eop.serve)
        self.halting = threading.Event()  # set when stop() begins: background loops end
        self.stopped = threading.Event()  # set when stop() is done: nothing listens any more
        self.errors: list[str] = []
        self._stop_lock = threading.Lock()
        self._timer = threading.Timer(ttl_seconds, self.stop)
        self._timer.daemon = True
        self._retry_thread = threading.Thread(target=self._retry_loop, name="lab-queue-retry", daemon=True)

    def _exchange_handler(self, host: HostState) -> t.Callable[[socket.socket, tuple[str, int]], None]:
        def serve(connection: socket.socket, address: tuple[str, int]) -> None:
            ExchangeSession(self, host, connection, address).run()

        return serve

    def start(self) -> MailLab:
        self.acceptor.start()
        self._timer.start()
        self.retry()  # the state the fleet file describes, with its consequences, from the first look on
        if self.retry_interval > 0:
            self._retry_thread.start()
        return self

    def stop(self) -> None:
        with self._stop_lock:
            if self.halting.is_set():
                return
            self.halting.set()
        self._timer.cancel()
        # The retry cycle in progress may be relaying through the EOP stand-in: let it finish before the listeners
        # go, or its connection would wait in a closed listener's backlog until it timed out.
        if self._retry_thread.is_alive() and threading.current_thread() is not self._retry_thread:
            self._retry_thread.join(timeout=SOCKET_TIMEOUT)
        self.acceptor.stop()
        self._directory.cleanup()
        self.stopped.set()

    def __enter__(self) -> MailLab:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _retry_loop(self) -> None:
        # Once a cycle turns out as the one before it, in an org where nothing has changed since, every further
        # cycle would repeat it exactly: the lab skips them, so that a fleet of hundreds of hosts costs nothing
        # while no one touches it. The next change (a script's write, a fault) makes the following cycle run.
        previous: tuple[t.Any, ...] | None = None
        quiet_at: int | None = None
        while not self.halting.wait(self.retry_interval):
            if quiet_at is not None and quiet_at == self.fleet.revision:
                continue
            revision = self.fleet.revision
            try:
                attempts = self.retry()
            except Exception as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")
                print(f"lab: queue retry failed: {exc!r}", file=sys.stderr)
                continue
            # By the SMTP codes of the replies: their text carries a fresh message id each time.
            outcome = tuple(
                sorted((a.sender, a.queue, a.target, a.delivered, a.causes, a.reply.split(" ")[:2]) for a in attempts)
            )
            quiet_at = revision if outcome == previous else None
            previous = outcome

    def retry(self) -> list[model.Attempt]:
        """One Exchange retry cycle over the whole fleet (replication on healthy links, then every queue)."""
        return model.settle(self.fleet, relay=self.relay if self.eop is not None else None)

    def relay(
        self, host: HostState, queue: Queue | None = None, *, recipient: str = "someone@fabrikam.example"
    ) -> model.RelayReply:
        """Relay one message from ``host`` through EOP over real SMTP and TLS, presenting ``host``'s chain."""
        if self.eop is None:
            raise RuntimeError("the fleet has no eop section")
        domain = recipient.rpartition("@")[2]
        context = self.credentials.context(self.fleet, host, server_side=False, recipient_domain=domain)[0]
        sender = f"postmaster@{self.fleet.eop.tenant_domain}" if self.fleet.eop else "postmaster@lab.invalid"
        log = SendLog(host, domain)
        try:
            with smtplib.SMTP(local_hostname=host.fqdn, timeout=SOCKET_TIMEOUT) as client:
                log.line("+")
                # connect() rather than the constructor, which drops the banner the log records; STARTTLS then needs
                # the server name the constructor would have kept.
                log.reply(*client.connect(LOOPBACK, self.eop.port))
                setattr(client, "_host", LOOPBACK)  # noqa: B010 - smtplib keeps it private and untyped
                if client.sock is not None:
                    client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                log.reply(*log.sent(f"EHLO {host.fqdn}", client.ehlo()))
                if client.has_extn("starttls"):
                    log.reply(*log.sent("STARTTLS", client.starttls(context=context)))
                    log.reply(*log.sent(f"EHLO {host.fqdn}", client.ehlo()))
                code, text = log.sent(f"MAIL FROM:<{sender}>", client.mail(sender))
                log.reply(code, text)
                if code == 250:
                    code, text = log.sent(f"RCPT TO:<{recipient}>", client.rcpt(recipient))
                    log.reply(code, text)
                if code == 250:
                    code, text = log.sent("DATA", client.data(b"Subject: lab relay\r\n\r\nRelayed by the lab.\r\n"))
                    log.reply(code, text)
                log.line(">", "QUIT")
                log.line("-")
                return model.RelayReply(code, f"{code} {text.decode('ascii', 'replace')}")
        except (OSError, smtplib.SMTPException) as exc:
            log.line("-", context=f"{type(exc).__name__}")
            return model.RelayReply(0, f"451 4.4.0 Primary target IP address responded with: {type(exc).__name__}")

    def status(self) -> dict[str, t.Any]:
        return {
            "smtp_ports": dict(self.ports),
            "eop": {"port": self.eop.port, "hostname": self.eop.hostname} if self.eop is not None else None,
            "queue_retry_seconds": self.retry_interval,
        }


# Where the lab says EOP is, in the protocol log (a documentation address: the relay goes to loopback).
EOP_ENDPOINT = "203.0.113.25:25"


class SendLog:
    """The lines a relay adds to the sending host's send protocol log, as the Transport service writes them: each
    command sent (``>``) and each reply received (``<``, first line of a multi-line reply), stamped with the host's
    own clock. What mailflow_evidence reads for KB 3212877's symptom."""

    def __init__(self, host: HostState, domain: str) -> None:
        self.host = host
        exchange = host.exchange
        connector = exchange.route(domain) if exchange is not None else None
        self.connector = connector.name if connector is not None else ""
        self.session = exchange.new_send_session() if exchange is not None else ""
        self.sequence = 0

    def line(self, event: str, data: str = "", *, context: str = "") -> None:
        if self.host.exchange is None:
            return
        self.host.exchange.log_send(
            ProtocolLogLine(
                time=self.host.now(),
                connector=self.connector,
                session=self.session,
                sequence=self.sequence,
                local=f"{self.host.ip}:{49152 + int(self.session[-4:], 16) % 16384}",
                remote=EOP_ENDPOINT,
                event=event,
                data=data,
                context=context,
            )
        )
        self.sequence += 1

    def sent(self, command: str, reply: tuple[int, bytes]) -> tuple[int, bytes]:
        self.line(">", command)
        return reply

    def reply(self, code: int, text: bytes) -> None:
        first = text.decode("ascii", "replace").splitlines()[0] if text else ""
        self.line("<", f"{code} {first}".strip())


def wait_for(predicate: t.Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``predicate`` until it holds (for code that waits on the background retry)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


__all__ = [
    "CERT_E_CHAINING",
    "CERT_E_UNTRUSTEDROOT",
    "EVENT_CHAIN_POLICY",
    "REPLY_TENANT_ATTRIBUTION",
    "MailLab",
    "log_chain_failure",
]
