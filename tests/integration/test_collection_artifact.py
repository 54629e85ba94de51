"""The built collection, installed as a user installs it: ansible-doc documents the module, nothing stray ships."""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [str(BIN / "ansible-galaxy"), "collection", "build", str(REPO_ROOT), "--output-path", str(out)],
        check=True,
        capture_output=True,
        cwd=out,
    )
    (tarball,) = out.glob("mailflow-remediation-*.tar.gz")
    return tarball


def test_artifact_holds_the_collection_and_nothing_of_the_workspace(artifact: Path) -> None:
    with tarfile.open(artifact) as archive:
        names = archive.getnames()
    assert "plugins/plugin_utils/host_scripts/kerberos_log_level.ps1" in names
    assert "plugins/action/kerberos_logging.py" in names
    assert "meta/runtime.yml" in names
    workspace = {".venv", ".venv-sanity", ".venv-floor", ".collections", ".cache", "build", "tools", "requirements"}
    stray = [name for name in names if name.split("/")[0] in workspace]
    assert stray == []


def test_installed_collection_is_documented_by_ansible_doc(artifact: Path, tmp_path: Path) -> None:
    target = tmp_path / "collections"
    subprocess.run(
        [str(BIN / "ansible-galaxy"), "collection", "install", str(artifact), "-p", str(target)],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(target)}
    modules = sorted(path.stem for path in (REPO_ROOT / "plugins" / "modules").glob("*.py"))
    shown = subprocess.run(
        [str(BIN / "ansible-doc"), "--json", *(f"mailflow.remediation.{module}" for module in modules)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    docs = json.loads(shown.stdout)
    for module in modules:
        doc = docs[f"mailflow.remediation.{module}"]["doc"]
        # The docs are a stub beside the action plugin, which ansible-test cannot compare: the options must be the
        # argument spec's, every one, and no other.
        action = importlib.import_module(f"ansible_collections.mailflow.remediation.plugins.action.{module}")
        assert set(doc["options"]) == set(action.ActionModule.ARGUMENTS["argument_spec"]), module
        assert re.search(r"KB \d+|symptoms|evidence", doc["short_description"]), module
    assert "KB 979174 step 5" in docs["mailflow.remediation.kerberos_logging"]["doc"]["short_description"]


def test_requires_ansible_floor_is_the_one_ci_tests() -> None:
    runtime = yaml.safe_load((REPO_ROOT / "meta" / "runtime.yml").read_text(encoding="utf-8"))
    floor = (REPO_ROOT / "requirements" / "floor.txt").read_text(encoding="utf-8")
    version = runtime["requires_ansible"].removeprefix(">=")
    assert f"ansible-core=={version}\n" in floor
