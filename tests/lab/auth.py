"""WinRM authentication as the lab serves it: Basic, and NTLM with WinRM message encryption.

NTLM is accepted by pyspnego's server-side context; it reads the accepted credentials from the file named by
NTLM_USER_FILE, which the lab writes at start. The context belongs to one TCP connection, as on Windows.
"""

from __future__ import annotations

import base64
import binascii
import os
import struct
import tempfile

import spnego
import spnego.exceptions
from spnego.channel_bindings import GssChannelBindings

from tests.lab.fleet import Credentials

BOUNDARY = b"--Encrypted Boundary"
ENCRYPTED_PROTOCOL = "application/HTTP-SPNEGO-session-encrypted"
# What a default WinRM listener offers; Basic only where the service allows it (winrm/config/service/auth).
CHALLENGES = ("Negotiate", "Kerberos")
BASIC_CHALLENGE = 'Basic realm="WSMAN"'


def challenges(*, allow_basic: bool) -> tuple[str, ...]:
    return (*CHALLENGES, BASIC_CHALLENGE) if allow_basic else CHALLENGES


class AuthFailed(Exception):
    """Answered with 401 and the challenges, never by dropping the connection."""


def install_ntlm_credentials(credentials: Credentials, directory: str | None = None) -> str:
    """Write the NTLM credential file and point pyspnego's acceptor at it (process-wide, the lab's own process)."""
    handle, path = tempfile.mkstemp(prefix="lab-ntlm-", suffix=".txt", dir=directory)
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        stream.write(f"{credentials.domain}:{credentials.username}:{credentials.password}\n")
        stream.write(f":{credentials.username}:{credentials.password}\n")
    os.environ["NTLM_USER_FILE"] = path
    return path


class ConnectionAuth:
    """The authentication state of one client connection.

    ``channel_binding`` is the TLS connection's tls-server-end-point data: over HTTPS an NTLM logon must be bound
    to it. Windows' default (CbtHardeningLevel Relaxed) checks it when the client sends one, and every client the
    collection supports does; the lab requires it, which is at least as strict.
    """

    def __init__(self, credentials: Credentials, *, channel_binding: bytes | None = None) -> None:
        self.credentials = credentials
        self.channel_bindings = GssChannelBindings(application_data=channel_binding) if channel_binding else None
        self.context: spnego.ContextProxy | None = None
        self.scheme = ""
        self.user = ""
        # How the client logged on: "basic" (a cleartext logon) or "ntlm" (a network logon, also inside SPNEGO).
        self.mechanism = ""

    @property
    def established(self) -> bool:
        return self.context is not None and self.context.complete

    def basic(self, token: str) -> str:
        try:
            username, _sep, password = base64.b64decode(token).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise AuthFailed("malformed Basic credentials") from exc
        if not self.credentials.accepts_basic(username, password):
            raise AuthFailed(f"wrong user name or password for {username!r}")
        self.user = username
        self.mechanism = "basic"
        return username

    def negotiate_step(self, scheme: str, token: str) -> bytes | None:
        """One leg of NTLM; returns the token to send back, or None once the context is complete."""
        try:
            in_token = base64.b64decode(token)
        except binascii.Error as exc:
            raise AuthFailed("malformed Negotiate token") from exc
        if self.context is None or self.context.complete or in_token.startswith(b"NTLMSSP\x00\x01"):
            # Raw NTLM (pywinrm) or NTLM inside SPNEGO (pypsrp's default "negotiate"): both with pyspnego's own
            # providers, so that a GSSAPI library on the machine cannot change what the lab accepts.
            if in_token.startswith(b"NTLMSSP\x00"):
                protocol, options = "ntlm", spnego.NegotiateOptions.use_ntlm
            else:
                protocol, options = "negotiate", spnego.NegotiateOptions.use_negotiate
            self.context = spnego.server(protocol=protocol, options=options, channel_bindings=self.channel_bindings)
            self.scheme = scheme
        try:
            out_token = self.context.step(in_token)
        except Exception as exc:
            # Whatever pyspnego makes of a token (a wrong password, or one it cannot even parse: KeyError,
            # struct.error), it is a failed logon: 401, never a dropped connection.
            self.context = None
            raise AuthFailed(f"NTLM authentication failed: {exc}") from exc
        if self.context.complete:
            self.user = str(self.context.client_principal or "")
            self.mechanism = "ntlm"
        return out_token

    # --- WinRM message encryption (MS-WSMV 2.2.9.1) -------------------------------------------------------------
    def decrypt(self, body: bytes) -> bytes:
        if not self.established:
            raise AuthFailed("encrypted message on a connection that is not authenticated")
        assert self.context is not None
        message = b""
        parts = [part for part in body.split(BOUNDARY + b"\r\n") if part]
        for index in range(0, len(parts) - 1, 2):
            header, payload = parts[index], parts[index + 1]
            expected = int(header.split(b"Length=")[1].split(b"\r\n")[0])
            if payload.endswith(BOUNDARY + b"--\r\n"):
                payload = payload[: -len(BOUNDARY + b"--\r\n")]
            payload = payload.replace(b"\tContent-Type: application/octet-stream\r\n", b"", 1)
            signature_length = struct.unpack("<I", payload[:4])[0]
            signature = payload[4 : 4 + signature_length]
            try:
                clear = self.context.unwrap_winrm(signature, payload[4 + signature_length :])
            except spnego.exceptions.SpnegoError as exc:
                # A client that kept its sealing state across a dropped connection: Windows answers 400, it
                # does not hang up.
                raise AuthFailed(f"the message does not unseal with this connection's context: {exc}") from exc
            if len(clear) != expected:
                raise AuthFailed("encrypted message length does not match its header")
            message += clear
        return message

    def encrypt(self, message: bytes) -> tuple[bytes, str]:
        assert self.context is not None
        wrapped = self.context.wrap_winrm(message)
        body = (
            BOUNDARY + b"\r\n"
            b"\tContent-Type: " + ENCRYPTED_PROTOCOL.encode() + b"\r\n"
            b"\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length="
            + str(len(message)).encode()
            + b"\r\n"
            + BOUNDARY
            + b"\r\n"
            b"\tContent-Type: application/octet-stream\r\n"
            + struct.pack("<I", len(wrapped.header))
            + wrapped.header
            + wrapped.data
            + BOUNDARY
            + b"--\r\n"
        )
        content_type = f'multipart/encrypted;protocol="{ENCRYPTED_PROTOCOL}";boundary="Encrypted Boundary"'
        return body, content_type


def parse_authorization(header: str) -> tuple[str, str]:
    scheme, _sep, token = header.strip().partition(" ")
    return scheme, token.strip()


def is_encrypted(content_type: str) -> bool:
    return content_type.lower().startswith("multipart/encrypted") and ENCRYPTED_PROTOCOL.lower() in content_type.lower()


__all__ = [
    "BASIC_CHALLENGE",
    "CHALLENGES",
    "AuthFailed",
    "ConnectionAuth",
    "challenges",
    "install_ntlm_credentials",
    "is_encrypted",
    "parse_authorization",
]
