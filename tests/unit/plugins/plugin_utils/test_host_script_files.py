"""Host script and library files as the seam loads them from host_scripts/: a header that names the file, a library
that is missing, and every line of code kept on the wire."""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest

from ansible_collections.mailflow.remediation.plugins.plugin_utils import _host_script
from ansible_collections.mailflow.remediation.plugins.plugin_utils._host_script import (
    load_host_library,
    load_host_script,
)

CONTRACT = "# output v: int\n"


@pytest.fixture
def script_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> t.Iterator[Path]:
    """An empty host_scripts/ (and lib/) for the test's own files; nothing loaded from it outlives the test."""
    (tmp_path / "lib").mkdir()
    monkeypatch.setattr(_host_script, "SCRIPT_DIR", tmp_path)
    monkeypatch.setattr(_host_script, "LIBRARY_DIR", tmp_path / "lib")
    load_host_script.cache_clear()
    load_host_library.cache_clear()
    yield tmp_path
    load_host_script.cache_clear()
    load_host_library.cache_clear()


@pytest.mark.parametrize(
    "first_line",
    ["# mailflow-host-script: kerberos_log_level v2", "Write-Output 'probe'", ""],
    ids=["another script's header", "no header", "an empty file"],
)
def test_a_script_whose_first_line_does_not_name_it_is_refused(script_dir: Path, first_line: str) -> None:
    (script_dir / "probe.ps1").write_text(f"{first_line}\n{CONTRACT}$v = 1\n" if first_line else "", encoding="utf-8")
    with pytest.raises(ValueError) as raised:
        load_host_script("probe")
    assert str(raised.value) == "probe.ps1: the first line must be '# mailflow-host-script: probe vN'"


@pytest.mark.parametrize(
    "first_line",
    ["# mailflow-host-library: directory v1", "function Get-Probe { 1 }"],
    ids=["another library's header", "no header"],
)
def test_a_library_whose_first_line_does_not_name_it_is_refused(script_dir: Path, first_line: str) -> None:
    (script_dir / "lib" / "probe.ps1").write_text(f"{first_line}\nfunction Get-Probe {{ 1 }}\n", encoding="utf-8")
    (script_dir / "probe.ps1").write_text(
        f"# mailflow-host-script: probe v1\n# requires probe\n{CONTRACT}$v = Get-Probe\n", encoding="utf-8"
    )
    with pytest.raises(ValueError) as raised:
        load_host_script("probe")
    assert str(raised.value) == "lib/probe.ps1: the first line must be '# mailflow-host-library: probe vN'"


def test_a_script_that_requires_a_library_that_does_not_exist_is_refused_naming_it(script_dir: Path) -> None:
    (script_dir / "probe.ps1").write_text(
        f"# mailflow-host-script: probe v1\n# requires ldap\n{CONTRACT}$v = 1\n", encoding="utf-8"
    )
    with pytest.raises(ValueError) as raised:
        load_host_script("probe")
    assert str(raised.value) == "no host library ldap (host_scripts/lib/ldap.ps1)"


def test_code_right_under_a_header_travels_and_only_comments_and_blank_lines_are_dropped(script_dir: Path) -> None:
    (script_dir / "lib" / "probe.ps1").write_text(
        "# mailflow-host-library: probe v1\nfunction Get-Probe { 1 }\n\n    # why, for reviewers\n  $probe = 2  \n",
        encoding="utf-8",
    )
    (script_dir / "probe.ps1").write_text(
        f"# mailflow-host-script: probe v1\n# requires probe\n{CONTRACT}$v = Get-Probe\n", encoding="utf-8"
    )

    script = load_host_script("probe")

    assert [(library.name, library.version) for library in script.libraries] == [("probe", 1)]
    assert script.libraries[0].wire_text == "# mailflow-host-library: probe v1\nfunction Get-Probe { 1 }\n$probe = 2"
    assert script.wire_text == "# mailflow-host-script: probe v1\n$v = Get-Probe"
