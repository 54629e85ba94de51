"""The TCP listeners of the lab's hosts (HTTP and HTTPS), which can be taken down and brought back on the same port.

Taking a listener down is how the lab refuses connections: nothing listens on the port, so a client's connect
fails the way it does against a host whose WinRM service is stopped. Connections already open are shut down
with it, as Windows resets them when the service stops.

A fleet of 500 hosts has 1,000 listeners. They are all watched by one thread, the hub, that sleeps in a selector
until a client connects (a listener per thread, each polling for shutdown every 50 ms, took more than half a core
with no traffic at all). Each connection is then served by a thread of its own, which ends with the connection.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import ssl
import sys
import threading
import typing as t
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.lab.tls import ServerCertificate

LOOPBACK = "127.0.0.1"
HANDSHAKE_TIMEOUT = 30.0


class LabHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        port: int,
        handler: type[BaseHTTPRequestHandler],
        *,
        endpoint: t.Any,
        tls: ServerCertificate | None,
    ) -> None:
        self.endpoint = endpoint
        self.tls = tls
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__((LOOPBACK, port), handler)

    def get_request(self) -> tuple[socket.socket, t.Any]:
        connection, address = super().get_request()
        # WS-Man is a dialogue of small requests and replies: without this, Nagle's algorithm and the client's
        # delayed ACK add about 40 ms to every reply.
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls is not None:
            # The handshake runs later in the connection's own thread, so a client that stalls or rejects the
            # certificate cannot hold up accepting for everyone else.
            connection = self.tls.context.wrap_socket(connection, server_side=True, do_handshake_on_connect=False)
        with self._connections_lock:
            self._connections.add(connection)
        return connection, address

    def finish_request(self, request: t.Any, client_address: t.Any) -> None:
        if isinstance(request, ssl.SSLSocket):
            request.settimeout(HANDSHAKE_TIMEOUT)
            request.do_handshake()
        super().finish_request(request, client_address)

    def shutdown_request(self, request: t.Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: t.Any, client_address: t.Any) -> None:
        # A client that gives up (a certificate it does not trust, a connection the lab dropped on purpose) is not
        # an error of the lab; anything else is, and goes to the lab's log.
        if isinstance(sys.exc_info()[1], (ssl.SSLError, OSError)):
            return
        super().handle_error(request, client_address)

    def drop_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by its client
                connection.shutdown(socket.SHUT_RDWR)


class ListenerHub:
    """One thread that accepts for every listener of the lab; it sleeps until a client connects."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._lock = threading.Lock()
        # Registrations come from other threads; a byte on this pair wakes the selector to take them up at once.
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)
        self._selector.register(self._wake_reader, selectors.EVENT_READ, None)
        self._pending: list[tuple[str, LabHTTPServer]] = []
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lab-listeners", daemon=True)
        self._thread.start()

    def add(self, server: LabHTTPServer) -> None:
        self._change("add", server)

    def remove(self, server: LabHTTPServer) -> None:
        """Stop accepting for ``server``; returns once the hub no longer touches its socket."""
        done = threading.Event()
        self._change("remove", server, done)
        if threading.current_thread() is not self._thread:
            done.wait(timeout=5)

    def _change(self, operation: str, server: LabHTTPServer, done: threading.Event | None = None) -> None:
        with self._lock:
            self._pending.append((operation, server))
            if done is not None:
                self._pending.append(("done", t.cast(t.Any, done)))
        with contextlib.suppress(OSError):
            self._wake_writer.send(b"x")

    def stop(self) -> None:
        self._stopped.set()
        with contextlib.suppress(OSError):
            self._wake_writer.send(b"x")
        self._thread.join(timeout=5)
        self._selector.close()
        self._wake_reader.close()
        self._wake_writer.close()

    def _apply_pending(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        for operation, item in pending:
            if operation == "add":
                item.socket.setblocking(False)
                self._selector.register(item.socket, selectors.EVENT_READ, item)
            elif operation == "remove":
                with contextlib.suppress(KeyError, ValueError):
                    self._selector.unregister(item.socket)
            else:
                t.cast(threading.Event, item).set()

    def _run(self) -> None:
        while not self._stopped.is_set():
            for key, _mask in self._selector.select():
                if key.data is None:
                    with contextlib.suppress(BlockingIOError):
                        self._wake_reader.recv(4096)
                    continue
                server = t.cast(LabHTTPServer, key.data)
                # Accepts the waiting connection and starts its thread (socketserver's ThreadingMixIn).
                with contextlib.suppress(OSError):
                    server.handle_request()
            self._apply_pending()


class Listener:
    """A listener on 127.0.0.1 whose port survives :meth:`stop` so that :meth:`start` can bring it back."""

    def __init__(
        self,
        handler: type[BaseHTTPRequestHandler],
        *,
        hub: ListenerHub,
        endpoint: t.Any,
        name: str,
        tls: ServerCertificate | None = None,
    ) -> None:
        self.handler = handler
        self.hub = hub
        self.endpoint = endpoint
        self.name = name
        self.tls = tls
        self.server: LabHTTPServer | None = LabHTTPServer(0, handler, endpoint=endpoint, tls=tls)
        self.port = int(self.server.server_address[1])
        self._listening = False
        self._lock = threading.Lock()

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{LOOPBACK}:{self.port}/wsman"

    @property
    def running(self) -> bool:
        return self._listening

    def start(self) -> None:
        with self._lock:
            if self._listening:
                return
            if self.server is None:
                # The same port again: a refused host comes back where the inventory says it is.
                self.server = LabHTTPServer(self.port, self.handler, endpoint=self.endpoint, tls=self.tls)
            self.hub.add(self.server)
            self._listening = True

    def stop(self) -> None:
        with self._lock:
            server, listening = self.server, self._listening
            self.server, self._listening = None, False
        if server is None:
            return
        if listening:
            self.hub.remove(server)
        server.server_close()
        server.drop_connections()
