"""WS-Management shell operations (MS-WSMV) as Windows answers them to pywinrm and Ansible's winrm plugin.

Create opens a shell, Command starts a process in it, Send delivers stdin, Receive returns output and the exit
code, Signal ends the command, Delete closes the shell. A command is run through :class:`ScriptRunner` once its
stdin is complete; the runner finds the host script's twin.
"""

from __future__ import annotations

import base64
import typing as t
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

if t.TYPE_CHECKING:
    from tests.lab.psrp import PSRPService
    from tests.lab.twins import Session

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "w": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
    "p": "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd",
    "x": "http://schemas.xmlsoap.org/ws/2004/09/transfer",
}
ACTION_CREATE = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create"
ACTION_DELETE = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete"
SHELL_ACTION = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/"
STATE_DONE = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Done"
STATE_RUNNING = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Running"
CMD_RESOURCE = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd"

for _prefix, _uri in NS.items():
    ET.register_namespace(_prefix, _uri)


class WSManFault(Exception):
    """Answered as a SOAP fault with HTTP 500, the way WinRM reports a failed operation."""

    def __init__(self, code: str, reason: str, wmi_code: int = 0x80338000) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.wmi_code = wmi_code


class ScriptRunner(t.Protocol):
    def __call__(
        self, command: str, arguments: list[str], stdin: bytes, session: Session
    ) -> tuple[bytes, bytes, int]: ...


@dataclass
class Command:
    command_id: str
    command: str
    arguments: list[str]
    expects_stdin: bool
    stdin: bytearray = field(default_factory=bytearray)
    stdin_closed: bool = False
    result: tuple[bytes, bytes, int] | None = None
    delivered: bool = False


@dataclass
class Shell:
    shell_id: str
    resource_uri: str
    commands: dict[str, Command] = field(default_factory=dict)


def _q(prefix: str, name: str) -> str:
    return f"{{{NS[prefix]}}}{name}"


def _text(root: ET.Element, path: str) -> str:
    node = root.find(path, NS)
    return (node.text or "").strip() if node is not None else ""


class ShellService:
    """The shells of one host. Not thread-safe by itself: the HTTP layer serialises calls per host."""

    def __init__(self, address: str, run_script: ScriptRunner, psrp: PSRPService | None = None) -> None:
        self.address = address
        self.run_script = run_script
        self.psrp = psrp
        self.shells: dict[str, Shell] = {}
        self.commands_run = 0

    def handle(self, body: bytes, session: Session) -> bytes:
        """Answer one SOAP request of a logged-on client; raise WSManFault for the errors WinRM reports as faults."""
        try:
            # Requests come from clients on 127.0.0.1 only; ElementTree expands no external entities.
            envelope = ET.fromstring(body)  # noqa: S314
        except ET.ParseError as exc:
            raise WSManFault("s:Sender", f"the request is not XML: {exc}") from exc
        action = _text(envelope, "s:Header/a:Action")
        message_id = _text(envelope, "s:Header/a:MessageID")
        resource_uri = _text(envelope, "s:Header/w:ResourceURI")
        shell_id = ""
        for selector in envelope.findall("s:Header/w:SelectorSet/w:Selector", NS):
            if selector.get("Name") == "ShellId":
                shell_id = (selector.text or "").strip()
        request_body = envelope.find("s:Body", NS)
        if request_body is None:
            raise WSManFault("s:Sender", "the request has no body")
        if self.psrp is not None and self.psrp.serves(resource_uri, shell_id):
            answer = self.psrp.handle(action, resource_uri, shell_id, request_body, session)
            return envelope_bytes(action + "Response", message_id, answer)

        if action == ACTION_CREATE:
            response = self._create(resource_uri)
        elif action == ACTION_DELETE:
            self._shell(shell_id)
            del self.shells[shell_id]
            response = []
        elif action == SHELL_ACTION + "Command":
            response = self._command(self._shell(shell_id), request_body, envelope)
        elif action == SHELL_ACTION + "Send":
            response = self._send(self._shell(shell_id), request_body)
        elif action == SHELL_ACTION + "Receive":
            response = self._receive(self._shell(shell_id), request_body, session)
        elif action == SHELL_ACTION + "Signal":
            response = self._signal(self._shell(shell_id), request_body)
        else:
            raise WSManFault("a:ActionNotSupported", f"the lab does not implement {action!r}")
        return envelope_bytes(action + "Response", message_id, response)

    def _shell(self, shell_id: str) -> Shell:
        shell = self.shells.get(shell_id)
        if shell is None:
            raise WSManFault("w:InvalidSelectors", f"no shell with id {shell_id!r}", 0x8033805B)
        return shell

    def _create(self, resource_uri: str) -> list[ET.Element]:
        if resource_uri != CMD_RESOURCE:
            raise WSManFault("w:DestinationUnreachable", f"the lab does not serve {resource_uri!r}")
        shell = Shell(shell_id=str(uuid.uuid4()).upper(), resource_uri=resource_uri)
        self.shells[shell.shell_id] = shell
        created = ET.Element(_q("x", "ResourceCreated"))
        ET.SubElement(created, _q("a", "Address")).text = self.address
        reference = ET.SubElement(created, _q("a", "ReferenceParameters"))
        ET.SubElement(reference, _q("w", "ResourceURI")).text = resource_uri
        selectors = ET.SubElement(reference, _q("w", "SelectorSet"))
        ET.SubElement(selectors, _q("w", "Selector"), Name="ShellId").text = shell.shell_id
        shell_node = ET.Element(_q("rsp", "Shell"))
        ET.SubElement(shell_node, _q("rsp", "ShellId")).text = shell.shell_id
        ET.SubElement(shell_node, _q("rsp", "ResourceUri")).text = resource_uri
        return [created, shell_node]

    def _command(self, shell: Shell, body: ET.Element, envelope: ET.Element) -> list[ET.Element]:
        line = body.find("rsp:CommandLine", NS)
        if line is None:
            raise WSManFault("s:Sender", "Command without CommandLine")
        console_stdin = "TRUE"
        for option in envelope.findall("s:Header/w:OptionSet/w:Option", NS):
            if option.get("Name") == "WINRS_CONSOLEMODE_STDIN":
                console_stdin = (option.text or "").strip().upper()
        # pywinrm may send the whole command line in Command, or its arguments in one element, space separated.
        words = _text(line, "rsp:Command").split() + [
            part for node in line.findall("rsp:Arguments", NS) for part in (node.text or "").split()
        ]
        if not words:
            raise WSManFault("s:Sender", "Command with an empty CommandLine")
        command = Command(
            command_id=str(uuid.uuid4()).upper(),
            command=words[0],
            arguments=words[1:],
            expects_stdin=console_stdin == "FALSE",
        )
        shell.commands[command.command_id] = command
        response = ET.Element(_q("rsp", "CommandResponse"))
        ET.SubElement(response, _q("rsp", "CommandId")).text = command.command_id
        return [response]

    def _find_command(self, shell: Shell, command_id: str | None) -> Command:
        command = shell.commands.get(command_id or "")
        if command is None:
            raise WSManFault("w:InvalidSelectors", f"no command with id {command_id!r}", 0x8033805B)
        return command

    def _send(self, shell: Shell, body: ET.Element) -> list[ET.Element]:
        for stream in body.findall("rsp:Send/rsp:Stream", NS):
            command = self._find_command(shell, stream.get("CommandId"))
            if stream.text:
                command.stdin += base64.b64decode(stream.text.strip())
            if stream.get("End", "").lower() == "true":
                command.stdin_closed = True
        return [ET.Element(_q("rsp", "SendResponse"))]

    def _receive(self, shell: Shell, body: ET.Element, session: Session) -> list[ET.Element]:
        desired = body.find("rsp:Receive/rsp:DesiredStream", NS)
        command = self._find_command(shell, desired.get("CommandId") if desired is not None else None)
        response = ET.Element(_q("rsp", "ReceiveResponse"))
        if command.expects_stdin and not command.stdin_closed:
            ET.SubElement(response, _q("rsp", "CommandState"), CommandId=command.command_id, State=STATE_RUNNING)
            return [response]
        if command.result is None:
            self.commands_run += 1
            command.result = self.run_script(command.command, command.arguments, bytes(command.stdin), session)
        stdout, stderr, rc = command.result
        for name, data in (("stdout", stdout), ("stderr", stderr)):
            if data and not command.delivered:
                node = ET.SubElement(response, _q("rsp", "Stream"), Name=name, CommandId=command.command_id)
                node.text = base64.b64encode(data).decode("ascii")
            ET.SubElement(response, _q("rsp", "Stream"), Name=name, CommandId=command.command_id, End="true")
        command.delivered = True
        state = ET.SubElement(response, _q("rsp", "CommandState"), CommandId=command.command_id, State=STATE_DONE)
        ET.SubElement(state, _q("rsp", "ExitCode")).text = str(rc)
        return [response]

    def _signal(self, shell: Shell, body: ET.Element) -> list[ET.Element]:
        signal = body.find("rsp:Signal", NS)
        command_id = signal.get("CommandId") if signal is not None else None
        shell.commands.pop(command_id or "", None)
        return [ET.Element(_q("rsp", "SignalResponse"))]


def is_command_receive(body: bytes) -> bool:
    """Whether a request asks for a command's output (cmd process or PSRP pipeline): where a drop hurts most."""
    try:
        envelope = ET.fromstring(body)  # noqa: S314 - the lab parses what its loopback clients send
    except ET.ParseError:
        return False
    desired = envelope.find("s:Body/rsp:Receive/rsp:DesiredStream", NS)
    return _text(envelope, "s:Header/a:Action") == SHELL_ACTION + "Receive" and bool(
        desired is not None and desired.get("CommandId")
    )


def envelope_bytes(action: str, relates_to: str, body_children: list[ET.Element]) -> bytes:
    envelope = ET.Element(_q("s", "Envelope"))
    header = ET.SubElement(envelope, _q("s", "Header"))
    ET.SubElement(header, _q("a", "Action")).text = action
    ET.SubElement(header, _q("a", "MessageID")).text = f"uuid:{str(uuid.uuid4()).upper()}"
    ET.SubElement(header, _q("a", "To")).text = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
    ET.SubElement(header, _q("a", "RelatesTo")).text = relates_to
    body = ET.SubElement(envelope, _q("s", "Body"))
    body.extend(body_children)
    return t.cast(bytes, ET.tostring(envelope, encoding="utf-8", xml_declaration=False))


def fault_bytes(fault: WSManFault, relates_to: str = "") -> bytes:
    node = ET.Element(_q("s", "Fault"))
    code = ET.SubElement(node, _q("s", "Code"))
    ET.SubElement(code, _q("s", "Value")).text = "s:Receiver"
    subcode = ET.SubElement(code, _q("s", "Subcode"))
    ET.SubElement(subcode, _q("s", "Value")).text = fault.code
    reason = ET.SubElement(node, _q("s", "Reason"))
    ET.SubElement(reason, _q("s", "Text"), {"{http://www.w3.org/XML/1998/namespace}lang": "en-US"}).text = fault.reason
    detail = ET.SubElement(node, _q("s", "Detail"))
    wmi = ET.SubElement(detail, _q("p", "WSManFault"), Code=str(fault.wmi_code), Machine="lab")
    ET.SubElement(wmi, _q("p", "Message")).text = fault.reason
    return envelope_bytes("http://schemas.dmtf.org/wbem/wsman/1/wsman/fault", relates_to, [node])
