"""PowerShell Remoting (MS-PSRP) over the WS-Management shell resource, as Ansible's psrp plugin and pypsrp use it.

A Create on ``http://schemas.microsoft.com/powershell/Microsoft.PowerShell`` opens a runspace pool (its first
PSRP fragments travel in ``creationXml``); a Command creates a pipeline whose id is the command id; Send carries
further fragments (pipeline input, host responses); Receive returns what the server queued; Signal stops a
pipeline; Delete closes the pool. psrpcore's server classes do the PSRP state machine and the serialisation.

The lab runs no PowerShell: once a pipeline's input is complete, its script text and input go through the same
identify-and-twin path as a cmd shell's ``PowerShell -EncodedCommand``, and the answer is replayed the way
PowerShell would deliver it: each stdout line as an output object, stderr as an error record, and a non-zero
rc as the host call ``SetShouldExit`` that ``exit N`` makes (pypsrp records it as the pipeline's rc).
"""

from __future__ import annotations

import base64
import binascii
import typing as t
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from psrpcore import (
    CreatePipelineEvent,
    EndOfPipelineInputEvent,
    GetAvailableRunspacesEvent,
    PipelineInputEvent,
    PSRPCoreError,
    PSRPPayload,
    ResetRunspaceStateEvent,
    ServerPipeline,
    ServerRunspacePool,
    SetMaxRunspacesEvent,
    SetMinRunspacesEvent,
    StreamType,
)
from psrpcore.types import (
    ErrorCategory,
    ErrorCategoryInfo,
    ErrorRecord,
    HostMethodIdentifier,
    NETException,
    PSInvocationState,
)

from tests.lab.scripts import Outcome
from tests.lab.wsman import ACTION_CREATE, ACTION_DELETE, NS, SHELL_ACTION, STATE_DONE, STATE_RUNNING, WSManFault

RESOURCE_PREFIX = "http://schemas.microsoft.com/powershell/"
CONFIGURATION = "Microsoft.PowerShell"
CREATION_XML = "{http://schemas.microsoft.com/powershell}creationXml"
# The WSMan fault WinRM answers to a Receive when nothing arrived within the operation timeout; pypsrp polls again.
TIMED_OUT = 0x80338029
FINISHED = (PSInvocationState.Completed, PSInvocationState.Failed, PSInvocationState.Stopped)


if t.TYPE_CHECKING:
    from tests.lab.twins import Session


class ScriptTextRunner(t.Protocol):
    def __call__(self, text: str, lines: list[str], session: Session) -> Outcome: ...


@dataclass
class PipelineRun:
    pipeline: ServerPipeline
    command_id: str
    created: bool = False
    no_input: bool = True
    input: list[t.Any] = field(default_factory=list)
    input_closed: bool = False
    ran: bool = False

    @property
    def ready(self) -> bool:
        return self.created and not self.ran and (self.no_input or self.input_closed)


@dataclass
class RunspacePoolShell:
    shell_id: str
    resource_uri: str
    pool: ServerRunspacePool
    runs: dict[uuid.UUID, PipelineRun] = field(default_factory=dict)
    # What psrpcore queued, per target (None: the pool itself), until a Receive for that target takes it.
    outbox: dict[uuid.UUID | None, bytearray] = field(default_factory=dict)


def _q(prefix: str, name: str) -> str:
    return f"{{{NS[prefix]}}}{name}"


def _pipeline_id(command_id: str | None) -> uuid.UUID:
    try:
        return uuid.UUID(command_id or "")
    except ValueError as exc:
        raise WSManFault("w:InvalidSelectors", f"no pipeline with id {command_id!r}", 0x8033805B) from exc


def _decode(text: str | None) -> bytes:
    try:
        return base64.b64decode((text or "").strip(), validate=True)
    except binascii.Error as exc:
        raise WSManFault("s:Sender", f"stream data is not base64: {exc}") from exc


class PSRPService:
    """The runspace pools of one host. Like ShellService it relies on the HTTP layer to serialise calls."""

    def __init__(self, address: str, run_script_text: ScriptTextRunner) -> None:
        self.address = address
        self.run_script_text = run_script_text
        self.shells: dict[str, RunspacePoolShell] = {}

    def serves(self, resource_uri: str, shell_id: str) -> bool:
        return resource_uri.lower().startswith(RESOURCE_PREFIX) or shell_id.upper() in self.shells

    def handle(
        self, action: str, resource_uri: str, shell_id: str, body: ET.Element, session: Session
    ) -> list[ET.Element]:
        try:
            if action == ACTION_CREATE:
                return self._create(resource_uri, body, session)
            shell = self._shell(shell_id)
            if action == ACTION_DELETE:
                del self.shells[shell.shell_id]
                return []
            if action == SHELL_ACTION + "Command":
                return self._command(shell, body, session)
            if action == SHELL_ACTION + "Send":
                return self._send(shell, body, session)
            if action == SHELL_ACTION + "Receive":
                return self._receive(shell, body)
            if action == SHELL_ACTION + "Signal":
                return self._signal(shell, body)
        except PSRPCoreError as exc:
            raise WSManFault("s:Sender", f"PSRP error: {exc}") from exc
        # Disconnect, Reconnect and Connect exist on Windows; nothing the collection does uses them.
        raise WSManFault("a:ActionNotSupported", f"the lab does not implement {action!r} for PowerShell shells")

    def _shell(self, shell_id: str) -> RunspacePoolShell:
        shell = self.shells.get(shell_id.upper())
        if shell is None:
            raise WSManFault("w:InvalidSelectors", f"no shell with id {shell_id!r}", 0x8033805B)
        return shell

    def _create(self, resource_uri: str, body: ET.Element, session: Session) -> list[ET.Element]:
        if resource_uri.lower() != (RESOURCE_PREFIX + CONFIGURATION).lower():
            # As Windows answers a session configuration (JEA endpoint) that is not registered.
            raise WSManFault("w:DestinationUnreachable", f"the lab does not serve the configuration {resource_uri!r}")
        shell_node = body.find("rsp:Shell", NS)
        creation = shell_node.find(CREATION_XML) if shell_node is not None else None
        if shell_node is None or creation is None:
            raise WSManFault(
                "s:Sender", "a PowerShell shell needs creationXml with the runspace pool's first fragments"
            )
        shell_id = (shell_node.get("ShellId") or str(uuid.uuid4())).upper()
        shell = RunspacePoolShell(shell_id=shell_id, resource_uri=resource_uri, pool=ServerRunspacePool())
        self._feed(shell, _decode(creation.text), StreamType.default, None, session)
        self.shells[shell_id] = shell

        created = ET.Element(_q("x", "ResourceCreated"))
        ET.SubElement(created, _q("a", "Address")).text = self.address
        reference = ET.SubElement(created, _q("a", "ReferenceParameters"))
        ET.SubElement(reference, _q("w", "ResourceURI")).text = resource_uri
        selectors = ET.SubElement(reference, _q("w", "SelectorSet"))
        ET.SubElement(selectors, _q("w", "Selector"), Name="ShellId").text = shell_id
        answer = ET.Element(_q("rsp", "Shell"))
        ET.SubElement(answer, _q("rsp", "ShellId")).text = shell_id
        ET.SubElement(answer, _q("rsp", "ResourceUri")).text = resource_uri
        ET.SubElement(answer, _q("rsp", "InputStreams")).text = "stdin pr"
        ET.SubElement(answer, _q("rsp", "OutputStreams")).text = "stdout"
        return [created, answer]

    def _command(self, shell: RunspacePoolShell, body: ET.Element, session: Session) -> list[ET.Element]:
        line = body.find("rsp:CommandLine", NS)
        if line is None:
            raise WSManFault("s:Sender", "Command without CommandLine")
        # The client names the pipeline: its PSRP messages carry the same id as the WSMan command.
        command_id = (line.get("CommandId") or "").upper()
        pipeline_id = _pipeline_id(command_id)
        shell.runs[pipeline_id] = PipelineRun(pipeline=ServerPipeline(shell.pool, pipeline_id), command_id=command_id)
        data = b"".join(_decode(node.text) for node in line.findall("rsp:Arguments", NS))
        self._feed(shell, data, StreamType.default, pipeline_id, session)
        response = ET.Element(_q("rsp", "CommandResponse"))
        ET.SubElement(response, _q("rsp", "CommandId")).text = command_id
        return [response]

    def _send(self, shell: RunspacePoolShell, body: ET.Element, session: Session) -> list[ET.Element]:
        for stream in body.findall("rsp:Send/rsp:Stream", NS):
            command_id = stream.get("CommandId")
            pipeline_id = _pipeline_id(command_id) if command_id else None
            stream_type = StreamType.prompt_response if stream.get("Name") == "pr" else StreamType.default
            self._feed(shell, _decode(stream.text), stream_type, pipeline_id, session)
        return [ET.Element(_q("rsp", "SendResponse"))]

    def _receive(self, shell: RunspacePoolShell, body: ET.Element) -> list[ET.Element]:
        desired = body.find("rsp:Receive/rsp:DesiredStream", NS)
        command_id = desired.get("CommandId") if desired is not None else None
        pipeline_id = _pipeline_id(command_id) if command_id else None
        run = shell.runs.get(pipeline_id) if pipeline_id is not None else None
        if pipeline_id is not None and run is None:
            raise WSManFault("w:InvalidSelectors", f"no pipeline with id {command_id!r}", 0x8033805B)
        data = shell.outbox.pop(pipeline_id, bytearray())
        if not data:
            raise WSManFault(
                "w:TimedOut",
                "The WS-Management service cannot complete the operation within the time "
                "specified in OperationTimeout.",
                TIMED_OUT,
            )
        response = ET.Element(_q("rsp", "ReceiveResponse"))
        attributes = {"Name": "stdout"} | ({"CommandId": run.command_id} if run is not None else {})
        ET.SubElement(response, _q("rsp", "Stream"), attributes).text = base64.b64encode(bytes(data)).decode("ascii")
        if run is not None:
            state = STATE_DONE if run.pipeline.state in FINISHED else STATE_RUNNING
            ET.SubElement(response, _q("rsp", "CommandState"), CommandId=run.command_id, State=state)
        return [response]

    def _signal(self, shell: RunspacePoolShell, body: ET.Element) -> list[ET.Element]:
        signal = body.find("rsp:Signal", NS)
        command_id = signal.get("CommandId") if signal is not None else None
        run = shell.runs.pop(_pipeline_id(command_id), None)
        if run is not None:
            # Stop (ctrl_c) and Terminate both end the pipeline here: the lab's pipelines finish before they answer.
            shell.pool.pipeline_table.pop(run.pipeline.pipeline_id, None)
            shell.outbox.pop(run.pipeline.pipeline_id, None)
        return [ET.Element(_q("rsp", "SignalResponse"))]

    # --- PSRP ----------------------------------------------------------------------------------------------------
    def _feed(
        self,
        shell: RunspacePoolShell,
        data: bytes,
        stream_type: StreamType,
        pipeline_id: uuid.UUID | None,
        session: Session,
    ) -> None:
        if data:
            shell.pool.receive_data(PSRPPayload(data, stream_type, pipeline_id))
        while (event := shell.pool.next_event()) is not None:
            run = shell.runs.get(event.pipeline_id) if isinstance(event.pipeline_id, uuid.UUID) else None
            if isinstance(event, CreatePipelineEvent) and run is not None:
                run.created = True
                run.no_input = bool(event.pipeline.no_input)
            elif isinstance(event, PipelineInputEvent) and run is not None:
                run.input.append(event.data)
            elif isinstance(event, EndOfPipelineInputEvent) and run is not None:
                run.input_closed = True
            elif isinstance(event, (SetMaxRunspacesEvent, SetMinRunspacesEvent, ResetRunspaceStateEvent)):
                shell.pool.runspace_availability_response(event.ci, True)
            elif isinstance(event, GetAvailableRunspacesEvent):
                shell.pool.runspace_availability_response(event.ci, 1)
            # Session capability, init and the like: psrpcore queues the answers itself.
        for run in list(shell.runs.values()):
            if run.ready:
                self._run(run, session)
        while (payload := shell.pool.data_to_send()) is not None:
            shell.outbox.setdefault(payload.pipeline_id, bytearray()).extend(payload.data)

    def _run(self, run: PipelineRun, session: Session) -> None:
        run.ran = True
        pipeline = run.pipeline
        pipeline.start()
        metadata = pipeline.metadata
        commands = list(getattr(metadata, "commands", []) or [])
        # A script is the only command the collection sends; anything else (a cmdlet by name) reaches the same
        # identification and is refused there, loudly, like an unknown script.
        text = "\n".join(str(command.command_text) for command in commands)
        # Pipeline input arrives as objects, not through a console: no code page comes between.
        lines = [str(item) for item in run.input if item is not None]
        outcome = self.run_script_text(text, lines, session)
        for line in outcome.stdout.splitlines():
            if line:
                pipeline.write_output(line)
        if outcome.error is not None:
            # A terminating error fails the pipeline with its error record, as PowerShell reports it to a client.
            record = ErrorRecord(
                Exception=NETException(Message=outcome.error),
                CategoryInfo=ErrorCategoryInfo(Category=ErrorCategory.InvalidOperation, Reason="RuntimeException"),
                FullyQualifiedErrorId="LabRefused" if outcome.error.startswith("lab: refused") else "RuntimeException",
            )
            pipeline._change_state(PSInvocationState.Failed, error=record)
            return
        if outcome.rc:
            pipeline.host_call(HostMethodIdentifier.SetShouldExit, [outcome.rc])
        pipeline.complete()
