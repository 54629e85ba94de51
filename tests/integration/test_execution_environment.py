"""The execution environment of docs/execution-environment/: ansible-builder creates its build context from the
collection as built from this checkout, and the Python libraries the image would install for the collection are the
ones requirements.txt names (read through meta/execution-environment.yml, as ansible-builder reads them)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration
# ansible-builder belongs to the development environment, not to the ansible-core floor's (make floor).
pytest.importorskip("ansible_builder")

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DEFINITION = REPO_ROOT / "docs" / "execution-environment" / "execution-environment.yml"


def run(*command: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    process = subprocess.run([str(part) for part in command], capture_output=True, text=True, cwd=cwd, check=False)
    assert process.returncode == 0, process.stdout + process.stderr
    return process


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The steps docs/scale.md gives, in a directory of their own: the EE's build context and the tarball."""
    work = tmp_path_factory.mktemp("ee")
    shutil.copy(DEFINITION, work / DEFINITION.name)
    run(BIN / "ansible-galaxy", "collection", "build", REPO_ROOT, "--output-path", work, cwd=work)
    (built,) = work.glob("mailflow-remediation-*.tar.gz")
    tarball = built.rename(work / "mailflow-remediation.tar.gz")
    run(BIN / "ansible-builder", "create", "-f", work / DEFINITION.name, "-c", work / "context", cwd=work)
    return work / "context", tarball


def test_the_context_installs_ansible_core_and_this_collection(context: tuple[Path, Path]) -> None:
    directory, tarball = context
    (containerfile,) = [path for path in (directory / "Containerfile", directory / "Dockerfile") if path.is_file()]
    text = containerfile.read_text(encoding="utf-8")
    assert 'ARG ANSIBLE_INSTALL_REFS="ansible-core>=2.16 ansible-runner"' in text
    assert "ansible-galaxy collection install" in text and "-r requirements.yml" in text
    requirements = yaml.safe_load((directory / "_build" / "requirements.yml").read_text(encoding="utf-8"))
    assert requirements == {"collections": [{"name": "/build/collections/mailflow-remediation.tar.gz", "type": "file"}]}
    assert (directory / "_build" / "collections" / "mailflow-remediation.tar.gz").read_bytes() == tarball.read_bytes()


def test_the_image_would_install_the_libraries_of_requirements_txt(context: tuple[Path, Path], tmp_path: Path) -> None:
    directory, tarball = context
    run(BIN / "ansible-galaxy", "collection", "install", tarball, "-p", tmp_path / "collections", cwd=tmp_path)
    # The script the image's builder stage runs over the installed collections, run here over ours.
    introspect = directory / "_build" / "scripts" / "introspect.py"
    found = yaml.safe_load(run(sys.executable, introspect, "introspect", tmp_path / "collections", cwd=tmp_path).stdout)
    wanted = [
        line.strip()
        for line in (REPO_ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert found["python"] == [f"{line}  # from collection mailflow.remediation" for line in wanted]
