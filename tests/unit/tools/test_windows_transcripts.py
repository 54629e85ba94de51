"""tools/windows_transcripts.py, which records transcripts on a hosted Windows runner, run here against the lab.

The workflow that runs it on Windows cannot run in our CI; what can be proven here is proven here: that it sends
exactly what the seam sends over winrm, that its sequence leaves a host as it found it, that what it writes is what
the replay reads, and that it imports where ansible-core's display module does not.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest
from ansible.plugins.loader import shell_loader

from ansible_collections.mailflow.remediation.plugins.plugin_utils._host_script import (
    SCRIPT_DIR,
    HostScriptRaised,
    build_invocation,
    load_host_script,
)
from tests.lab.fleet import Credentials, Fleet, HostState
from tests.lab.runner import run_command_line
from tests.lab.transcripts import host_runs, load_transcripts, replay
from tests.lab.twins import Session
from tools import windows_transcripts
from tools.windows_transcripts import PowerShellCommandLine, SequenceRefused, record

KEY = r"HKLM\SYSTEM\CURRENTCONTROLSET\CONTROL\LSA\KERBEROS\PARAMETERS"
REPO_ROOT = Path(__file__).resolve().parents[3]


def lab_host(values: dict[str, tuple[str, t.Any]] | None) -> HostState:
    registry = {KEY: dict(values)} if values is not None else {}
    return HostState(name="runner", fqdn="runner", roles=[], registry=registry)


def lab_powershell(host: HostState) -> windows_transcripts.Execute:
    """The lab's cmd shell in place of powershell.exe: the same bootstrap check, twin and code page as over winrm."""
    fleet = Fleet(name="runner", credentials=Credentials("LAB", "runneradmin", "x"), hosts={host.name: host})
    session = Session(auth="ntlm", user="runneradmin")

    def execute(command: str, stdin: bytes) -> tuple[int, str, str]:
        words = command.split(" ")
        result = run_command_line(words[0], words[1:], stdin, host=host, fleet=fleet, session=session)
        return result.rc, result.stdout.decode(host.oem_code_page), result.stderr.decode("ascii", errors="replace")

    return execute


def recorded(output: Path) -> list[dict[str, t.Any]]:
    [runs] = list(host_runs(load_transcripts(output)).values())
    return [run.params for run in runs]


@pytest.mark.parametrize("path", sorted(SCRIPT_DIR.glob("*.ps1")), ids=lambda path: path.name)
def test_the_tool_sends_the_command_line_and_stdin_the_seam_sends_over_winrm(path: Path) -> None:
    script = load_host_script(path.stem)
    params = {key: None for key in script.contract.inputs}
    assert build_invocation(PowerShellCommandLine(), script, params) == build_invocation(
        shell_loader.get("powershell"), script, params
    )


@pytest.mark.parametrize(
    ("found", "restore"),
    [
        pytest.param(None, [], id="no LogLevel"),
        pytest.param({"LogLevel": ("DWord", 5)}, [{"action": "set", "value": 5}], id="REG_DWORD 5"),
        pytest.param({"LogLevel": ("DWord", 0xFFFFFFFF)}, [{"action": "set", "value": -1}], id="REG_DWORD 0xFFFFFFFF"),
    ],
)
def test_the_sequence_records_each_run_and_leaves_the_host_as_it_found_it(
    tmp_path: Path, found: dict[str, tuple[str, t.Any]] | None, restore: list[dict[str, t.Any]]
) -> None:
    host = lab_host(found or {})
    before = copy.deepcopy(host.registry)

    written = record(lab_powershell(host), tmp_path, "fv-az123-456")

    assert host.registry == before
    assert [path.relative_to(tmp_path).as_posix() for path in written] == [
        f"windows-2022-runner/fv-az123-456-{sequence:06d}-kerberos_log_level.json"
        for sequence in range(1, 6 + len(restore))
    ]
    assert recorded(tmp_path) == [
        {"action": "read", "value": None},
        {"action": "set", "value": 1},
        {"action": "set", "value": -1},
        {"action": "remove", "value": None},
        {"action": "read", "value": None},
        *({"value": None, **params} for params in restore),
    ]
    # What the tool writes is what the replay of tests/transcripts/ reads (here, trivially, the twin agrees).
    [runs] = list(host_runs(load_transcripts(tmp_path)).values())
    replay(runs)


def test_a_loglevel_it_could_not_put_back_is_left_alone(tmp_path: Path) -> None:
    host = lab_host({"LogLevel": ("String", "1")})

    with pytest.raises(SequenceRefused) as raised:
        record(lab_powershell(host), tmp_path, "runner")

    assert str(raised.value) == (
        "kerberos_log_level: LogLevel is a String value ('1'); the script can put back only a REG_DWORD, so nothing "
        "was changed"
    )
    assert host.registry == {KEY: {"LogLevel": ("String", "1")}}
    assert recorded(tmp_path) == [{"action": "read", "value": None}]


def test_a_write_windows_refuses_is_recorded_and_ends_the_sequence(tmp_path: Path) -> None:
    host = lab_host({})
    host.registry_write_denied.add(KEY)

    with pytest.raises(HostScriptRaised) as raised:
        record(lab_powershell(host), tmp_path, "runner")

    assert str(raised.value) == (
        "host script kerberos_log_level failed on the host: System.UnauthorizedAccessException: Access to the "
        "registry key 'HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Control\\Lsa\\Kerberos\\Parameters' is denied."
    )
    assert recorded(tmp_path) == [{"action": "read", "value": None}, {"action": "set", "value": 1}]


def test_outside_windows_the_tool_says_it_needs_windows(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert windows_transcripts.main(["--output", str(tmp_path)]) == 2
    assert capsys.readouterr().err == "windows_transcripts: runs Windows PowerShell 5.1, so it runs on Windows only\n"
    assert list(tmp_path.iterdir()) == []


# What Python on Windows lacks that ansible-core's display module imports or asks for at import time.
WITHOUT_POSIX = """
import multiprocessing, sys
for name in ("fcntl", "termios", "tty", "pwd", "grp", "resource"):
    sys.modules[name] = None
get_context = multiprocessing.get_context
def windows_get_context(method=None):
    if method == "fork":
        raise ValueError("cannot find context for 'fork'")
    return get_context(method)
multiprocessing.get_context = windows_get_context
import tools.windows_transcripts
print("imported")
"""


def test_the_tool_imports_without_the_posix_modules_windows_lacks() -> None:
    # The guard that ansible.utils.display (which the seam imports only when a transcript fails) stays out of the
    # tool's imports: on the Windows runner it would stop the tool before it ran anything.
    check = subprocess.run(
        [sys.executable, "-c", WITHOUT_POSIX],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={"PYTHONPATH": os.pathsep.join((str(REPO_ROOT), str(REPO_ROOT / ".collections"))), "PATH": ""},
        check=False,
    )
    assert (check.returncode, check.stdout, check.stderr) == (0, "imported\n", "")
