"""A twin is held to its script: the same text (hash), the same contract (inputs read, outputs returned, writes made),
and the lab's emulation of the bootstrap is held to the bootstrap's text.

Each twin module lists EXAMPLES, runs that exercise what its script does: (fleet, host, parameters), the parameters
possibly a function of the loaded fleet. Each runs here
the whole way a module's run goes: the seam builds the command line and stdin, the lab's cmd shell answers through
the twin, the seam reads the document and checks the result against the contract, and every change the lab finds
in the state must fall within what the contract declares the script writes.
"""

from __future__ import annotations

import hashlib
import json
import typing as t
from pathlib import Path

import pytest
from ansible.plugins.loader import shell_loader

from ansible_collections.mailflow.remediation.plugins.plugin_utils._host_script import (
    SCRIPT_DIR,
    Contract,
    bootstrap_text,
    build_invocation,
    load_host_script,
    loader_text,
    parse_script_output,
    wire_params,
    wire_text,
)
from tests.lab import scripts as lab_scripts
from tests.lab import twins as twin_package
from tests.lab.fleet import HostState, load_fleet
from tests.lab.journal import MISSING
from tests.lab.runner import run_command_line
from tests.lab.scripts import ScriptRefused, identify, normalized, script_sha256
from tests.lab.twins import TWINS, Params, Session, TwinContext

SCRIPTS = sorted(SCRIPT_DIR.glob("*.ps1"))
SHELL = shell_loader.get("powershell")
SESSION = Session(auth="ntlm", user="CONTOSO\\ansible")
EXAMPLES = [
    pytest.param(name, fleet, host, params, id=f"{name}-{fleet}-{host}-{index}")
    for name, twin_module in sorted((name, getattr(twin_package, name)) for name in TWINS)
    for index, (fleet, host, params) in enumerate(twin_module.EXAMPLES)
]


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda path: path.name)
def test_every_script_has_a_twin_written_against_this_exact_text(path: Path) -> None:
    script = load_host_script(path.stem)
    twin = TWINS.get(script.name)
    assert twin is not None, f"{path.name} has no twin in tests/lab/twins"
    assert twin.version == script.version, (
        f"{path.name} is v{script.version}, its twin was written against v{twin.version}"
    )
    expected = script_sha256(script.text, [library.text for library in script.libraries])
    assert twin.sha256 == expected, (
        f"{path.name} or a library it requires changed since its twin was reviewed: revisit "
        f"tests/lab/twins/{script.name}.py and record SHA256 = {expected!r}"
    )


def test_every_twin_has_a_script_and_examples() -> None:
    assert set(TWINS) == {path.stem for path in SCRIPTS}
    assert all(getattr(twin_package, name).EXAMPLES for name in TWINS)


@pytest.mark.parametrize(
    ("name", "text", "recorded"),
    [("bootstrap", bootstrap_text, "BOOTSTRAP_SHA256"), ("loader", loader_text, "LOADER_SHA256")],
)
def test_the_lab_emulates_the_bootstrap_and_loader_it_was_reviewed_against(
    name: str, text: t.Callable[[], str], recorded: str
) -> None:
    digest = hashlib.sha256(normalized(wire_text(text())).encode("utf-8")).hexdigest()
    assert digest == getattr(lab_scripts, recorded), (
        f"plugins/plugin_utils/{name}.ps1 changed: revisit run_bootstrap in tests/lab/runner.py and record "
        f"{recorded} = {digest!r} in tests/lab/scripts.py"
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Write-Output 'hello'", "not a mailflow host script"),
        ("", "not a mailflow host script"),
        ("Remove-Item C:\\ -Recurse\n# mailflow-host-script: kerberos_log_level v1", "not a mailflow host script"),
    ],
)
def test_the_lab_refuses_anything_that_is_not_a_host_script(text: str, reason: str) -> None:
    with pytest.raises(ScriptRefused, match=reason):
        identify(text)


def test_a_changed_script_is_told_apart_by_its_hash_and_a_comment_is_not_a_change() -> None:
    script = load_host_script("kerberos_log_level")
    changed = script.text.replace("$valueName = 'LogLevel'", "$valueName = 'LogLevel2'")
    commented = script.text.replace("$valueName = 'LogLevel'\n", "$valueName = 'LogLevel'\n# a reviewer's note\n")
    assert identify(changed).sha256 != TWINS["kerberos_log_level"].sha256
    assert identify(script.text).sha256 == identify(commented).sha256 == TWINS["kerberos_log_level"].sha256


def test_a_twin_cannot_read_an_input_its_script_does_not_declare() -> None:
    params = Params("kerberos_log_level", {"action": "read", "level": 1}, ["action", "value"])
    assert params["action"] == "read" and params["value"] is None
    with pytest.raises(KeyError, match="reads 'level', which its script does not declare as input"):
        params["level"]


# Where a change the lab finds lies (a path of tests/lab/journal.py), as the area of a contract's "# writes" line.
# Modules that add areas add their state paths here.
AREAS = {
    "fleet/directory": "directory",
    "host/certificates": "certificates",
    "host/clock_offset": "clock",
    "host/exchange/receive_connectors": "exchange",
    "host/firewall": "firewall",
    "host/registry": "registry",
    "host/services": "service",
    # The configuration a running W32Time works with: what a restart of the service makes it read again.
    "host/w32time_in_use": "service",
}


def declared_registry_values(contract: Contract) -> set[tuple[str, str, str]]:
    """(KEY, value name, kind) of each "# writes registry: KEY\\NAME KIND" line, upper-cased key and name."""
    values = set()
    for spec in contract.writes.get("registry", ()):
        path, kind = spec.rsplit(" ", 1)
        key, name = path.rsplit("\\", 1)
        values.add((key.upper(), name.upper(), kind))
    return values


def registry_change_declared(registry: set[tuple[str, str, str]], path: str, after: t.Any) -> bool:
    """host/registry/KEY/values/NAME -> [kind, value] must be a declared value of its declared kind (or its removal);
    host/registry/KEY/exists, the key created or deleted, goes with writing a value of that key."""
    key, _sep, rest = path[len("host/registry/") :].partition("/")
    for declared_key, name, kind in registry:
        if key != declared_key:
            continue
        if rest == "exists":
            return True
        if rest.upper() == f"VALUES/{name}" and (after == MISSING or after[0] == kind):
            return True
    return False


def undeclared_changes(contract: Contract, changes: list[dict[str, t.Any]]) -> list[str]:
    """Each change the lab found that the contract's "# writes" lines do not cover."""
    found = []
    registry = declared_registry_values(contract)
    for change in changes:
        path, after = change["path"], change["after"]
        area = next((name for prefix, name in AREAS.items() if path == prefix or path.startswith(prefix + "/")), None)
        covered = area is not None and area in contract.writes
        if covered and area == "registry":
            covered = registry_change_declared(registry, path, after)
        if not covered:
            found.append(f"{path}: {change['before']!r} -> {after!r}")
    return found


@pytest.mark.parametrize(("name", "fleet", "host", "params"), EXAMPLES)
def test_a_twin_keeps_its_scripts_contract(name: str, fleet: str, host: str, params: dict[str, t.Any]) -> None:
    lab_fleet = load_fleet(fleet)
    state: HostState = lab_fleet.host(host)
    script = load_host_script(name)
    if callable(params):
        # Parameters that depend on what the fleet generates when it loads (its PKI's certificates, say).
        params = params(lab_fleet)
    command, stdin = build_invocation(SHELL, script, wire_params(script, params))
    words = command.split(" ")

    outcome = run_command_line(words[0], words[1:], stdin, host=state, fleet=lab_fleet, session=SESSION)

    assert outcome.run is not None and outcome.run.script == name, outcome.stderr
    document = json.loads(outcome.stdout.decode("ascii"))
    if document["ok"]:
        # Raises when the twin's result lacks a declared output, has an undeclared one, or one of the wrong type.
        parse_script_output(script, rc=outcome.rc, stdout=outcome.stdout.decode("ascii"), stderr="")
    assert undeclared_changes(script.contract, outcome.run.changes) == []


def test_the_journal_sees_a_write_that_a_twin_does_not_declare() -> None:
    fleet = load_fleet("single")
    host = fleet.hosts["ex01"]
    script = load_host_script("kerberos_log_level")

    twin = TWINS["kerberos_log_level"]

    def careless(context: TwinContext, params: Params) -> dict[str, t.Any]:
        context.host.set_registry_value(r"HKLM\SOFTWARE\Contoso", "Touched", 1, "DWord")
        return twin.run(context, params)

    TWINS["kerberos_log_level"] = type(twin)(twin.name, twin.version, twin.sha256, careless)
    try:
        command, stdin = build_invocation(SHELL, script, wire_params(script, {"action": "read"}))
        words = command.split(" ")
        outcome = run_command_line(words[0], words[1:], stdin, host=host, fleet=fleet, session=SESSION)
    finally:
        TWINS["kerberos_log_level"] = twin
    assert outcome.run is not None
    assert undeclared_changes(script.contract, outcome.run.changes) == [
        "host/registry/HKLM\\SOFTWARE\\CONTOSO/exists: '(absent)' -> True",
        "host/registry/HKLM\\SOFTWARE\\CONTOSO/values/Touched: '(absent)' -> ['DWord', 1]",
    ]
