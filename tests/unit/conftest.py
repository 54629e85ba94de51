"""Unit fixtures: an action plugin wired to an emulated host, with no network and no ansible-playbook."""

from __future__ import annotations

import json
import typing as t
from unittest.mock import MagicMock

import pytest
from ansible.playbook.play_context import PlayContext
from ansible.plugins.loader import shell_loader
from ansible.plugins.shell.powershell import _parse_clixml

from tests.lab.fleet import Credentials, Fleet, HostState
from tests.lab.runner import run_command_line
from tests.lab.twins import Session


class EmulatedHost:
    """Answers _low_level_execute_command exactly as a lab host's cmd shell would (tests/lab/runner.py), without a
    network: the same bootstrap check, twins, code page and journal. Records each call, its command line and stdin."""

    def __init__(self, state: HostState) -> None:
        self.state = state
        self.fleet = Fleet(name="unit", credentials=Credentials("LAB", "ansible", "x"), hosts={state.name: state})
        self.session = Session(auth="ntlm", user="LAB\\ansible")
        self.calls: list[tuple[str, dict[str, t.Any]]] = []
        self.command_lines: list[str] = []
        self.stdins: list[bytes] = []
        self.changes: list[dict[str, t.Any]] = []

    def execute(
        self, cmd: str, sudoable: bool = True, in_data: bytes | None = None, **options: t.Any
    ) -> dict[str, t.Any]:
        words = cmd.split(" ")
        self.command_lines.append(cmd)
        self.stdins.append(in_data or b"")
        result = run_command_line(
            words[0], words[1:], in_data or b"", host=self.state, fleet=self.fleet, session=self.session
        )
        for script in result.run.scripts if result.run is not None else []:
            self.calls.append((script.script, script.params))
            self.changes += script.changes
        # As Ansible's winrm plugin does: powershell.exe's CLIXML stderr becomes its error text (progress is dropped).
        stderr = _parse_clixml(result.stderr) if result.stderr.startswith(b"#< CLIXML") else result.stderr
        return {
            "rc": result.rc,
            "stdout": result.stdout.decode(self.state.oem_code_page),
            "stderr": stderr.decode("utf-8"),
        }


def with_params(in_data: bytes | None, change: t.Callable[[dict[str, t.Any]], None]) -> bytes:
    """The stdin of a one-script run with its parameters changed by ``change``: how a test plays a host that does
    something else than it was asked (one that keeps no write answers as a read would)."""
    loader, scripts, params = (in_data or b"").decode("ascii").splitlines()
    document = json.loads(params)
    change(document["params"][0])
    return f"{loader}\n{scripts}\n{json.dumps(document)}\n".encode("ascii")


def make_action(
    action_class: type,
    args: dict[str, t.Any],
    host: EmulatedHost,
    *,
    check_mode: bool = False,
    fqcn: str = "mailflow.remediation.kerberos_logging",
) -> t.Any:
    task = MagicMock()
    task.args = dict(args)
    task.check_mode = check_mode
    task.diff = True
    task.async_val = 0
    task.action = task.resolved_action = fqcn
    return wire_action(action_class, task, host)


def wire_action(action_class: type, task: t.Any, host: EmulatedHost) -> t.Any:
    """An action plugin for ``task`` on a winrm connection whose commands the emulated host answers."""
    connection = MagicMock()
    connection.transport = "winrm"
    connection._shell = shell_loader.get("powershell")
    action = action_class(
        task=task,
        connection=connection,
        play_context=PlayContext(),
        loader=MagicMock(),
        templar=MagicMock(),
        shared_loader_obj=MagicMock(),
    )
    action._low_level_execute_command = host.execute
    return action


@pytest.fixture
def emulated_host() -> EmulatedHost:
    return EmulatedHost(
        HostState(
            name="ex01",
            fqdn="ex01.contoso.example",
            roles=["exchange"],
            registry={r"HKLM\SYSTEM\CURRENTCONTROLSET\CONTROL\LSA\KERBEROS\PARAMETERS": {}},
        )
    )
