"""The Exchange side of an emulated Mailbox server: receive and send connectors and queues, as the Exchange cmdlets
report them (Get-ReceiveConnector, Get-SendConnector, Get-Queue). Values are Exchange's enum names, which are not
localized."""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, field

from cryptography import x509

from tests.lab.certs import dn_equal, windows_dn

# The two [Flags] enums of a receive connector, names in value order (as Get-ReceiveConnector prints them and as
# PowerShell lists them when it refuses a name).
AUTH_MECHANISMS = (
    "None",
    "Tls",
    "Integrated",
    "BasicAuth",
    "BasicAuthRequireTLS",
    "ExchangeServer",
    "ExternalAuthoritative",
)
PERMISSION_GROUPS = (
    "None",
    "AnonymousUsers",
    "ExchangeUsers",
    "ExchangeServers",
    "ExchangeLegacyServers",
    "Partners",
    "Custom",
)
AUTH_MECHANISMS_TYPE = "Microsoft.Exchange.Data.Directory.SystemConfiguration.AuthMechanisms"
PERMISSION_GROUPS_TYPE = "Microsoft.Exchange.Data.Directory.SystemConfiguration.PermissionGroups"
# A value PowerShell cannot convert to the parameter's enum fails parameter binding, before the cmdlet runs.
PARAMETER_TRANSFORMATION_ERROR = "System.Management.Automation.ParameterBindingArgumentTransformationException"
# Set-ReceiveConnector validates the connector it would save. Exchange's own wording of these refusals could not be
# found; the rules are Microsoft's documented ones (Set-ReceiveConnector -AuthMechanism) and the brief's, the type
# is the exception Exchange raises for an object that fails validation, and the messages are ours. Nothing may
# match on them: a module reports the error, it does not parse it.
CONNECTOR_VALIDATION_ERROR = "Microsoft.Exchange.Data.DataValidationException"

# What Exchange 2013+ setup gives both default connectors of a Mailbox server.
DEFAULT_AUTH_MECHANISM = ("Tls", "Integrated", "BasicAuth", "BasicAuthRequireTLS", "ExchangeServer")
HUB_PERMISSION_GROUPS = ("ExchangeUsers", "ExchangeServers", "ExchangeLegacyServers")
FRONTEND_PERMISSION_GROUPS = ("AnonymousUsers", "ExchangeServers", "ExchangeLegacyServers")

EOP = "eop"  # the queue target that stands for Exchange Online Protection
OFFICE365_SEND_CONNECTOR = "Outbound to Office 365"  # the name the Hybrid Configuration Wizard gives it


@dataclass
class ReceiveConnector:
    server: str
    name: str
    transport_role: str  # HubTransport (Transport service, 2525) | FrontendTransport (Front End Transport, 25)
    bindings: list[str]
    auth_mechanism: list[str]
    permission_groups: list[str]
    remote_ip_ranges: list[str] = field(
        default_factory=lambda: ["0.0.0.0-255.255.255.255", "::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"]
    )
    enabled: bool = True

    @property
    def identity(self) -> str:
        return f"{self.server}\\{self.name}"

    def offers(self, mechanism: str) -> bool:
        return any(item.lower() == mechanism.lower() for item in self.auth_mechanism)

    def grants(self, group: str) -> bool:
        return any(item.lower() == group.lower() for item in self.permission_groups)

    def snapshot(self) -> dict[str, t.Any]:
        return {
            "identity": self.identity,
            "name": self.name,
            "transport_role": self.transport_role,
            "bindings": list(self.bindings),
            "remote_ip_ranges": list(self.remote_ip_ranges),
            "auth_mechanism": list(self.auth_mechanism),
            "permission_groups": list(self.permission_groups),
            "enabled": self.enabled,
        }


def set_receive_connector(
    connector: ReceiveConnector,
    *,
    auth_mechanism: t.Iterable[str] | str | None = None,
    permission_groups: t.Iterable[str] | str | None = None,
) -> bool:
    """Set-ReceiveConnector -AuthMechanism / -PermissionGroups, as the receive_connector_auth twin calls it.

    Each given value replaces the property (as the cmdlet does; there is no add). Raises HostException, and
    changes nothing, for an unknown name or a result Exchange refuses; returns whether anything changed.
    """
    auth = connector.auth_mechanism if auth_mechanism is None else flag_names(auth_mechanism, "AuthMechanism")
    groups = (
        connector.permission_groups if permission_groups is None else flag_names(permission_groups, "PermissionGroups")
    )
    validate_receive_connector(auth, groups)
    changed = (auth, groups) != (connector.auth_mechanism, connector.permission_groups)
    connector.auth_mechanism, connector.permission_groups = list(auth), list(groups)
    return changed


def flag_names(value: t.Iterable[str] | str, parameter: str) -> list[str]:
    """The canonical names of a [Flags] enum value given as names (a list, or one comma-separated string),
    converted as PowerShell converts them: case-insensitively, None dropped beside other flags, in value order."""
    names, enum_type = {
        "AuthMechanism": (AUTH_MECHANISMS, AUTH_MECHANISMS_TYPE),
        "PermissionGroups": (PERMISSION_GROUPS, PERMISSION_GROUPS_TYPE),
    }[parameter]
    items = value.split(",") if isinstance(value, str) else list(value)
    by_lower = {name.lower(): name for name in names}
    wanted: set[str] = set()
    for item in items:
        name = by_lower.get(str(item).strip().lower())
        if name is None:
            # Windows PowerShell's wording, which lists the enumerator names after a line break.
            _refuse(
                PARAMETER_TRANSFORMATION_ERROR,
                f"Cannot process argument transformation on parameter '{parameter}'. Cannot convert value "
                f'"{str(item).strip()}" to type "{enum_type}". Error: "Unable to match the identifier name '
                f"{str(item).strip()} to a valid enumerator name. Specify one of the following enumerator names and "
                f'try again:\r\n{", ".join(names)}"',
            )
        wanted.add(name)
    flags = [name for name in names[1:] if name in wanted]
    return flags or ["None"]


def validate_receive_connector(auth_mechanism: t.Sequence[str], permission_groups: t.Sequence[str]) -> None:
    """Raise HostException when Exchange would refuse to save a connector with these (canonical) values."""
    auth, groups = set(auth_mechanism), set(permission_groups)
    problem = None
    if "ExchangeServer" in auth and "Tls" not in auth:
        problem = "The ExchangeServer authentication mechanism requires the Tls authentication mechanism."
    elif "BasicAuthRequireTLS" in auth and not {"BasicAuth", "Tls"} <= auth:
        problem = (
            "The BasicAuthRequireTLS authentication mechanism requires the BasicAuth and Tls authentication mechanisms."
        )
    elif "ExternalAuthoritative" in auth and auth - {"ExternalAuthoritative", "Tls"}:
        problem = "The ExternalAuthoritative authentication mechanism can only be combined with Tls."
    elif "ExternalAuthoritative" in auth and "ExchangeServers" not in groups:
        problem = "The ExternalAuthoritative authentication mechanism requires the ExchangeServers permission group."
    elif "ExchangeServers" in groups and not auth & {"ExchangeServer", "ExternalAuthoritative"}:
        problem = (
            "The ExchangeServers permission group requires the ExchangeServer or ExternalAuthoritative "
            "authentication mechanism."
        )
    if problem is not None:
        _refuse(CONNECTOR_VALIDATION_ERROR, problem)


def _refuse(error_type: str, message: str) -> t.NoReturn:
    from tests.lab.fleet import HostException  # imported here: fleet.py imports this module

    raise HostException(error_type, message)


@dataclass
class SendConnector:
    """A send connector as Get-SendConnector reports it, for the servers it is scoped to.

    ``tls_certificate_name`` (``<I>issuer<S>subject``, Windows' DN strings) names the certificate the server
    presents as its TLS client certificate through this connector: EOP attributes mail by that certificate, not by
    whichever one is enabled for SMTP.
    """

    name: str
    address_spaces: list[str]  # domains, "*" for all (Exchange's "SMTP:*;1" without type and cost)
    smart_hosts: list[str]
    tls_certificate_name: str | None = None
    require_tls: bool = True
    enabled: bool = True

    def covers(self, domain: str) -> int:
        """How specifically an address space covers ``domain``: 0 not at all, more is more specific."""
        best = 0
        for space in self.address_spaces:
            space = space.lower()
            if space == "*":
                best = max(best, 1)
            elif space.startswith("*.") and domain.lower().endswith(space[1:]):
                best = max(best, len(space))
            elif space == domain.lower():
                best = max(best, len(space) + 1)
        return best

    def names(self, certificate: x509.Certificate) -> bool:
        """Whether TlsCertificateName designates ``certificate`` (issuer and subject)."""
        parsed = parse_tls_certificate_name(self.tls_certificate_name or "")
        if parsed is None:
            return False
        issuer, subject = parsed
        return dn_equal(issuer, windows_dn(certificate.issuer)) and dn_equal(subject, windows_dn(certificate.subject))

    def snapshot(self) -> dict[str, t.Any]:
        return {
            "name": self.name,
            "address_spaces": list(self.address_spaces),
            "smart_hosts": list(self.smart_hosts),
            "tls_certificate_name": self.tls_certificate_name,
            "require_tls": self.require_tls,
            "enabled": self.enabled,
        }


def tls_certificate_name(certificate: x509.Certificate) -> str:
    """The TlsCertificateName value that designates ``certificate``, as Exchange's docs tell one to build it."""
    return f"<I>{windows_dn(certificate.issuer)}<S>{windows_dn(certificate.subject)}"


def parse_tls_certificate_name(value: str) -> tuple[str, str] | None:
    """(issuer, subject) of a ``<I>issuer<S>subject`` value; None when it is not in that form."""
    if not value.startswith("<I>") or "<S>" not in value:
        return None
    issuer, _separator, subject = value[len("<I>") :].partition("<S>")
    return (issuer, subject) if issuer.strip() and subject.strip() else None


def internal_connector_name(server: str) -> str:
    """The connector of the Transport service that takes mail from the other Exchange servers."""
    return f"Default {server}"


def default_connectors(server: str) -> list[ReceiveConnector]:
    return [
        ReceiveConnector(
            server=server,
            name=internal_connector_name(server),
            transport_role="HubTransport",
            bindings=["0.0.0.0:2525", "[::]:2525"],
            auth_mechanism=list(DEFAULT_AUTH_MECHANISM),
            permission_groups=list(HUB_PERMISSION_GROUPS),
        ),
        ReceiveConnector(
            server=server,
            name=f"Default Frontend {server}",
            transport_role="FrontendTransport",
            bindings=["0.0.0.0:25", "[::]:25"],
            auth_mechanism=list(DEFAULT_AUTH_MECHANISM),
            permission_groups=list(FRONTEND_PERMISSION_GROUPS),
        ),
    ]


@dataclass
class Queue:
    """A delivery queue (Get-Queue). ``target`` is the lab host it delivers to, or EOP."""

    identity: str
    target: str
    delivery_type: str  # SmtpDeliveryToMailbox | SmartHostConnectorDelivery | ...
    next_hop_domain: str
    status: str = "Ready"  # Active | Ready | Retry | Suspended
    message_count: int = 0
    last_error: str = ""
    last_retry_time: float | None = None  # by the sending host's clock
    next_retry_time: float | None = None

    def snapshot(self) -> dict[str, t.Any]:
        return {
            "identity": self.identity,
            "target": self.target,
            "delivery_type": self.delivery_type,
            "next_hop_domain": self.next_hop_domain,
            "status": self.status,
            "message_count": self.message_count,
            "last_error": self.last_error,
            "last_retry_time": self.last_retry_time,
            "next_retry_time": self.next_retry_time,
        }


@dataclass
class ProtocolLogLine:
    """One line of the Transport service's send protocol log (TransportRoles\\Logs\\Hub\\ProtocolLog\\SmtpSend,
    SEND<yyyymmdd>-<n>.LOG), whose fields are those of its ``#Fields:`` header: date-time, connector-id,
    session-id, sequence-number, local-endpoint, remote-endpoint, event (``+`` connect, ``>`` sent, ``<`` received,
    ``*`` information, ``-`` disconnect), data, context. A CSV file, machine-written: status codes, never prose."""

    time: float  # by the sending host's clock
    connector: str
    session: str
    sequence: int
    local: str
    remote: str
    event: str
    data: str = ""
    context: str = ""

    def snapshot(self) -> dict[str, t.Any]:
        return {
            "time": self.time,
            "connector": self.connector,
            "session": self.session,
            "sequence": self.sequence,
            "local": self.local,
            "remote": self.remote,
            "event": self.event,
            "data": self.data,
            "context": self.context,
        }


# The Transport service removes its oldest protocol log files by age and size; the lab keeps this many lines.
PROTOCOL_LOG_LINES = 1000


@dataclass
class ExchangeState:
    """One Mailbox server's transport: connectors, queues, and what it delivered or bounced."""

    server: str  # the Exchange server name (upper-case NetBIOS name, as in "Default EX01")
    receive_connectors: list[ReceiveConnector] = field(default_factory=list)
    send_connectors: list[SendConnector] = field(default_factory=list)  # those this server is a source of
    queues: list[Queue] = field(default_factory=list)
    received: int = 0  # messages this server accepted from other Exchange servers
    relayed: int = 0  # messages EOP accepted from this server
    ndrs: list[dict[str, t.Any]] = field(default_factory=list)  # non-delivery reports it generated
    send_protocol_log: list[ProtocolLogLine] = field(default_factory=list)  # SMTP sessions it opened (SmtpSend)
    _next_queue: int = 3  # Exchange numbers delivery queues after its system queues
    _next_session: int = 0x08DC000000000000

    def new_send_session(self) -> str:
        """A session-id as the protocol log writes it (a 64-bit number in hex)."""
        self._next_session += 1
        return f"{self._next_session:016X}"

    def log_send(self, line: ProtocolLogLine) -> None:
        self.send_protocol_log.append(line)
        del self.send_protocol_log[: max(0, len(self.send_protocol_log) - PROTOCOL_LOG_LINES)]

    def connector(self, name: str) -> ReceiveConnector | None:
        return next((item for item in self.receive_connectors if item.name.lower() == name.lower()), None)

    def send_connector(self, name: str) -> SendConnector | None:
        return next((item for item in self.send_connectors if item.name.lower() == name.lower()), None)

    def route(self, domain: str) -> SendConnector | None:
        """The enabled send connector mail for ``domain`` leaves through: the most specific address space wins."""
        candidates = [(item.covers(domain), item) for item in self.send_connectors if item.enabled]
        best = max((score for score, _connector in candidates), default=0)
        return next((item for score, item in candidates if score and score == best), None)

    def queue_to(self, target: str) -> Queue | None:
        return next((queue for queue in self.queues if queue.target == target), None)

    def submit(self, target: str, count: int, *, next_hop_domain: str, delivery_type: str) -> Queue:
        """Mail for ``target`` enters its queue (created on first use, as Exchange creates queues on demand)."""
        queue = self.queue_to(target)
        if queue is None:
            queue = Queue(
                identity=f"{self.server}\\{self._next_queue}",
                target=target,
                delivery_type=delivery_type,
                next_hop_domain=next_hop_domain,
            )
            self._next_queue += 1
            self.queues.append(queue)
        queue.message_count += int(count)
        return queue

    def snapshot(self) -> dict[str, t.Any]:
        return {
            "server": self.server,
            "receive_connectors": [item.snapshot() for item in self.receive_connectors],
            "send_connectors": [item.snapshot() for item in self.send_connectors],
            "queues": [queue.snapshot() for queue in self.queues],
            "received": self.received,
            "relayed": self.relayed,
            "ndrs": list(self.ndrs),
            "send_protocol_log": [line.snapshot() for line in self.send_protocol_log],
        }
