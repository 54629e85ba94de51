"""Unit fixtures: an action plugin wired to an emulated host, with no network and no ansible-playbook."""

from __future__ import annotations

import json
import typing as t
from unittest.mock import MagicMock

import pytest
from ansible.playbook.play_context import PlayContext
from ansible.plugins.loader import shell_loader

from tests.lab.fleet import HostException, HostState
from tests.lab.scripts import decode_command_line, identify
from tests.lab.twins import TWINS


class EmulatedHost:
    """Answers _low_level_execute_command the way the lab would, through the scripts' twins, and counts trips."""

    def __init__(self, state: HostState) -> None:
        self.state = state
        self.calls: list[tuple[str, dict[str, t.Any]]] = []
        self.writes: list[tuple[str, dict[str, t.Any]]] = []

    def execute(
        self, cmd: str, sudoable: bool = True, in_data: str | None = None, **options: t.Any
    ) -> dict[str, t.Any]:
        words = cmd.split(" ")
        received = identify(decode_command_line(words[0], words[1:]))
        params = json.loads(in_data or "{}")
        self.calls.append((received.name, params))
        twin = TWINS[received.name]
        document: dict[str, t.Any] = {"script": twin.name, "version": twin.version}
        rc = 0
        try:
            document.update(ok=True, result=twin.run(self.state, params, lambda op, p: self.writes.append((op, p))))
        except HostException as exc:
            document.update(ok=False, error={"type": exc.error_type, "message": exc.message})
            rc = 1
        return {"rc": rc, "stdout": json.dumps(document), "stderr": ""}


def make_action(action_class: type, args: dict[str, t.Any], host: EmulatedHost, *, check_mode: bool = False) -> t.Any:
    task = MagicMock()
    task.args = dict(args)
    task.check_mode = check_mode
    task.diff = True
    task.async_val = 0
    task.action = task.resolved_action = "mailflow.remediation.kerberos_logging"
    connection = MagicMock()
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
