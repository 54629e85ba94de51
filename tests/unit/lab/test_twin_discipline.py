"""A twin is reviewed against its script: when a script changes, its twin must be revisited (and re-recorded)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.mailflow.remediation.plugins.plugin_utils._host_script import SCRIPT_DIR, load_host_script
from tests.lab.scripts import ScriptRefused, identify, script_sha256
from tests.lab.twins import TWINS

SCRIPTS = sorted(SCRIPT_DIR.glob("*.ps1"))


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda path: path.name)
def test_every_script_has_a_twin_written_against_this_exact_text(path: Path) -> None:
    script = load_host_script(path.stem)
    twin = TWINS.get(script.name)
    assert twin is not None, f"{path.name} has no twin in tests/lab/twins"
    assert twin.version == script.version, (
        f"{path.name} is v{script.version}, its twin was written against v{twin.version}"
    )
    assert twin.sha256 == script_sha256(script.text), (
        f"{path.name} changed since its twin was reviewed: revisit tests/lab/twins/{script.name}.py and record "
        f"SHA256 = {script_sha256(script.text)!r}"
    )


def test_every_twin_has_a_script() -> None:
    assert set(TWINS) == {path.stem for path in SCRIPTS}


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


def test_a_changed_script_is_told_apart_by_its_hash() -> None:
    script = load_host_script("kerberos_log_level")
    changed = script.text.replace("$valueName = 'LogLevel'", "$valueName = 'LogLevel2'")
    assert identify(changed).sha256 != TWINS["kerberos_log_level"].sha256
    assert identify(script.text).sha256 == TWINS["kerberos_log_level"].sha256
