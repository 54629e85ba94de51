"""One TCP listener of a lab host (HTTP or HTTPS) that can be taken down and brought back on the same port.

Taking a listener down is how the lab refuses connections: nothing listens on the port, so a client's connect
fails the way it does against a host whose WinRM service is stopped. Connections already open are shut down
with it, as Windows resets them when the service stops.
"""

from __future__ import annotations

import contextlib
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
        if self.tls is not None:
            # The handshake runs later in the connection's own thread, so a client that stalls or rejects the
            # certificate cannot hold up accept() for everyone else.
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


class Listener:
    """A listener on 127.0.0.1 whose port survives :meth:`stop` so that :meth:`start` can bring it back."""

    def __init__(
        self,
        handler: type[BaseHTTPRequestHandler],
        *,
        endpoint: t.Any,
        name: str,
        tls: ServerCertificate | None = None,
    ) -> None:
        self.handler = handler
        self.endpoint = endpoint
        self.name = name
        self.tls = tls
        self.server: LabHTTPServer | None = LabHTTPServer(0, handler, endpoint=endpoint, tls=tls)
        self.port = int(self.server.server_address[1])
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{LOOPBACK}:{self.port}/wsman"

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            if self.server is None:
                # The same port again: a refused host comes back where the inventory says it is.
                self.server = LabHTTPServer(self.port, self.handler, endpoint=self.endpoint, tls=self.tls)
            self._thread = threading.Thread(
                target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, name=self.name, daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        with self._lock:
            server, thread = self.server, self._thread
            self.server, self._thread = None, None
        if server is None:
            return
        if thread is not None:
            # shutdown() waits for serve_forever to return, so it is only called when serve_forever runs.
            server.shutdown()
        server.server_close()
        server.drop_connections()
