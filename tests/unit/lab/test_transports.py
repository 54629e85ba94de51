"""The lab over every transport a user can choose: winrm and psrp, HTTP and HTTPS, NTLM and Basic, and its faults.

Each combination is driven by the real client (pywinrm, pypsrp, ansible-playbook), and each assertion is about
what a user would notice: the module's result, the rc of a failing script, the error a broken transport gives,
and the lab's journal and counters, which must not depend on the transport.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import socket
import ssl
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
import spnego
import winrm
import winrm.exceptions
import yaml
from ansible.plugins.loader import shell_loader
from ansible.plugins.shell.powershell import _parse_clixml
from pypsrp.complex_objects import PSInvocationState
from pypsrp.exceptions import AuthenticationError
from pypsrp.exceptions import WinRMTransportError as PSRPTransportError
from pypsrp.host import PSHost, PSHostUserInterface
from pypsrp.powershell import PowerShell, RunspacePool
from pypsrp.wsman import WSMan
from spnego.channel_bindings import GssChannelBindings

from ansible_collections.mailflow.remediation.plugins.plugin_utils._host_script import (
    HostScript,
    build_invocation,
    load_host_script,
    wire_params,
)
from tests.lab.__main__ import main as lab_cli
from tests.lab.control import COMBINATIONS, CONNECTIONS, SCHEMES, LabClient, start_lab
from tests.lab.journal import MISSING, registry_value_changes
from tests.playbook import PlaybookRun, run_playbook

HOST = "ex01"
DEFAULT_LISTENER = "default-listener"  # a host whose WinRM service is as Windows sets it up
KEY = r"HKLM\SYSTEM\CURRENTCONTROLSET\CONTROL\LSA\KERBEROS\PARAMETERS"
DENIED_KEY = r"HKLM\SYSTEM\CurrentControlSet\Control\Lsa\Kerberos\Parameters"
MODULE = "mailflow.remediation.kerberos_logging"
NO_FAULTS: dict[str, t.Any] = {
    "http_500": False,
    "delay_seconds": 0,
    "auth_failure": False,
    "refused": False,
    "drop_mid_command": False,
    "registry_write_denied": [],
}
COMBINATION_IDS = ["-".join(combination) for combination in COMBINATIONS]
SET_1 = {"key_exists": True, "exists": True, "kind": "DWord", "value": 1}
NOT_SET = {"key_exists": True, "exists": False, "kind": None, "value": None}


# --- the lab: ex01 for the direct clients, and one host per ansible-playbook case ------------------------------------
@dataclass(frozen=True)
class Target:
    """A lab host that ansible-playbook reaches one way, with the faults its fleet entry gives it."""

    name: str
    connection: str
    scheme: str = "http"
    auth: str = "ntlm"
    cert_validation: str = "ca"
    faults: t.Mapping[str, t.Any] = field(default_factory=dict)
    host_vars: t.Mapping[str, t.Any] = field(default_factory=dict)


MATRIX = {combination: Target("-".join(combination), *combination) for combination in COMBINATIONS}
DENIED = {c: Target(f"denied-{c}", c, faults={"registry_write_denied": [DENIED_KEY]}) for c in CONNECTIONS}
# What a user sees when the transport breaks: the task's status and its message.
FAULT_CASES: dict[str, tuple[dict[str, t.Any], str, str | None]] = {
    "refused": ({"refused": True}, "unreachable", r"Connection refused"),
    "http_500": ({"http_500": True}, "unreachable", r"InternalError"),
    "auth_failure": (
        {"auth_failure": True},
        "unreachable",
        r"Access denied|credentials were rejected|failed to authenticate",
    ),
    # Both plugins let a dropped connection through as a requests ConnectionError; the seam reports the host
    # unreachable and says that the script may have run.
    "drop_mid_command": ({"drop_mid_command": True}, "unreachable", r"lost while host script .* ran; it may have made"),
    "slow": ({"delay_seconds": 0.05}, "ok", None),
}
FAULTED = {
    (fault, c): Target(f"{fault.replace('_', '-')}-{c}", c, faults=case[0])
    for fault, case in FAULT_CASES.items()
    for c in CONNECTIONS
}
WRONG_PASSWORD = {
    c: Target(f"wrong-password-{c}", c, host_vars={"ansible_password": "Wrong-Passw0rd!"}) for c in CONNECTIONS
}
CERTIFICATES = {
    (validation, c): Target(f"cert-{validation}-{c}", c, scheme="https", cert_validation=validation)
    for validation in ("ignore", "system")
    for c in CONNECTIONS
}
CHANGING = [*MATRIX.values(), *DENIED.values()]
AUDITING = [*FAULTED.values(), *WRONG_PASSWORD.values(), *CERTIFICATES.values()]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[LabClient]:
    directory = tmp_path_factory.mktemp("lab")
    basic = {"allow_basic": True, "allow_unencrypted": True}
    hosts = [
        {"name": HOST, "roles": ["exchange"], "registry": {KEY: {}}, "winrm": basic},
        {"name": DEFAULT_LISTENER, "roles": ["exchange"], "registry": {KEY: {}}},
    ] + [
        {
            "name": target.name,
            "roles": ["exchange"],
            "registry": {KEY: {}},
            "faults": dict(target.faults),
            "winrm": basic if target.auth == "basic" else {},
        }
        for target in CHANGING + AUDITING
    ]
    fleet = directory / "transports.yml"
    fleet.write_text(yaml.safe_dump({"hosts": hosts}), encoding="utf-8")
    client = start_lab(str(fleet), directory / "state", ttl_seconds=600)
    try:
        yield client
    finally:
        client.stop()


@pytest.fixture
def clean_lab(lab: LabClient) -> t.Iterator[LabClient]:
    """No faults, no LogLevel value, an empty journal and zero counters; faults are cleared again afterwards."""
    lab.set_faults(HOST, **NO_FAULTS)
    if "LogLevel" in lab.host(HOST)["registry"].get(KEY, {}):
        run_script("winrm", lab, "http", "ntlm", {"action": "remove"})
    lab.reset()
    try:
        yield lab
    finally:
        lab.set_faults(HOST, **NO_FAULTS)


def journal(lab: LabClient, host: str = HOST) -> list[tuple[str, t.Any, t.Any]]:
    return registry_value_changes(lab.journal(), host)


def script_trips(lab: LabClient, host: str = HOST) -> int:
    return int(lab.counters()[host]["round_trips"])


# --- the real clients, sending the script exactly as Ansible's PowerShell shell plugin encodes it --------------------
@dataclass(frozen=True)
class Outcome:
    rc: int
    stdout: str
    stderr: str
    raw_stderr: bytes = b""
    pipeline_state: int | None = None  # psrp only: PSInvocationState

    @property
    def document(self) -> dict[str, t.Any]:
        return t.cast(dict, json.loads(self.stdout.strip().splitlines()[-1]))


SHELL = shell_loader.get("powershell")
SCRIPT = load_host_script("kerberos_log_level")


def encoded_words(text: str) -> list[str]:
    """A script as Ansible's shell plugin puts it on a command line (what the collection did before the bootstrap)."""
    return str(SHELL._encode_script(text)).split(" ")


def invocation(params: dict[str, t.Any], *, script: HostScript = SCRIPT) -> tuple[list[str], bytes]:
    """The command line (as words) and stdin of a run, built by the collection's seam, as a module sends them."""
    command, stdin = build_invocation(SHELL, script, params)
    return command.split(" "), stdin


def changed_script(old: str, new: str) -> HostScript:
    """The host script with an edit its twin was not reviewed against."""
    return HostScript(SCRIPT.name, SCRIPT.version, SCRIPT.text.replace(old, new), SCRIPT.contract)


def via_winrm(
    lab: LabClient,
    scheme: str,
    auth: str,
    words: list[str],
    stdin: bytes,
    *,
    password: str | None,
    host: str = HOST,
    encryption: str = "auto",
) -> Outcome:
    address = lab.status["hosts"][host]
    protocol = winrm.Protocol(
        address["https_url"] if scheme == "https" else address["url"],
        transport=t.cast(t.Any, auth),
        username=lab.status["credentials"]["username"],
        password=lab.password if password is None else password,
        server_cert_validation="validate",
        ca_trust_path=str(lab.ca_file),
        read_timeout_sec=20,
        operation_timeout_sec=10,
        message_encryption=t.cast(t.Any, encryption),
    )
    shell = protocol.open_shell()
    try:
        command = protocol.run_command(shell, words[0], words[1:], console_mode_stdin=False)
        protocol.send_command_input(shell, command, stdin, end=True)
        stdout, stderr, rc = protocol.get_command_output(shell, command)
        protocol.cleanup_command(shell, command)
    finally:
        # A fault under test may have broken the connection, and pywinrm's sealing state with it.
        with contextlib.suppress(requests.exceptions.ConnectionError, winrm.exceptions.WinRMTransportError):
            protocol.close_shell(shell)
    # As Ansible's winrm plugin does: powershell.exe's CLIXML stderr becomes its error text (progress is dropped).
    text = _parse_clixml(stderr) if stderr.startswith(b"#< CLIXML") else stderr
    return Outcome(rc, stdout.decode("utf-8"), text.decode("utf-8"), raw_stderr=stderr)


def via_psrp(
    lab: LabClient,
    scheme: str,
    auth: str,
    words: list[str],
    stdin: bytes,
    *,
    password: str | None,
    host: str = HOST,
    encryption: str = "auto",
) -> Outcome:
    address = lab.status["hosts"][host]
    trust: t.Any = str(lab.ca_file) if scheme == "https" else True
    wsman = WSMan(
        "127.0.0.1",
        port=address["https_port"] if scheme == "https" else address["port"],
        username=lab.status["credentials"]["username"],
        password=lab.password if password is None else password,
        ssl=scheme == "https",
        auth=auth,
        cert_validation=trust,
        # pypsrp refuses Basic over HTTP unless the messages may travel unencrypted, as Ansible's option says.
        encryption="never" if (scheme, auth) == ("http", "basic") else encryption,
        read_timeout=20,
        operation_timeout=10,
    )
    # The same host Ansible's psrp plugin creates: SetShouldExit (the script's `exit N`) lands in host.rc.
    ps_host = PSHost(None, None, False, "lab test", None, PSHostUserInterface(), None)  # type: ignore[arg-type]
    pool = RunspacePool(wsman, host=ps_host)
    pool.open()
    try:
        pipeline = PowerShell(pool)
        # As the psrp plugin does: the -EncodedCommand text runs as a script, stdin lines are pipeline input.
        pipeline.add_script(base64.b64decode(words[-1]).decode("utf-16-le"))
        # A list, as the psrp plugin passes it: pypsrp sends each item as one input object.
        pipeline.invoke(input=stdin.decode("utf-8").splitlines())  # type: ignore[arg-type]
    finally:
        # A fault under test may have broken the connection, and pypsrp's sealing state with it.
        with contextlib.suppress(requests.exceptions.ConnectionError, PSRPTransportError):
            pool.close()
    rc = ps_host.rc or (1 if pipeline.had_errors else 0)
    stdout = "\r\n".join(str(item) for item in pipeline.output)
    stderr = "".join(f"{record}\r\n" for record in pipeline.streams.error)
    return Outcome(int(rc), stdout, stderr, pipeline_state=int(pipeline.state))


def run_script(
    connection: str,
    lab: LabClient,
    scheme: str,
    auth: str,
    params: dict[str, t.Any],
    *,
    password: str | None = None,
    script: HostScript = SCRIPT,
    host: str = HOST,
) -> Outcome:
    words, stdin = invocation(wire_params(SCRIPT, params) if script is SCRIPT else params, script=script)
    return run_invocation(connection, lab, scheme, auth, words, stdin, password=password, host=host)


def run_invocation(
    connection: str,
    lab: LabClient,
    scheme: str,
    auth: str,
    words: list[str],
    stdin: bytes,
    *,
    password: str | None = None,
    host: str = HOST,
    encryption: str = "auto",
) -> Outcome:
    client = via_winrm if connection == "winrm" else via_psrp
    return client(lab, scheme, auth, words, stdin, password=password, host=host, encryption=encryption)


# --- every transport, through the real clients -----------------------------------------------------------------------
@pytest.mark.parametrize(("connection", "scheme", "auth"), COMBINATIONS, ids=COMBINATION_IDS)
def test_a_host_script_gives_the_same_answers_over_every_transport(
    clean_lab: LabClient, connection: str, scheme: str, auth: str
) -> None:
    changed = run_script(connection, clean_lab, scheme, auth, {"action": "set", "value": 1})
    removed = run_script(connection, clean_lab, scheme, auth, {"action": "remove"})

    assert (changed.rc, changed.stderr) == (0, "")
    assert changed.document == {"script": "kerberos_log_level", "version": 2, "ok": True, "result": SET_1}
    assert (removed.rc, removed.document["result"]) == (0, NOT_SET)
    assert journal(clean_lab) == [("LogLevel", MISSING, ["DWord", 1]), ("LogLevel", ["DWord", 1], MISSING)]
    assert clean_lab.counters()[HOST]["scripts"] == {"kerberos_log_level": 2}


@pytest.mark.parametrize(("connection", "scheme", "auth"), COMBINATIONS, ids=COMBINATION_IDS)
def test_a_failing_script_returns_rc_1_and_its_document(
    clean_lab: LabClient, connection: str, scheme: str, auth: str
) -> None:
    clean_lab.set_faults(HOST, registry_write_denied=[DENIED_KEY])

    outcome = run_script(connection, clean_lab, scheme, auth, {"action": "set", "value": 1})

    assert (outcome.rc, outcome.stderr) == (1, "")
    assert outcome.document["ok"] is False
    assert outcome.document["error"] == {
        "type": "System.UnauthorizedAccessException",
        "message": "Access to the registry key "
        "'HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Control\\Lsa\\Kerberos\\Parameters' is denied.",
        "hresult": -2147024891,
    }
    assert journal(clean_lab) == []
    assert script_trips(clean_lab) == 1


def test_powershell_exe_writes_its_progress_to_stderr_as_clixml(clean_lab: LabClient) -> None:
    outcome = run_script("winrm", clean_lab, "http", "ntlm", {"action": "read"})
    assert outcome.raw_stderr.startswith(b"#< CLIXML\r\n") and b'S="progress"' in outcome.raw_stderr
    assert (outcome.rc, outcome.stderr) == (0, "")


@pytest.mark.parametrize("connection", CONNECTIONS)
@pytest.mark.parametrize(
    ("make", "refusal"),
    [
        pytest.param(
            lambda: (encoded_words("Get-Process"), b""),
            "lab: refused: not the mailflow bootstrap (first line: 'Get-Process')",
            id="not the bootstrap",
        ),
        pytest.param(
            lambda: invocation({"action": "read", "value": None}, script=changed_script("'LogLevel'", "'LogLevel2'")),
            "is not the one its twin was written against",
            id="a changed host script",
        ),
        pytest.param(
            lambda: (encoded_words(SCRIPT.wire_text), b'{"action": "read"}\n'),
            "lab: refused: a host script on the command line, not through the bootstrap",
            id="a host script on the command line",
        ),
    ],
)
def test_the_lab_refuses_what_is_not_the_bootstrap_running_a_known_script(
    clean_lab: LabClient, connection: str, make: t.Callable[[], tuple[list[str], bytes]], refusal: str
) -> None:
    words, stdin = make()
    outcome = run_invocation(connection, clean_lab, "http", "ntlm", words, stdin)

    assert outcome.rc == 1 and outcome.stdout.strip() == ""
    assert refusal in outcome.stderr
    if connection == "psrp":
        # A failed pipeline that carries the error record, as PowerShell reports a terminating error.
        assert outcome.pipeline_state == PSInvocationState.FAILED
    assert script_trips(clean_lab) == 0


def test_cmd_exe_refuses_a_command_line_over_8191_characters(clean_lab: LabClient) -> None:
    # The way the collection sent scripts before the bootstrap: the whole script on the command line.
    words = encoded_words(SCRIPT.text + "\n" + "# padding\n" * 300)
    assert len(" ".join(words)) > 8191

    outcome = run_invocation("winrm", clean_lab, "http", "ntlm", words, b"")

    assert (outcome.rc, outcome.stdout, outcome.stderr) == (1, "", "The command line is too long.\r\n")
    assert script_trips(clean_lab) == 0


def _basic(password: str) -> str:
    return "Basic " + base64.b64encode(f"ansible:{password}".encode()).decode()


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize(
    ("authorization", "fault"),
    [
        (_basic("Wrong-Passw0rd!"), {}),
        (_basic("Lab-Passw0rd!"), {"auth_failure": True}),
        ("Negotiate " + base64.b64encode(b"not a token").decode(), {}),
        ("NTLM " + base64.b64encode(b"NTLMSSP\x00\x03garbage").decode(), {}),
        ("Kerberos abc", {}),
    ],
    ids=["wrong password", "auth_failure fault", "garbage Negotiate token", "garbage NTLM token", "unknown scheme"],
)
def test_every_failed_logon_is_a_401_with_the_challenges_windows_offers(
    clean_lab: LabClient, scheme: str, authorization: str, fault: dict[str, t.Any]
) -> None:
    clean_lab.set_faults(HOST, **fault)
    host = clean_lab.status["hosts"][HOST]

    response = requests.post(
        host["https_url"] if scheme == "https" else host["url"],
        data=b"<s:Envelope/>",
        headers={"Content-Type": "application/soap+xml;charset=UTF-8", "Authorization": authorization},
        verify=str(clean_lab.ca_file),
        timeout=10,
    )

    assert response.status_code == 401
    offered = {value.strip() for value in response.headers["WWW-Authenticate"].split(",")}
    # ex01's fleet entry allows Basic, as an administrator who enabled it would have it.
    assert offered == {"Negotiate", "Kerberos", 'Basic realm="WSMAN"'}


# --- a WinRM service as Windows sets it up: Basic off, unencrypted refused, channel binding on HTTPS -----------------
def test_a_default_listener_does_not_offer_basic_and_refuses_it_with_the_right_password(clean_lab: LabClient) -> None:
    host = clean_lab.status["hosts"][DEFAULT_LISTENER]
    response = requests.post(
        host["url"],
        data=b"<s:Envelope/>",
        headers={"Content-Type": "application/soap+xml;charset=UTF-8", "Authorization": _basic(clean_lab.password)},
        timeout=10,
    )
    assert response.status_code == 401
    assert {value.strip() for value in response.headers["WWW-Authenticate"].split(",")} == {"Negotiate", "Kerberos"}


@pytest.mark.parametrize(
    ("connection", "scheme", "auth", "encryption"),
    [
        ("winrm", "https", "basic", "auto"),
        ("psrp", "https", "basic", "auto"),
        ("winrm", "http", "ntlm", "never"),
        ("psrp", "http", "ntlm", "never"),
    ],
    ids=["winrm basic", "psrp basic", "winrm unencrypted", "psrp unencrypted"],
)
def test_a_default_listener_refuses_basic_and_unencrypted_messages(
    clean_lab: LabClient, connection: str, scheme: str, auth: str, encryption: str
) -> None:
    rejected = winrm.exceptions.InvalidCredentialsError if connection == "winrm" else AuthenticationError
    words, stdin = invocation(wire_params(SCRIPT, {"action": "read"}))
    with pytest.raises(rejected):
        run_invocation(connection, clean_lab, scheme, auth, words, stdin, host=DEFAULT_LISTENER, encryption=encryption)
    assert script_trips(clean_lab, DEFAULT_LISTENER) == 0


@pytest.mark.parametrize("connection", CONNECTIONS)
def test_a_default_listener_serves_ntlm_with_message_encryption_and_over_https(
    clean_lab: LabClient, connection: str
) -> None:
    for scheme in SCHEMES:
        outcome = run_script(connection, clean_lab, scheme, "ntlm", {"action": "read"}, host=DEFAULT_LISTENER)
        assert outcome.document["ok"] is True, outcome


@pytest.mark.parametrize("binding", [b"right", b"wrong"])
def test_ntlm_over_https_is_bound_to_the_listeners_certificate(clean_lab: LabClient, binding: bytes) -> None:
    host = clean_lab.status["hosts"][DEFAULT_LISTENER]
    pem = ssl.get_server_certificate(("127.0.0.1", host["https_port"]))
    digest = hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).digest() if binding == b"right" else b"\0" * 32
    client = spnego.client(
        clean_lab.status["credentials"]["username"],
        clean_lab.password,
        protocol="ntlm",
        channel_bindings=GssChannelBindings(application_data=b"tls-server-end-point:" + digest),
    )
    # One session: NTLM authenticates a connection, and the handshake's legs must share it.
    with requests.Session() as session:

        def post(token: bytes) -> requests.Response:
            return session.post(
                host["https_url"],
                data=b"",
                headers={"Authorization": "Negotiate " + base64.b64encode(token).decode()},
                verify=str(clean_lab.ca_file),
                timeout=10,
            )

        challenge = post(client.step() or b"")
        token = base64.b64decode(challenge.headers["WWW-Authenticate"].split(" ", 1)[1])
        answer = post(client.step(token) or b"")

    assert answer.status_code == (200 if binding == b"right" else 401)


# --- transport faults ------------------------------------------------------------------------------------------------
def _connects(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except ConnectionRefusedError:
        return False


def test_a_refused_host_listens_again_on_the_same_ports_once_the_fault_is_cleared(clean_lab: LabClient) -> None:
    host = clean_lab.status["hosts"][HOST]
    ports = (host["port"], host["https_port"])

    clean_lab.set_faults(HOST, refused=True)
    refused = [_connects(port) for port in ports]
    with pytest.raises(requests.exceptions.ConnectionError, match="Connection refused"):
        run_script("winrm", clean_lab, "http", "ntlm", {"action": "read"})
    clean_lab.set_faults(HOST, refused=False)

    assert refused == [False, False]
    assert [_connects(port) for port in ports] == [True, True]
    assert run_script("psrp", clean_lab, "https", "ntlm", {"action": "read"}).rc == 0


@pytest.mark.parametrize("connection", CONNECTIONS)
def test_a_connection_dropped_mid_command_leaves_the_change_made_and_the_client_in_the_dark(
    clean_lab: LabClient, connection: str
) -> None:
    clean_lab.set_faults(HOST, drop_mid_command=True)

    with pytest.raises(requests.exceptions.ConnectionError, match="Connection aborted"):
        run_script(connection, clean_lab, "http", "ntlm", {"action": "set", "value": 1})

    assert journal(clean_lab) == [("LogLevel", MISSING, ["DWord", 1])]
    assert clean_lab.host(HOST)["registry"][KEY]["LogLevel"] == ["DWord", 1]


def test_the_https_listener_presents_a_certificate_for_loopback_and_the_fqdn(clean_lab: LabClient) -> None:
    host = clean_lab.status["hosts"][HOST]
    context = ssl.create_default_context(cafile=str(clean_lab.ca_file))

    names = []
    for server_name in ("127.0.0.1", "localhost", host["fqdn"]):
        with (
            socket.create_connection(("127.0.0.1", host["https_port"]), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname=server_name) as tls,
        ):
            names.append(sorted(tls.getpeercert()["subjectAltName"]))  # type: ignore[index]

    assert names[0] == names[1] == names[2]
    assert names[0] == sorted([("IP Address", "127.0.0.1"), ("DNS", "localhost"), ("DNS", host["fqdn"])])


def test_transport_faults_in_the_fleet_file_hold_from_the_start(tmp_path: Path) -> None:
    fleet = tmp_path / "refusing.yml"
    fleet.write_text(
        yaml.safe_dump(
            {
                "hosts": [
                    {"name": HOST, "roles": ["exchange"], "registry": {KEY: {}}, "faults": {"refused": True}},
                    {"name": "ex02", "roles": ["exchange"], "faults": {"delay_seconds": 0.01}},
                ]
            }
        ),
        encoding="utf-8",
    )
    lab = start_lab(str(fleet), tmp_path / "state", ttl_seconds=60)
    try:
        host = lab.status["hosts"][HOST]
        assert not _connects(host["port"]) and not _connects(host["https_port"])
        assert _connects(lab.status["hosts"]["ex02"]["port"])

        lab_cli(["fault", HOST, "refused=false", "--state-dir", str(tmp_path / "state")])

        assert run_script("psrp", lab, "http", "ntlm", {"action": "read"}).document["result"] == NOT_SET
    finally:
        lab.stop()


def test_an_unknown_fault_in_the_fleet_file_stops_the_lab_from_starting(tmp_path: Path) -> None:
    fleet = tmp_path / "typo.yml"
    fleet.write_text(yaml.safe_dump({"hosts": [{"name": HOST, "faults": {"refuse": True}}]}), encoding="utf-8")
    with pytest.raises(RuntimeError, match="the lab exited"):
        start_lab(str(fleet), tmp_path / "state", ttl_seconds=60)
    assert "unknown fault 'refuse'" in (tmp_path / "state" / "lab.log").read_text(encoding="utf-8")


# --- ansible-playbook: one run, every case on its own host, in parallel ----------------------------------------------
@dataclass
class FleetRun:
    """One ansible-playbook run over the whole fleet, with the lab's journal and counters after it."""

    run: PlaybookRun
    journal: list[dict[str, t.Any]]
    counters: dict[str, t.Any]

    def task(self, name: str, host: str) -> dict[str, t.Any]:
        return self.run.task(name, host)

    def writes(self, host: str) -> list[tuple[str, t.Any, t.Any]]:
        return registry_value_changes(self.journal, host)

    def script_trips(self, host: str) -> int:
        return int(self.counters[host]["round_trips"])


def task(name: str, args: dict[str, t.Any] | None = None, **keywords: t.Any) -> dict[str, t.Any]:
    return {"name": name, MODULE: args or {}, **keywords}


def combined_inventory(lab: LabClient, directory: Path, targets: t.Sequence[Target]) -> Path:
    """One inventory from the lab's own per-combination inventories: each host keeps the vars of its combination."""
    hosts: dict[str, dict[str, t.Any]] = {}
    for target in targets:
        written = lab.write_inventory(
            directory / f"inventory-{target.name}.yml",
            connection=target.connection,
            scheme=target.scheme,
            auth=target.auth,
            cert_validation=target.cert_validation,
        )
        document = yaml.safe_load(written.read_text(encoding="utf-8"))
        entry = document["all"]["children"]["exchange_servers"]["hosts"][target.name]
        hosts[target.name] = {**document["all"]["vars"], **entry, **target.host_vars}
    inventory = directory / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": hosts}}, sort_keys=False), encoding="utf-8")
    return inventory


@pytest.fixture(scope="module")
def playbook_run(lab: LabClient, tmp_path_factory: pytest.TempPathFactory) -> FleetRun:
    directory = tmp_path_factory.mktemp("playbook")
    inventory = combined_inventory(lab, directory, CHANGING + AUDITING)
    plays = [
        {
            "name": "change and change back",
            "hosts": ",".join(target.name for target in CHANGING),
            "gather_facts": False,
            "tasks": [task("enable"), task("remove", {"state": "absent"})],
        },
        {
            "name": "audit over a broken transport",
            "hosts": ",".join(target.name for target in AUDITING),
            "gather_facts": False,
            "tasks": [task("audit", check_mode=True)],
        },
    ]
    playbook = directory / "play.yml"
    playbook.write_text(yaml.safe_dump(plays, sort_keys=False), encoding="utf-8")
    # A user's CA bundle variables would decide what "validate against the system store" means; the test decides.
    environment = {
        key: value for key, value in os.environ.items() if key not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
    }
    environment["ANSIBLE_FORKS"] = str(len(CHANGING + AUDITING))
    run = run_playbook(playbook, inventory, directory, env=environment, timeout=120)
    return FleetRun(run, lab.journal(), lab.counters())


@pytest.mark.parametrize("combination", COMBINATIONS, ids=COMBINATION_IDS)
def test_kerberos_logging_over_every_transport(playbook_run: FleetRun, combination: tuple[str, str, str]) -> None:
    host = MATRIX[combination].name
    enable, remove = playbook_run.task("enable", host), playbook_run.task("remove", host)

    assert enable["status"] == remove["status"] == "ok", playbook_run.run.stdout + playbook_run.run.stderr
    assert enable["result"]["changed"] is True
    assert enable["result"]["previous"] == NOT_SET and enable["result"]["log_level"] == SET_1
    assert remove["result"]["changed"] is True and remove["result"]["log_level"] == NOT_SET
    assert playbook_run.writes(host) == [("LogLevel", MISSING, ["DWord", 1]), ("LogLevel", ["DWord", 1], MISSING)]
    assert playbook_run.script_trips(host) == 4  # a read and a change per task, whatever the transport


@pytest.mark.parametrize("connection", CONNECTIONS)
def test_a_script_failing_on_the_host_fails_the_task_with_its_exception(
    playbook_run: FleetRun, connection: str
) -> None:
    host = DENIED[connection].name
    enable = playbook_run.task("enable", host)

    assert enable["status"] == "failed"
    assert "System.UnauthorizedAccessException" in enable["result"]["msg"]
    assert playbook_run.writes(host) == []
    assert playbook_run.script_trips(host) == 2  # the read, and the change that the host refused


@pytest.mark.parametrize("connection", CONNECTIONS)
@pytest.mark.parametrize("fault", FAULT_CASES)
def test_each_transport_fault_gives_the_error_a_user_would_see(
    playbook_run: FleetRun, fault: str, connection: str
) -> None:
    status, message = FAULT_CASES[fault][1:]
    host = FAULTED[(fault, connection)].name
    audit = playbook_run.task("audit", host)

    assert audit["status"] == status, audit["result"]
    if message is not None:
        assert re.search(message, audit["result"]["msg"]), audit["result"]["msg"]
    assert playbook_run.writes(host) == []
    # The host ran the read when it answered, or when its answer was dropped; the other faults stop it earlier.
    assert playbook_run.script_trips(host) == (1 if fault in ("drop_mid_command", "slow") else 0)


@pytest.mark.parametrize("connection", CONNECTIONS)
def test_a_wrong_password_makes_the_host_unreachable(playbook_run: FleetRun, connection: str) -> None:
    host = WRONG_PASSWORD[connection].name
    audit = playbook_run.task("audit", host)

    assert audit["status"] == "unreachable"
    assert re.search(r"credentials were rejected|failed to authenticate", audit["result"]["msg"])
    assert playbook_run.script_trips(host) == 0


@pytest.mark.parametrize("connection", CONNECTIONS)
@pytest.mark.parametrize(
    ("validation", "status"), [("ignore", "ok"), ("system", "unreachable")], ids=["ignore", "untrusted CA"]
)
def test_https_certificate_validation(playbook_run: FleetRun, connection: str, validation: str, status: str) -> None:
    audit = playbook_run.task("audit", CERTIFICATES[(validation, connection)].name)

    assert audit["status"] == status, audit["result"]
    if status == "unreachable":
        assert "CERTIFICATE_VERIFY_FAILED" in audit["result"]["msg"]
